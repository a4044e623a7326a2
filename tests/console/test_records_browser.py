"""Records in the browser: search, open one, and see it verified against the pinned key."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Route, expect

from gateway.audit import RecordFilter, generate_keys
from gateway.demo.material import ORIGIN
from tests.console.conftest import Site, Tab
from tests.e2e.audit_support import CHAT, chat

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_search_finds_the_refusals_of_one_organisation(auditor: Tab, site: Site) -> None:
    page = auditor.page
    await auditor.goto(site.url + "/audit/records")
    await page.fill("input[name=organisation]", "US CAISI")
    await page.select_option("select[name=decision]", "deny")
    await page.click("button[type=submit]")
    rows = page.locator("table.records tbody tr")
    await expect(rows).to_have_count(4)
    for text in await rows.all_inner_texts():
        assert "deny" in text
        assert "US CAISI" in text
    assert auditor.errors == []


async def test_an_opened_record_is_verified_in_the_browser(auditor: Tab, site: Site) -> None:
    await auditor.pin(site)
    page = auditor.page
    await auditor.goto(site.url + "/audit/records?reason=grant.expired")
    await page.locator("table.records tbody a").first.click()
    await expect(page.locator("#verdict")).to_contain_text("Verified in this browser")
    await expect(page.locator("#check-inclusion")).to_contain_text("Inclusion proof verified")
    await expect(page.locator("#check-signature")).to_contain_text("signature verified")
    assert auditor.errors == []


async def test_without_a_pinned_key_nothing_is_called_verified(auditor: Tab, site: Site) -> None:
    page = auditor.page
    await auditor.goto(site.url + "/audit/records/1")
    verdict = page.locator("#verdict")
    await expect(verdict).to_contain_text("Not verified: pin the log's key")
    await expect(page.locator("#pinned-key")).to_contain_text("No log key pinned")
    assert "Verified" not in await page.locator("main").inner_text()


async def test_a_key_of_another_log_fails_the_checkpoint_signature(
    auditor: Tab, site: Site, tmp_path: Path
) -> None:
    generate_keys(tmp_path / "other", ORIGIN)  # the same name, another key
    await auditor.pin(site, (tmp_path / "other" / "audit-signing.pub").read_text().strip())
    await auditor.goto(site.url + "/audit/records/2")
    await expect(auditor.page.locator("#check-signature")).to_contain_text(
        "Checkpoint signature FAILED"
    )
    await expect(auditor.page.locator("#verdict")).to_contain_text("FAILED")


async def test_a_malformed_key_is_not_pinned(auditor: Tab, site: Site) -> None:
    await auditor.pin(site, site.key()[:-4] + "AAAA")
    await expect(auditor.page.locator("#pin-status")).to_contain_text("Not pinned:")
    await expect(auditor.page.locator("#pinned-key")).to_contain_text("No log key pinned")


def _attribute(html: str, name: str) -> str:
    found = re.search(f'{name}="([^"]*)"', html)
    assert found is not None, name
    return found.group(1)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _flip_first_hash(html: str) -> str:
    proof = _attribute(html, "data-proof").split()
    first = bytearray(base64.b64decode(proof[0]))
    first[0] ^= 1
    return html.replace(_attribute(html, "data-proof"), " ".join([_b64(first), *proof[1:]]))


def _drop_last_hash(html: str) -> str:
    proof = _attribute(html, "data-proof").split()
    return html.replace(_attribute(html, "data-proof"), " ".join(proof[:-1]))


def _add_a_hash(html: str) -> str:
    proof = _attribute(html, "data-proof")
    return html.replace(proof, proof + " " + _b64(bytes(32)))


def _swap_two_hashes(html: str) -> str:
    proof = _attribute(html, "data-proof").split()
    return html.replace(_attribute(html, "data-proof"), " ".join([proof[1], proof[0], *proof[2:]]))


def _change_the_record(html: str) -> str:
    # The bytes proved and the bytes shown, changed alike: the proof must catch it.
    original = base64.b64decode(_attribute(html, "data-record"))
    changed = original.replace(b'"decision":"allow"', b'"decision":"deny"')
    assert changed != original
    html = html.replace(_attribute(html, "data-record"), _b64(changed))
    shown = original.decode().replace('"', "&#34;")
    return html.replace(shown, changed.decode().replace('"', "&#34;"))


def _move_the_leaf(html: str) -> str:
    index = _attribute(html, "data-leaf-index")
    return html.replace(f'data-leaf-index="{index}"', f'data-leaf-index="{int(index) + 1}"')


INCLUSION_TAMPERING = [
    _flip_first_hash,
    _drop_last_hash,
    _add_a_hash,
    _swap_two_hashes,
    _change_the_record,
    _move_the_leaf,
]


async def _tampered(tab: Tab, site: Site, path: str, change: Callable[[str], str]) -> None:
    async def handle(route: Route) -> None:
        response = await route.fetch()
        await route.fulfill(response=response, body=change(await response.text()))

    await tab.page.route(site.url + path, handle)
    await tab.goto(site.url + path)


async def _served_record(site: Site) -> int:
    found = await site.gateway.gateway.audit.query(RecordFilter(reason="allow.grant"), -1, 1)
    return found[0][0]


@pytest.mark.parametrize("change", INCLUSION_TAMPERING, ids=lambda change: change.__name__[1:])
async def test_a_tampered_inclusion_proof_fails_in_words(
    auditor: Tab, site: Site, change: Callable[[str], str]
) -> None:
    await auditor.pin(site)
    await _tampered(auditor, site, f"/audit/records/{await _served_record(site)}", change)
    await expect(auditor.page.locator("#check-inclusion")).to_contain_text(
        "Inclusion proof FAILED: "
    )
    await expect(auditor.page.locator("#verdict")).to_contain_text("FAILED")
    assert "Verified in this browser" not in await auditor.page.locator("main").inner_text()


def _note(html: str) -> str:
    return base64.b64decode(_attribute(html, "data-checkpoint")).decode()


def _with_note(html: str, note: str) -> str:
    return html.replace(_attribute(html, "data-checkpoint"), _b64(note.encode()))


def _flip_signature(html: str) -> str:
    note = _note(html)
    text, _, line = note[:-1].rpartition("\n")
    name, encoded = line.rsplit(" ", 1)
    blob = bytearray(base64.b64decode(encoded))
    blob[-1] ^= 1
    return _with_note(html, f"{text}\n{name} {_b64(blob)}\n")


def _change_the_signed_size(html: str) -> str:
    note = _note(html)
    origin, size, rest = note.split("\n", 2)
    return _with_note(html, f"{origin}\n{int(size) + 1}\n{rest}")


def _drop_the_signature(html: str) -> str:
    note = _note(html)
    return _with_note(html, note[: note.rindex("\n\n") + 2] + "— someone AAAAAAAA\n")


@pytest.mark.parametrize(
    "change",
    [_flip_signature, _change_the_signed_size, _drop_the_signature],
    ids=lambda change: change.__name__[1:],
)
async def test_a_tampered_checkpoint_signature_fails_in_words(
    auditor: Tab, site: Site, change: Callable[[str], str]
) -> None:
    await auditor.pin(site)
    await _tampered(auditor, site, f"/audit/records/{await _served_record(site)}", change)
    await expect(auditor.page.locator("#check-signature")).to_contain_text(
        "Checkpoint signature FAILED: "
    )
    await expect(auditor.page.locator("#verdict")).to_contain_text("FAILED")


async def test_record_content_is_shown_as_text_never_as_markup(auditor: Tab, site: Site) -> None:
    hostile = '<img src=x onerror="document.title=1"><script>document.title=2</script>'
    response = await site.gateway.client("alice").post(CHAT, json=chat(hostile))
    request_id = response.headers["x-request-id"]
    dialogs: list[str] = []
    auditor.page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await auditor.goto(f"{site.url}/audit/records?request_id={request_id}")
    row = auditor.page.locator("table.records tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(hostile)
    await row.locator("a").click()
    await expect(auditor.page.locator("pre.record")).to_contain_text(json.dumps(hostile)[1:-1])
    assert await auditor.page.locator("main img, main script").count() == 0
    assert (
        await auditor.page.title()
        == f"Record {await _index_of(site, request_id)} · Model Access Gateway"
    )
    assert dialogs == []
    assert auditor.errors == []


async def _index_of(site: Site, request_id: str) -> int:
    found = await site.gateway.gateway.audit.query(RecordFilter(request_id=request_id), -1, 1)
    return found[0][0]


def _change_the_readable_record(html: str) -> str:
    # Proof and canonical bytes untouched; only what a person reads says otherwise.
    start = html.index('<pre id="pretty"')
    end = html.index("</pre>", start)
    readable = html[start:end]
    changed = readable.replace("&#34;allow&#34;", "&#34;deny&#34;", 1)
    assert changed != readable
    return html[:start] + changed + html[end:]


async def test_the_readable_record_is_rendered_from_the_proved_leaf(
    auditor: Tab, site: Site
) -> None:
    """A page whose readable record says otherwise than its proved bytes shows, once
    verified, what the bytes say: the browser renders it from them."""
    await auditor.pin(site)
    path = f"/audit/records/{await _served_record(site)}"
    await _tampered(auditor, site, path, _change_the_readable_record)
    await expect(auditor.page.locator("#check-shown")).to_contain_text(
        "rendered in this browser from them"
    )
    await expect(auditor.page.locator("#verdict")).to_contain_text("Verified in this browser")
    readable = await auditor.page.locator("#pretty").inner_text()
    assert '"decision": "allow"' in readable
    assert '"decision": "deny"' not in readable
