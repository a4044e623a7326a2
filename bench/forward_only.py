"""The gateway's forwarding stage alone: its body reading, header hygiene, request ids,
model lookup and streaming relay (gateway.proxy), with no identity, policy or audit.

It measures what the forwarding code costs against bench/passthrough.py; it is a
benchmark fixture, not a way to run the gateway.

    python bench/forward_only.py --port 8081 --upstream http://127.0.0.1:9000
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
import uvicorn

from gateway.inference import read_body
from gateway.proxy import Forwarder, UpstreamPool, UpstreamSettings, request_id_from
from gateway.proxy import upstream_headers as hygienic_headers
from gateway.responses import Receive, Scope, Send, send_error


class ForwardOnly:
    def __init__(self, upstream_url: str) -> None:
        self.upstream = UpstreamSettings(name="bench", base_url=upstream_url + "/v1", pool_size=256)
        self.pool = UpstreamPool([self.upstream])
        self.forwarder = Forwarder(self.pool)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        request_id = request_id_from(scope["headers"])
        body = await read_body(scope, receive, 4 << 20)
        document: Any = orjson.loads(body)
        if not isinstance(document, dict) or not isinstance(document.get("model"), str):
            await send_error(send, 404, "model_not_found", "No model.", request_id)
            return
        headers = hygienic_headers(scope["headers"], request_id)
        await self.forwarder.forward(
            self.upstream, scope["path"], b"", headers, body, request_id, receive, send
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.pool.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.pool.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        ForwardOnly(args.upstream),
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
