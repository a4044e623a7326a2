"""The browser's verifier (static/verify.js) against the published RFC 6962 vectors and
against notes the gateway signs, run in chromium: every vector decided as the RFC
says, every one-byte change to a signed note refused."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser

from gateway.audit import Checkpoint, format_checkpoint, generate_keys, load_signer
from gateway.demo.material import ORIGIN
from tests.console.conftest import Site, Tab, open_tab
from tests.harness import REPO

pytestmark = pytest.mark.asyncio(loop_scope="session")

RFC6962 = REPO.parent / "shared" / "vectors" / "rfc6962"


def _vectors(kind: str) -> list[dict[str, Any]]:
    cases = []
    for path in sorted((RFC6962 / kind).rglob("*.json")):
        case = json.loads(path.read_text())
        case["name"] = str(path.relative_to(RFC6962))
        for key in ("leafIdx", "treeSize", "size1", "size2"):
            if key in case:
                case[key] = str(case[key])  # whole numbers travel as text, read as BigInt
        case["proof"] = case.get("proof") or []
        cases.append(case)
    return cases


@pytest_asyncio.fixture(loop_scope="session")
async def verifier(browser: Browser, site: Site) -> AsyncIterator[Tab]:
    """A console page, so verify.js is loaded as the console loads it."""
    tab = await open_tab(browser, site, "audra")
    await tab.goto(site.url + "/audit/records?limit=1")
    yield tab
    await tab.context.close()


_INCLUSION = """async (cases) => {
  const V = globalThis.consoleVerify;
  const wrong = [];
  for (const c of cases) {
    let accepted = true;
    try {
      await V.verifyInclusion(c.leafIdx, c.treeSize, V.decodeBase64(c.leafHash, "leaf"),
        c.proof.map((p) => V.decodeBase64(p, "proof")), V.decodeBase64(c.root, "root"));
    } catch (error) {
      if (!(error instanceof V.VerificationFailure)) return [c.name + ": " + error];
      accepted = false;
    }
    if (accepted === c.wantErr) wrong.push(c.name);
  }
  return wrong;
}"""

_CONSISTENCY = """async (cases) => {
  const V = globalThis.consoleVerify;
  const wrong = [];
  for (const c of cases) {
    let accepted = true;
    try {
      await V.verifyConsistency(c.size1, c.size2, c.proof.map((p) => V.decodeBase64(p, "proof")),
        V.decodeBase64(c.root1, "root1"), V.decodeBase64(c.root2, "root2"));
    } catch (error) {
      if (!(error instanceof V.VerificationFailure)) return [c.name + ": " + error];
      accepted = false;
    }
    if (accepted === c.wantErr) wrong.push(c.name);
  }
  return wrong;
}"""


async def test_inclusion_proofs_decide_every_published_vector(verifier: Tab) -> None:
    cases = _vectors("inclusion")
    assert len(cases) > 50
    assert await verifier.page.evaluate(_INCLUSION, cases) == []


async def test_consistency_proofs_decide_every_published_vector(verifier: Tab) -> None:
    cases = _vectors("consistency")
    assert len(cases) > 50
    assert await verifier.page.evaluate(_CONSISTENCY, cases) == []


_OPEN = """async ([key, notes]) => {
  const V = globalThis.consoleVerify;
  const pinned = await V.parseVerifierKey(key);
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const results = [];
  for (const note of notes) {
    try {
      const text = decoder.decode(V.decodeBase64(note, "note"));
      const checkpoint = await V.openCheckpoint(text, pinned);
      results.push(`${checkpoint.treeSize} ${V.encodeBase64(checkpoint.root)}`);
    } catch (error) {
      if (error instanceof V.VerificationFailure || error instanceof TypeError) results.push(null);
      else results.push(`${error}`);
    }
  }
  return results;
}"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_a_signed_checkpoint_opens_and_every_one_byte_change_is_refused(
    verifier: Tab, site: Site
) -> None:
    signer = load_signer(site.gateway.pki / "audit-signing.key")
    root = bytes(range(32))
    note = signer.sign(format_checkpoint(Checkpoint(ORIGIN, 1234, root))).encode()
    changed = []
    for position in range(len(note)):
        for flip in (0x01, 0x80):
            mutated = bytearray(note)
            mutated[position] ^= flip
            changed.append(_b64(bytes(mutated)))
    results = await verifier.page.evaluate(_OPEN, [site.key(), [_b64(note), *changed]])
    assert results[0] == f"1234 {_b64(root)}"
    assert [r for r in results[1:] if r is not None] == []


async def test_other_signers_are_ignored_and_a_same_named_key_is_not_the_pinned_one(
    verifier: Tab, site: Site, tmp_path: Path
) -> None:
    signer = load_signer(site.gateway.pki / "audit-signing.key")
    generate_keys(tmp_path / "other", ORIGIN)
    impostor = load_signer(tmp_path / "other" / "audit-signing.key")
    text = format_checkpoint(Checkpoint(ORIGIN, 7, bytes(32)))
    ours = signer.sign(text)
    theirs = impostor.sign(text)
    cosigned = text + "\n" + theirs.split("\n\n")[1] + ours.split("\n\n")[1]
    results = await verifier.page.evaluate(
        _OPEN, [site.key(), [_b64(cosigned.encode()), _b64(theirs.encode())]]
    )
    assert results == [f"7 {_b64(bytes(32))}", None]


_KEYS = """async (keys) => {
  const V = globalThis.consoleVerify;
  const out = [];
  for (const key of keys) {
    try { out.push((await V.parseVerifierKey(key)).text); }
    catch (error) { out.push(error instanceof V.VerificationFailure ? null : `${error}`); }
  }
  return out;
}"""


async def test_verifier_keys_parse_as_the_note_format_says(verifier: Tab, site: Site) -> None:
    key = site.key()
    name, key_hash, encoded = key.split("+", 2)
    wrong_hash = f"{int(key_hash, 16) ^ 1:08x}"
    bad = [
        "",
        f"{name}+{key_hash}",
        f"{name}+{wrong_hash}+{encoded}",
        f"{name}+{key_hash.upper()}+{encoded}",
        f"other+{key_hash}+{encoded}",
        f"{name}+{key_hash}+{_b64(bytes([2]) + base64.b64decode(encoded)[1:])}",
        f"{name}+{key_hash}+{encoded[:-4]}",
        f"na me+{key_hash}+{encoded}",
    ]
    results = await verifier.page.evaluate(_KEYS, [key, f"  {key}\n", *bad])
    assert results == [key, key] + [None] * len(bad)
