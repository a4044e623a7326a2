"""The checks of `gateway config check`: the settings as `serve` reads them, then the
identity material, the TLS pair, the upstream secrets, the policy and the audit store.
"""

from __future__ import annotations

import contextlib
import ipaddress
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from gateway.config import ConfigError, key_line, with_line
from gateway.identity import build_server_ssl_context
from gateway.located_yaml import YamlError, parse_yaml
from gateway.policy import PolicyError, check_approver_pin, load_policy, verify_grant_approvals
from gateway.settings import Settings, load_settings

from ._report import Finding, Report, Severity
from ._store import check_counters, check_store

SOON = timedelta(days=30)


class Checker:
    """One run of the checks over one settings file; findings go to `report`."""

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
        # Only for the lines of findings; load_settings reports an unreadable file.
        with contextlib.suppress(OSError, UnicodeDecodeError, YamlError):
            self.document = parse_yaml(self.path.read_text(encoding="utf-8"))
        try:
            settings = load_settings(self.path)
        except ConfigError as exc:
            self.add_error(exc)
            return self.report
        self.report.checked.append(("settings", _describe_settings(settings)))
        for check in (self._identity, self._tls, self._upstreams, self._policy):
            check(settings)
        check_store(self, settings)
        check_counters(self, settings)
        return self.report

    # -- identity -------------------------------------------------------------------------

    def _identity(self, settings: Settings) -> None:
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

    def _tls(self, settings: Settings) -> None:
        tls = settings.tls
        certificate, private_key = tls.certificate, tls.private_key
        if certificate is None or private_key is None:
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
            leaf = x509.load_pem_x509_certificates(certificate.read_bytes())[0]
        except (OSError, ValueError, IndexError):
            self.add("error", "tls.certificate", "is not a PEM certificate")
            return
        self._expiry("tls.certificate", leaf, "the certificate", False)
        self._private("tls.private_key", private_key, "the TLS private key")
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

    def _upstreams(self, settings: Settings) -> None:
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

    def _policy(self, settings: Settings) -> None:
        try:
            policy = load_policy(settings.policy.directory)
        except PolicyError as exc:
            file = getattr(exc, "file", str(settings.policy.directory))
            line, key = getattr(exc, "line", None), getattr(exc, "key", "")
            message = getattr(exc, "message", str(exc))
            self.report.findings.append(Finding("error", file, line, key, message))
            return
        pin = settings.policy.approvers_sha256
        if pin is not None:
            try:
                check_approver_pin(policy, pin, str(settings.policy.directory))
            except PolicyError as exc:
                self.add("error", "policy.approvers_sha256", getattr(exc, "message", str(exc)))
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


def check_config(path: Path, *, now: datetime, connect_timeout: float = 3.0) -> Report:
    """Check the settings file at `path` and everything it names, at instant `now`."""
    return Checker(path, now, connect_timeout).run()


def _describe_settings(settings: Settings) -> str:
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
