"""The auditor web console at /audit/: server-rendered pages over the audit log.

Served to callers with the auditor role (the same identity and policy decision as the
auditor API); every request is an `auditor` record. The pages only read (GET), carry a
strict Content-Security-Policy, and verify the log's proofs and signatures in the
browser against a key the auditor pinned (`static/verify.js`). See docs/audit.md,
"Console".
"""

from gateway.console.routes import console_routes

__all__ = ["console_routes"]
