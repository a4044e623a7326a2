"""The security headers every console response carries.

The console reads only and runs only its own script and style files: no inline script
or style, no other origin, no framing, nothing cached, no referrer leaving the page.
"""

from __future__ import annotations

from starlette.responses import Response

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "secure"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
    # For browsers older than frame-ancestors, and against cross-origin reads and openers.
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


def secure(response: Response) -> Response:
    """`response` with the console's security headers set (replacing any already there)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    return response
