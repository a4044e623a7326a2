"""Export of audit records as OCSF API Activity events (class 6003).

The mapping is documented in docs/audit.md; fields without an OCSF home go to
`unmapped` so that nothing in the record is lost.
"""

from __future__ import annotations

from typing import Any

from gateway.audit.records import parse_time

__all__ = ["to_ocsf"]

OCSF_VERSION = "1.3.0"
API_ACTIVITY_CLASS = 6003
APPLICATION_ACTIVITY_CATEGORY = 6

# OCSF API Activity activity_id: 1 Create, 2 Read, 3 Update, 99 Other.
_ACTIVITY = {
    "request": (1, "Create"),
    "completion": (1, "Create"),
    "auth_failure": (99, "Other"),
    "admin": (3, "Update"),
    "policy_reload": (3, "Update"),
    "auditor": (2, "Read"),
}

_MAPPED = {
    "index",
    "kind",
    "time",
    "request_id",
    "principal",
    "client_address",
    "route",
    "status",
    "decision",
    "reason",
}


def to_ocsf(record: dict[str, Any], origin: str) -> dict[str, Any]:
    """One audit record as an OCSF API Activity event."""
    activity_id, activity_name = _ACTIVITY.get(str(record.get("kind")), (99, "Other"))
    principal = record.get("principal") or {}
    status_code = record.get("status")
    success = record.get("decision") == "allow" and (
        not isinstance(status_code, int) or status_code < 400
    )
    event: dict[str, Any] = {
        "class_uid": API_ACTIVITY_CLASS,
        "class_name": "API Activity",
        "category_uid": APPLICATION_ACTIVITY_CATEGORY,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": API_ACTIVITY_CLASS * 100 + activity_id,
        "severity_id": 1,
        "time": parse_time(str(record["time"])) // 1000,
        "status_id": 1 if success else 2,
        "status": "Success" if success else "Failure",
        "status_detail": record.get("reason"),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "Model Access Gateway", "vendor_name": "Model Access Gateway"},
            "log_name": origin,
            "uid": str(record.get("index")),
            "correlation_uid": record.get("request_id"),
        },
        "actor": {
            "user": {
                "uid": principal.get("subject"),
                "org": {"name": principal.get("organisation")},
                "groups": [{"name": role} for role in principal.get("roles") or []],
            }
            if principal
            else None
        },
        "src_endpoint": {"ip": record.get("client_address")},
        "api": {
            "operation": record.get("route") or record.get("kind"),
            "request": {"uid": record.get("request_id")},
        },
        "http_request": {"url": {"path": record.get("route")}},
        "http_response": {"code": status_code},
        "unmapped": {
            name: value
            for name, value in record.items()
            if name not in _MAPPED or name == "principal"
        },
    }
    return event
