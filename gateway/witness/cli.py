"""`gateway witness ...`: run a witness, make its keys, read the evidence it kept.

Exit status: 0 success, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gateway.arguments import existing_file, output_directory
from gateway.audit.cosignature import generate_cosigner
from gateway.audit.errors import NoteError
from gateway.config import ConfigError
from gateway.witness.errors import WitnessStateError

__all__ = ["register"]

SIGNER_FILE = "witness.key"
VERIFIER_FILE = "witness.pub"


def register(subparsers: Any) -> None:
    """Add the `witness` command group to an argparse sub-parser collection."""
    witness = subparsers.add_parser(
        "witness",
        help="run a C2SP tlog-witness that cosigns the audit log's checkpoints",
        description="A witness cosigns a log's checkpoints only when they extend what it "
        "cosigned before (docs/audit.md, Witnesses). Exit status: 0 success, 2 bad input.",
    )
    commands = witness.add_subparsers(dest="witness_command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the witness")
    serve.add_argument(
        "--config",
        required=True,
        type=existing_file,
        metavar="FILE",
        help="the witness settings file",
    )
    serve.set_defaults(func=_serve)

    evidence = commands.add_parser(
        "evidence", help="print the refused checkpoints kept as evidence, as JSON lines"
    )
    evidence.add_argument(
        "--config",
        required=True,
        type=existing_file,
        metavar="FILE",
        help="the witness settings file",
    )
    evidence.add_argument("--origin", help="only the evidence about this log origin")
    evidence.set_defaults(func=_evidence)

    keys = commands.add_parser("keys", help="witness keys")
    key_commands = keys.add_subparsers(
        dest="witness_keys_command", required=True, metavar="COMMAND"
    )
    generate = key_commands.add_parser("generate", help="write a new witness key pair")
    generate.add_argument(
        "--out",
        required=True,
        type=output_directory,
        metavar="DIR",
        help=f"folder for {SIGNER_FILE} (secret, mode 0600) and {VERIFIER_FILE}",
    )
    generate.add_argument(
        "--name", required=True, help="the witness name, e.g. witness.agency.example/w1"
    )
    generate.set_defaults(func=_generate)


def _settings(path: Path) -> Any:
    from gateway.witness.settings import load_witness_settings

    try:
        return load_witness_settings(path)
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return None


def _serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging
    from gateway.witness.serving import serve_witness

    settings = _settings(args.config)
    if settings is None:
        return 2
    configure_logging(settings.log_level)
    try:
        serve_witness(settings)
    except WitnessStateError as exc:
        print(f"gateway: witness state error: {exc.reason}", file=sys.stderr)
        return 2
    return 0


def _evidence(args: argparse.Namespace) -> int:
    from gateway.witness.state import WitnessState

    settings = _settings(args.config)
    if settings is None:
        return 2
    if not settings.state.exists():
        print(f"error: no witness state at {settings.state}", file=sys.stderr)
        return 2
    try:
        state = WitnessState(settings.state)
        try:
            kept = state.evidence(args.origin)
        finally:
            state.close()
    except WitnessStateError as exc:
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    for item in kept:
        print(
            json.dumps(
                {
                    "id": item.id,
                    "origin": item.origin,
                    "received_us": item.received_us,
                    "status": item.status,
                    "reason": item.reason,
                    "old_size": item.old_size,
                    "proof": item.proof.splitlines(),
                    "checkpoint": item.note,
                    "known_size": item.known_size,
                    "known_checkpoint": item.known_note,
                },
                ensure_ascii=False,
            )
        )
    if not kept:
        print("no evidence kept", file=sys.stderr)
    return 0


def _generate(args: argparse.Namespace) -> int:
    try:
        signer = generate_cosigner(args.name)
    except NoteError as exc:
        print(f"error: --name {args.name!r}: {exc.reason}", file=sys.stderr)
        return 2
    out: Path = args.out
    for name in (SIGNER_FILE, VERIFIER_FILE):
        if (out / name).exists():
            print(f"error: --out {out}: {name} exists; keys are never overwritten", file=sys.stderr)
            return 2
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write_new(out / SIGNER_FILE, signer.to_string() + "\n", 0o600)
        _write_new(out / VERIFIER_FILE, signer.verifier.to_string() + "\n", 0o644)
    except FileExistsError as exc:
        print(
            f"error: --out {out}: {exc.filename} exists; keys are never overwritten",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(f"error: --out {out}: cannot write the keys there ({exc.strerror})", file=sys.stderr)
        return 2
    print(f"wrote witness keys for {args.name} to {out}")
    print(f"verifier key: {signer.verifier.to_string()}")
    return 0


def _write_new(path: Path, text: str, mode: int) -> None:
    # O_EXCL: never overwrite a key that may already cosign.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(path, mode)
