"""The demo's banner says where its clock stands against the example grant's window."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gateway.demo.walkthrough import walkthrough

STORE = Path("var/audit.db")


def test_before_the_window_the_banner_says_how_to_get_inside() -> None:
    text = walkthrough(8443, datetime(2026, 12, 1, tzinfo=UTC), STORE)
    assert "grant opens 2026-12-16T16:00:00Z" in text
    assert "make run AT=2027-01-05T12:00:00Z" in text


def test_inside_the_window_the_banner_says_it_is_open() -> None:
    text = walkthrough(8443, datetime(2027, 1, 5, 12, tzinfo=UTC), STORE)
    assert "grant is open now, until 2027-01-08T00:00:00Z" in text
    assert "make run AT=" not in text


def test_after_the_window_the_banner_says_it_closed() -> None:
    text = walkthrough(8443, datetime(2027, 2, 1, tzinfo=UTC), STORE)
    assert "closed 2027-01-08T00:00:00Z" in text
    assert "make run AT=2027-01-05T12:00:00Z" in text
