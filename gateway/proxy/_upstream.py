"""Upstreams: where models live, how to reach them, and the gateway's credential for them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from gateway.config import Section


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """One upstream inference server.

    `base_url` includes the API prefix, as the OpenAI SDK's `base_url` does
    (`http://10.0.0.5:8000/v1`); request paths below `/v1` are appended to it.
    """

    name: str
    base_url: str
    credential: str | None = field(default=None, repr=False)
    credential_header: str = "authorization"
    credential_scheme: str = "Bearer"
    connect_timeout: float = 5.0
    read_timeout: float = 300.0
    pool_size: int = 100
    identity_assertion: bool = False

    @classmethod
    def from_section(cls, section: Section) -> UpstreamSettings:
        section.reject_unknown(
            "name",
            "base_url",
            "credential",
            "connect_timeout",
            "read_timeout",
            "pool_size",
            "identity_assertion",
        )
        base_url = section.string("base_url").rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            section.fail("base_url", "expected an http:// or https:// URL")
        credential, header, scheme = _credential(section.section("credential"))
        return cls(
            name=section.string("name"),
            base_url=base_url,
            credential=credential,
            credential_header=header,
            credential_scheme=scheme,
            connect_timeout=section.number("connect_timeout", 5.0, minimum=0.001),
            read_timeout=section.number("read_timeout", 300.0, minimum=0.001),
            pool_size=section.integer("pool_size", 100, minimum=1),
            identity_assertion=section.boolean("identity_assertion", False),
        )

    def credential_headers(self) -> dict[str, str]:
        """The header that carries the gateway's own credential, if it has one."""
        if self.credential is None:
            return {}
        value = (
            f"{self.credential_scheme} {self.credential}"
            if self.credential_scheme
            else (self.credential)
        )
        return {self.credential_header: value}


def _credential(section: Section) -> tuple[str | None, str, str]:
    """Read the upstream credential from an environment variable or a file, never inline."""
    section.reject_unknown("env", "file", "header", "scheme")
    header = section.string("header", "authorization").lower()
    scheme = section.data.get("scheme", "Bearer")
    if not isinstance(scheme, str):
        section.fail("scheme", "expected a string (empty for a bare key)")
    if section.has("env") and section.has("file"):
        section.fail("env", "give either env or file, not both")
    if section.has("env"):
        name = section.string("env")
        value = os.environ.get(name)
        if not value:
            section.fail("env", f"environment variable {name} is not set or empty")
        return value.strip(), header, scheme
    if section.has("file"):
        path = section.path_value("file")
        value = path.read_text(encoding="utf-8").strip()
        if not value:
            section.fail("file", "the credential file is empty")
        return value, header, scheme
    return None, header, scheme


@dataclass(frozen=True, slots=True)
class Route:
    """A public model id, the upstream that serves it, and the id the upstream knows it by."""

    model: str
    upstream: str
    upstream_model: str
    # Answers carry the public id in `"model"`; on by default when the names differ.
    rewrite_response_model: bool = False

    @classmethod
    def from_section(cls, section: Section) -> Route:
        section.reject_unknown("id", "upstream", "upstream_model", "rewrite_response_model")
        model = section.string("id")
        upstream_model = section.string("upstream_model", model)
        rewrite = section.boolean("rewrite_response_model", upstream_model != model)
        return cls(
            model=model,
            upstream=section.string("upstream"),
            upstream_model=upstream_model,
            rewrite_response_model=rewrite and upstream_model != model,
        )


class UpstreamPool:
    """One aiohttp session per upstream, created on start and closed on stop."""

    def __init__(self, upstreams: list[UpstreamSettings]) -> None:
        self.settings = {u.name: u for u in upstreams}
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def start(self) -> None:
        for name, upstream in self.settings.items():
            connector = aiohttp.TCPConnector(
                limit=upstream.pool_size, limit_per_host=upstream.pool_size, ttl_dns_cache=300
            )
            self._sessions[name] = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=upstream.connect_timeout,
                    sock_read=upstream.read_timeout,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    def session(self, name: str) -> aiohttp.ClientSession:
        return self._sessions[name]

    async def stop(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()
