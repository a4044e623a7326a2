"""Shadow mode benchmark: what a candidate policy costs each inference request.

The request path with shadow mode on does one more thing per inference request:
`ShadowPolicy.compare` (a second decide() under the candidate, the comparison, and the
record's `shadow` field when they differ). Measured on the example policy scaled to
1,000 grants and 200 models (bench/bench_policy.py), the candidate being the same
policy with one more suspension, so about one question in ten differs; medians and p99
with time.perf_counter_ns. A record with a `shadow` object is also larger to
canonicalise and hash: that is measured too.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from bench_policy import MODELS, ORGANISATIONS, RELEASE, _principal, write_scaled_policy

from gateway.audit.records import prepare_record
from gateway.candidate import ShadowPolicy
from gateway.policy import decide, load_policy


def _percentiles(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1e3, samples[int(len(samples) * 0.99)] / 1e3


def _time(action: Callable[[], object], rounds: int = 20_000) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        action()
        samples.append(time.perf_counter_ns() - started)
    return _percentiles(samples)


def main() -> None:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as temporary:
        live_dir, candidate_dir = Path(temporary) / "live", Path(temporary) / "candidate"
        write_scaled_policy(live_dir, random.Random(4))
        write_scaled_policy(candidate_dir, random.Random(4))
        with (candidate_dir / "suspensions.yaml").open("a", encoding="utf-8") as file:
            file.write(
                "  - organisation: Organisation 7\n    reason: candidate\n"
                "    since: 2026-01-01T00:00:00Z\n"
            )
        live, candidate = load_policy(live_dir), load_policy(candidate_dir)
    shadow = ShadowPolicy(candidate)
    questions = []
    for _ in range(2000):
        organisation = f"Organisation {rng.randrange(ORGANISATIONS // 10)}"
        principal = _principal(organisation, ["US"], "ca:agency")
        model = f"model-{rng.randrange(MODELS):03d}"
        when = RELEASE + timedelta(days=rng.randint(-40, 70))
        questions.append((principal, model, when))

    position = [0]

    def next_question() -> tuple[object, ...]:
        position[0] = (position[0] + 1) % len(questions)
        return questions[position[0]]

    def live_only() -> None:
        principal, model, when = next_question()
        decide(live, principal, "model.invoke", model, when)  # type: ignore[arg-type]

    def with_shadow() -> None:
        principal, model, when = next_question()
        decision = decide(live, principal, "model.invoke", model, when)  # type: ignore[arg-type]
        shadow.compare(principal, model, when, decision, routed=True)  # type: ignore[arg-type]

    live_p50, live_p99 = _time(live_only)
    both_p50, both_p99 = _time(with_shadow)
    share = shadow.differences / shadow.evaluations
    record = {
        "kind": "request",
        "time": "2026-12-01T12:00:00.000000Z",
        "request_id": "bench-0123456789",
        "route": "/v1/chat/completions",
        "model": "model-001",
        "decision": "allow",
        "reason": "allow.released",
        "rules": ["model:model-001", "class:general/nationality.allow[US]"],
        "policy_version": live.version,
        "shadow": None,
    }
    plain_p50, _ = _time(lambda: prepare_record(record))
    record["shadow"] = {
        "policy_version": candidate.version,
        "decision": "deny",
        "reason": "suspended.organisation",
        "grant_id": None,
    }
    shadowed_p50, _ = _time(lambda: prepare_record(record))
    print(f"decide(), live policy only:        p50 {live_p50:.2f} us, p99 {live_p99:.2f} us")
    print(f"decide() + ShadowPolicy.compare(): p50 {both_p50:.2f} us, p99 {both_p99:.2f} us")
    print(f"  added per inference request:     p50 {both_p50 - live_p50:.2f} us")
    print(f"  questions whose outcome differed: {share:.1%}")
    print(
        "prepare a record without / with a shadow field:"
        f" p50 {plain_p50:.2f} / {shadowed_p50:.2f} us"
    )


if __name__ == "__main__":
    main()
