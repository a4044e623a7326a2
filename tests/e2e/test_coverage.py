"""Every request leaves a record, including the odd ones: wrong method, unknown path,
a caller who gives up while still sending the body."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from typing import Any

from gateway.audit import RecordFilter
from tests.harness import RunningGateway


async def only_record(gateway: RunningGateway, request_id: str) -> dict[str, Any]:
    found = await gateway.gateway.audit.query(RecordFilter(request_id=request_id))
    (record,) = [json.loads(data) for _, data in found]
    return record


async def test_a_wrong_method_on_an_inference_route_is_recorded(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    record = await only_record(gateway, response.headers["x-request-id"])
    assert (record["reason"], record["status"]) == ("request.method_not_allowed", 405)
    assert record["principal"]["subject"] == "alice"


async def test_a_wrong_method_on_a_control_route_is_recorded(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").delete("/v1/models")
    assert response.status_code == 405
    record = await only_record(gateway, response.headers["x-request-id"])
    assert record["reason"] == "request.method_not_allowed"


async def test_an_unknown_path_is_recorded(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post("/v1/fine_tuning/jobs", json={})
    assert response.status_code == 404
    record = await only_record(gateway, response.headers["x-request-id"])
    assert (record["reason"], record["route"]) == ("route.unknown", "/v1/fine_tuning/jobs")


async def test_an_unauthenticated_probe_of_an_unknown_path_is_recorded(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client(None).get("/admin")
    assert response.status_code == 401
    record = await only_record(gateway, response.headers["x-request-id"])
    assert (record["kind"], record["reason"]) == ("auth_failure", "credentials.missing")


async def test_a_caller_who_leaves_while_sending_the_body_is_recorded(
    gateway: RunningGateway,
) -> None:
    port = int(gateway.base_url.rsplit(":", 1)[1])
    context = gateway.ssl_context("alice")
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\n"
        b"x-request-id: gone-midway\r\ncontent-type: application/json\r\n"
        b"content-length: 1000\r\n\r\n" + b'{"model": "muse-1", "messages": ['
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    with contextlib.suppress(ssl.SSLError, ConnectionError):
        await writer.wait_closed()  # the TLS close may race the server's own
    async with asyncio.timeout(5):
        while not await gateway.gateway.audit.query(RecordFilter(request_id="gone-midway")):
            await asyncio.sleep(0.05)
    record = await only_record(gateway, "gone-midway")
    assert (record["reason"], record["status"]) == ("client.disconnected", None)
    assert gateway.upstream.log == []
    del reader


async def test_a_body_naming_the_model_twice_is_refused(gateway: RunningGateway) -> None:
    body = b'{"model": "muse-1", "messages": [], "model": "muse-spark-2"}'
    response = await gateway.client("alice").post(
        "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    record = await only_record(gateway, response.headers["x-request-id"])
    assert record["reason"] == "request.duplicate_member"
    assert gateway.upstream.log == []


async def test_json_the_upstream_might_read_differently_is_refused(
    gateway: RunningGateway,
) -> None:
    client = gateway.client("alice")
    for body, reason in (
        (b'{"model": "muse-1", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nesting_too_deep"),
        (b'{"model": "muse-1\\ud800"}', "invalid_json"),
        ("\ufeff".encode() + b'{"model": "muse-1"}', "invalid_json"),
    ):
        response = await client.post(
            "/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, body[:40]
        record = await only_record(gateway, response.headers["x-request-id"])
        assert record["reason"] == f"request.{reason}"
    assert gateway.upstream.log == []


async def test_an_overlong_model_id_is_not_found_and_not_recorded_in_full(
    gateway: RunningGateway,
) -> None:
    response = await gateway.client("alice").post(
        "/v1/chat/completions", json={"model": "m" * 10_000, "messages": []}
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"
    assert len(response.content) < 1000
    record = await only_record(gateway, response.headers["x-request-id"])
    assert (record["reason"], record["model"]) == ("request.model_id_too_long", None)


async def test_any_method_on_a_control_route_is_recorded(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").request("PROPFIND", "/v1/models")
    assert response.status_code == 405
    record = await only_record(gateway, response.headers["x-request-id"])
    assert record["reason"] == "request.method_not_allowed"


async def test_the_query_string_is_recorded(gateway: RunningGateway) -> None:
    response = await gateway.client("alice").post(
        "/v1/chat/completions?api-version=2024-10-21",
        json={"model": "muse-1", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 200
    found = await gateway.gateway.audit.query(
        RecordFilter(request_id=response.headers["x-request-id"], kind="request")
    )
    (record,) = [json.loads(data) for _, data in found]
    assert record["query"] == "api-version=2024-10-21"
