"""`gateway certs`: what `issue` writes, `inspect` reads back through the same parser."""

from __future__ import annotations

import argparse
import json
import stat
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.identity.cli import register


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    result: int = args.func(args)
    return result


def test_inspect_shows_the_citizenship_that_issue_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    assert _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA") == 0
    assert _run(
        "certs", "issue", "--ca-dir", str(ca), "--out", str(tmp_path / "dana"),
        "--cn", "dana", "--org", "US CAISI", "--ou", "evaluator",
        "--citizenship", "USA", "--citizenship", "CN", "--residence", "D",
    ) == 0  # fmt: skip
    capsys.readouterr()

    assert _run("certs", "inspect", str(tmp_path / "dana.pem")) == 0
    report = json.loads(capsys.readouterr().out)

    assert (
        report["citizenship"],
        report["residence"],
        report["common_name"],
        report["organisation"],
        report["organisational_units"],
    ) == (["CN", "US"], ["DE"], "dana", ["US CAISI"], ["evaluator"])


def test_keys_are_written_readable_only_by_the_owner(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA")
    _run("certs", "server", "--ca-dir", str(ca), "--out", str(tmp_path / "srv"), "--host", "x")

    modes = {stat.S_IMODE(p.stat().st_mode) for p in (ca / "ca-key.pem", tmp_path / "srv-key.pem")}

    assert {0o600} == modes


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """What `gateway ARGV` says on standard error when argparse refuses an argument."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    return capsys.readouterr().err


def test_issue_with_an_unknown_country_names_the_option_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = tmp_path / "ca"
    _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA")

    err = _refused(
        ["certs", "issue", "--ca-dir", str(ca), "--out", str(tmp_path / "x"),
         "--cn", "x", "--org", "o", "--citizenship", "ZZ"], capsys,
    )  # fmt: skip

    assert "argument --citizenship: 'ZZ' is not a country code: give an ISO 3166-1" in err
    assert not (tmp_path / "x.pem").exists()
    assert "argument --residence: 'XXA'" in _refused(
        ["certs", "issue", "--ca-dir", str(ca), "--out", str(tmp_path / "x"),
         "--cn", "x", "--org", "o", "--residence", "XXA"], capsys,
    )  # fmt: skip


def test_inspect_of_a_missing_file_says_it_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.pem"
    assert f"argument FILE: no such file: {missing}" in _refused(
        ["certs", "inspect", str(missing)], capsys
    )
    assert f"argument FILE: {tmp_path} is a folder" in _refused(
        ["certs", "inspect", str(tmp_path)], capsys
    )


def test_init_ca_into_a_file_says_it_is_not_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    assert f"argument --out: {file} is a file, not a folder" in _refused(
        ["certs", "init-ca", "--out", str(file), "--name", "Test CA"], capsys
    )


@pytest.mark.parametrize("command", ["issue", "server"])
@pytest.mark.parametrize("existing", ["x.pem", "x-key.pem"])
def test_issue_and_server_never_overwrite_a_certificate_or_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, existing: str
) -> None:
    ca = tmp_path / "ca"
    _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA")
    (tmp_path / existing).write_text("kept")
    names = ["--cn", "x", "--org", "o"] if command == "issue" else ["--host", "x.test"]
    capsys.readouterr()

    status = main(["certs", command, "--ca-dir", str(ca), "--out", str(tmp_path / "x"), *names])

    assert status == 2
    assert "never overwritten" in capsys.readouterr().err
    assert (tmp_path / existing).read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ca", existing])


@pytest.mark.parametrize("name", ["not a host!", "-x.test", "a..b", "x_y.test", "*"])
def test_server_refuses_a_host_that_is_no_dns_name_or_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    err = _refused(
        ["certs", "server", "--ca-dir", str(tmp_path), "--out", str(tmp_path / "s"),
         f"--host={name}"], capsys,
    )  # fmt: skip
    assert f"argument --host: {name!r} is not a host name: give a DNS name" in err


def test_server_takes_dns_names_wildcards_and_addresses(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    _run("certs", "init-ca", "--out", str(ca), "--name", "Test CA")
    hosts = ["gateway.example.org", "*.example.org", "localhost", "127.0.0.1", "::1"]
    argv = ["certs", "server", "--ca-dir", str(ca), "--out", str(tmp_path / "s")]
    assert main(argv + [word for name in hosts for word in ("--host", name)]) == 0
