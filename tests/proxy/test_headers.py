import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ConfigError, Section
from gateway.proxy import InboundHeaders, client_headers, request_id_from, upstream_headers
from gateway.proxy._headers import _NOT_FORWARDED, IDENTITY_HEADERS, IDENTITY_PREFIXES

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
        "x-forwarded-proto": "https",
        "x-forwarded-host": "gateway.example",
    }


# Every header the review found reaching the upstream, and their relatives.
IMPERSONATING = [
    (b"x-gateway-principal", b"alice"),
    (b"x-gateway-nationality", b"US"),
    (b"x-gateway-grant", b"caisi-muse-spark-2-eval"),
    (b"x-gateway-assertion", b"eyJhbGciOiJub25lIn0.e30."),
    (b"x-forwarded-for", b"10.0.0.1"),
    (b"x-forwarded-host", b"internal.example"),
    (b"x-forwarded-proto", b"https"),
    (b"x-forwarded-user", b"alice"),
    (b"x-forwarded-email", b"alice@agency.example"),
    (b"x-forwarded-groups", b"admins"),
    (b"x-forwarded-preferred-username", b"alice"),
    (b"x-forwarded-access-token", b"token"),
    (b"forwarded", b"for=10.0.0.1;proto=https"),
    (b"x-real-ip", b"10.0.0.1"),
    (b"true-client-ip", b"10.0.0.1"),
    (b"x-client-ip", b"10.0.0.1"),
    (b"x-remote-user", b"alice"),
    (b"x-remote-group", b"system:masters"),
    (b"remote-user", b"alice"),
    (b"remote-groups", b"admins"),
    (b"x-user", b"alice"),
    (b"x-email", b"alice@agency.example"),
    (b"x-groups", b"admins"),
    (b"x-ssl-client-verify", b"SUCCESS"),
    (b"x-ssl-client-s-dn", b"CN=alice,O=US CAISI"),
    (b"ssl-client-verify", b"SUCCESS"),
    (b"x-amzn-oidc-identity", b"alice"),
    (b"x-amzn-oidc-data", b"jwt"),
    (b"x-goog-authenticated-user-email", b"accounts.google.com:alice@example.com"),
    (b"x-goog-iap-jwt-assertion", b"jwt"),
    (b"x-ms-client-principal-name", b"alice"),
    (b"x-ms-client-principal", b"e30="),
    (b"cf-access-authenticated-user-email", b"alice@example.com"),
    (b"cf-access-jwt-assertion", b"jwt"),
    (b"cf-ipcountry", b"US"),
    (b"cloudfront-viewer-country", b"US"),
    (b"x-auth-request-user", b"alice"),
    (b"x-auth-request-email", b"alice@example.com"),
    (b"x-pomerium-jwt-assertion", b"jwt"),
    (b"x-pomerium-claim-email", b"alice@example.com"),
    (b"x-original-forwarded-for", b"10.0.0.1"),
    (b"x-original-url", b"/admin"),
    (b"x-authenticated-userid", b"alice"),
    (b"x-consumer-username", b"alice"),
    (b"x-envoy-external-address", b"10.0.0.1"),
    (b"x-webauth-user", b"alice"),
    (b"tailscale-user-login", b"alice@example.com"),
    # RFC 9440 and the other places front ends put a verified client certificate
    (b"client-cert", b":MIIB:"),
    (b"client-cert-chain", b":MIIB:, :MIIC:"),
    (b"x-arr-clientcert", b"MIIB"),
    (b"x-amzn-mtls-clientcert", b"MIIB"),
    (b"x-tls-client-cert", b"MIIB"),
    (b"x-mtls-subject", b"CN=alice"),
    (b"x-spiffe-id", b"spiffe://example.org/alice"),
    # addresses
    (b"x-forwarded", b"for=203.0.113.9"),
    (b"client-ip", b"203.0.113.9"),
    (b"x-originating-ip", b"203.0.113.9"),
    (b"x-azure-clientip", b"203.0.113.9"),
    # who the caller is, as authenticating proxies spell it
    (b"x-auth-user", b"alice"),
    (b"x-auth-email", b"alice@example.com"),
    (b"x-auth-token", b"t"),
    (b"x-authenticated-email", b"alice@example.com"),
    (b"x-principal", b"alice"),
    (b"x-principal-id", b"alice"),
    (b"x-preferred-username", b"alice"),
    (b"remote-nationality", b"US"),
    (b"oidc-claim-nationality", b"US"),
    (b"x-oidc-claims", b"{}"),
    (b"x-jwt-payload", b"e30"),
    (b"x-goog-iap-jwt-assertion", b"a.b.c"),
    (b"x-saml-subject", b"alice"),
    (b"gap-auth", b"alice@example.com"),
]


def test_nothing_a_caller_sends_looks_like_what_the_gateway_vouches_for() -> None:
    headers = upstream_headers(
        [(b"content-type", b"application/json"), *IMPERSONATING],
        "rid",
        client_address="203.0.113.7",
        scheme="https",
    )
    assert headers == {
        "content-type": "application/json",
        "x-request-id": "rid",
        "accept-encoding": "identity",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
    }


def test_the_forwarded_headers_say_what_the_gateway_saw() -> None:
    caller = [(b"host", b"gateway.example:8443"), (b"x-forwarded-for", b"1.2.3.4")]
    headers = upstream_headers(caller, "rid", client_address="198.51.100.2", scheme="http")
    assert {k: v for k, v in headers.items() if k.startswith("x-forwarded-")} == {
        "x-forwarded-for": "198.51.100.2",
        "x-forwarded-proto": "http",
        "x-forwarded-host": "gateway.example:8443",
    }


@pytest.mark.parametrize(
    "host", [b"evil.example/path", b"a b", b"host\r\nx-user: alice", b"", b"[::1", b"h:99999999"]
)
def test_a_host_that_is_not_a_host_is_not_repeated(host: bytes) -> None:
    assert "x-forwarded-host" not in upstream_headers([(b"host", host)], "rid")


@given(
    st.sampled_from(IDENTITY_PREFIXES),
    st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789-"), max_size=20),
)
def test_every_member_of_an_identity_family_is_dropped(prefix: bytes, rest: str) -> None:
    name = prefix + rest.encode()
    headers = upstream_headers([(name, b"alice")], "rid")
    assert name.decode() not in headers or name.decode().startswith("x-forwarded-")
    assert "alice" not in headers.values()


@given(st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-"), min_size=1, max_size=24))
def test_a_header_outside_every_family_still_goes_upstream(name: str) -> None:
    encoded = name.encode()
    dropped = (
        encoded in IDENTITY_HEADERS
        or encoded.startswith(IDENTITY_PREFIXES)
        or encoded in _NOT_FORWARDED
    )
    headers = upstream_headers([(encoded, b"value")], "rid")
    assert (headers.get(name) == "value") is not dropped


def test_settings_add_names_and_prefixes_to_the_list() -> None:
    section = Section({"drop_request_headers": ["X-Tenant-*", "x-internal-user"]}, "gw.yaml")
    inbound = InboundHeaders.from_section(section)
    caller = [(b"x-tenant-id", b"1"), (b"x-internal-user", b"a"), (b"x-tenantless", b"b")]
    headers = upstream_headers(caller, "rid", inbound)
    assert "x-tenant-id" not in headers
    assert "x-internal-user" not in headers
    assert headers["x-tenantless"] == "b"
    assert inbound.names >= IDENTITY_HEADERS


def test_a_setting_that_is_not_a_header_name_is_refused_by_name() -> None:
    section = Section({"drop_request_headers": ["x-bad name"]}, "gw.yaml", "forwarding")
    with pytest.raises(ConfigError) as refused:
        InboundHeaders.from_section(section)
    assert "drop_request_headers" in str(refused.value)


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
