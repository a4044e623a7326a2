"""Adding a signature to a grant in a policy file, leaving the rest of the file as it is.

The edit is made on the text, not by writing the parsed YAML back, so comments, blank
lines, key order and quoting survive. The new entry goes after the grant's last
signature (or, when it has none, into a new `signatures:` list after the grant's last
line), indented like its neighbours; a signature by the same key is replaced. Flow-style
signature lists (`[...]`) are rewritten as block lists. A grant written in flow style
(`- {id: ..., ...}`) is refused. The result is parsed again and must equal the original
in everything but that signature, so a surprise in the layout never silently changes
anything else.
"""

from __future__ import annotations

from typing import Any

import yaml

from gateway.located_yaml import YamlError, parse_yaml

from ._errors import PolicyEditError


def add_signature(text: str, file: str, grant_id: str, key_id: str, signature: str) -> str:
    """`text` with `key_id`'s `signature` (base64) in the signatures of grant `grant_id`."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise PolicyEditError(file, "is not valid YAML") from exc
    grant = _find_grant(root, file, grant_id)
    if grant.flow_style:
        raise PolicyEditError(
            file, f"grant {grant_id} is written in flow style; write it as a block to sign it"
        )
    entry = [f"key_id: {_scalar(key_id)}", f"signature: {signature}"]
    signatures = _value(grant, "signatures")
    edits: list[tuple[int, int, str]] = []
    if signatures is None:
        column = grant.value[0][0].start_mark.column
        at = _line_end(text, _last(grant).end_mark.index)
        lines = [f"{' ' * column}signatures:", *_item(entry, column + 2)]
        edits.append((at, at, _block(lines, text, at)))
    elif not isinstance(signatures, yaml.SequenceNode):
        raise PolicyEditError(file, f"grant {grant_id}: signatures is not a list")
    elif signatures.flow_style or not signatures.value:
        column = _key(grant, "signatures").start_mark.column + 2
        kept = [
            [f"key_id: {_scalar(_text(item, 'key_id'))}", f"signature: {_text(item, 'signature')}"]
            for item in signatures.value
            if _text(item, "key_id") != key_id
        ]
        lines = [line for item in [*kept, entry] for line in _item(item, column)]
        start, end = signatures.start_mark.index, signatures.end_mark.index
        while start > 0 and text[start - 1] == " ":
            start -= 1
        edits.append((start, end, "\n" + "\n".join(lines)))
    else:
        column = signatures.start_mark.column
        at = _line_end(text, _last(signatures).end_mark.index)
        edits.append((at, at, _block(_item(entry, column), text, at)))
        for item in signatures.value:
            if _text(item, "key_id") == key_id:
                edits.append(_item_span(text, item))
    edited = text
    for start, end, replacement in sorted(edits, reverse=True):
        edited = edited[:start] + replacement + edited[end:]
    _check(text, edited, file, grant_id, key_id, signature)
    return edited


def _find_grant(root: Any, file: str, grant_id: str) -> yaml.MappingNode:
    grants = _value(root, "grants") if isinstance(root, yaml.MappingNode) else None
    if isinstance(grants, yaml.SequenceNode):
        for item in grants.value:
            if isinstance(item, yaml.MappingNode) and _text(item, "id") == grant_id:
                return item
    raise PolicyEditError(file, f"holds no grant with id {grant_id!r}")


def _key(mapping: yaml.MappingNode, name: str) -> Any:
    for key, _value_node in mapping.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            return key
    return None


def _value(mapping: yaml.MappingNode, name: str) -> Any:
    for key, value in mapping.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            return value
    return None


def _text(mapping: Any, name: str) -> str | None:
    if not isinstance(mapping, yaml.MappingNode):
        return None
    value = _value(mapping, name)
    return value.value if isinstance(value, yaml.ScalarNode) else None


def _last(node: Any) -> Any:
    """The node that ends last inside `node` (its last leaf)."""
    while True:
        if isinstance(node, yaml.MappingNode) and node.value:
            node = node.value[-1][1]
        elif isinstance(node, yaml.SequenceNode) and node.value:
            node = node.value[-1]
        else:
            return node


def _line_end(text: str, index: int) -> int:
    """The start of the line after the one `index` is on (block scalars end there)."""
    if index > 0 and text[index - 1] == "\n":
        return index
    found = text.find("\n", index)
    return len(text) if found < 0 else found + 1


def _block(lines: list[str], text: str, at: int) -> str:
    block = "\n".join(lines) + "\n"
    return block if at == 0 or text[at - 1] == "\n" else "\n" + block


def _item(fields: list[str], column: int) -> list[str]:
    first, *rest = fields
    return [f"{' ' * column}- {first}", *(f"{' ' * (column + 2)}{field}" for field in rest)]


def _item_span(text: str, item: Any) -> tuple[int, int, str]:
    """The whole lines of a block sequence item, from its dash to its last line."""
    dash = text.rfind("-", 0, item.start_mark.index)
    start = text.rfind("\n", 0, dash) + 1
    return start, _line_end(text, _last(item).end_mark.index), ""


def _scalar(value: str | None) -> str:
    """A key id as a YAML scalar; key ids are plain words, quoted only if they look odd."""
    text = value or ""
    plain = yaml.safe_dump(text, default_flow_style=True).strip()
    return plain.removesuffix("...").strip()


def _check(before: str, after: str, file: str, grant_id: str, key_id: str, signature: str) -> None:
    """`after` must equal `before` except for `key_id`'s entry in the grant's signatures."""
    try:
        old, new = parse_yaml(before), parse_yaml(after)
    except YamlError as exc:
        raise PolicyEditError(file, f"the signed file would not be valid YAML ({exc})") from exc
    old_signatures, new_signatures = _pop_signatures(old, grant_id), _pop_signatures(new, grant_id)
    expected = [s for s in old_signatures if s.get("key_id") != key_id]
    expected.append({"key_id": key_id, "signature": signature})
    if old != new or new_signatures != expected:
        raise PolicyEditError(
            file,
            "cannot add the signature without changing anything else; add it by hand "
            f"to grant {grant_id}: key_id: {key_id}, signature: {signature}",
        )


def _pop_signatures(document: Any, grant_id: str) -> list[dict[str, Any]]:
    for grant in document.get("grants") or []:
        if isinstance(grant, dict) and grant.get("id") == grant_id:
            found = grant.pop("signatures", None) or []
            return [dict(item) for item in found]
    return []
