"""The pictures page: refusals by reason code, requests per organisation and model, and
the pre-release grant's time line, counted from the log."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.console.conftest import Site, Tab

pytestmark = pytest.mark.asyncio(loop_scope="session")

WHOLE_STORY = "/audit/pictures?since=2026-12-01&until=2027-01-20"


async def test_refusals_are_counted_by_reason_code(auditor: Tab, site: Site) -> None:
    await auditor.goto(site.url + WHOLE_STORY)
    table = auditor.page.locator("#refusals table")
    for reason, count in [
        ("nationality.denied", 2),
        ("grant.not_yet_valid", 1),
        ("grant.expired", 1),
        ("model.prerelease", 1),
        ("credentials.missing", 1),
        ("nationality.missing", 1),
    ]:
        await expect(table.locator("tr", has_text=reason)).to_contain_text(str(count))
    assert await auditor.page.locator("#refusals svg rect").count() >= 4
    assert auditor.errors == []


async def test_requests_are_counted_per_organisation_and_model(auditor: Tab, site: Site) -> None:
    await auditor.goto(site.url + WHOLE_STORY)
    row = auditor.page.locator("#requests table tr", has_text="US CAISI · muse-spark-2")
    await expect(row).to_contain_text("3")  # served under the grant
    await expect(row.locator("td").nth(2)).to_have_text("4")  # not yet, expired, two nationality


async def test_the_grant_time_line_shows_its_window_use_and_edges(auditor: Tab, site: Site) -> None:
    await auditor.goto(site.url + "/audit/pictures")
    grant = auditor.page.locator("article.grant")
    await expect(grant).to_have_count(1)
    await expect(grant).to_contain_text("caisi-muse-spark-2-eval: muse-spark-2 for US CAISI")
    await expect(grant).to_contain_text("Release 2027-01-15T16:00:00Z")
    await expect(grant).to_contain_text("grant window 2026-12-16T16:00:00Z to 2027-01-08T00:00:00Z")
    await expect(grant).to_contain_text("3 requests served under it")
    await expect(grant).to_contain_text("grant.expired 1")
    await expect(grant).to_contain_text("grant.not_yet_valid 1")
    assert await grant.locator("svg rect.window").count() == 1
    assert await grant.locator("svg line.release").count() == 1


async def test_a_window_that_ends_before_it_starts_is_refused(auditor: Tab, site: Site) -> None:
    response = await auditor.goto(site.url + "/audit/pictures?since=2027-01-02&until=2027-01-01")
    assert response is not None
    assert response.status == 400
    await expect(auditor.page.locator("main")).to_contain_text("until must be later than since")
