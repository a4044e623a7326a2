"""The `gateway` command as a whole: every option explains itself, and a reader that
stops early or a Ctrl-C ends a command quietly, never in a traceback."""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.admin.cli import _ca_bundle
from gateway.arguments import existing_directory, existing_file
from gateway.audit import AuditLog, AuditSettings, generate_keys
from gateway.audit.cli_inputs import note_file, store_location, verifier_key
from gateway.audit.cli_witnesses import witness_key
from gateway.audit.keys import HMAC_KEY_FILE, SIGNING_KEY_FILE
from gateway.cli import build_parser, main
from gateway.demo.__main__ import build_parser as demo_parser
from gateway.demo.upstream import build_parser as upstream_parser
from gateway.policy.cli import policy_directory
from gateway.policy.grant_cli import _grants_file
from tests.audit.conftest import make_record

GATEWAY = Path(sys.executable).parent / "gateway"
REPO = Path(__file__).resolve().parents[1]
ALICE = str(REPO / "examples" / "principals" / "alice.yaml")


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
        (["policy", "explain", "policies", "--principal", ALICE, "--at", "-1x"],
         "argument --at: '-1x' is not a time: give"),
        (["policy", "explain", "policies", "--principal", ALICE, "--at", "now", "--action", "x"],
         "argument --action: invalid choice: 'x' (choose from"),
    ],
)  # fmt: skip
def test_a_refused_argument_is_named_with_what_it_accepts(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


# The argument types that read a file the user hands in, and those that read a folder.
READS_A_FILE: set[Callable[[str], Any]] = {
    existing_file,
    store_location,
    verifier_key,
    witness_key,
    note_file,
    _ca_bundle,
    _grants_file,
}
READS_A_FOLDER: set[Callable[[str], Any]] = {existing_directory, policy_directory}

# Arguments that name files or folders the command writes: not input, so not walked.
WRITTEN = {
    ("gateway certs init-ca", "--out"),
    ("gateway certs issue", "--out"),
    ("gateway certs server", "--out"),
    ("gateway keys assertion", "--out"),
    ("gateway grant keys generate", "--out"),
    ("gateway keys generate", "--out"),
    ("gateway witness keys generate", "--out"),
    ("gateway audit prove", "--out"),
    ("gateway audit consistency", "--out"),
}

# Valid arguments a command needs before the walked one can be reached.
BEFORE = {("gateway policy diff", "NEW"): [str(REPO / "policies")]}  # OLD comes first


def name_of(action: argparse.Action) -> str:
    """The name argparse gives an argument in its messages."""
    if action.option_strings:
        return max(action.option_strings, key=len)
    return str(action.metavar or action.dest)


def file_arguments() -> Iterator[tuple[str, argparse.Action]]:
    for command, parser in parsers(build_parser()):
        for action in parser._actions:
            if action.type in READS_A_FILE or action.type in READS_A_FOLDER:
                yield command, action


def test_every_file_argument_is_walked_or_written() -> None:
    """An argument that names a file or folder but has none of the walked types would
    slip past the test below: it must read through one of them, or be written."""
    unchecked = [
        f"{command} {name_of(action)}"
        for command, parser in parsers(build_parser())
        for action in parser._actions
        if (action.metavar in ("FILE", "DIR", "KEY", "PREFIX") or action.dest == "file")
        and action.type not in READS_A_FILE | READS_A_FOLDER
        and (command, name_of(action)) not in WRITTEN
    ]
    assert unchecked == []
    walked = {f"{command} {name_of(action)}" for command, action in file_arguments()}
    assert {"gateway serve --config", "gateway admin --cacert", "gateway policy check DIR",
            "gateway grant sign FILE", "gateway certs inspect FILE"} <= walked  # fmt: skip


@pytest.mark.parametrize("given", ["missing", "other kind"])
@pytest.mark.parametrize(
    ("command", "action"),
    list(file_arguments()),
    ids=[f"{command} {name_of(action)}" for command, action in file_arguments()],
)
def test_a_missing_or_wrong_kind_of_path_is_refused_by_name(
    command: str,
    action: argparse.Action,
    given: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A missing path, or a folder where a file is read (a file where a folder is): exit
    status 2, one message naming the argument, no traceback."""
    if given == "missing":
        path = tmp_path / "missing"
    elif action.type in READS_A_FOLDER:
        path = tmp_path / "file.yaml"
        path.write_text("models: []\n")
    else:
        path = tmp_path
    name = name_of(action)
    words = command.split()[1:]
    given_path = [name, str(path)] if action.option_strings else [str(path)]
    try:
        status = main([*words, *BEFORE.get((command, name), []), *given_path])
    except SystemExit as exited:
        status = exited.code
    except Exception:  # noqa: BLE001 - what the user would see is the assertion's subject
        status = traceback.format_exc()
    err = capsys.readouterr().err
    # The message is the last line: the usage argparse prints above it names every option.
    message = err.strip().splitlines()[-1] if err.strip() else ""
    assert (status, "Traceback" in err, name in message) == (2, False, True), err


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
