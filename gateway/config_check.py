"""`gateway config check FILE`: validate a settings file and everything it points to.

Reads the settings as `gateway serve` does, then, without binding a port: builds the
TLS context (certificate and key belong together), loads the policy in full (grant
approvals included), reads CA bundles, CRLs, upstream credentials and audit keys, and
opens the audit store read-only (SQLite: the file's folder must be writable;
PostgreSQL: a connection with a short timeout) and checks its head against the latest
signed checkpoint with the configured key. Each finding names the file, the line and
the key.

Exit status: 0 valid (warnings are printed but do not fail), 1 valid but the audit
store cannot be reached or opened now, 2 invalid.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography import x509

from gateway.config import ConfigError, key_line, with_line

Severity = Literal["error", "unreachable", "warning"]
SOON = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: `severity` error (invalid), unreachable (valid, but the audit store
    cannot be used now) or warning (valid, but probably not what was meant)."""

    severity: Severity
    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


@dataclass
class Report:
    """What `check_config` found, and one line of what it checked per part."""

    findings: list[Finding]
    checked: list[tuple[str, str]]

    @property
    def status(self) -> int:
        severities = {finding.severity for finding in self.findings}
        if "error" in severities:
            return 2
        return 1 if "unreachable" in severities else 0


class _Checker:
    def __init__(self, path: Path, now: datetime, connect_timeout: float) -> None:
        self.path = path
        self.file = str(path)
        self.now = now
        self.connect_timeout = connect_timeout
        self.document: Any = None
        self.report = Report([], [])

    def add(self, severity: Severity, key: str, message: str, file: str | None = None) -> None:
        line = key_line(self.document, key) if file is None and key else None
        self.report.findings.append(Finding(severity, file or self.file, line, key, message))

    def add_error(self, error: ConfigError) -> None:
        located = with_line(error, self.document)
        self.report.findings.append(
            Finding("error", located.file, located.line, located.key, located.message)
        )

    def run(self) -> Report:
        from gateway.located_yaml import YamlError, parse_yaml
        from gateway.settings import load_settings

        # Only for the lines of findings; load_settings reports an unreadable file.
        with contextlib.suppress(OSError, UnicodeDecodeError, YamlError):
            self.document = parse_yaml(self.path.read_text(encoding="utf-8"))
        try:
            settings = load_settings(self.path)
        except ConfigError as exc:
            self.add_error(exc)
            return self.report
        self.report.checked.append(("settings", _describe_settings(settings)))
        for check in (self._identity, self._tls, self._upstreams, self._policy, self._store):
            check(settings)
        return self.report

    # -- identity -------------------------------------------------------------------------

    def _identity(self, settings: Any) -> None:
        identity = settings.identity
        if not identity.has_sources():
            self.add(
                "error",
                "identity",
                "configure at least one issuer or certificate authority; the gateway does "
                "not serve anonymous callers",
            )
        for index, authority in enumerate(identity.certificate_authorities):
            key = f"identity.certificate_authorities[{index}]"
            expired = [c for c in authority.certificates if c.not_valid_after_utc <= self.now]
            if expired and len(expired) == len(authority.certificates):
                self.add("error", f"{key}.bundle", "every certificate of the bundle has expired")
            else:
                for certificate in authority.certificates:
                    self._expiry(
                        f"{key}.bundle", certificate, "a CA certificate", warn_expired=True
                    )
            if authority.crl_next_update is not None and authority.crl_next_update < self.now:
                self.add(
                    "error",
                    f"{key}.crls",
                    f"the CRL is out of date (next update was {_day(authority.crl_next_update)}):"
                    " every certificate of this CA is refused until a current CRL is loaded",
                )
        for index, issuer in enumerate(identity.issuers):
            for name in ("jwks_uri", "discovery"):
                value = getattr(issuer, name)
                if value is not None and _plain_http_off_host(value):
                    self.add(
                        "warning",
                        f"identity.issuers[{index}].{name}",
                        "keys are fetched over plain HTTP from another host; use https",
                    )

    def _expiry(
        self, key: str, certificate: x509.Certificate, what: str, warn_expired: bool
    ) -> None:
        ends = certificate.not_valid_after_utc
        if ends <= self.now:
            if warn_expired:
                self.add("warning", key, f"{what} expired on {_day(ends)}")
            else:
                self.add("error", key, f"{what} expired on {_day(ends)}")
        elif ends - self.now < SOON:
            self.add("warning", key, f"{what} expires on {_day(ends)}")

    # -- tls --------------------------------------------------------------------------------

    def _tls(self, settings: Any) -> None:
        from gateway.identity import build_server_ssl_context

        tls = settings.tls
        if not tls.enabled:
            if not _loopback(settings.host):
                self.add(
                    "warning",
                    "tls",
                    f"plain HTTP on {settings.host}: only behind a proxy that terminates TLS",
                )
            return
        try:
            build_server_ssl_context(tls, settings.identity)
        except ConfigError as exc:
            self.add_error(exc)
            return
        try:
            leaf = x509.load_pem_x509_certificates(tls.certificate.read_bytes())[0]
        except (OSError, ValueError, IndexError):
            self.add("error", "tls.certificate", "is not a PEM certificate")
            return
        self._expiry("tls.certificate", leaf, "the certificate", False)
        self._private("tls.private_key", tls.private_key, "the TLS private key")
        self.report.checked.append(
            ("tls", f"certificate and key match; valid until {_day(leaf.not_valid_after_utc)}")
        )

    def _private(self, key: str, path: Path, what: str) -> None:
        try:
            mode = path.stat().st_mode
        except OSError:
            return
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            self.add("warning", key, f"{what} can be read by other users (chmod 600 it)")

    # -- upstreams ------------------------------------------------------------------------

    def _upstreams(self, settings: Any) -> None:
        for index, upstream in enumerate(settings.upstreams):
            key = f"upstreams[{index}]"
            if upstream.credential is not None and _plain_http_off_host(upstream.base_url):
                self.add(
                    "warning",
                    f"{key}.base_url",
                    "the upstream credential is sent over plain HTTP to another host",
                )
            written = _lookup(self.document, f"{key}.credential.file")
            if isinstance(written, str):
                path = Path(written)
                self._private(
                    f"{key}.credential.file",
                    path if path.is_absolute() else self.path.parent / path,
                    "the upstream credential",
                )
        self._private("audit.signing_key", settings.audit.signing_key, "the audit signing key")
        self._private("audit.hmac_key", settings.audit.hmac_key, "the audit HMAC key")

    # -- policy ---------------------------------------------------------------------------

    def _policy(self, settings: Any) -> None:
        from gateway.policy import PolicyError, load_policy, verify_grant_approvals

        try:
            policy = load_policy(settings.policy.directory)
        except PolicyError as exc:
            file = getattr(exc, "file", str(settings.policy.directory))
            line, key = getattr(exc, "line", None), getattr(exc, "key", "")
            message = getattr(exc, "message", str(exc))
            self.report.findings.append(Finding("error", file, line, key, message))
            return
        self.report.checked.append(
            (
                "policy",
                f"{settings.policy.directory}: version {policy.version[:12]}, "
                f"{len(policy.models)} models, {len(policy.grants)} grants (all approved), "
                f"{len(policy.approvers)} approver keys",
            )
        )
        directory = str(settings.policy.directory)
        for grant in policy.grants:
            result = verify_grant_approvals(grant, policy.approvers, policy.settings)
            for check in result.checks:
                if not check.counts:
                    self.add(
                        "warning",
                        "",
                        f"grant {grant.id}: signatures[{check.index}] {check.describe()}",
                        file=directory,
                    )
        configured = {source.source for source in settings.identity.issuers} | {
            source.source for source in settings.identity.certificate_authorities
        }
        trusted = {source for sources in policy.trust.values() for source in sources}
        for source in sorted(trusted - configured):
            self.add(
                "warning",
                "identity",
                f"the policy trusts {source}, which these settings do not configure",
            )
        for source in sorted(configured - trusted):
            self.add(
                "warning",
                "identity",
                f"{source} is configured but the policy trusts it for no attribute",
            )
        for model in sorted(set(policy.models) - set(settings.routes)):
            self.add(
                "warning",
                "models",
                f"the policy's model {model} has no route: requests for it get model.unrouted",
            )
        for model in sorted(set(settings.routes) - set(policy.models)):
            self.add(
                "warning",
                "models",
                f"model {model} is routed but unknown to the policy: every request is refused",
            )

    # -- audit store ------------------------------------------------------------------------

    def _store(self, settings: Any) -> None:
        from gateway.audit import SchemaError, StoreError, describe_location, load_signer
        from gateway.audit.errors import AuditError
        from gateway.audit.sequencing import check_head
        from gateway.audit.stores import open_store

        location = settings.audit.store
        where = describe_location(location)
        if isinstance(location, Path):
            if not location.exists():
                folder = _existing_ancestor(location.parent)
                if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                    self.add(
                        "unreachable",
                        "audit.store",
                        f"cannot create {location}: {folder} is not a writable folder",
                    )
                else:
                    self.report.checked.append(
                        ("audit store", f"{where}: new, created at start ({folder} is writable)")
                    )
                return
            if not os.access(location.parent, os.W_OK | os.X_OK) or not os.access(
                location, os.W_OK
            ):
                self.add(
                    "unreachable",
                    "audit.store",
                    f"{location} or its folder is not writable (SQLite writes its journal "
                    "beside the file)",
                )
        try:
            store = open_store(location, readonly=True, write_timeout=self.connect_timeout)
        except SchemaError as exc:
            if exc.version is None:  # no tables yet: the gateway makes them at start
                self.report.checked.append(("audit store", f"{where}: reachable, empty"))
                return
            self.add("error", "audit.store", exc.reason)
            return
        except StoreError as exc:
            self.add("unreachable", "audit.store", exc.reason)
            return
        try:
            store.require_current()
            head = check_head(store, load_signer(settings.audit.signing_key).verifier)
            latest = store.latest_checkpoint()
        except SchemaError as exc:
            self.add("error", "audit.store", exc.reason)
            return
        except AuditError as exc:
            self.add(
                "error",
                "audit.store",
                f"does not verify with the configured signing key: {exc}",
            )
            return
        finally:
            store.close()
        signed = latest.tree_size if latest is not None else 0
        self.report.checked.append(
            (
                "audit store",
                f"{where}: {head.tree_size} records, latest checkpoint at {signed} verifies "
                "with the signing key",
            )
        )


def check_config(path: Path, *, now: datetime, connect_timeout: float = 3.0) -> Report:
    """Check the settings file at `path` and everything it names, at instant `now`."""
    return _Checker(path, now, connect_timeout).run()


def _describe_settings(settings: Any) -> str:
    tls = (
        f"TLS, client certificates {settings.tls.client_certificates}"
        if settings.tls.enabled
        else "plain HTTP"
    )
    identity = settings.identity
    return (
        f"listen {settings.host}:{settings.port} ({tls}); "
        f"{len(identity.certificate_authorities)} CAs, {len(identity.issuers)} issuers, "
        f"{len(settings.upstreams)} upstreams, {len(settings.routes)} models"
    )


def _day(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _plain_http_off_host(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "http" and not _loopback(parts.hostname or "")


def _existing_ancestor(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return Path("/")


def _lookup(document: Any, key: str) -> Any:
    """The value at dotted `key` in a parsed document, or None."""
    node = document
    for part in _parts(key):
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and part < len(node) else None
        else:
            node = node.get(part) if isinstance(node, dict) else None
    return node


def _parts(key: str) -> Iterator[str | int]:
    for piece in key.split("."):
        name, _, rest = piece.partition("[")
        yield name
        if rest:
            yield int(rest.rstrip("]"))


def register(subparsers: Any) -> None:
    """Add `gateway config check` to an argparse sub-parser set."""
    config = subparsers.add_parser(
        "config",
        help="check a settings file",
        description="Work with the gateway's settings file (docs/configuration.md).",
    )
    commands = config.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    check = commands.add_parser(
        "check",
        help="validate a settings file and everything it points to, without serving",
        description="Validate FILE as `gateway serve` reads it, then the files it names, the "
        "policy (full load) and the audit store (read-only). Exit status: 0 valid (warnings "
        "do not fail), 1 the audit store cannot be reached or opened, 2 invalid.",
    )
    check.add_argument("file", metavar="FILE", help="the settings file (YAML)")
    check.add_argument(
        "--connect-timeout",
        type=float,
        default=3.0,
        metavar="SECONDS",
        help="how long to wait for the audit store (PostgreSQL) to answer (default 3)",
    )
    check.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    report = check_config(
        Path(args.file), now=datetime.now(UTC), connect_timeout=args.connect_timeout
    )
    for part, summary in report.checked:
        print(f"  {part:<12} {summary}")
    sys.stdout.flush()  # the findings on standard error come after what was checked
    for finding in report.findings:
        label = "warning" if finding.severity == "warning" else "error"
        print(f"{label}: {finding}", file=sys.stderr)
    errors = sum(1 for finding in report.findings if finding.severity != "warning")
    warnings = len(report.findings) - errors
    if report.status == 0:
        print(f"config OK: {args.file}" + (f" ({_count(warnings, 'warning')})" if warnings else ""))
    elif report.status == 1:
        print(f"config valid, but the audit store cannot be used now: {args.file}")
    else:
        print(f"config invalid: {args.file} ({_count(errors, 'error')})")
    return report.status


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
