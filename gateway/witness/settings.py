"""The settings file of `gateway witness serve` (YAML), parsed once into immutable settings.

    listen:  {host: 127.0.0.1, port: 7380}
    tls:     {certificate: witness.pem, private_key: witness-key.pem}   # optional
    signing_key: witness.key            # from `gateway witness keys generate`
    state: var/witness.db               # the witness's SQLite state file
    logs:
      - origin: gateway.example/audit
        key: gateway.example/audit+1a2b3c4d+AQ...   # the log's verifier key
    log: {level: info}

Every key is documented in docs/audit.md ("Running a witness"). A bad file names the
file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import yaml

from gateway.audit import NoteError, NoteVerifier
from gateway.audit.cosignature import CosignatureSigner
from gateway.config import ConfigError, Section

__all__ = ["WitnessServerSettings", "WitnessedLog", "load_witness_settings", "load_witness_signer"]


@dataclass(frozen=True, slots=True)
class WitnessedLog:
    """A log this witness cosigns: its checkpoint origin and its verifier key."""

    origin: str
    key: NoteVerifier


@dataclass(frozen=True, slots=True)
class WitnessServerSettings:
    """Where the witness listens, its key and state file, and the logs it witnesses."""

    host: str
    port: int
    certificate: Path | None
    private_key: Path | None
    signing_key: Path
    state: Path
    logs: MappingProxyType[str, WitnessedLog]
    log_level: str
    source: str

    @classmethod
    def from_section(cls, top: Section) -> WitnessServerSettings:
        top.reject_unknown("listen", "tls", "signing_key", "state", "logs", "log")
        listen = top.section("listen")
        listen.reject_unknown("host", "port")
        tls = top.section("tls")
        tls.reject_unknown("certificate", "private_key")
        if tls.has("certificate") != tls.has("private_key"):
            tls.fail("certificate", "give both certificate and private_key, or neither")
        log = top.section("log")
        log.reject_unknown("level")
        logs: dict[str, WitnessedLog] = {}
        for section in top.sections("logs", required=True):
            section.reject_unknown("origin", "key")
            origin = section.string("origin")
            if "\n" in origin:
                section.fail("origin", "must be one line")
            try:
                key = NoteVerifier.from_string(section.string("key"))
            except NoteError as exc:
                section.fail("key", f"not a log verifier key: {exc.reason}")
            if origin in logs:
                section.fail("origin", f"duplicate origin {origin!r}")
            logs[origin] = WitnessedLog(origin, key)
        if not logs:
            top.fail("logs", "list at least one log to witness")
        settings = cls(
            host=listen.string("host", "127.0.0.1"),
            port=listen.integer("port", 7380, minimum=0),
            certificate=tls.path_value("certificate", None),
            private_key=tls.path_value("private_key", None),
            signing_key=top.path_value("signing_key"),
            state=top.path_value("state", must_exist=False),
            logs=MappingProxyType(logs),
            log_level=log.choice("level", ("debug", "info", "warning", "error"), "info"),
            source=top.file,
        )
        try:
            load_witness_signer(settings.signing_key)
        except (NoteError, OSError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, NoteError) else type(exc).__name__
            top.fail("signing_key", f"not a usable witness signer key: {reason}")
        return settings


def load_witness_signer(path: Path) -> CosignatureSigner:
    """Read a witness signer key file; NoteError if malformed, OSError if unreadable."""
    return CosignatureSigner.from_string(path.read_text(encoding="utf-8-sig"))


def load_witness_settings(path: Path) -> WitnessServerSettings:
    """Read and validate a witness settings file; ConfigError names the file and key."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(name, "", f"cannot read the file ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(name, "", "not valid YAML") from exc
    return WitnessServerSettings.from_section(Section(data, name, "", path.parent))
