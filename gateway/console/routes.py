"""The console's routes under /audit/, built once per app (templates and files loaded at
build time, nothing at import)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from gateway.console.access import Visit, begin
from gateway.console.assets import Assets
from gateway.console.checkpoints import checkpoints_page, overview_page
from gateway.console.headers import secure
from gateway.console.pictures import pictures_page
from gateway.console.records import record_page, records_page
from gateway.console.templates import Renderer
from gateway.control import AnyMethod

__all__ = ["console_routes"]

_Page = Callable[[Renderer, Request], Awaitable[Response]]


async def asset(renderer: Renderer, assets: Assets, request: Request) -> Response:
    """A script or style file (recorded like a page: every request is)."""
    visit = await begin(request, renderer)
    if not isinstance(visit, Visit):
        return visit
    name = request.path_params["name"]
    found = assets.get(name)
    if found is None:
        return await visit.refuse(
            "route.unknown", 404, "The console has no such file.", {"asset": name}
        )
    content, media_type = found
    response = secure(Response(content, media_type=media_type))
    response.headers["x-request-id"] = visit.call.request_id
    return await visit.finish("allow", "console.asset", response, detail={"asset": name})


async def not_found(renderer: Renderer, request: Request) -> Response:
    visit = await begin(request, renderer)
    if not isinstance(visit, Visit):
        return visit
    return await visit.refuse("route.unknown", 404, "The console has no such page.")


def console_routes() -> list[BaseRoute]:
    """The routes serving the console at /audit/ (and /audit)."""
    renderer = Renderer()
    assets = Assets()

    def endpoint(page: _Page) -> AnyMethod:
        return AnyMethod(functools.partial(page, renderer))

    return [
        Route("/audit", endpoint(overview_page)),
        Mount(
            "/audit",
            routes=[
                Route("/", endpoint(overview_page)),
                Route("/records", endpoint(records_page)),
                Route("/records/{index}", endpoint(record_page)),
                Route("/checkpoints", endpoint(checkpoints_page)),
                Route("/pictures", endpoint(pictures_page)),
                Route("/static/{name}", AnyMethod(functools.partial(asset, renderer, assets))),
                Route("/{path:path}", endpoint(not_found)),
            ],
        ),
    ]
