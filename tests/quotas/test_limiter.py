"""The limiter's decisions that no single server shows: a worker counting alone."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from structlog.testing import capture_logs

from gateway.logs import get_logger
from gateway.policy import decide, load_policy
from gateway.quotas.counters import MemoryCounters
from gateway.quotas.limiter import QuotaLimiter, QuotaSettings
from tests.e2e.audit_support import GRANT_WINDOW
from tests.e2e.test_quotas import _policies
from tests.policy.conftest import person

AT = datetime.fromisoformat(GRANT_WINDOW.replace("Z", "+00:00"))


async def test_a_worker_counting_alone_fails_grant_quotas_closed(tmp_path: Path) -> None:
    """With --workers and no shared store each worker would grant the whole budget."""
    policy = load_policy(_policies(tmp_path, quota={"requests": 100}))
    evaluator = person("US CAISI", ("US",), roles=("evaluator",))
    decision = decide(policy, evaluator, "model.invoke", "muse-spark-2", AT)
    assert decision.grant_id is not None
    body = {"model": "muse-spark-2"}
    alone = QuotaLimiter(QuotaSettings(), MemoryCounters(), get_logger(), alone_among_workers=True)
    with capture_logs() as logs:
        verdict = await alone.admit(policy, decision, "alice", "US CAISI", body, AT.timestamp())
    assert (verdict.allowed, verdict.status, verdict.code) == (False, 503, "quota_unavailable")
    assert any(entry["event"] == "quota.store_unavailable" for entry in logs)
    # A request under no quota is not affected; one process alone counts as before.
    free = decide(policy, evaluator, "model.invoke", "muse-1", AT)
    assert (await alone.admit(policy, free, "alice", "US CAISI", body, AT.timestamp())).allowed
    single = QuotaLimiter(QuotaSettings(), MemoryCounters(), get_logger())
    assert (await single.admit(policy, decision, "alice", "US CAISI", body, AT.timestamp())).allowed
