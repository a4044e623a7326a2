"""The `trust:` section: which source may assert which attribute, and which values.

A bare source (``ca:agency``) may assert any value of the attribute; a mapping
``{source: ca:agency, values: [...]}`` only the values listed, as a SAML federation
scopes what each identity provider may assert (Shibboleth's ``Scope``). For nationality
and residence the values are country codes and country group names, expanded to codes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._yaml import LocatedList, LocatedMap, Node

ATTRIBUTE_NAMES = ("organisation", "role", "nationality", "residence")
SCOPED_ATTRIBUTES = ("organisation", "role")
"""Attributes for which a source trusted with any value draws a warning."""

TrustScopes = dict[str, dict[str, frozenset[str] | None]]
"""attribute -> source -> the values it may assert (None: any value)."""

Countries = Callable[[Node, str], frozenset[str]]
"""Reads a list of country codes and group names under a key, as a set of codes."""

_SOURCE = re.compile(r"(ca|oidc):\S+")


def read_trust(
    pairs: list[tuple[Node, str]], countries: Countries
) -> tuple[TrustScopes, list[str]]:
    """The trust scopes of the (node, attribute) pairs of the merged `trust:` sections,
    and a warning for each source trusted for organisation or role with any value."""
    trust: TrustScopes = {}
    warnings: list[str] = []
    for node, key in pairs:
        if key not in ATTRIBUTE_NAMES:
            node.fail(key, f"unknown attribute (expected one of: {', '.join(ATTRIBUTE_NAMES)})")
        items = node.data.get(key)
        if not isinstance(items, LocatedList):
            node.fail(key, "expected a list of sources")
        scopes: dict[str, frozenset[str] | None] = {}
        for index, item in enumerate(items):
            source, values = _entry(node, key, index, item, countries)
            if source in scopes:
                node.fail_item(key, index, f"{source} is listed twice for {key}")
            scopes[source] = values
            if values is None and key in SCOPED_ATTRIBUTES:
                warnings.append(
                    f"{node.file}:{item_line(node, key, index)}: {node.key(key)}[{index}]: "
                    f"{source} may assert any {key}; give it `values:` so it can vouch only "
                    f"for its own"
                )
        trust[key] = scopes
    return trust, warnings


def may_assert(
    trust: TrustScopes, attribute: str, value: str, sources: frozenset[str] | None
) -> bool:
    """Whether any of `sources` (None: every trusted source) may assert `value`."""
    return any(
        allowed is None or value in allowed
        for source, allowed in trust.get(attribute, {}).items()
        if sources is None or source in sources
    )


def item_line(node: Node, name: str, index: int) -> int:
    """The line of item `index` of the list under key `name`."""
    value = node.data.get(name)
    if isinstance(value, LocatedList) and index < len(value.item_lines):
        return value.item_lines[index]
    return node.line(name)


def _entry(
    node: Node, key: str, index: int, item: Any, countries: Countries
) -> tuple[str, frozenset[str] | None]:
    if isinstance(item, str):
        if not _SOURCE.fullmatch(item):
            node.fail_item(key, index, "expected a source such as ca:<id> or oidc:<id>")
        return item, None
    if not isinstance(item, LocatedMap):
        node.fail_item(key, index, "expected a source, or a mapping with source and values")
    entry = Node(item, node.file, f"{node.key(key)}[{index}]", item_line(node, key, index))
    entry.reject_unknown("source", "values")
    source: str = entry.string("source")
    if not _SOURCE.fullmatch(source):
        entry.fail("source", "expected a source such as ca:<id> or oidc:<id>")
    if not entry.has("values"):
        entry.fail("values", "is required (write the bare source to trust any value)")
    if key in ("nationality", "residence"):
        return source, countries(entry, "values")
    values = entry.strings("values")
    if not values:
        entry.fail("values", "must list at least one value")
    return source, frozenset(values)
