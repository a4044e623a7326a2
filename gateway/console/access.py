"""Who may see the console, and how each view of it is recorded.

Every console request walks the auditor API's path: authenticate (401 if that fails,
405 for any method but GET and HEAD), then the policy decision for `audit.read` (403
without the auditor role), then the page, then an `auditor` record. Refusals are
recorded like views. An answer the gateway cannot record becomes a 503: nothing is
shown that the log does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.audit import AuditError, AuditUnavailable
from gateway.console.headers import secure
from gateway.console.templates import Renderer
from gateway.control import Call
from gateway.policy import decide

__all__ = ["Visit", "begin"]

_TITLES = {
    400: "Bad query",
    401: "Not authenticated",
    403: "Permission denied",
    404: "Not found",
    405: "Method not allowed",
    500: "Audit store damaged",
    503: "Audit log unavailable",
}
_MESSAGES = {
    401: "Authentication failed: present an auditor's client certificate or token.",
    405: "The console only reads: it accepts GET only.",
    503: "The gateway cannot record or read the audit log right now.",
}
# Headers of a refusal the gateway built that must survive the switch to an HTML page.
_KEPT_HEADERS = ("www-authenticate", "allow", "x-request-id")


@dataclass
class Visit:
    """One authorised console request: the gateway call and the page renderer."""

    call: Call
    renderer: Renderer

    @property
    def subject(self) -> str | None:
        return self.call.principal.subject if self.call.principal is not None else None

    async def answer(
        self,
        reason: str,
        template: str,
        *,
        section: str | None,
        detail: dict[str, Any] | None = None,
        **context: Any,
    ) -> Response:
        """Render `template`, record the view with `reason`, and return the page."""
        page = self.renderer.page(template, subject=self.subject, section=section, **context)
        page.headers["x-request-id"] = self.call.request_id
        return await self.finish("allow", reason, page, detail=detail)

    async def refuse(
        self, reason: str, status: int, message: str, detail: dict[str, Any] | None = None
    ) -> Response:
        """Record a refused view (a bad query, an unknown record) and show `message`."""
        page = self.renderer.error(
            status, _TITLES[status], message, self.call.request_id, self.subject
        )
        return await self.finish("deny", reason, page, detail=detail)

    async def store_failure(self, exc: AuditError) -> Response:
        """A store that cannot be read (503), or one that disagrees with itself: rows with
        their records, proofs or checkpoints with the tree (500, naming the damage)."""
        if isinstance(exc, AuditUnavailable):
            return await self.refuse("audit.unavailable", 503, _MESSAGES[503])
        return await self.refuse("audit.integrity", 500, f"The audit store is damaged: {exc}.")

    async def finish(
        self,
        decision: str,
        reason: str,
        page: Response,
        *,
        rules: tuple[str, ...] = (),
        detail: dict[str, Any] | None = None,
    ) -> Response:
        answered = await self.call.finish(
            None,
            decision,
            reason,
            page.status_code,
            response=page,
            roles=self.call.roles,
            rules=rules,
            detail=detail,
        )
        return secure(answered if answered is page else _as_page(answered, self))


def _as_page(response: Response, visit: Visit) -> Response:
    """The gateway's own refusal (JSON) as a console page with the same status."""
    status = response.status_code
    page = visit.renderer.error(
        status,
        _TITLES.get(status, "Refused"),
        _MESSAGES.get(status, "The request was refused."),
        visit.call.request_id,
        visit.subject,
    )
    for name in _KEPT_HEADERS:
        if name in response.headers:
            page.headers[name] = response.headers[name]
    return page


async def begin(request: Request, renderer: Renderer) -> Visit | Response:
    """Authenticate and authorise a console request: a Visit, or the recorded refusal."""
    visit = Visit(Call(request, "auditor"), renderer)
    refused = await visit.call.authenticate()
    if refused is not None:
        return secure(_as_page(refused, visit))
    call = visit.call
    assert call.principal is not None
    decision = decide(call.policy, call.principal, "audit.read", None, call.instant)
    call.roles = decision.roles
    if not decision.allowed:
        page = renderer.error(
            403,
            _TITLES[403],
            "The auditor role is required for the audit console.",
            call.request_id,
            visit.subject,
        )
        return await visit.finish("deny", decision.reason, page, rules=decision.rules)
    return visit
