"""Candidate policies tried against real traffic before they go live.

`replay` decides recorded requests again under another policy (`gateway policy
replay`); `ShadowPolicy` decides every inference request under a candidate beside the
live policy and records where they differ (`policy.shadow`). See docs/policy.md.
"""

from gateway.candidate.principals import RecordedCaller, ReplayError, caller_from_record
from gateway.candidate.replay import Change, Example, ReplayReport, Skipped, replay
from gateway.candidate.shadow import ShadowPolicy

__all__ = [
    "Change",
    "Example",
    "RecordedCaller",
    "ReplayError",
    "ReplayReport",
    "ShadowPolicy",
    "Skipped",
    "caller_from_record",
    "replay",
]
