"""`gateway admin ...`: the admin API from an operator's laptop, so nobody needs curl.

    gateway admin --url https://gw:8443 --cacert ca.pem --cert me.pem --key me-key.pem \\
        suspensions add --organisation "US CAISI" --reason "paused by counsel"
    gateway admin ... suspensions list | suspensions remove ID
    gateway admin ... grants list | grants add GRANT.yaml | grants revoke ID
    gateway admin ... policy

Credentials: a client certificate (`--cert`/`--key`), a bearer token read from the
environment variable named by `--token-env` (never from the command line, where `ps`
shows it), or both. Exit status: 0 done, 1 the gateway refused (its error is printed),
2 bad input or the gateway unreachable.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml

from gateway.arguments import existing_file, instant

__all__ = ["register"]

_OK, _REFUSED, _BAD_INPUT = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add the `admin` command group to an argparse sub-parser collection."""
    admin = subparsers.add_parser(
        "admin",
        help="change suspensions and grants on a running gateway (the admin API)",
        description="A client of the admin API (docs/admin.md); needs the operator role.",
    )
    admin.add_argument(
        "--url",
        type=_base_url,
        default=os.environ.get("GATEWAY_URL", "https://localhost:8443"),
        help="the gateway's base URL, https://HOST[:PORT] or http://HOST[:PORT] (default: "
        "$GATEWAY_URL or https://localhost:8443)",
    )
    admin.add_argument(
        "--cacert",
        type=_ca_bundle,
        metavar="FILE",
        help="PEM CA bundle to verify the gateway (default: the system's)",
    )
    admin.add_argument(
        "--cert", type=existing_file, metavar="FILE", help="PEM client certificate (needs --key)"
    )
    admin.add_argument(
        "--key", type=existing_file, metavar="FILE", help="the PEM private key of --cert"
    )
    admin.add_argument(
        "--token-env",
        metavar="VAR",
        help="name of an environment variable holding a bearer token to send",
    )
    commands = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")

    policy = commands.add_parser("policy", help="the effective policy version and its parts")
    policy.set_defaults(func=_run, call=("GET", "/v1/admin/policy", None))

    suspensions = commands.add_parser("suspensions", help="list, add or lift suspensions")
    actions = suspensions.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser(
        "list", help="every suspension in force, with where it came from"
    ).set_defaults(func=_run, call=("GET", "/v1/admin/suspensions", None))
    add = actions.add_parser("add", help="suspend now, on every replica")
    target = add.add_mutually_exclusive_group(required=True)
    for dimension in ("model", "organisation", "subject", "country", "access_class"):
        target.add_argument(
            f"--{dimension.replace('_', '-')}", dest=dimension, help=f"suspend this {dimension}"
        )
    add.add_argument("--reason", required=True, help="why (recorded and shown to operators)")
    add.add_argument("--since", type=instant(), metavar="TIME", help="from when (default: now)")
    add.add_argument("--until", type=instant(), metavar="TIME", help="until when (default: open)")
    add.set_defaults(func=_add_suspension)
    remove = actions.add_parser("remove", help="lift a suspension added at run time")
    remove.add_argument("id", help="its id, as `suspensions list` shows")
    remove.set_defaults(func=_remove, collection="suspensions")

    grants = commands.add_parser("grants", help="list, add or revoke grants")
    grant_actions = grants.add_subparsers(dest="action", required=True, metavar="ACTION")
    grant_actions.add_parser("list", help="every grant, with origin and revocation").set_defaults(
        func=_run, call=("GET", "/v1/admin/grants", None)
    )
    add_grant = grant_actions.add_parser("add", help="add a signed grant (YAML or JSON file)")
    add_grant.add_argument("file", type=existing_file, help="one grant, as in grants.yaml")
    add_grant.set_defaults(func=_add_grant)
    revoke = grant_actions.add_parser("revoke", help="close a grant now (file or run-time)")
    revoke.add_argument("id", help="the grant's id")
    revoke.set_defaults(func=_remove, collection="grants")


def _base_url(text: str) -> str:
    """The gateway's base URL: http or https, with a host."""
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a gateway URL: give https://HOST[:PORT] or http://HOST[:PORT]"
        )
    return text


def _ca_bundle(text: str) -> Path:
    """A file of PEM CA certificates, as `--cacert` takes it."""
    path = existing_file(text)
    try:
        ssl.create_default_context().load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"{text} is not a PEM CA bundle (one or more -----BEGIN CERTIFICATE----- blocks)"
        ) from exc
    return path


class _BadInput(Exception):
    """An option the command cannot use; the message names it."""


def _client(args: argparse.Namespace) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(args.cacert) if args.cacert else None)
    if args.key is not None and args.cert is None:
        raise _BadInput(f"--key {args.key}: give the certificate it belongs to with --cert FILE")
    if args.cert is not None:
        if args.key is None:
            raise _BadInput(
                f"--cert {args.cert}: give its private key with --key FILE (a PEM private key)"
            )
        try:
            context.load_cert_chain(args.cert, args.key)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise _BadInput(
                f"--cert {args.cert} --key {args.key}: not a PEM certificate and its private "
                "key (give the client certificate with --cert and the key it was issued for "
                "with --key)"
            ) from exc
    headers = {}
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            raise _BadInput(f"--token-env {args.token_env}: the variable is not set or empty")
        headers["authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=args.url, verify=context, headers=headers, timeout=30)


def _call(args: argparse.Namespace, method: str, path: str, body: Any) -> int:
    try:
        client = _client(args)
    except _BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _BAD_INPUT
    try:
        with client:
            response = client.request(method, path, json=body)
    except (httpx.HTTPError, ssl.SSLError, OSError, ValueError) as exc:
        print(f"error: cannot reach the gateway at --url {args.url}: {exc}", file=sys.stderr)
        return _BAD_INPUT
    try:
        payload = response.json()
    except ValueError:
        payload = {"error": {"message": response.text[:200]}}
    if response.status_code >= 400:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        where = f" ({error['param']})" if error.get("param") else ""
        print(
            f"refused: {response.status_code} {error.get('code', '')}{where}:"
            f" {error.get('message', '')} [request {response.headers.get('x-request-id')}]",
            file=sys.stderr,
        )
        return _REFUSED
    json.dump(payload, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return _OK


def _run(args: argparse.Namespace) -> int:
    method, path, body = args.call
    return _call(args, method, path, body)


def _add_suspension(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    body: dict[str, Any] = {"reason": args.reason}
    for dimension in ("model", "organisation", "subject", "country", "access_class"):
        if getattr(args, dimension) is not None:
            body[dimension] = getattr(args, dimension)
    since = args.since or datetime.now(UTC)
    body["since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.until is not None:
        body["until"] = args.until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _call(args, "POST", "/v1/admin/suspensions", body)


def _add_grant(args: argparse.Namespace) -> int:
    try:
        grant = yaml.load(Path(args.file).read_text(encoding="utf-8"), Loader=_TextTimes)  # noqa: S506 - a SafeLoader
    except (OSError, yaml.YAMLError) as exc:
        print(f"error: {args.file}: not a YAML or JSON grant ({exc})", file=sys.stderr)
        return _BAD_INPUT
    if (
        isinstance(grant, dict)
        and isinstance(grant.get("grants"), list)
        and len(grant["grants"]) == 1
    ):
        grant = grant["grants"][0]
    if not isinstance(grant, dict):
        print(f"error: {args.file}: expected one grant (a mapping)", file=sys.stderr)
        return _BAD_INPUT
    return _call(args, "POST", "/v1/admin/grants", grant)


class _TextTimes(yaml.SafeLoader):
    """YAML as the policy files are read: times stay the text they were written as."""


_TextTimes.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _remove(args: argparse.Namespace) -> int:
    return _call(args, "DELETE", f"/v1/admin/{args.collection}/{args.id}", None)
