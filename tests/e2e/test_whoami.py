"""GET /v1/whoami: who the gateway thinks the caller is, on whose word, and which models
and grant windows are open to them now; nothing about any other model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Clock, RunningGateway, instant, running_gateway
from tests.idp import AUDIENCE, FakeIdentityProvider, make_signing_keys

ISSUER = "https://idp.agency.example"
GRANT_WINDOW = {
    "id": "caisi-muse-spark-2-eval",
    "not_before": "2026-12-16T16:00:00Z",
    "not_after": "2027-01-08T00:00:00Z",
    "quota": None,  # the example grant has none
}


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdentityProvider]:
    provider = FakeIdentityProvider(make_signing_keys(), issuer=ISSUER)
    await provider.start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture
async def inside_the_window(
    tmp_path: Path, pki: Path, idp: FakeIdentityProvider
) -> AsyncIterator[RunningGateway]:
    identity = {
        "certificate_authorities": [
            {"id": "agency", "bundle": str(pki / "agency-ca" / "ca.pem")},
            {"id": "corp", "bundle": str(pki / "corp-ca" / "ca.pem")},
        ],
        "issuers": [
            {
                "id": "agency-idp",
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "discovery": f"{idp.base_url}/.well-known/openid-configuration",
                "claims": {
                    "organisation": "org",
                    "roles": "roles",
                    "nationalities": "verified_claims.claims.nationalities",
                },
            }
        ],
    }
    clock = Clock(instant("2027-01-05T12:00:00Z"))
    idp.now = clock.now
    async with running_gateway(tmp_path, pki, clock=clock, identity=identity) as running:
        yield running


async def whoami(gateway: RunningGateway, who: str | None, **headers: str) -> dict[str, Any]:
    response = await gateway.client(who).get("/v1/whoami", headers=headers)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def test_an_evaluator_sees_the_grant_window_of_the_model_served_under_it(
    inside_the_window: RunningGateway,
) -> None:
    view = await whoami(inside_the_window, "alice")

    assert view["models"] == ["muse-1", "muse-spark-2"]
    assert view["model_access"] == [
        {"id": "muse-1", "release_at": "2026-03-01T00:00:00Z", "grant": None},
        {"id": "muse-spark-2", "release_at": "2027-01-15T16:00:00Z", "grant": GRANT_WINDOW},
    ]


async def test_a_caller_who_may_not_see_the_prerelease_model_learns_nothing_of_it(
    inside_the_window: RunningGateway,
) -> None:
    carol = await whoami(inside_the_window, "carol")  # a customer: the model is hidden
    bruno = await whoami(inside_the_window, "bruno")  # the grantee, but not a US national

    for view in (carol, bruno):
        assert view["models"] == ["muse-1"]
        assert [entry["id"] for entry in view["model_access"]] == ["muse-1"]
    assert "muse-spark-2" not in (await inside_the_window.client("carol").get("/v1/whoami")).text
    assert "caisi-muse-spark-2-eval" not in str(bruno)


async def test_issuer_is_the_source_name_for_certificate_and_token_callers(
    inside_the_window: RunningGateway, idp: FakeIdentityProvider
) -> None:
    by_certificate = await whoami(inside_the_window, "alice")
    by_token = await whoami(inside_the_window, None, authorization=f"Bearer {idp.token()}")

    assert (by_certificate["issuer"], by_certificate["token_issuer"]) == ("ca:agency", None)
    assert (by_token["issuer"], by_token["token_issuer"]) == ("oidc:agency-idp", ISSUER)
    assert {a["source"] for a in by_token["attributes"]} == {"oidc:agency-idp"}
    assert by_token["model_access"][1]["grant"] == GRANT_WINDOW
