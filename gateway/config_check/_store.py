"""The stores part of `gateway config check`: the audit store reachable, writable, and
signed by the configured key (the same head check `gateway serve` makes at start); the
quota counter store (Redis) reachable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway.audit import SchemaError, StoreError, describe_location, load_signer, open_store
from gateway.audit.errors import AuditError
from gateway.audit.sequencing import check_head

if TYPE_CHECKING:
    from gateway.settings import Settings

    from .checks import Checker


def check_store(checker: Checker, settings: Settings) -> None:
    """Open the audit store read-only and check its head with the configured signing key."""
    location = settings.audit.store
    where = describe_location(location)
    if isinstance(location, Path):
        if not location.exists():
            folder = _existing_ancestor(location.parent)
            if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                checker.add(
                    "unreachable",
                    "audit.store",
                    f"cannot create {location}: {folder} is not a writable folder",
                )
            else:
                checker.report.checked.append(
                    ("audit store", f"{where}: new, created at start ({folder} is writable)")
                )
            return
        if not os.access(location.parent, os.W_OK | os.X_OK) or not os.access(location, os.W_OK):
            checker.add(
                "unreachable",
                "audit.store",
                f"{location} or its folder is not writable (SQLite writes its journal "
                "beside the file)",
            )
    try:
        store = open_store(location, readonly=True, write_timeout=checker.connect_timeout)
    except SchemaError as exc:
        if exc.version is None:  # no tables yet: the gateway makes them at start
            checker.report.checked.append(("audit store", f"{where}: reachable, empty"))
            return
        checker.add("error", "audit.store", exc.reason)
        return
    except StoreError as exc:
        checker.add("unreachable", "audit.store", exc.reason)
        return
    try:
        store.require_current()
        head = check_head(store, load_signer(settings.audit.signing_key).verifier)
        latest = store.latest_checkpoint()
    except SchemaError as exc:
        checker.add("error", "audit.store", exc.reason)
        return
    except AuditError as exc:
        checker.add(
            "error",
            "audit.store",
            f"does not verify with the configured signing key: {exc}",
        )
        return
    finally:
        store.close()
    signed = latest.tree_size if latest is not None else 0
    checker.report.checked.append(
        (
            "audit store",
            f"{where}: {head.tree_size} records, latest checkpoint at {signed} verifies "
            "with the signing key",
        )
    )


def check_counters(checker: Checker, settings: Settings) -> None:
    """Ping the Redis that `quotas.store` names (without it, grant quotas fail closed)."""
    url = settings.quotas.store
    if url is None:
        return
    import redis

    try:
        parts = urlsplit(url)
        where = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
        if parts.scheme == "unix":
            where = f"unix://{parts.path}"
        client = redis.Redis.from_url(
            url,
            socket_timeout=checker.connect_timeout,
            socket_connect_timeout=checker.connect_timeout,
        )
    except ValueError as exc:
        reason = str(exc).replace(url, "the URL")  # never echo a password the URL holds
        checker.add("error", "quotas.store", f"not a usable Redis URL ({reason})")
        return
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        checker.add(
            "unreachable",
            "quotas.store",
            f"{where} cannot be reached ({type(exc).__name__}): requests under a grant with a"
            " quota would get 503 quota_unavailable",
        )
        return
    finally:
        client.close()
    checker.report.checked.append(("quota counters", f"{where}: reachable"))


def _existing_ancestor(path: Path) -> Path:
    for folder in (path, *path.parents):
        if folder.exists():
            return folder
    return Path("/")
