"""Who gets the console, what every answer carries, and that every request is recorded."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from gateway.audit import RecordFilter
from gateway.console.headers import CONTENT_SECURITY_POLICY
from tests.console.conftest import Site, open_tab
from tests.e2e.audit_support import the_record

pytestmark = pytest.mark.asyncio(loop_scope="session")

PAGES = [
    "/audit",
    "/audit/",
    "/audit/records",
    "/audit/records?decision=deny&organisation=US+CAISI",
    "/audit/records/0",
    "/audit/checkpoints",
    "/audit/pictures",
    "/audit/static/console.js",
    "/audit/static/verify.js",
    "/audit/static/console.css",
]
REFUSED = ["/audit/records/999999", "/audit/records?since=later", "/audit/nothing-here"]


@pytest.mark.parametrize("path", PAGES + REFUSED)
async def test_every_answer_carries_the_security_headers(site: Site, path: str) -> None:
    for who in ("audra", "carol", None):
        response = await site.gateway.client(who).get(path)
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("path", PAGES)
async def test_the_auditor_sees_each_page_and_the_view_is_recorded(site: Site, path: str) -> None:
    response = await site.gateway.client("audra").get(path)
    assert response.status_code == 200
    record = await the_record(site.gateway, response.headers["x-request-id"], "auditor")
    assert (record["decision"], record["principal"]["subject"]) == ("allow", "audra")
    assert record["reason"].startswith("console.")
    assert record["route"] == path.partition("?")[0]


@pytest.mark.parametrize("path", PAGES)
async def test_a_caller_without_the_auditor_role_is_refused_and_recorded(
    site: Site, path: str
) -> None:
    response = await site.gateway.client("carol").get(path)
    assert response.status_code == 403
    assert "The auditor role is required" in response.text
    assert "text/html" in response.headers["content-type"]
    record = await the_record(site.gateway, response.headers["x-request-id"], "auditor")
    assert (record["decision"], record["status"]) == ("deny", 403)
    assert record["principal"]["subject"] == "carol"


@pytest.mark.parametrize("path", PAGES)
async def test_an_unauthenticated_caller_gets_401_and_is_recorded(site: Site, path: str) -> None:
    response = await site.gateway.client(None).get(path)
    assert response.status_code == 401
    assert "www-authenticate" in response.headers
    record = await the_record(site.gateway, response.headers["x-request-id"], "auth_failure")
    assert (record["decision"], record["reason"]) == ("deny", "credentials.missing")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/audit/", "/audit/records", "/audit/records/0"])
async def test_the_console_only_reads_any_other_method_is_405_and_recorded(
    site: Site, method: str, path: str
) -> None:
    log = site.gateway.gateway.audit
    before = await log.query(RecordFilter(kind="request"), -1, 1000)
    response = await site.gateway.client("audra").request(
        method, path, data={"decision": "allow"}, headers={"origin": "https://elsewhere.example"}
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    record = await the_record(site.gateway, response.headers["x-request-id"], "auditor")
    assert (record["reason"], record["status"]) == ("request.method_not_allowed", 405)
    # Nothing but the refusal's own record changed: the console has no state to change.
    assert await log.query(RecordFilter(kind="request"), -1, 1000) == before


async def test_a_refused_search_is_recorded_with_its_query(site: Site) -> None:
    response = await site.gateway.client("audra").get("/audit/records?since=later&x=1")
    assert response.status_code == 400
    assert "Unknown search field" in response.text
    record = await the_record(site.gateway, response.headers["x-request-id"], "auditor")
    assert (record["reason"], record["detail"]) == (
        "console.bad_query",
        {"query": {"since": "later", "x": "1"}},
    )


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("since=later", "'later' is not a time"),
        ("decision=maybe", "decision 'maybe' is not one of"),
        ("kind=nonsense", "kind 'nonsense' is not a record kind"),
        ("after=-5", "after: expected a whole number"),
        ("limit=0", "limit: expected a whole number from 1 up"),
        ("limit=1e3", "limit: expected a whole number"),
        ("model=a&model=b", "model is given more than once"),
    ],
)
async def test_a_bad_search_is_explained_in_words(site: Site, query: str, words: str) -> None:
    response = await site.gateway.client("audra").get(f"/audit/records?{query}")
    assert response.status_code == 400
    assert words in response.text.replace("&#39;", "'")


@pytest.mark.parametrize("index", ["-1", "x", "1e3", "٣", "99999999999999999999"])
async def test_a_record_index_that_is_not_a_record_is_404(site: Site, index: str) -> None:
    response = await site.gateway.client("audra").get(f"/audit/records/{index}")
    assert response.status_code == 404


async def test_no_page_supplies_the_log_key(site: Site) -> None:
    """The verifier key is the auditor's to pin; a page that offered one could offer any."""
    key = site.key()
    for path in PAGES:
        body = (await site.gateway.client("audra").get(path)).text
        assert key not in body
        assert key.split("+", 2)[2] not in body  # name+hash+key: the key alone


async def test_a_non_auditor_sees_the_refusal_in_the_browser(browser: Browser, site: Site) -> None:
    tab = await open_tab(browser, site, "carol")
    try:
        response = await tab.goto(site.url + "/audit/records")
        assert response is not None
        assert response.status == 403
        await expect(tab.page.locator("main")).to_contain_text(
            "The auditor role is required for the audit console."
        )
        assert await tab.page.locator("table.records").count() == 0
    finally:
        await tab.context.close()


async def test_a_browser_without_a_certificate_gets_401(browser: Browser, site: Site) -> None:
    tab = await open_tab(browser, site, None)
    try:
        response = await tab.goto(site.url + "/audit/")
        assert response is not None
        assert response.status == 401
        await expect(tab.page.locator("main")).to_contain_text("Authentication failed")
    finally:
        await tab.context.close()


async def test_pages_load_under_the_policy_without_a_console_error(
    browser: Browser, site: Site
) -> None:
    tab = await open_tab(browser, site, "audra")
    try:
        await tab.pin(site)
        for path in ["/audit/", "/audit/records", "/audit/records/1", "/audit/checkpoints",
                     "/audit/pictures"]:  # fmt: skip
            response = await tab.goto(site.url + path)
            assert response is not None
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            await expect(tab.page.locator("body")).to_have_attribute("data-verified", "done")
        assert tab.errors == []
    finally:
        await tab.context.close()
