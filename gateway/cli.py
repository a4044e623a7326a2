"""The `gateway` command: serve, policy, grant, config, audit, keys, certs, admin and witness.

Each sub-package registers its own sub-commands; every command returns its exit status
(0 success, 1 a check failed, 2 bad input or configuration). A reader that stops early
(`gateway audit export | head`) ends the command quietly with status 141, as SIGPIPE
ends other Unix tools; Ctrl-C ends it with status 130.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.arguments import (
    existing_file,
    join_negative_offsets,
    output_directory,
    port,
    positive_integer,
)
from gateway.config import ConfigError

_BROKEN_PIPE, _INTERRUPTED = 128 + 13, 128 + 2


def _serve(args: argparse.Namespace) -> int:
    from gateway.logs import configure_logging, get_logger
    from gateway.policy import PolicyError
    from gateway.settings import load_settings

    try:
        settings = load_settings(Path(args.config))
    except ConfigError as exc:
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    if not settings.identity.has_sources():
        print(
            f"gateway: configuration error: {settings.source}: identity: configure at least one "
            "issuer or certificate authority; the gateway does not serve anonymous callers",
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    from gateway.server import serve

    if args.workers > 1:
        from gateway.workers import Supervisor

        problem = _counted_alone(settings)
        if problem is not None:
            print(f"gateway: configuration error: {settings.source}: {problem}", file=sys.stderr)
            return 2
        return Supervisor(Path(args.config), settings, args.workers).run()
    try:
        serve(settings)
    except ConfigError as exc:  # found while building TLS or reading key files
        print(f"gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        get_logger().error("policy.invalid", error=str(exc))
        print(f"gateway: policy error: {exc}", file=sys.stderr)
        return 2
    return 0


def _counted_alone(settings: Any) -> str | None:
    """Why `--workers N` cannot serve this policy without a shared counter store: each
    worker would count quotas and rate limits alone, multiplying every limit by N."""
    from gateway.policy import PolicyError, load_policy

    if settings.quotas.store is not None:
        return None
    try:
        policy = load_policy(settings.policy.directory)
    except PolicyError:
        return None  # the workers report it, as a single process would
    limits = policy.settings.rate_limits
    if any(grant.quota is not None for grant in policy.grants) or (
        limits.principal_per_minute or limits.organisation_per_minute or limits.organisations
    ):
        return (
            "quotas.store: the policy declares quotas or rate limits, and with --workers each"
            " worker would count them alone (every limit times the number of workers); set"
            " quotas.store to a Redis URL every worker shares"
        )
    return None


def build_parser() -> argparse.ArgumentParser:
    from gateway.admin.cli import register as register_admin
    from gateway.audit.cli import register as register_audit
    from gateway.candidate.cli import register_replay
    from gateway.config_check import register as register_config
    from gateway.demo._options import add_assertion_arguments
    from gateway.identity.cli import register as register_certs
    from gateway.policy.cli import register as register_policy
    from gateway.policy.grant_cli import register as register_grant
    from gateway.witness.cli import register as register_witness

    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Model Access Gateway: identity, policy and audit in front of AI models.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        required=True,
        type=existing_file,
        metavar="FILE",
        help="the settings file (YAML; every key is in docs/configuration.md)",
    )
    serve.add_argument(
        "--workers",
        type=positive_integer,
        default=1,
        metavar="N",
        help="gateway processes sharing the listener and the audit store (default 1)",
    )
    serve.set_defaults(func=_serve)
    register_replay(register_policy(commands))
    register_grant(commands)
    register_config(commands)
    register_audit(commands)
    register_certs(commands)
    register_admin(commands)
    register_witness(commands)
    _register_keys(commands)
    demo = commands.add_parser("demo-upstream", help="run the demo upstream (a stand-in model)")
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    demo.add_argument("--port", type=port, default=9000, help="port to listen on (default: 9000)")
    add_assertion_arguments(demo)
    demo.set_defaults(func=_demo_upstream)
    return parser


def _register_keys(subparsers: Any) -> None:
    """Add `keys assertion` to an argparse sub-parsers object, next to the audit's
    `keys generate` when that group is already there."""
    keys = subparsers.choices.get("keys")
    if keys is None:
        keys = subparsers.add_parser("keys", help="generate keys")
    # argparse has no public way to reach a parser's sub-commands once added.
    commands = next(
        (a for a in keys._actions if isinstance(a, argparse._SubParsersAction)),
        None,
    ) or keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    assertion = commands.add_parser(
        "assertion",
        help="write a new ES256 key for the identity assertions sent to upstreams",
        description=(
            "Writes DIR/assertion-signing.key (the private key, mode 0600: point "
            "identity_assertion.signing_key at it) and DIR/assertion-jwks.json (its public "
            "JWKS, for upstreams that read keys from a file rather than from the gateway's "
            "/.well-known/jwks.json). Existing files are never overwritten."
        ),
    )
    assertion.add_argument(
        "--out",
        type=output_directory,
        required=True,
        metavar="DIR",
        help="folder to write the key files to",
    )
    assertion.set_defaults(func=_keys_assertion)


def _keys_assertion(args: argparse.Namespace) -> int:
    from gateway.proxy import generate_signing_key

    try:
        key, public = generate_signing_key(args.out)
    except FileExistsError as exc:
        print(f"error: {exc} (in {args.out}); move it aside to make a new key", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write to {args.out}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"wrote {key} (private, keep it secret) and {public} (public JWKS)")
    return 0


def _demo_upstream(args: argparse.Namespace) -> int:
    from gateway.demo.upstream import main

    options = ["--host", args.host, "--port", str(args.port)]
    for option in ("assertion_audience", "assertion_jwks", "assertion_ca"):
        value = getattr(args, option)
        if value is not None:
            options += ["--" + option.replace("_", "-"), str(value)]
    return main(options)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(join_negative_offsets(sys.argv[1:] if argv is None else argv))
    try:
        status: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except BrokenPipeError:
        # The reader has gone (`| head`): say nothing more.
        _discard_stdout()
        return _BROKEN_PIPE
    except KeyboardInterrupt:
        _discard_stdout()
        print("interrupted", file=sys.stderr)
        return _INTERRUPTED
    return status


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's flush at exit neither blocks on
    a pipe nobody reads nor reports a broken one (the Python docs' SIGPIPE recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
