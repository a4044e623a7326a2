"""Policy test cases and principal files, as read by the `gateway policy` commands.

A test file (``<policy>/tests/*.yaml``)::

    principals:                       # optional, named principals the cases refer to
      caisi-evaluator:
        subject: evaluator-1
        issuer: ca:agency
        attributes:
          - {name: organisation, value: US CAISI, source: ca:agency}
        auth_methods: [mtls]
        credentials:                  # optional: each credential's source and subject
          - {source: ca:agency, subject: evaluator-1}
    cases:
      - name: evaluator inside the grant window
        principal: caisi-evaluator    # a name above, or a principal mapping
        action: model.invoke          # default
        model: muse-spark-2
        at: 2026-12-20T12:00:00Z
        expect: {allowed: true, reason: allow.grant, grant: caisi-muse-spark-2-eval}
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from gateway.identity.principal import Attribute, AttributeName, Credential, Principal

from ._engine import ACTIONS
from ._errors import PolicyLoadError
from ._trust import ATTRIBUTE_NAMES
from ._yaml import LocatedMap, Node, parse_yaml


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a case expects; None fields are not checked."""

    allowed: bool
    reason: str
    error_code: str | None = None
    grant: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    """One policy test case."""

    file: str
    line: int
    name: str
    principal: Principal
    action: str
    model: str | None
    at: datetime
    expect: Expectation


def read_yaml_file(path: Path) -> Any:
    """Parse a YAML (or JSON) file with line information."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyLoadError(str(path), "", None, f"cannot read file: {exc}") from exc
    return parse_yaml(text, str(path))


def parse_principal(node: Node) -> Principal:
    """A Principal from a mapping with subject, issuer, attributes, auth_methods and,
    optionally, credentials."""
    node.reject_unknown(
        "subject", "issuer", "attributes", "auth_methods", "certificate_fingerprint", "credentials"
    )
    attributes = []
    for item in node.nodes("attributes"):
        # `trusted` appears in the gateway's whoami output; the policy decides it, not the file.
        item.reject_unknown("name", "value", "source", "trusted")
        name = item.choice("name", ATTRIBUTE_NAMES)
        attributes.append(
            Attribute(cast(AttributeName, name), item.string("value"), item.string("source"))
        )
    credentials = []
    for item in node.nodes("credentials"):
        item.reject_unknown("source", "subject")
        credentials.append(Credential(item.string("source"), item.string("subject")))
    return Principal(
        subject=node.string("subject"),
        issuer=node.string("issuer"),
        attributes=frozenset(attributes),
        auth_methods=frozenset(node.strings("auth_methods", [])),
        certificate_fingerprint=node.string("certificate_fingerprint", None),
        credentials=frozenset(credentials),
    )


def load_principal(path: Path) -> Principal:
    """Read a principal file (YAML or JSON)."""
    return parse_principal(Node(read_yaml_file(path), str(path), ""))


def load_cases(path: Path) -> list[Case]:
    """Read one policy test file."""
    top = Node(read_yaml_file(path), str(path), "")
    top.reject_unknown("principals", "cases")
    named: dict[str, Principal] = {}
    principals = top.node("principals")
    for name in principals.data:
        named[name] = parse_principal(principals.node(name, required=True))
    cases = []
    for node in top.nodes("cases"):
        node.reject_unknown("name", "principal", "action", "model", "at", "expect")
        reference = node.require("principal")
        if isinstance(reference, LocatedMap):
            principal = parse_principal(node.node("principal"))
        else:
            key = node.string("principal")
            if key not in named:
                node.fail("principal", f"unknown principal {key!r}")
            principal = named[key]
        expect = node.node("expect", required=True)
        expect.reject_unknown("allowed", "reason", "error_code", "grant")
        cases.append(
            Case(
                file=str(path),
                line=node.line(),
                name=node.string("name"),
                principal=principal,
                action=node.choice("action", ACTIONS, "model.invoke"),
                model=node.string("model", None),
                at=node.instant("at"),
                expect=Expectation(
                    allowed=expect.boolean("allowed"),
                    reason=expect.string("reason"),
                    error_code=expect.string("error_code", None),
                    grant=expect.string("grant", None),
                ),
            )
        )
    return cases
