"""The `gateway` command: serve, policy, audit, keys and certs.

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

from gateway.arguments import join_negative_offsets, port, positive_integer
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


def build_parser() -> argparse.ArgumentParser:
    from gateway.admin.cli import register as register_admin
    from gateway.audit.cli import register as register_audit
    from gateway.identity.cli import register as register_certs
    from gateway.policy.cli import register as register_policy

    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Model Access Gateway: identity, policy and audit in front of AI models.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument(
        "--config",
        required=True,
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
    register_policy(commands)
    register_audit(commands)
    register_certs(commands)
    register_admin(commands)
    demo = commands.add_parser("demo-upstream", help="run the demo upstream (a stand-in model)")
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    demo.add_argument("--port", type=port, default=9000, help="port to listen on (default: 9000)")
    demo.set_defaults(func=_demo_upstream)
    return parser


def _demo_upstream(args: argparse.Namespace) -> int:
    from gateway.demo.upstream import main

    return main(["--host", args.host, "--port", str(args.port)])


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
