"""The `gateway` command as a whole: every option explains itself, and a reader that
stops early or a Ctrl-C ends a command quietly, never in a traceback."""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.audit import AuditLog, AuditSettings, generate_keys
from gateway.audit.keys import HMAC_KEY_FILE, SIGNING_KEY_FILE
from gateway.cli import build_parser
from gateway.demo.__main__ import build_parser as demo_parser
from gateway.demo.upstream import build_parser as upstream_parser
from tests.audit.conftest import make_record

GATEWAY = Path(sys.executable).parent / "gateway"


def parsers(
    parser: argparse.ArgumentParser, name: str = "gateway"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub-)command's parser, depth first, with the words that select it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for word, child in action.choices.items():
                yield from parsers(child, f"{name} {word}")


def every_parser() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """The `gateway` command and the two demo commands, with all their sub-commands."""
    yield from parsers(build_parser())
    yield from parsers(demo_parser(), "python -m gateway.demo")
    yield from parsers(upstream_parser(), "python -m gateway.demo.upstream")


def commands_and_options() -> Iterator[tuple[str, argparse.Action]]:
    for name, parser in every_parser():
        for action in parser._actions:
            # A sub-command list is checked through its choices, below.
            if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                yield name, action


def test_every_command_and_option_has_help() -> None:
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, action in commands_and_options()
        if not action.help
    ]
    subcommands_without_help = [
        f"{name} {choice.dest}"
        for name, parser in every_parser()
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
        if not choice.help
    ]
    assert (missing, subcommands_without_help) == ([], [])


def test_the_walk_sees_every_command() -> None:
    names = {name for name, _ in every_parser()}
    assert {
        "gateway serve",
        "gateway demo-upstream",
        "gateway policy explain",
        "gateway audit query",
        "gateway audit check-consistency",
        "gateway certs issue",
        "gateway keys generate",
        "gateway keys assertion",
        "python -m gateway.demo",
        "python -m gateway.demo.upstream",
    } <= names


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["demo-upstream", "--port", "70000"], "argument --port: '70000' is not a port number"),
        (["certs", "init-ca", "--out", "x", "--name", "n", "--days", "0"], "argument --days:"),
        (["certs", "issue", "--ca-dir", "/nonexistent", "--out", "x", "--cn", "c", "--org", "o"],
         "argument --ca-dir: no such folder: /nonexistent"),
        (["certs", "issue", "--ca-dir", ".", "--out", "x", "--cn", "c", "--org", "o",
          "--not-before", "soon"], "argument --not-before: 'soon' is not a time: give"),
        (["policy", "explain", "policies", "--principal", "p", "--at", "-1x"],
         "argument --at: '-1x' is not a time: give"),
        (["policy", "explain", "policies", "--principal", "p", "--at", "now", "--action", "x"],
         "argument --action: invalid choice: 'x' (choose from"),
    ],
)  # fmt: skip
def test_a_refused_argument_is_named_with_what_it_accepts(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with enough records that an export fills a pipe (about 2 MB)."""
    folder = tmp_path_factory.mktemp("big")
    generate_keys(folder / "keys", "gateway.test/audit")
    settings = AuditSettings(
        store=folder / "audit.db",
        origin="gateway.test/audit",
        signing_key=folder / "keys" / SIGNING_KEY_FILE,
        hmac_key=folder / "keys" / HMAC_KEY_FILE,
        checkpoint_every_records=1000,
        checkpoint_every_seconds=3600,
    )

    async def write() -> None:
        log = AuditLog(settings)
        await log.start()
        await asyncio.gather(*(log.append(make_record(n)) for n in range(3000)))
        await log.stop()

    asyncio.run(write())
    return settings.store


def test_a_reader_that_stops_early_ends_the_export_quietly(big_store: Path) -> None:
    result = subprocess.run(  # noqa: S602 - the pipe to head is what is tested
        f"'{GATEWAY}' audit export --store '{big_store}' | head -n 1; "
        'echo "status ${PIPESTATUS[0]}" >&2',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.startswith('{"client_address"')
    assert result.stderr == "status 141\n"


def test_ctrl_c_ends_a_command_with_status_130_and_one_line(big_store: Path) -> None:
    # stdout is a pipe nobody reads: the export blocks once it is full, then gets SIGINT.
    process = subprocess.Popen(
        [str(GATEWAY), "audit", "export", "--store", str(big_store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        time.sleep(2)
        assert process.poll() is None, "the export ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        status = process.wait(timeout=30)  # stdout still unread: exiting must not block on it
        stderr = process.stderr.read()
    finally:
        process.kill()
        process.stdout.close()
        process.stderr.close()
    assert (status, stderr) == (130, b"interrupted\n")
