"""The admin API and `gateway admin`, over real mTLS: suspensions and grants changed at run
time act on the next request, survive restarts, reach another gateway process within a
second, and every change is recorded before and after it is made."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import main
from gateway.demo.upstream import create_app
from gateway.policy import Grant, sign_grant
from gateway.policy._approvers import encode_signature
from tests.conftest import ORDINARY_DAY
from tests.e2e.audit_support import CHAT, GRANT_WINDOW, chat, records
from tests.e2e.crash_gateway import client_context, free_port, gateway_process
from tests.harness import REPO, Clock, RunningGateway, gateway_settings, instant, running_gateway
from tests.servers import serve_asgi
from tests.signing import approver_keys, approvers_yaml


def instant_of(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


SUSPEND_CAISI = {
    "organisation": "US CAISI",
    "reason": "evaluation paused by counsel",
    "since": "2026-11-01T00:00:00Z",
}


async def test_an_operator_suspends_an_organisation_at_once_and_lifts_it(
    gateway: RunningGateway,
) -> None:
    alice, oscar = gateway.client("alice"), gateway.client("oscar")
    assert (await alice.post(CHAT, json=chat())).status_code == 200
    added = await oscar.post("/v1/admin/suspensions", json=SUSPEND_CAISI)
    assert added.status_code == 201, added.text
    object_id = added.json()["id"]
    refused = await alice.post(CHAT, json=chat())
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "suspended")

    listed = (await oscar.get("/v1/admin/suspensions")).json()["suspensions"]
    mine = [s for s in listed if s["id"] == object_id]
    assert (mine[0]["origin"], mine[0]["dimension"], mine[0]["value"]) == (
        "api",
        "organisation",
        "US CAISI",
    )
    assert [s["origin"] for s in listed] == ["file", "api"]  # the example policy has one
    assert "oscar" in mine[0]["created_by"]

    lifted = await oscar.delete(f"/v1/admin/suspensions/{object_id}")
    assert lifted.status_code == 200
    assert (await alice.post(CHAT, json=chat())).status_code == 200

    admin = await records(gateway, kind="admin")
    intent, done = [r for r in admin if r["reason"] == "admin.suspension.add"]
    # Written ahead: who asked for what, under which version; then the outcome.
    assert intent["status"] is None
    assert intent["detail"]["object"] == SUSPEND_CAISI
    assert "oscar" in intent["principal"]["subject"]
    assert intent["principal"]["roles"] == ["internal", "operator"]
    assert done["status"] == 201
    assert done["detail"]["request_index"] == intent["index"]
    assert done["detail"]["old_version"] != done["detail"]["new_version"]
    assert done["detail"]["object"]["organisation"] == "US CAISI"


async def test_other_roles_are_refused_and_recorded(gateway: RunningGateway) -> None:
    for who in ("audra", "alice"):
        response = await gateway.client(who).post("/v1/admin/suspensions", json=SUSPEND_CAISI)
        assert (response.status_code, response.json()["error"]["code"]) == (
            403,
            "permission_denied",
        )
    assert (await gateway.client(None).get("/v1/admin/policy")).status_code == 401
    refused = [r for r in await records(gateway, kind="admin") if r["decision"] == "deny"]
    assert len(refused) == 2
    assert {r["reason"] for r in refused} == {"role.required"}
    assert (await gateway.client("alice").post(CHAT, json=chat())).status_code == 200


async def test_a_method_a_route_does_not_take_names_those_it_does(
    gateway: RunningGateway,
) -> None:
    oscar = gateway.client("oscar")
    for method, path, allowed in (
        ("PUT", "/v1/admin/suspensions", "GET, POST, HEAD"),
        ("POST", "/v1/admin/policy", "GET, HEAD"),
        ("GET", "/v1/admin/grants/some-grant", "DELETE"),
    ):
        response = await oscar.request(method, path)
        assert response.status_code == 405, path
        assert response.headers["allow"] == allowed
        assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"organisation": "US CAISI", "since": "2026-11-01T00:00:00Z"}, "reason"),
        ({**SUSPEND_CAISI, "colour": "red"}, "colour"),
        ({**SUSPEND_CAISI, "since": "yesterday-ish"}, "since"),
        ({"model": "no-such-model", "reason": "x", "since": "2026-11-01T00:00:00Z"}, "model"),
        ({**SUSPEND_CAISI, "until": "2026-10-01T00:00:00Z"}, "until"),
    ],
)
async def test_an_invalid_object_is_a_400_naming_the_field(
    gateway: RunningGateway, body: dict[str, Any], field: str
) -> None:
    response = await gateway.client("oscar").post("/v1/admin/suspensions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field
    assert (await gateway.client("alice").post(CHAT, json=chat())).status_code == 200


async def test_a_body_that_is_not_one_object_is_refused(gateway: RunningGateway) -> None:
    oscar = gateway.client("oscar")
    for content in (b"[1, 2]", b"{not json", b""):
        response = await oscar.post("/v1/admin/suspensions", content=content)
        assert response.status_code == 400


async def test_revoking_a_file_grant_closes_access_at_once(tmp_path: Path, pki: Path) -> None:
    async with running_gateway(tmp_path, pki, clock=Clock(instant(GRANT_WINDOW))) as gateway:
        alice, oscar = gateway.client("alice"), gateway.client("oscar")
        assert (await alice.post(CHAT, json=chat("muse-spark-2"))).status_code == 200
        revoked = await oscar.delete("/v1/admin/grants/caisi-muse-spark-2-eval")
        assert revoked.status_code == 200, revoked.text
        # No grant names alice now: the pre-release model is hidden again.
        assert (await alice.post(CHAT, json=chat("muse-spark-2"))).status_code == 404
        grants = (await oscar.get("/v1/admin/grants")).json()["grants"]
        assert [(g["id"], g["revoked"]) for g in grants] == [("caisi-muse-spark-2-eval", True)]
        # Who approved it stays answerable after it is revoked.
        assert len(grants[0]["digest"]) == 64
        assert len(grants[0]["approvers"]) >= 2
        assert (await oscar.delete("/v1/admin/grants/no-such-grant")).status_code == 404
        # Revoked for good: not again, and not lifted through the suspensions route.
        again = await oscar.delete("/v1/admin/grants/caisi-muse-spark-2-eval")
        assert again.status_code == 409, again.text
        lifted = await oscar.delete("/v1/admin/suspensions/revocation:caisi-muse-spark-2-eval")
        assert lifted.status_code == 404
        assert (await alice.post(CHAT, json=chat("muse-spark-2"))).status_code == 404
        policy = (await oscar.get("/v1/admin/policy")).json()
        assert policy["version"] != policy["file_version"]
        assert [o["kind"] for o in policy["objects"]] == ["revocation"]
        assert {f["path"] for f in policy["files"]} >= {"grants.yaml", "trust.yaml"}


async def test_a_grant_added_at_run_time_opens_access_only_when_signed(
    tmp_path: Path, pki: Path
) -> None:
    keys = approver_keys()
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    (tmp_path / "policies" / "approvers-test.yaml").write_text(approvers_yaml(keys))
    grant = Grant(
        id="globex-muse-spark-2-review",
        organisation="Globex Corp",
        subjects=frozenset(),
        models=("muse-spark-2",),
        not_before=instant_of("2026-12-20T00:00:00Z"),
        not_after=instant_of("2027-01-10T00:00:00Z"),
        purpose="safety review",
    )
    body: dict[str, Any] = {
        "id": grant.id,
        "grantee": {"organisation": grant.organisation},
        "models": list(grant.models),
        "not_before": "2026-12-20T00:00:00Z",
        "not_after": "2027-01-10T00:00:00Z",
        "purpose": grant.purpose,
    }
    signatures = [
        {
            "key_id": key_id,
            "signature": encode_signature(sign_grant(grant, key_id, keys[key_id]).signature),
        }
        for key_id in ("lab-approver-1", "lab-approver-2")
    ]
    async with running_gateway(tmp_path, pki, clock=Clock(instant(GRANT_WINDOW))) as gateway:
        carol, oscar = gateway.client("carol"), gateway.client("oscar")
        assert (await carol.post(CHAT, json=chat("muse-spark-2"))).status_code == 404
        # One signature is below the threshold; a changed field voids the signatures.
        short = await oscar.post("/v1/admin/grants", json={**body, "signatures": signatures[:1]})
        assert short.status_code == 400, short.text
        edited = {**body, "purpose": "something else", "signatures": signatures}
        assert (await oscar.post("/v1/admin/grants", json=edited)).status_code == 400
        added = await oscar.post("/v1/admin/grants", json={**body, "signatures": signatures})
        assert added.status_code == 201, added.text
        assert (await carol.post(CHAT, json=chat("muse-spark-2"))).status_code == 200
        again = await oscar.post("/v1/admin/grants", json={**body, "signatures": signatures})
        assert again.status_code == 409
        assert (await oscar.delete(f"/v1/admin/grants/{grant.id}")).status_code == 200
        assert (await carol.post(CHAT, json=chat("muse-spark-2"))).status_code == 404
        # A revocation needs no approvers, so it must not be undone without them: the same
        # signed grant posted again is refused, and so is lifting it as a suspension.
        replayed = await oscar.post("/v1/admin/grants", json={**body, "signatures": signatures})
        assert replayed.status_code == 409, replayed.text
        assert "revoked" in replayed.json()["error"]["message"]
        for object_id in (f"revocation:{grant.id}", f"grant:{grant.id}"):
            lifted = await oscar.delete(f"/v1/admin/suspensions/{object_id}")
            assert lifted.status_code == 404, object_id
        assert (await carol.post(CHAT, json=chat("muse-spark-2"))).status_code == 404
        assert (await oscar.delete(f"/v1/admin/grants/{grant.id}")).status_code == 404


async def test_run_time_objects_survive_a_restart(tmp_path: Path, pki: Path) -> None:
    clock = Clock(instant(ORDINARY_DAY))
    async with running_gateway(tmp_path, pki, clock=clock) as gateway:
        added = await gateway.client("oscar").post("/v1/admin/suspensions", json=SUSPEND_CAISI)
        assert added.status_code == 201
    async with running_gateway(tmp_path, pki, clock=clock) as again:
        assert (await again.client("alice").post(CHAT, json=chat())).status_code == 403
        assert (await again.client("carol").post(CHAT, json=chat())).status_code == 200


async def test_the_admin_command_changes_a_running_gateway(gateway: RunningGateway) -> None:
    pki = gateway.pki
    common = [
        "admin", "--url", gateway.base_url, "--cacert", str(pki / "corp-ca" / "ca.pem"),
    ]  # fmt: skip

    def as_(who: str, *argv: str) -> int:
        return main([*common, "--cert", str(pki / f"{who}.pem"), "--key",
                     str(pki / f"{who}-key.pem"), *argv])  # fmt: skip

    code = await asyncio.to_thread(
        as_, "oscar", "suspensions", "add", "--organisation", "US CAISI", "--reason", "paused"
    )
    assert code == 0
    assert (await gateway.client("alice").post(CHAT, json=chat())).status_code == 403
    assert await asyncio.to_thread(as_, "audra", "suspensions", "list") == 1
    assert await asyncio.to_thread(as_, "oscar", "policy") == 0


@pytest.mark.slow
async def test_a_suspension_reaches_another_gateway_process_within_a_second(
    tmp_path: Path, pki: Path
) -> None:
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    async with serve_asgi(create_app()) as upstream:
        processes = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            port = free_port()
            config = gateway_settings(
                folder,
                pki,
                tmp_path / "policies",
                upstream,
                port=port,
                overrides={"audit_store": str(tmp_path / "shared" / "audit.db")},
            )
            processes.append((config, port))
        async with (
            gateway_process(processes[0][0], processes[0][1], pki) as first,
            gateway_process(processes[1][0], processes[1][1], pki) as second,
        ):
            oscar = httpx.AsyncClient(
                base_url=first.base_url, verify=client_context(pki, "oscar"), timeout=10
            )
            alice = httpx.AsyncClient(
                base_url=second.base_url, verify=client_context(pki, "alice"), timeout=10
            )
            delays: list[float] = []
            try:
                for _ in range(5):
                    added = await oscar.post("/v1/admin/suspensions", json=SUSPEND_CAISI)
                    assert added.status_code == 201
                    started = time.monotonic()
                    while (await alice.post(CHAT, json=chat())).status_code != 403:
                        assert time.monotonic() - started < 5
                    delays.append(time.monotonic() - started)
                    removed = await oscar.delete(f"/v1/admin/suspensions/{added.json()['id']}")
                    assert removed.status_code == 200
                    started = time.monotonic()
                    while (await alice.post(CHAT, json=chat())).status_code != 200:
                        assert time.monotonic() - started < 5
                    delays.append(time.monotonic() - started)
            finally:
                await oscar.aclose()
                await alice.aclose()
    assert max(delays) <= 1.0, f"propagation: median {statistics.median(delays):.3f} s"
