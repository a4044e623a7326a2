"""The console's browser fixtures: one headless Debian chromium per test session (per
xdist worker), one populated gateway per test module, and a fresh browser context
(cookies, storage, client certificate) per test.

The browser presents client certificates through Playwright's `client_certificates`
option: Playwright's driver terminates the browser's TLS and opens a real mTLS
connection to the gateway with the caller's certificate and key, checking the gateway's
server certificate against the test CA (NODE_EXTRA_CA_CERTS, read when the driver
starts). The gateway authenticates exactly as it does a browser holding that
certificate. A context without a certificate goes straight to the gateway; chromium
trusts the test server by its pinned key (`server_key_pin`). Nothing in the tests turns
certificate checks off.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Response,
    async_playwright,
    expect,
)
from playwright.async_api import Error as PlaywrightError

from tests.console.traffic import populate
from tests.harness import Clock, RunningGateway, instant, running_gateway

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
START = "2026-12-01T12:00:00Z"


def server_key_pin(pki: Path) -> str:
    """Chromium's own connections (a context without client certificates goes straight to
    the gateway) trust the test server by its key, pinned, rather than by turning
    certificate checks off."""
    certificate = x509.load_pem_x509_certificate((pki / "server.pem").read_bytes())
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = base64.b64encode(hashlib.sha256(spki).digest()).decode()
    return f"--ignore-certificate-errors-spki-list={digest}"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(pki: Path) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
            "(apt-get install chromium)"
        )
    previous = os.environ.get("NODE_EXTRA_CA_CERTS")
    os.environ["NODE_EXTRA_CA_CERTS"] = str(pki / "corp-ca" / "ca.pem")
    try:
        playwright = await async_playwright().start()
    finally:
        if previous is None:
            del os.environ["NODE_EXTRA_CA_CERTS"]
        else:
            os.environ["NODE_EXTRA_CA_CERTS"] = previous
    try:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, server_key_pin(pki)]
        )
        yield launched
        await launched.close()
    finally:
        await playwright.stop()


@dataclass
class Site:
    """A running gateway with the console and a populated, checkpointed log."""

    gateway: RunningGateway
    covered: int

    @property
    def url(self) -> str:
        return self.gateway.base_url

    def key(self) -> str:
        """The log's verifier key, as an auditor gets it from the operator."""
        return (self.gateway.pki / "audit-signing.pub").read_text().strip()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(tmp_path_factory: pytest.TempPathFactory, pki: Path) -> AsyncIterator[Site]:
    folder = tmp_path_factory.mktemp("console")
    async with running_gateway(folder, pki, clock=Clock(instant(START))) as gateway:
        yield Site(gateway, await populate(gateway))


@dataclass
class Tab:
    """A browser page as one caller, with the console messages and errors it logged."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    network_changes: int = 0

    def observe(self, text: str) -> None:
        # Chromium aborts loads in flight when the host's interfaces change, as the
        # network-namespace tests beside these do; that is the host, not the console.
        if "ERR_NETWORK_CHANGED" in text:
            self.network_changes += 1
        else:
            self.errors.append(text)

    async def goto(self, url: str) -> Response | None:
        """Open `url`, again if a change of the host's network cut the load short."""
        for _ in range(3):
            seen = self.network_changes
            try:
                response = await self.page.goto(url)
            except PlaywrightError as exc:
                if "ERR_NETWORK_CHANGED" not in str(exc):
                    raise
                continue
            if self.network_changes == seen:
                return response
        raise AssertionError(f"{url}: the host's network kept changing")

    async def pin(self, site: Site, key: str | None = None) -> None:
        """Pin the log's key through the overview page's form, as an auditor does."""
        await self.goto(site.url + "/audit/")
        await self.page.fill("#pin-input", key if key is not None else site.key())
        await self.page.click("#pin-button")
        await expect(self.page.locator("#pin-status")).to_contain_text("inned")
        if key is None:  # the log's own key must pin
            await expect(self.page.locator("#pin-status")).to_contain_text("Pinned ")


async def open_tab(browser: Browser, site: Site, who: str | None) -> Tab:
    """A fresh context presenting `who`'s certificate (None: no certificate)."""
    pki = site.gateway.pki
    certificates = (
        [
            {
                "origin": site.url,
                "certPath": str(pki / f"{who}.pem"),
                "keyPath": str(pki / f"{who}-key.pem"),
            }
        ]
        if who is not None
        else []
    )
    context = await browser.new_context(
        client_certificates=certificates,
        viewport={"width": 1200, "height": 900},
    )
    page = await context.new_page()
    tab = Tab(context, page)
    page.on(
        "console",
        lambda message: (
            message.type == "error" and tab.observe(f"{message.text} {message.location}")
        ),
    )
    page.on("pageerror", lambda error: tab.observe(str(error)))
    return tab


@pytest_asyncio.fixture(loop_scope="session")
async def auditor(browser: Browser, site: Site) -> AsyncIterator[Tab]:
    tab = await open_tab(browser, site, "audra")
    yield tab
    await tab.context.close()
