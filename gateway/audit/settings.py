"""The `audit:` settings section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gateway.audit.cosignature import CosignatureVerifier
from gateway.audit.errors import NoteError
from gateway.audit.keys import load_hmac_key, load_signer
from gateway.audit.stores import parse_location
from gateway.config import Section

__all__ = ["AuditSettings", "WitnessSettings"]


@dataclass(frozen=True, slots=True)
class WitnessSettings:
    """A witness the log submits its checkpoints to (C2SP tlog-witness).

    `url` is the witness's submission prefix (`<url>/add-checkpoint` is called), `key`
    its cosignature verifier key (type 0x04), `name` the key's name, and `ca_bundle`
    the CA certificates to trust for an https URL (None: the system's).
    """

    name: str
    url: str
    key: CosignatureVerifier
    ca_bundle: Path | None = None

    @property
    def add_checkpoint_url(self) -> str:
        return self.url.rstrip("/") + "/add-checkpoint"

    @classmethod
    def from_section(cls, section: Section) -> WitnessSettings:
        section.reject_unknown("name", "url", "key", "ca_bundle")
        try:
            key = CosignatureVerifier.from_string(section.string("key"))
        except NoteError as exc:
            section.fail("key", f"not a witness verifier key: {exc.reason}")
        name = section.string("name", key.name)
        if name != key.name:
            section.fail("name", f"must equal the name in the witness key ({key.name!r})")
        url = section.string("url")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            section.fail("url", "expected an http:// or https:// URL (the submission prefix)")
        if parts.query or parts.fragment or parts.username or parts.password:
            section.fail("url", "must have no query, fragment or credentials")
        return cls(name, url, key, section.path_value("ca_bundle", None))


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """Where the log lives, how it signs, and when it signs checkpoints.

    `store` is a SQLite file path or a PostgreSQL URL (see `parse_location`).
    `origin` is the checkpoint origin and must equal the signing key's name.
    """

    store: Path | str
    origin: str
    signing_key: Path
    hmac_key: Path
    checkpoint_every_records: int = 1000
    checkpoint_every_seconds: float = 10.0
    batch_max: int = 512
    write_timeout_seconds: float = 5.0
    max_queued: int = 10_000
    witnesses: tuple[WitnessSettings, ...] = ()
    witness_timeout_seconds: float = 10.0
    witness_retry_seconds: float = 1.0
    witness_retry_max_seconds: float = 60.0

    @classmethod
    def from_section(cls, section: Section) -> AuditSettings:
        """Parse and check the section, including that both key files load."""
        section.reject_unknown(
            "store",
            "origin",
            "signing_key",
            "hmac_key",
            "checkpoint_every_records",
            "checkpoint_every_seconds",
            "batch_max",
            "write_timeout_seconds",
            "max_queued",
            "witnesses",
            "witness_timeout_seconds",
            "witness_retry_seconds",
            "witness_retry_max_seconds",
        )
        witnesses = tuple(WitnessSettings.from_section(s) for s in section.sections("witnesses"))
        keys = [witness.key.public_key for witness in witnesses]
        for index, key in enumerate(keys):
            if key in keys[:index]:
                # One Ed25519 key under two names is one witness (its message has no name).
                section.fail(f"witnesses[{index}].key", "the same public key is listed twice")
        settings = cls(
            store=_store(section),
            origin=section.string("origin"),
            signing_key=section.path_value("signing_key"),
            hmac_key=section.path_value("hmac_key"),
            checkpoint_every_records=section.integer("checkpoint_every_records", 1000, minimum=1),
            checkpoint_every_seconds=section.number("checkpoint_every_seconds", 10.0, minimum=0.01),
            batch_max=section.integer("batch_max", 512, minimum=1),
            write_timeout_seconds=section.number("write_timeout_seconds", 5.0, minimum=0.01),
            max_queued=section.integer("max_queued", 10_000, minimum=1),
            witnesses=witnesses,
            witness_timeout_seconds=section.number("witness_timeout_seconds", 10.0, minimum=0.01),
            witness_retry_seconds=section.number("witness_retry_seconds", 1.0, minimum=0.01),
            witness_retry_max_seconds=section.number(
                "witness_retry_max_seconds", 60.0, minimum=0.01
            ),
        )
        if settings.witness_retry_max_seconds < settings.witness_retry_seconds:
            section.fail("witness_retry_max_seconds", "must be at least witness_retry_seconds")
        try:
            signer = load_signer(settings.signing_key)
        except (NoteError, OSError, UnicodeDecodeError) as exc:
            section.fail("signing_key", f"not a usable signer key: {_describe(exc)}")
        if signer.name != settings.origin:
            section.fail("origin", "must equal the signing key's name")
        try:
            load_hmac_key(settings.hmac_key)
        except (NoteError, OSError, UnicodeDecodeError) as exc:
            section.fail("hmac_key", f"not a usable HMAC key: {_describe(exc)}")
        return settings


def _store(section: Section) -> Path | str:
    text = section.string("store")
    try:
        return parse_location(text, section.base)
    except ValueError as exc:
        section.fail("store", str(exc))


def _describe(exc: Exception) -> str:
    # Never echo file contents: a decoding error would quote key bytes.
    if isinstance(exc, NoteError):
        return exc.reason
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return "the file is not UTF-8 text"
