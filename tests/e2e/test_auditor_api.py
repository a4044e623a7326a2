"""The auditor API end to end: checkpoints, filtered records, inclusion and consistency
proofs that verify with the log's public key, and a record of every auditor call."""

from __future__ import annotations

import base64
import itertools
import json
from pathlib import Path

import pytest

from gateway.audit import (
    CompactRange,
    NoteError,
    ProofError,
    RecordFilter,
    SQLiteAuditStore,
    generate_keys,
    leaf_hash,
    load_verifier,
    open_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from gateway.demo.material import ORIGIN
from tests.e2e.audit_support import (
    log_verifier,
    outcome,
    some_traffic,
    the_record,
    wait_for_checkpoint,
)
from tests.harness import RunningGateway

# -- the auditor API -----------------------------------------------------------------------


async def test_the_auditor_gets_a_checkpoint_signed_over_the_stored_records(
    gateway: RunningGateway, pki: Path, tmp_path: Path
) -> None:
    await some_traffic(gateway)
    size = gateway.gateway.audit.tree_size
    await wait_for_checkpoint(gateway, size)
    response = await gateway.client("audra").get("/v1/audit/checkpoint")
    assert response.status_code == 200
    checkpoint = open_checkpoint(response.text, log_verifier(pki))
    assert checkpoint.origin == ORIGIN
    assert checkpoint.tree_size >= size
    tree = CompactRange()
    reader = SQLiteAuditStore(gateway.audit_store, readonly=True)
    try:
        for row in itertools.islice(reader.iter_records(), checkpoint.tree_size):
            tree.append(leaf_hash(bytes(row.data)))
    finally:
        reader.close()
    assert tree.root() == checkpoint.root_hash
    generate_keys(tmp_path / "other", ORIGIN)
    with pytest.raises(NoteError):
        open_checkpoint(response.text, load_verifier(tmp_path / "other" / "audit-signing.pub"))


async def test_the_auditor_pages_through_denied_records(gateway: RunningGateway) -> None:
    denied = [(await some_traffic(gateway))["denied"] for _ in range(3)]
    audra = gateway.client("audra")
    everything = (await audra.get("/v1/audit/records?decision=deny&limit=1000")).json()
    assert everything["next_after"] is None
    indexes = [entry["index"] for entry in everything["records"]]
    assert len(indexes) == 6  # three policy denials, three unauthenticated requests
    assert all(entry["record"]["decision"] == "deny" for entry in everything["records"])
    assert all(entry["record"]["index"] == entry["index"] for entry in everything["records"])
    assert set(denied) <= {entry["record"]["request_id"] for entry in everything["records"]}
    paged: list[int] = []
    after: int | None = -1
    for _ in range(10):
        if after is None:
            break
        page = (await audra.get(f"/v1/audit/records?decision=deny&limit=2&after={after}")).json()
        assert len(page["records"]) <= 2
        paged.extend(entry["index"] for entry in page["records"])
        after = page["next_after"]
    assert after is None
    assert paged == indexes
    from_store = await gateway.gateway.audit.query(RecordFilter(decision="deny"))
    assert [index for index, _ in from_store] == indexes


async def test_an_unknown_filter_is_400_and_recorded(gateway: RunningGateway) -> None:
    response = await gateway.client("audra").get(
        "/v1/audit/records?colour=red", headers={"x-request-id": "audra-bad-query"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_query"
    record = await the_record(gateway, "audra-bad-query", "auditor")
    assert outcome(record) == ("deny", "audit.bad_query", 400)


async def test_the_auditor_gets_an_inclusion_proof_that_verifies_against_the_checkpoint(
    gateway: RunningGateway, pki: Path
) -> None:
    ids = await some_traffic(gateway)
    denial = await the_record(gateway, ids["denied"], "request")
    await wait_for_checkpoint(gateway, gateway.gateway.audit.tree_size)
    audra = gateway.client("audra")
    note = (await audra.get("/v1/audit/checkpoint")).text
    checkpoint = open_checkpoint(note, log_verifier(pki))
    response = await audra.get(f"/v1/audit/records/{denial['index']}")
    assert response.status_code == 200
    bundle = response.json()
    data = base64.b64decode(bundle["record"])
    proof = [base64.b64decode(item) for item in bundle["proof"]]
    assert json.loads(data) == denial
    assert (bundle["leaf_index"], bundle["tree_size"]) == (denial["index"], checkpoint.tree_size)
    assert bundle["checkpoint"] == note
    verify_inclusion(
        denial["index"], checkpoint.tree_size, leaf_hash(data), proof, checkpoint.root_hash
    )
    altered = data.replace(b'"bruno"', b'"alice"')
    with pytest.raises(ProofError):
        verify_inclusion(
            denial["index"], checkpoint.tree_size, leaf_hash(altered), proof, checkpoint.root_hash
        )
    beyond = await audra.get(f"/v1/audit/records/{checkpoint.tree_size + 10}")
    assert beyond.status_code == 404
    assert beyond.json()["error"]["code"] == "record_not_found"


async def test_the_auditor_gets_a_consistency_proof_between_two_checkpoints(
    gateway: RunningGateway, pki: Path
) -> None:
    audra = gateway.client("audra")
    verifier = log_verifier(pki)
    await some_traffic(gateway)
    await wait_for_checkpoint(gateway, gateway.gateway.audit.tree_size)
    old = open_checkpoint((await audra.get("/v1/audit/checkpoint")).text, verifier)
    await some_traffic(gateway)
    await wait_for_checkpoint(gateway, gateway.gateway.audit.tree_size)
    new = open_checkpoint((await audra.get("/v1/audit/checkpoint")).text, verifier)
    assert old.tree_size < new.tree_size
    response = await audra.get(
        f"/v1/audit/consistency?first={old.tree_size}&second={new.tree_size}"
    )
    assert response.status_code == 200
    body = response.json()
    proof = [base64.b64decode(item) for item in body["proof"]]
    assert (body["first"], body["second"]) == (old.tree_size, new.tree_size)
    verify_consistency(old.tree_size, new.tree_size, proof, old.root_hash, new.root_hash)
    with pytest.raises(ProofError):
        verify_consistency(old.tree_size, new.tree_size, proof, bytes(32), new.root_hash)
    empty = await audra.get(f"/v1/audit/consistency?first=0&second={new.tree_size}")
    assert empty.status_code == 400


AUDIT_CALLS = [
    ("/v1/audit/checkpoint", "audit.checkpoint"),
    ("/v1/audit/records?decision=deny", "audit.records"),
    ("/v1/audit/records/0", "audit.record"),
    ("/v1/audit/consistency?first=1&second=2", "audit.consistency"),
]


async def test_every_auditor_call_leaves_an_auditor_record(gateway: RunningGateway) -> None:
    await some_traffic(gateway)
    await wait_for_checkpoint(gateway, gateway.gateway.audit.tree_size)
    audra = gateway.client("audra")
    for number, (path, reason) in enumerate(AUDIT_CALLS):
        request_id = f"audra-{number}"
        response = await audra.get(path, headers={"x-request-id": request_id})
        assert response.status_code == 200
        record = await the_record(gateway, request_id, "auditor")
        assert outcome(record) == ("allow", reason, 200)
        assert record["route"] == path.partition("?")[0]
        assert record["principal"]["subject"] == "audra"
        assert "auditor" in record["principal"]["roles"]


@pytest.mark.parametrize("path", [path for path, _ in AUDIT_CALLS])
async def test_a_caller_without_the_auditor_role_gets_403_and_a_record(
    gateway: RunningGateway, path: str
) -> None:
    await some_traffic(gateway)
    response = await gateway.client("alice").get(path, headers={"x-request-id": "alice-audit"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    record = await the_record(gateway, "alice-audit", "auditor")
    assert outcome(record) == ("deny", "role.required", 403)
    assert record["principal"]["subject"] == "alice"


async def test_an_unauthenticated_auditor_call_is_401_and_an_auth_failure_record(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client(None).get(
        "/v1/audit/checkpoint", headers={"x-request-id": "nobody-audit"}
    )
    assert response.status_code == 401
    record = await the_record(gateway, "nobody-audit", "auth_failure")
    assert (record["reason"], record["route"]) == ("credentials.missing", "/v1/audit/checkpoint")


async def test_record_filters_take_times_relative_to_the_gateway_clock(
    gateway: RunningGateway,
) -> None:
    denied = (await some_traffic(gateway))["denied"]
    audra = gateway.client("audra")

    def ids(page: dict[str, list[dict[str, dict[str, str]]]]) -> set[str]:
        return {entry["record"]["request_id"] for entry in page["records"]}

    # The gateway's clock stands at 2026-12-01T12:00:00Z, when every record was written.
    recent = (await audra.get("/v1/audit/records?decision=deny&since=-1h")).json()
    older = (await audra.get("/v1/audit/records?decision=deny&until=-1h")).json()
    today = (await audra.get("/v1/audit/records?decision=deny&since=today&until=now")).json()
    assert denied in ids(recent)
    assert ids(older) == set()
    assert ids(today) == ids(recent)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("kind=nonsense", "kind 'nonsense' is not a record kind: one of request, completion"),
        ("decision=maybe", "decision 'maybe' is not one of allow or deny"),
        ("since=soon", "since: 'soon' is not a time: give an ISO 8601 date-time"),
        ("limit=ten", "limit: expected a whole number from 1 up."),
        ("after=-2", "after: expected a whole number from -1 up."),
        ("colour=red", "unknown filter 'colour': one of decision, kind, model"),
    ],
)
async def test_a_bad_filter_is_400_naming_the_parameter_and_what_it_accepts(
    gateway: RunningGateway, query: str, message: str
) -> None:
    response = await gateway.client("audra").get(f"/v1/audit/records?{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/v1/audit/consistency?first=x&second=2", "first: expected a whole number from 1 up."),
        ("/v1/audit/consistency?first=1", "Missing query parameter 'second'."),
        ("/v1/audit/records/-1", "index: expected a whole number from 0 up."),
    ],
)
async def test_a_bad_number_in_a_path_or_query_is_named(
    gateway: RunningGateway, path: str, message: str
) -> None:
    response = await gateway.client("audra").get(path)
    assert response.status_code in (400, 404)
    assert response.json()["error"]["message"] == message
