"""Argument types shared by the `gateway` sub-commands.

Each is an argparse `type=`: it turns the text into a value or raises
`argparse.ArgumentTypeError` with a message that says what is accepted; argparse puts
the option's name in front (``argument --since: 'soon' is not a time: give ...``) and
exits with status 2. Checking files here, before a command runs, is for the message
only: the command still handles a file that changes in between.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from gateway.instants import InstantError, parse_instant

__all__ = [
    "existing_directory",
    "existing_file",
    "instant",
    "join_negative_offsets",
    "new_file",
    "non_negative_integer",
    "output_directory",
    "port",
    "positive_integer",
    "positive_number",
]


def instant(
    *, zone_required: bool = False, clock: Callable[[], float] = time.time
) -> Callable[[str], datetime]:
    """A type for a time: ISO 8601, a date, now/today/yesterday/tomorrow or -1d, +2h, ..."""

    def convert(text: str) -> datetime:
        now = datetime.fromtimestamp(clock(), UTC)
        try:
            return parse_instant(text, now, zone_required=zone_required)
        except InstantError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    convert.__name__ = "time"  # argparse names the type in some messages
    return convert


# "-1d", "-30m", and look-alikes such as "-1y", so that the type's message can name them.
_NEGATIVE_OFFSET = re.compile(r"-[0-9][0-9A-Za-z]*")


def join_negative_offsets(argv: Sequence[str]) -> list[str]:
    """`--since -1d` as `--since=-1d`, so that argparse takes the offset as the value.

    argparse reads a word that starts with "-" and is not a plain negative number as an
    option, and refuses `--since -1d` with "expected one argument". No option of the
    command is spelled like this (a dash, then a digit), so such a word can only be the
    preceding option's value.
    """
    joined: list[str] = []
    for word in argv:
        previous = joined[-1] if joined else ""
        if (
            _NEGATIVE_OFFSET.fullmatch(word)
            and previous.startswith("--")
            and "=" not in previous
            and previous != "--"
        ):
            joined[-1] = f"{previous}={word}"
        else:
            joined.append(word)
    return joined


def _integer(text: str, minimum: int) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least {minimum}")
    return value


def positive_integer(text: str) -> int:
    """A whole number of at least 1."""
    return _integer(text, 1)


def non_negative_integer(text: str) -> int:
    """A whole number of at least 0."""
    return _integer(text, 0)


def positive_number(text: str) -> float:
    """A number greater than 0, such as 3 or 0.5 (seconds, say)."""
    try:
        value = float(text)
    except ValueError:
        value = None
    # NaN and infinity are numbers to float(), not to a user.
    if value is None or not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a positive number: give a number greater than 0, such as 3 or 0.5"
        )
    return value


def port(text: str) -> int:
    """A TCP port number, 0 to 65535 (0: any free port)."""
    value = _integer(text, 0)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return value


def existing_file(text: str) -> Path:
    """A path to a file that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file")
    return path


def existing_directory(text: str) -> Path:
    """A path to a folder that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such folder: {text}")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; expected a folder")
    return path


def new_file(text: str) -> Path:
    """A path to write a file to: its folder must exist, and it must not be a folder."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected a file name")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"the folder of {text} does not exist")
    return path


def output_directory(text: str) -> Path:
    """A folder to write files to: it may not exist yet (it is created), but it must not
    be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is a file, not a folder; give a folder (it is created if missing)"
        )
    return path
