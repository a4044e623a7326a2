"""Checkpoints in the browser: the history verified against the newest, tampering
caught in words, and warnings when signing stops."""

from __future__ import annotations

import base64
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Route, expect

from tests.console.conftest import START, Site, Tab, open_tab
from tests.e2e.audit_support import CHAT, chat, the_record, wait_for_checkpoint
from tests.harness import Clock, instant, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSE_CHECKPOINTS = (
    "CREATE TRIGGER refuse BEFORE INSERT ON checkpoints BEGIN"
    " SELECT RAISE(ABORT, 'checkpoints refused'); END"
)


async def test_the_history_is_verified_against_the_newest_checkpoint(
    auditor: Tab, site: Site
) -> None:
    await auditor.pin(site)
    await auditor.goto(site.url + "/audit/checkpoints")
    rows = auditor.page.locator("tr.checkpoint")
    assert await rows.count() >= 2
    await expect(auditor.page.locator("#verdict")).to_contain_text("Verified in this browser")
    for status in await rows.locator("[data-status]").all_inner_texts():
        assert status.startswith("Verified: signature")
    assert auditor.errors == []


async def _tampered(tab: Tab, url: str, change: Callable[[str], str]) -> None:
    async def handle(route: Route) -> None:
        response = await route.fetch()
        await route.fulfill(response=response, body=change(await response.text()))

    await tab.page.route(url, handle)
    await tab.goto(url)


def _last_proof_changed(html: str) -> str:
    proofs = re.findall(r'data-proof="([^"]+)"', html)
    hashes = proofs[-1].split()
    first = bytearray(base64.b64decode(hashes[0]))
    first[5] ^= 0x40
    changed = " ".join([base64.b64encode(first).decode(), *hashes[1:]])
    return html.replace(f'data-proof="{proofs[-1]}"', f'data-proof="{changed}"')


def _last_note_resigned_by_nobody(html: str) -> str:
    notes = re.findall(r'class="checkpoint" data-note="([^"]+)"', html)
    note = base64.b64decode(notes[-1]).decode()
    origin, size, _root, rest = note.split("\n", 3)
    forged = f"{origin}\n{size}\n{base64.b64encode(bytes(32)).decode()}\n{rest}"
    return html.replace(notes[-1], base64.b64encode(forged.encode()).decode())


async def test_a_tampered_consistency_proof_fails_in_words(auditor: Tab, site: Site) -> None:
    await auditor.pin(site)
    await _tampered(auditor, site.url + "/audit/checkpoints", _last_proof_changed)
    last = auditor.page.locator("tr.checkpoint [data-status]").last
    await expect(last).to_contain_text("Consistency proof FAILED: ")
    await expect(auditor.page.locator("#verdict")).to_contain_text("FAILED: 1 of")


async def test_a_tampered_checkpoint_in_the_history_fails_its_signature(
    auditor: Tab, site: Site
) -> None:
    await auditor.pin(site)
    await _tampered(auditor, site.url + "/audit/checkpoints", _last_note_resigned_by_nobody)
    last = auditor.page.locator("tr.checkpoint [data-status]").last
    await expect(last).to_contain_text("Signature FAILED: ")
    await expect(auditor.page.locator("#verdict")).to_contain_text("FAILED")


@pytest_asyncio.fixture(loop_scope="session")
async def stalled(browser: Browser, tmp_path: Path, pki: Path) -> AsyncIterator[tuple[Site, Tab]]:
    """A gateway whose store refuses new checkpoints after the first, while serving on."""
    overrides = {"audit_checkpoint_every_records": 5, "audit_batch_max": 1}
    async with running_gateway(
        tmp_path, pki, clock=Clock(instant(START)), overrides=overrides
    ) as gateway:
        alice = gateway.client("alice")
        first = await alice.post(CHAT, json=chat())
        await the_record(gateway, first.headers["x-request-id"], "completion")
        await wait_for_checkpoint(gateway, gateway.gateway.audit.tree_size)
        with contextlib.closing(sqlite3.connect(gateway.audit_store, isolation_level=None)) as db:
            db.execute(REFUSE_CHECKPOINTS)
        for _ in range(8):
            assert (await alice.post(CHAT, json=chat())).status_code == 200
        site = Site(gateway, 0)
        tab = await open_tab(browser, site, "audra")
        yield site, tab
        await tab.context.close()


async def test_a_growing_unsigned_tail_is_a_clear_warning(stalled: tuple[Site, Tab]) -> None:
    site, tab = stalled
    for path in ("/audit/", "/audit/checkpoints"):
        await tab.goto(site.url + path)
        await expect(tab.page.locator(".warning")).to_contain_text(
            "Warning: The unsigned tail is growing"
        )


async def test_a_record_no_checkpoint_covers_is_shown_unverified(
    stalled: tuple[Site, Tab],
) -> None:
    site, tab = stalled
    await tab.pin(site)
    last = site.gateway.gateway.audit.tree_size - 1
    await tab.goto(f"{site.url}/audit/records/{last}")
    await expect(tab.page.locator("#verdict")).to_contain_text(
        "Not verified: no signed checkpoint covers this record yet"
    )
    await expect(tab.page.locator("#canonical")).to_contain_text(f'"index":{last}')


async def test_a_damaged_row_is_named_as_damage(stalled: tuple[Site, Tab]) -> None:
    site, tab = stalled
    with contextlib.closing(sqlite3.connect(site.gateway.audit_store, isolation_level=None)) as db:
        db.execute("UPDATE records SET decision = 'deny' WHERE leaf_index = 1")
    response = await tab.goto(site.url + "/audit/records")
    assert response is not None
    assert response.status == 500
    await expect(tab.page.locator("main")).to_contain_text(
        "The audit store is damaged: record 1: its query columns differ from the record"
    )
