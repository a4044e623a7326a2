"""mTLS terminated by the gateway: a real uvicorn server with TlsHttpProtocol."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import pytest

from gateway.config import ConfigError, Section
from gateway.identity import (
    AuthenticationError,
    Authenticator,
    IdentitySettings,
    TlsHttpProtocol,
    TlsSettings,
    build_server_ssl_context,
)
from tests.identity.conftest import NOW, Pki, identity_settings
from tests.servers import serve_asgi


def _tls_settings(pki: Pki, client_certificates: str) -> TlsSettings:
    return TlsSettings.from_section(
        Section(
            {
                "certificate": str(pki.server),
                "private_key": str(pki.server_key),
                "client_certificates": client_certificates,
            },
            "test.yaml",
            "tls",
        )
    )


def _identity(pki: Pki) -> IdentitySettings:
    return identity_settings(
        {"certificate_authorities": [{"id": "agency", "bundle": str(pki.agency)}]}
    )


def _client_context(pki: Pki, *, with_certificate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.agency))
    if with_certificate:
        context.load_cert_chain(str(pki.alice), str(pki.alice_key))
    return context


async def _echo_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    tls = scope.get("extensions", {}).get("tls", {})
    body = "\n".join(tls.get("client_cert_chain", [])).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_client_certificate_reaches_the_scope_on_every_request(pki: Pki) -> None:
    server_context = build_server_ssl_context(_tls_settings(pki, "optional"), _identity(pki))

    async with (
        serve_asgi(_echo_tls, ssl=server_context, http=TlsHttpProtocol) as url,
        httpx.AsyncClient(verify=_client_context(pki, with_certificate=True)) as client,
    ):
        first = await client.get(f"{url}/one")
        second = await client.get(f"{url}/two")  # same keep-alive connection

    expected = pki.pem(pki.alice).strip()
    assert (expected, expected) == (first.text.strip(), second.text.strip())


async def test_no_client_certificate_gives_an_empty_chain(pki: Pki) -> None:
    server_context = build_server_ssl_context(_tls_settings(pki, "optional"), _identity(pki))

    async with (
        serve_asgi(_echo_tls, ssl=server_context, http=TlsHttpProtocol) as url,
        httpx.AsyncClient(verify=_client_context(pki, with_certificate=False)) as client,
    ):
        response = await client.get(url)

    assert response.text == ""


async def test_required_client_certificate_lets_the_handshake_finish_for_an_http_401(
    pki: Pki,
) -> None:
    # "required" is enforced by the Authenticator (cert.missing), so that a caller without
    # a certificate gets an HTTP answer rather than a broken connection.
    identity = _identity(pki)
    authenticator = Authenticator(identity, require_certificate=True)
    reasons = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            await authenticator.authenticate(scope, now=NOW)
        except AuthenticationError as exc:
            reasons.append(exc.reason)
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server_context = build_server_ssl_context(_tls_settings(pki, "required"), identity)
    try:
        async with (
            serve_asgi(app, ssl=server_context, http=TlsHttpProtocol) as url,
            httpx.AsyncClient(verify=_client_context(pki, with_certificate=False)) as client,
        ):
            response = await client.get(url)
    finally:
        await authenticator.aclose()

    assert (response.status_code, reasons) == (401, ["cert.missing"])


async def test_required_client_certificate_still_refuses_an_untrusted_one_in_the_handshake(
    pki: Pki,
) -> None:
    server_context = build_server_ssl_context(_tls_settings(pki, "required"), _identity(pki))
    client_context = ssl.create_default_context(cafile=str(pki.agency))
    client_context.load_cert_chain(str(pki.mallory), str(pki.root / "mallory-key.pem"))

    async with (
        serve_asgi(_echo_tls, ssl=server_context, http=TlsHttpProtocol) as url,
        httpx.AsyncClient(verify=client_context) as client,
    ):
        with pytest.raises(httpx.TransportError):
            await client.get(url)


async def test_authenticator_reads_the_certificate_over_real_mtls(pki: Pki) -> None:
    identity = _identity(pki)
    authenticator = Authenticator(identity)
    principals = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        principal = await authenticator.authenticate(scope, now=NOW)
        principals.append(principal)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server_context = build_server_ssl_context(_tls_settings(pki, "required"), identity)
    try:
        async with (
            serve_asgi(app, ssl=server_context, http=TlsHttpProtocol) as url,
            httpx.AsyncClient(verify=_client_context(pki, with_certificate=True)) as client,
        ):
            await client.get(url)
    finally:
        await authenticator.aclose()

    assert [("alice", frozenset({"US", "FR"}), frozenset({"mtls"}))] == [
        (p.subject, p.values("nationality"), p.auth_methods) for p in principals
    ]


def test_context_accepts_the_whole_gateway_settings(pki: Pki) -> None:
    class Settings:
        tls = _tls_settings(pki, "required")
        identity = _identity(pki)

    context = build_server_ssl_context(Settings())

    assert (ssl.CERT_OPTIONAL, ssl.TLSVersion.TLSv1_2) == (
        context.verify_mode,
        context.minimum_version,
    )


def test_client_certificates_without_any_ca_is_a_config_error(pki: Pki) -> None:
    with pytest.raises(ConfigError) as caught:
        build_server_ssl_context(_tls_settings(pki, "optional"))

    assert caught.value.key == "tls.client_certificates"


def test_empty_tls_section_means_plain_http() -> None:
    assert TlsSettings.from_section(Section(None, "test.yaml", "tls")).enabled is False
