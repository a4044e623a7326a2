"""Adding a signature to a grant's text: whatever the layout, nothing else changes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.located_yaml import parse_yaml
from gateway.policy._errors import PolicyEditError
from gateway.policy._grant_edit import add_signature

SIGNATURE = base64.b64encode(bytes(range(64))).decode()
OTHER = base64.b64encode(bytes(64)).decode()

FIELDS = {
    "id": "g-1",
    "grantee": ["organisation: US CAISI", "subjects: [evaluator-1]"],
    "models": "[muse-spark-2]",
    "not_before": "2026-12-20T00:00:00Z",
    "not_after": "2026-12-21T00:00:00Z",
    "purpose": "'evaluation: the quoted kind'",
    "nationality_exception": ["reason: |", "  licence on file", "  (two lines)"],
}


@st.composite
def grant_files(draw: st.DrawFn) -> str:
    """A policy file with one or two grants, keys in any order, comments and blank lines
    anywhere, two or four spaces of indentation, signed already or not."""
    indent = draw(st.sampled_from([2, 4]))
    comment = st.sampled_from(["", "   # note", "  # signatures: here?"])
    names = draw(st.permutations(list(FIELDS)))
    names = ["id", *[n for n in names if n != "id"]]  # the dash line holds a key
    lines = ["# grants under review", "grants:"]
    for grant_id in draw(st.sampled_from([["g-1"], ["g-1", "g-2"], ["g-0", "g-1"]])):
        pad = " " * indent
        for position, name in enumerate(names):
            value = grant_id if name == "id" else FIELDS[name]
            lead = f"{pad}- " if position == 0 else f"{pad}  "
            if isinstance(value, list):
                lines.append(f"{lead}{name}:{draw(comment)}")
                lines += [f"{pad}    {item}" for item in value]
            else:
                lines.append(f"{lead}{name}: {value}{draw(comment)}")
            if draw(st.booleans()) and position + 1 < len(names):
                lines.append(draw(st.sampled_from(["", f"{pad}  # between keys"])))
        if draw(st.booleans()):
            dash = " " * draw(st.sampled_from([indent + 2, indent + 4]))
            lines += [
                f"{pad}  signatures:",
                f"{dash}- key_id: other",
                f"{dash}  signature: {OTHER}",
            ]
    text = "\n".join(lines)
    return text + draw(st.sampled_from(["", "\n", "\n\n# end\n"]))


def signatures_of(document: Any, grant_id: str) -> list[dict[str, str]]:
    grant = next(g for g in document["grants"] if g["id"] == grant_id)
    return [dict(item) for item in grant.pop("signatures", None) or []]


@settings(max_examples=300, deadline=None)
@given(text=grant_files(), key_id=st.sampled_from(["lab-approver-1", "other"]))
def test_a_signature_is_added_and_nothing_else_changes(text: str, key_id: str) -> None:
    try:
        edited = add_signature(text, "grants.yaml", "g-1", key_id, SIGNATURE)
    except PolicyEditError:
        # A block scalar that ends the file without a line break cannot be followed by
        # anything without changing its value: then, and only then, the edit is refused.
        assert text.endswith("(two lines)")
        return
    before, after = parse_yaml(text), parse_yaml(edited)
    expected = [s for s in signatures_of(before, "g-1") if s["key_id"] != key_id]
    assert signatures_of(after, "g-1") == [*expected, {"key_id": key_id, "signature": SIGNATURE}]
    assert after == before
    # Every line of the original that is not a replaced signature survives, in order.
    kept = iter(edited.splitlines())
    for line in text.splitlines():
        if key_id == "other" and ("key_id: other" in line or OTHER in line):
            continue
        assert any(line == candidate for candidate in kept), line


def test_an_unknown_grant_is_named() -> None:
    with pytest.raises(PolicyEditError) as caught:
        add_signature("grants: []\n", "grants.yaml", "g-9", "k", SIGNATURE)
    assert str(caught.value) == "grants.yaml: holds no grant with id 'g-9'"


def test_signatures_that_are_not_a_list_are_refused() -> None:
    text = "grants:\n  - id: g-1\n    signatures: yes please\n"
    with pytest.raises(PolicyEditError) as caught:
        add_signature(text, "grants.yaml", "g-1", "k", SIGNATURE)
    assert "signatures is not a list" in str(caught.value)
