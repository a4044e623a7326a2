"""Jinja2 rendering for the console: autoescaped templates shipped with the package.

Record content is untrusted data: every value reaches the page through autoescaping
(`autoescape=True` for every template, markup never marked safe), and an undefined
name is an error rather than an empty string.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.responses import HTMLResponse

__all__ = ["Renderer", "describe_age"]


def describe_age(seconds: float) -> str:
    """A duration in words: `42 s`, `5 min`, `3 h 10 min`, `2 d 4 h`."""
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def _wall_time(microseconds: int) -> str:
    moment = datetime.fromtimestamp(microseconds / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


class Renderer:
    """Renders the console's templates into HTML responses."""

    def __init__(self) -> None:
        self.environment = Environment(
            loader=PackageLoader("gateway.console", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.environment.filters["age"] = describe_age
        self.environment.filters["wall_time"] = _wall_time

    def render(self, template: str, **context: Any) -> str:
        return self.environment.get_template(template).render(**context)

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The rendered page as a response with `status`."""
        return HTMLResponse(self.render(template, **context), status_code=status)

    def error(
        self, status: int, title: str, message: str, request_id: str, subject: str | None = None
    ) -> HTMLResponse:
        """An error page: `title` and one factual sentence, with the request id to quote."""
        response = self.page(
            "error.html",
            status,
            title=title,
            message=message,
            request_id=request_id,
            subject=subject,
            section=None,
        )
        response.headers["x-request-id"] = request_id
        return response
