from gateway.proxy import client_headers, request_id_from, upstream_headers

CALLER = [
    (b"content-type", b"application/json"),
    (b"authorization", b"Bearer caller-secret"),
    (b"cookie", b"session=caller"),
    (b"x-api-key", b"caller-key"),
    (b"connection", b"keep-alive, x-private-hop"),
    (b"x-private-hop", b"1"),
    (b"keep-alive", b"timeout=5"),
    (b"transfer-encoding", b"chunked"),
    (b"te", b"trailers"),
    (b"proxy-authorization", b"Basic abc"),
    (b"x-forwarded-client-cert", b"Cert=abc"),
    (b"host", b"gateway.example"),
    (b"user-agent", b"openai-python"),
    (b"openai-beta", b"assistants=v2"),
    (b"x_api_key", b"caller-key-underscored"),
    (b"x-goog-api-key", b"caller-google-key"),
]


def test_caller_credentials_and_hop_by_hop_headers_do_not_go_upstream() -> None:
    headers = upstream_headers(CALLER, "rid-1")
    assert headers == {
        "content-type": "application/json",
        "user-agent": "openai-python",
        "openai-beta": "assistants=v2",
        "x-request-id": "rid-1",
        "accept-encoding": "identity",
    }


def test_upstream_response_headers_lose_hop_by_hop_and_cookies() -> None:
    upstream = [
        (b"Content-Type", b"application/json"),
        (b"Set-Cookie", b"upstream=1"),
        (b"Connection", b"close, x-upstream-hop"),
        (b"X-Upstream-Hop", b"1"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Request-Id", b"upstream-id"),
        (b"Server", b"vllm"),
        (b"openai-processing-ms", b"12"),
        (b"X-Gateway-Grant-Not-After", b"2099-01-01T00:00:00Z"),
    ]
    assert client_headers(upstream, b"rid-2") == [
        (b"content-type", b"application/json"),
        (b"openai-processing-ms", b"12"),
        (b"x-request-id", b"rid-2"),
    ]


def test_a_header_echoing_the_upstream_credential_never_reaches_the_caller() -> None:
    upstream = [(b"x-debug", b"key=sk-upstream-secret"), (b"content-type", b"text/plain")]
    assert client_headers(upstream, b"r", frozenset({b"sk-upstream-secret"})) == [
        (b"content-type", b"text/plain"),
        (b"x-request-id", b"r"),
    ]


def test_a_well_formed_request_id_is_kept() -> None:
    assert request_id_from([(b"x-request-id", b"eval-2026.11:run-7")]) == "eval-2026.11:run-7"


def test_a_malformed_request_id_is_replaced() -> None:
    for bad in (b"", b"has space", b"x" * 129, b"new\nline", b"-leading-dash"):
        generated = request_id_from([(b"x-request-id", bad)])
        assert generated != bad.decode("latin-1")
        assert len(generated) == 32


def test_a_missing_request_id_is_generated_fresh_each_time() -> None:
    assert request_id_from([]) != request_id_from([])
