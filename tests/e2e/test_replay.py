"""`gateway policy replay` over a store made by a real gateway under the example policy:
a policy with a new suspension changes exactly the requests it suspends."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

from gateway.cli import main
from tests.e2e.audit_support import chat
from tests.harness import REPO, Clock, running_gateway

CHAT = "/v1/chat/completions"
CALLERS = ("alice", "bruno", "dana", "carol", "emil", "oscar")
MODELS = ("muse-1", "muse-spark-2")
# Before and inside muse-spark-2's grant window; the new suspension starts between them.
ROUNDS = ("2026-12-01T12:00:00Z", "2026-12-20T12:00:00Z")
SUSPENDED_FROM = "2026-12-10T00:00:00Z"


def _gateway(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _with_suspension(folder: Path) -> Path:
    """The example policy plus a suspension of Globex Corp from SUSPENDED_FROM."""
    shutil.copytree(REPO / "policies", folder)
    with (folder / "suspensions.yaml").open("a", encoding="utf-8") as file:
        file.write(
            "  - organisation: Globex Corp\n"
            "    reason: replayed before it goes live\n"
            f"    since: {SUSPENDED_FROM}\n"
        )
    return folder


async def _record_traffic(tmp_path: Path, pki: Path) -> tuple[Path, dict[str, tuple[str, ...]]]:
    sent: dict[str, tuple[str, ...]] = {}
    clock = Clock(0)
    clock.set(ROUNDS[0])
    async with running_gateway(tmp_path, pki, clock=clock) as gateway:
        for number, moment in enumerate(ROUNDS):
            clock.set(moment)
            for caller in CALLERS:
                for model in MODELS:
                    request_id = f"replay-{number}-{caller}-{model}"
                    response = await gateway.client(caller).post(
                        CHAT, json=chat(model), headers={"x-request-id": request_id}
                    )
                    assert response.headers["x-request-id"] == request_id
                    sent[request_id] = (moment, caller, model)
        # Requests the policy never decided: not replayed, and counted as such.
        bad = await gateway.client("carol").post(
            CHAT, content=b"{not json", headers={"x-request-id": "replay-bad-json"}
        )
        assert bad.status_code == 400
        anonymous = await gateway.client(None).post(CHAT, json=chat())
        assert anonymous.status_code == 401
        store = gateway.audit_store
    return store, sent


async def test_a_new_suspension_changes_exactly_the_requests_it_suspends(
    tmp_path: Path, pki: Path
) -> None:
    store, sent = await _record_traffic(tmp_path / "gateway", pki)
    policy = _with_suspension(tmp_path / "candidate")
    code, out, err = _gateway(
        "policy", "replay", "--store", str(store), "--policy", str(policy),
        "--examples", "100", "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    changed = {
        example["request_id"]: (change["old_reason"], change["new_reason"])
        for change in report["changes"]
        for example in change["examples"]
    }
    # Globex's callers asking for the released model after the suspension starts; for
    # the pre-release model they were refused as hidden first, and still are.
    expected = {
        request_id: (
            "allow.released" if caller == "carol" else "nationality.missing",
            "suspended.organisation",
        )
        for request_id, (moment, caller, model) in sent.items()
        if caller in ("carol", "emil") and model == "muse-1" and moment > SUSPENDED_FROM
    }
    assert changed == expected
    assert report["replayed"] == len(sent)
    assert report["changed"] == 2
    assert report["unchanged"] == len(sent) - 2
    assert [(s["reason"], s["count"]) for s in report["not_replayed"]] == [
        ("no principal or model (request.invalid_json)", 1)
    ]
    assert sum(report["recorded_policy_versions"].values()) == len(sent)


async def test_the_report_is_readable_and_the_window_limits_it(tmp_path: Path, pki: Path) -> None:
    store, sent = await _record_traffic(tmp_path / "gateway", pki)
    policy = _with_suspension(tmp_path / "candidate")
    code, out, _ = _gateway("policy", "replay", "--store", str(store), "--policy", str(policy))
    assert code == 0
    assert "allow.released -> suspended.organisation: 1 (allow -> deny)" in out
    assert "nationality.missing -> suspended.organisation: 1 (deny -> deny)" in out
    assert "request replay-1-carol-muse-1" in out
    code, out, _ = _gateway(
        "policy", "replay", "--store", str(store), "--policy", str(policy),
        "--until", "2026-12-05T00:00:00Z",
    )  # fmt: skip
    assert code == 0
    assert f"decided again: {len(sent) // 2}; unchanged {len(sent) // 2}, would change 0" in out
    assert "no outcome would change" in out
    code, out, _ = _gateway(
        "policy", "replay", "--store", str(store), "--policy", str(REPO / "policies")
    )
    assert code == 0
    assert "no outcome would change" in out


async def test_bad_input_is_refused_with_status_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "models.yaml").write_text("models: [\n")
    store = tmp_path / "missing.db"
    store.write_text("")
    code, _, err = _gateway("policy", "replay", "--store", str(store), "--policy", str(broken))
    assert code == 2
    assert "policy invalid" in err
