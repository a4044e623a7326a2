"""`gateway config check FILE`: validate a settings file and everything it points to.

Reads the settings as `gateway serve` does, then, without binding a port: builds the
TLS context (certificate and key belong together), loads the policy in full (grant
approvals included), reads CA bundles, CRLs, upstream credentials and audit keys, and
opens the audit store read-only (SQLite: the file and its folder must be writable;
PostgreSQL: a connection with a short timeout) and checks its head against the latest
signed checkpoint with the configured key. Each finding names the file, the line and
the key.

Exit status: 0 valid (warnings are printed but do not fail), 1 valid but the audit
store cannot be reached or opened now, 2 invalid.

The checks import most of the gateway, so this package's `__init__` imports only the
command line, so that `gateway --help` stays quick; `check_config` is in
`gateway.config_check.checks`.
"""

from .cli import register

__all__ = ["register"]
