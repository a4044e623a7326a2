"""Records in the browser: search, open one, and see it verified against the pinned key."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.console.conftest import Site, Tab

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_search_finds_the_refusals_of_one_organisation(auditor: Tab, site: Site) -> None:
    page = auditor.page
    await page.goto(site.url + "/audit/records")
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
    await page.goto(site.url + "/audit/records?reason=grant.expired")
    await page.locator("table.records tbody a").first.click()
    await expect(page.locator("#verdict")).to_contain_text("Verified in this browser")
    await expect(page.locator("#check-inclusion")).to_contain_text("Inclusion proof verified")
    await expect(page.locator("#check-signature")).to_contain_text("signature verified")
    assert auditor.errors == []
