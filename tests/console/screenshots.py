"""`make screenshots`: pictures of the console's main pages for docs/console/.

Runs a test gateway with the console tests' traffic, opens each page as the auditor in
headless Debian chromium (with the log's key pinned), and writes one PNG per page:

    .venv/bin/python -m tests.console.screenshots docs/console
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import expect

from tests.console.conftest import Site, open_tab
from tests.console.traffic import populate
from tests.harness import Clock, instant, make_pki, running_gateway

PAGES = [
    ("overview", "/audit/", None),
    ("records", "/audit/records?organisation=US+CAISI", None),
    ("record", "/audit/records/{record}", "#verdict"),
    ("checkpoints", "/audit/checkpoints", "#verdict"),
    ("pictures", "/audit/pictures?since=2026-12-01&until=2027-01-20", None),
]


async def take(out: Path) -> None:
    from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, server_key_pin

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        pki = make_pki(root / "pki")
        import os

        os.environ["NODE_EXTRA_CA_CERTS"] = str(pki / "corp-ca" / "ca.pem")
        from playwright.async_api import async_playwright

        clock = Clock(instant("2026-12-01T12:00:00Z"))
        async with running_gateway(root / "gateway", pki, clock=clock) as gateway:
            site = Site(gateway, await populate(gateway))
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, server_key_pin(pki)]
                )
                tab = await open_tab(browser, site, "audra")
                await tab.pin(site)
                record = await _a_served_record(site)
                for name, path, wait_for in PAGES:
                    await tab.page.goto(site.url + path.format(record=record))
                    if wait_for is not None:
                        await expect(tab.page.locator(wait_for)).to_contain_text("Verified")
                    target = out / f"{name}.png"
                    await tab.page.screenshot(path=str(target), full_page=name != "record")
                    print(f"wrote {target}")
                await browser.close()


async def _a_served_record(site: Site) -> int:
    from gateway.audit import RecordFilter

    found = await site.gateway.gateway.audit.query(RecordFilter(reason="allow.grant"), -1, 1)
    return found[0][0]


def main() -> None:
    asyncio.run(take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")))


if __name__ == "__main__":
    main()
