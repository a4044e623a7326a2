"""The upstream learns who the caller is only from the gateway, and can check it.

A caller's identity-looking headers never reach the upstream; an upstream that asks for
it gets the gateway's signed assertion, and the demo upstream, checking it with the keys
from the gateway's JWKS URL, refuses forged, tampered, expired, replayed and other
upstreams' assertions. Real sockets, real TLS, real ES256 signatures.
"""

from __future__ import annotations

import base64
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from gateway.audit import RecordFilter
from gateway.config import ConfigError
from gateway.demo.upstream import AssertionCheck, DemoUpstream, create_app
from gateway.proxy import AssertionSigner, generate_signing_key
from gateway.settings import load_settings
from tests.harness import Clock, RunningGateway, gateway_settings, instant, running_gateway
from tests.proxy.test_headers import IMPERSONATING
from tests.servers import serve_asgi

CHAT = "/v1/chat/completions"
HELLO = [{"role": "user", "content": "hello"}]


def _upstream(name: str, url: str, folder: Path, assertion: bool) -> dict[str, Any]:
    return {
        "name": name,
        "base_url": url + "/v1",
        "credential": {"file": str(folder / "upstream.key")},
        "read_timeout": 5,
        "identity_assertion": assertion,
    }


@contextlib.asynccontextmanager
async def asserting_gateway(
    folder: Path, pki: Path, clock: Clock
) -> AsyncIterator[tuple[RunningGateway, DemoUpstream, DemoUpstream]]:
    """A gateway sending assertions to two upstreams: `demo` checks them, `other` only
    records them (muse-1 is served by `other`)."""
    key, _ = generate_signing_key(folder / "assertion")
    # The JWKS URL is known once the gateway listens; the check fetches it lazily.
    check = AssertionCheck(
        "demo",
        jwks_url="https://unset.invalid/",
        ssl_context=ssl.create_default_context(cafile=str(pki / "corp-ca" / "ca.pem")),
        clock=clock,
    )
    demo = create_app(assertion=check, clock=clock)
    other = create_app(clock=clock)
    async with serve_asgi(demo) as demo_url, serve_asgi(other) as other_url:
        overrides = {
            "upstreams": [
                _upstream("demo", demo_url, folder, True),
                _upstream("other", other_url, folder, True),
            ],
            "models": [
                {"id": "muse-spark-2", "upstream": "demo"},
                {"id": "muse-1", "upstream": "other"},
            ],
            "identity_assertion": {"signing_key": str(key), "lifetime_seconds": 30},
        }
        async with running_gateway(
            folder, pki, clock=clock, upstream_url=demo_url, overrides=overrides
        ) as gateway:
            check.jwks_url = gateway.base_url + "/.well-known/jwks.json"
            yield gateway, demo, other


# Inside the CAISI grant window: alice (US) may use muse-spark-2 on `demo`.
GRANT_OPEN = "2026-12-20T12:00:00Z"


@pytest.fixture
def grant_clock() -> Clock:
    return Clock(instant(GRANT_OPEN))


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


async def _direct(url: str, token: str | None) -> httpx.Response:
    """A request sent straight to the upstream, as an attacker on its network would."""
    headers = {"x-gateway-assertion": token} if token is not None else {}
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        return await client.post(
            "/v1/chat/completions",
            json={"model": "muse-spark-2", "messages": HELLO},
            headers=headers,
        )


def _upstream_url(gateway: RunningGateway, name: str) -> str:
    return str(gateway.gateway.upstreams[name].base_url).removesuffix("/v1")


async def test_the_upstream_gets_a_verified_assertion_of_the_decided_request(
    tmp_path: Path, pki: Path, grant_clock: Clock
) -> None:
    async with asserting_gateway(tmp_path, pki, grant_clock) as (gateway, demo, _):
        response = await gateway.client("alice").post(
            CHAT, json={"model": "muse-spark-2", "messages": HELLO}
        )
        assert response.status_code == 200, response.text
        claims = demo.log[-1].assertion
        assert claims is not None
        request_id = response.headers["x-request-id"]
        [(index, data)] = await gateway.gateway.audit.query(
            RecordFilter(request_id=request_id, kind="request")
        )
        record = json.loads(data)
        assert claims["aud"] == "demo"
        assert claims["iss"] == gateway.gateway.assertions.issuer
        assert (claims["sub"], claims["subject_issuer"]) == ("alice", record["principal"]["issuer"])
        assert claims["organisation"] == "US CAISI"
        assert [n["value"] for n in claims["nationalities"]] == ["US"]
        assert all(n["source"] for n in claims["nationalities"])
        assert claims["roles"] == record["principal"]["roles"]
        assert claims["request_id"] == request_id
        assert claims["jti"] != request_id
        assert claims["audit_index"] == index
        assert claims["reason"] == record["reason"] == "allow.grant"
        assert claims["grant_id"] == "caisi-muse-spark-2-eval"
        assert claims["policy_version"] == record["policy_version"]
        assert claims["model"] == "muse-spark-2"
        assert 0 < claims["exp"] - claims["iat"] <= 60


async def test_a_forged_tampered_expired_or_replayed_assertion_is_refused(
    tmp_path: Path, pki: Path, grant_clock: Clock
) -> None:
    async with asserting_gateway(tmp_path, pki, grant_clock) as (gateway, demo, other):
        client = gateway.client("alice")
        assert (
            await client.post(CHAT, json={"model": "muse-spark-2", "messages": HELLO})
        ).status_code == 200
        assert (
            await client.post(CHAT, json={"model": "muse-1", "messages": HELLO})
        ).status_code == 200
        for_demo = demo.log[-1].header("x-gateway-assertion")
        for_other = other.log[-1].header("x-gateway-assertion")
        assert for_demo is not None
        assert for_other is not None
        assert _payload(for_other)["aud"] == "other"
        url = _upstream_url(gateway, "demo")
        signer = gateway.gateway.assertions
        claims = _payload(for_demo)

        # A forgery signed with another key, and a genuine one with its claims changed.
        forger = AssertionSigner(ECKey.import_key(ec.generate_private_key(ec.SECP256R1())), "x")
        forged = forger.sign({**claims, "jti": "forged"}, "demo", grant_clock())
        head, _, signature = for_demo.split(".")
        changed = {**_payload(for_demo), "sub": "bruno", "jti": "tampered"}
        body = base64.urlsafe_b64encode(json.dumps(changed).encode()).rstrip(b"=").decode()
        tampered = f"{head}.{body}.{signature}"
        # Genuine signatures, but issued long ago, or for the other upstream.
        expired = signer.sign({**claims, "jti": "old"}, "demo", grant_clock() - 120)
        none_algorithm = "eyJhbGciOiJub25lIn0." + body + "."
        for token in (None, forged, tampered, expired, none_algorithm, for_other, for_demo):
            response = await _direct(url, token)
            assert response.status_code == 401, token
        # One not seen before is accepted: the refusals above are about the assertions.
        fresh = signer.sign({**claims, "jti": "fresh"}, "demo", grant_clock())
        assert (await _direct(url, fresh)).status_code == 200


async def test_a_retry_with_the_same_request_id_is_not_taken_for_a_replay(
    tmp_path: Path, pki: Path, grant_clock: Clock
) -> None:
    async with asserting_gateway(tmp_path, pki, grant_clock) as (gateway, demo, _):
        client = gateway.client("alice")
        answers = [
            await client.post(
                CHAT,
                json={"model": "muse-spark-2", "messages": HELLO},
                headers={"X-Request-ID": "retry-1"},
            )
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200], answers[-1].text
        seen = [entry.assertion for entry in demo.log[-3:]]
        assert all(claims is not None and claims["request_id"] == "retry-1" for claims in seen)
        assert len({claims["jti"] for claims in seen if claims is not None}) == 3


async def test_a_callers_own_assertion_is_replaced_by_the_gateways(
    tmp_path: Path, pki: Path, grant_clock: Clock
) -> None:
    async with asserting_gateway(tmp_path, pki, grant_clock) as (gateway, demo, _):
        response = await gateway.client("alice").post(
            CHAT,
            json={"model": "muse-spark-2", "messages": HELLO},
            headers={"X-Gateway-Assertion": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJib3NzIn0."},
        )
        assert response.status_code == 200
        seen = demo.log[-1]
        assert [name for name, _ in seen.headers].count("x-gateway-assertion") == 1
        assert seen.assertion is not None
        assert seen.assertion["sub"] == "alice"


async def test_the_jwks_is_public_and_holds_the_signing_key(
    tmp_path: Path, pki: Path, grant_clock: Clock
) -> None:
    async with asserting_gateway(tmp_path, pki, grant_clock) as (gateway, _, _):
        response = await gateway.client(None).get("/.well-known/jwks.json")
        assert response.status_code == 200
        [key] = response.json()["keys"]
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")
        assert key["kid"] == gateway.gateway.assertions.key_id
        assert "d" not in key


async def test_without_the_setting_no_assertion_is_sent_and_the_jwks_is_empty(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client("alice").post(CHAT, json={"model": "muse-1", "messages": HELLO})
    assert response.status_code == 200
    assert gateway.upstream.log[-1].header("x-gateway-assertion") is None
    jwks = await gateway.client(None).get("/.well-known/jwks.json")
    assert jwks.json() == {"keys": []}


async def test_identity_headers_a_caller_sends_never_reach_the_upstream(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client("alice").post(
        CHAT,
        json={"model": "muse-1", "messages": HELLO},
        headers=[(name.decode(), value.decode()) for name, value in IMPERSONATING],
    )
    assert response.status_code == 200
    seen = gateway.upstream.log[-1]
    received = dict(seen.headers)
    for name, value in IMPERSONATING:
        if name != b"x-forwarded-proto":  # the gateway sets its own, which is https too
            assert received.get(name.decode()) != value.decode(), name
    assert seen.header("x-forwarded-for") == "127.0.0.1"
    assert seen.header("x-forwarded-proto") == "https"
    assert seen.header("x-forwarded-host") == gateway.base_url.removeprefix("https://")
    for name, _ in seen.headers:
        assert not name.startswith(("x-gateway-", "x-remote-", "x-ssl-", "remote-"))


def _settings_with(folder: Path, pki: Path, overrides: dict[str, Any]) -> Path:
    return gateway_settings(
        folder, pki, folder / "policies", "http://127.0.0.1:9", port=0, overrides=overrides
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"upstreams": "assert-without-key"}, "upstreams[0].identity_assertion"),
        ({"identity_assertion": {"signing_key": "KEY", "lifetime_seconds": 61}}, "lifetime"),
        ({"identity_assertion": {"signing_key": "NOT-A-KEY"}}, "signing_key"),
    ],
)
def test_assertion_settings_that_cannot_work_are_refused_by_name(
    tmp_path: Path, pki: Path, overrides: dict[str, Any], named: str
) -> None:
    key, _ = generate_signing_key(tmp_path / "keys")
    (tmp_path / "not-a-key.pem").write_text("-----BEGIN NOTHING-----\n")
    if overrides.get("upstreams") == "assert-without-key":
        overrides = {"upstreams": [_upstream("demo", "http://127.0.0.1:9", tmp_path, True)]}
    elif overrides["identity_assertion"]["signing_key"] == "KEY":
        overrides["identity_assertion"]["signing_key"] = str(key)
    else:
        overrides["identity_assertion"]["signing_key"] = str(tmp_path / "not-a-key.pem")
    path = _settings_with(tmp_path, pki, overrides)
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    assert named in str(refused.value)
