"""The `gateway certs` commands: a development CA, client and server certificates, inspect.

gateway certs init-ca --out DIR --name NAME [--days N]
gateway certs issue --ca-dir DIR --out PREFIX --cn CN --org O [--ou OU]...
                    [--citizenship CC]... [--residence CC]... [--days N] [--not-before ISO]
gateway certs server --ca-dir DIR --out PREFIX --host H [--host H]...
gateway certs inspect FILE
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import re
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from gateway.arguments import (
    existing_directory,
    existing_file,
    instant,
    output_directory,
    positive_integer,
)
from gateway.identity._errors import PkiError
from gateway.identity._rfc3739 import (
    SUBJECT_DIRECTORY_ATTRIBUTES,
    DirectoryAttributesError,
    decode_directory_attributes,
)
from gateway.identity.countries import normalise_country
from gateway.identity.pki import CA_PRIVATE_KEY, init_ca, issue_client, issue_server

__all__ = ["inspect_certificate", "register"]


def register(subparsers: Any) -> None:
    """Add the `certs` command and its sub-commands to an argparse sub-parsers object."""
    certs = subparsers.add_parser(
        "certs",
        help="make and inspect certificates",
        description="A development CA, client certificates with RFC 3739 citizenship "
        "attributes, TLS server certificates, and what the gateway reads from a certificate. "
        "Exit status: 0 success, 2 bad input.",
    )
    commands = certs.add_subparsers(dest="certs_command", required=True, metavar="COMMAND")

    init = commands.add_parser("init-ca", help="create a certificate authority")
    init.add_argument(
        "--out",
        required=True,
        type=output_directory,
        metavar="DIR",
        help="folder for ca.pem and ca-key.pem (an existing CA there is never overwritten)",
    )
    init.add_argument("--name", required=True, help="the CA's common name")
    init.add_argument(
        "--days", type=positive_integer, default=3650, help="validity in days (default: 3650)"
    )
    init.set_defaults(func=_init_ca)

    issue = commands.add_parser("issue", help="issue a client certificate")
    _ca_directory_argument(issue)
    issue.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PREFIX",
        help="writes PREFIX.pem and PREFIX-key.pem (existing files are never overwritten)",
    )
    issue.add_argument("--cn", required=True, help="common name (the subject)")
    issue.add_argument("--org", required=True, help="organisation (O)")
    issue.add_argument(
        "--ou", action="append", default=[], help="unit (OU), read as a role; repeatable"
    )
    issue.add_argument(
        "--citizenship",
        action="append",
        type=_country,
        default=[],
        metavar="COUNTRY",
        help="countryOfCitizenship: ISO 3166-1 alpha-2 or alpha-3 or ICAO code; repeatable",
    )
    issue.add_argument(
        "--residence",
        action="append",
        type=_country,
        default=[],
        metavar="COUNTRY",
        help="countryOfResidence, codes as --citizenship; repeatable",
    )
    issue.add_argument(
        "--days", type=positive_integer, default=365, help="validity in days (default: 365)"
    )
    issue.add_argument(
        "--not-before",
        type=instant(),
        default=None,
        metavar="TIME",
        help="valid from TIME (default: five minutes ago): ISO 8601 (no zone means UTC), "
        "a date, now, today, yesterday, or -1d, +2h, ...",
    )
    issue.set_defaults(func=_issue)

    server = commands.add_parser("server", help="issue a TLS server certificate")
    _ca_directory_argument(server)
    server.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="PREFIX",
        help="writes PREFIX.pem and PREFIX-key.pem (existing files are never overwritten)",
    )
    server.add_argument(
        "--host",
        action="append",
        required=True,
        type=_host,
        help="a DNS name or IP address the certificate names; repeatable",
    )
    server.set_defaults(func=_server)

    inspect = commands.add_parser("inspect", help="show what the gateway reads from a cert")
    inspect.add_argument("file", type=existing_file, metavar="FILE", help="a PEM certificate")
    inspect.set_defaults(func=_inspect)


def _country(text: str) -> str:
    """A country code as `--citizenship` and `--residence` take it (kept as written)."""
    if normalise_country(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a country code: give an ISO 3166-1 alpha-2 or alpha-3 code or "
            "an ICAO code (e.g. DE, DEU or D)"
        )
    return text


# A DNS label: letters, digits and inner hyphens, at most 63 characters.
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _host(text: str) -> str:
    """A name a server certificate may carry: an IP address, or a DNS name (its first
    label may be the wildcard *)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        pass
    else:
        return text
    labels = text.removesuffix(".").split(".")
    if labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a host name: give a DNS name (letters, digits, hyphens and "
            "dots, e.g. gateway.example.org or *.example.org) or an IP address"
        )
    return text


def _ca_directory_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ca-dir",
        required=True,
        type=existing_directory,
        metavar="DIR",
        help="the CA folder (ca.pem, ca-key.pem) made by `certs init-ca`",
    )


def inspect_certificate(certificate: x509.Certificate) -> dict[str, Any]:
    """What the gateway reads from `certificate`, as a JSON-ready mapping."""
    subject = certificate.subject

    def values(oid: x509.ObjectIdentifier) -> list[str]:
        return [str(a.value) for a in subject.get_attributes_for_oid(oid)]

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        alternative_names = [str(n.value) for n in names.value]
    except x509.ExtensionNotFound:
        alternative_names = []
    citizenships: list[str] = []
    residences: list[str] = []
    try:
        extension = certificate.extensions.get_extension_for_oid(
            x509.ObjectIdentifier(SUBJECT_DIRECTORY_ATTRIBUTES)
        ).value
        raw = (
            extension.value
            if isinstance(extension, x509.UnrecognizedExtension)
            else extension.public_bytes()
        )
        decoded = decode_directory_attributes(raw)
        citizenships, residences = list(decoded.citizenships), list(decoded.residences)
    except x509.ExtensionNotFound:
        pass
    return {
        "subject": subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "serial_number": format(certificate.serial_number, "x"),
        "not_before": certificate.not_valid_before_utc.isoformat(),
        "not_after": certificate.not_valid_after_utc.isoformat(),
        "fingerprint": hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest(),
        "common_name": next(iter(values(NameOID.COMMON_NAME)), None),
        "organisation": values(NameOID.ORGANIZATION_NAME),
        "organisational_units": values(NameOID.ORGANIZATIONAL_UNIT_NAME),
        "subject_alternative_names": alternative_names,
        "citizenship": _normalised(citizenships),
        "residence": _normalised(residences),
        "invalid_country_codes": [
            code for code in citizenships + residences if normalise_country(code) is None
        ],
    }


def _normalised(codes: list[str]) -> list[str]:
    return sorted({n for n in (normalise_country(c) for c in codes) if n is not None})


def _init_ca(args: argparse.Namespace) -> int:
    def create() -> None:
        if (args.out / CA_PRIVATE_KEY).exists():
            raise PkiError(
                "--out already holds a CA key; a CA is never overwritten (choose another "
                "folder, or remove it first)",
                str(args.out),
            )
        print(init_ca(args.out, args.name, days=args.days))

    return _run(create)


def _refuse_to_overwrite(prefix: Path) -> None:
    """A PkiError when PREFIX.pem or PREFIX-key.pem exists: `issue` and `server` write
    both, and a certificate or key is never overwritten."""
    for name in (prefix.name + ".pem", prefix.name + "-key.pem"):
        existing = prefix.with_name(name)
        if existing.exists():
            raise PkiError(
                f"--out {prefix}: {existing} exists; certificates and keys are never "
                "overwritten (choose another PREFIX, or remove it first)"
            )


def _issue(args: argparse.Namespace) -> int:
    def issue() -> None:
        _refuse_to_overwrite(args.out)
        certificate, key = issue_client(
            args.ca_dir,
            args.out,
            common_name=args.cn,
            organisation=args.org,
            units=args.ou,
            citizenships=args.citizenship,
            residences=args.residence,
            days=args.days,
            not_before=args.not_before,
        )
        print(certificate)
        print(key)

    return _run(issue)


def _server(args: argparse.Namespace) -> int:
    def issue() -> None:
        _refuse_to_overwrite(args.out)
        certificate, key = issue_server(args.ca_dir, args.out, args.host)
        print(certificate)
        print(key)

    return _run(issue)


def _inspect(args: argparse.Namespace) -> int:
    def inspect() -> None:
        try:
            certificate = x509.load_pem_x509_certificate(args.file.read_bytes())
        except (OSError, ValueError) as exc:
            raise PkiError("not a readable PEM certificate", str(args.file)) from exc
        try:
            report = inspect_certificate(certificate)
        except (ValueError, DirectoryAttributesError) as exc:
            raise PkiError("the certificate's extensions cannot be read", str(args.file)) from exc
        print(json.dumps(report, indent=2))

    return _run(inspect)


def _run(action: Any) -> int:
    try:
        action()
    except PkiError as exc:
        where = f" ({exc.path})" if exc.path else ""
        print(f"error: {exc}{where}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be created, a file that cannot be written
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return 0
