"""`gateway admin`: a credential or URL it cannot use is refused before any connection,
naming the option and what it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main
from gateway.identity.pki import init_ca, issue_client


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    init_ca(folder / "ca", "Test CA")
    issue_client(folder / "ca", folder / "op", common_name="op", organisation="o")
    (folder / "garbage").write_text("garbage\n")
    return folder


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--cacert", "garbage", "is not a PEM CA bundle (one or more -----BEGIN CERTIFICATE"),
        ("--cacert", "missing", "no such file"),
        ("--key", "missing", "no such file"),
        ("--cert", "missing", "no such file"),
        ("--url", "garbage", "'garbage' is not a gateway URL: give https://HOST[:PORT] or http"),
        ("--url", "ftp://gw", "is not a gateway URL"),
        ("--url", "https://gw:port", "is not a gateway URL"),
    ],
)
def test_an_unusable_option_is_refused_by_name(
    pki: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, said: str
) -> None:
    argument = str(pki / value) if option != "--url" else value
    err = _refused(["admin", option, argument, "policy"], capsys)
    assert f"argument {option}: " in err
    assert said in err


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--cert", "op.pem"], "--cert {pki}/op.pem: give its private key with --key FILE"),
        (["--key", "op-key.pem"], "--key {pki}/op-key.pem: give the certificate it belongs to"),
        (["--cert", "garbage", "--key", "op-key.pem"], "not a PEM certificate and its private"),
        (["--cert", "op.pem", "--key", "garbage"], "not a PEM certificate and its private key"),
        (["--cert", "op.pem", "--key", "ca/ca-key.pem"], "not a PEM certificate and its private"),
    ],
)
def test_a_certificate_and_key_that_do_not_go_together_are_refused_before_connecting(
    pki: Path, capsys: pytest.CaptureFixture[str], options: list[str], said: str
) -> None:
    argv = [word if word.startswith("--") else str(pki / word) for word in options]
    # Port 9 (discard) on localhost: nothing may be tried before the options are checked.
    status = main(["admin", "--url", "https://127.0.0.1:9", *argv, "policy"])
    err = capsys.readouterr().err
    assert status == 2
    assert said.format(pki=pki) in err
    assert "cannot reach" not in err


def test_an_unreachable_gateway_is_one_line_naming_the_url(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        ["admin", "--url", "https://127.0.0.1:9", "--cacert", str(pki / "ca" / "ca.pem"),
         "--cert", str(pki / "op.pem"), "--key", str(pki / "op-key.pem"), "policy"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("error: cannot reach the gateway at --url https://127.0.0.1:9: ")
    assert err.count("\n") == 1
