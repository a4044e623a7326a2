import gateway.proxy


def test_the_public_surface_of_gateway_proxy() -> None:
    assert gateway.proxy.__all__ == [
        "ASSERTION_HEADER",
        "AssertionSettings",
        "AssertionSigner",
        "BodyRefused",
        "DigestFactory",
        "ForwardResult",
        "Forwarder",
        "InboundHeaders",
        "IncrementalDigest",
        "ModelRewrite",
        "Route",
        "StreamUsage",
        "UpstreamPool",
        "UpstreamSettings",
        "Usage",
        "assertion_claims",
        "client_headers",
        "generate_signing_key",
        "parse_body",
        "request_id_from",
        "upstream_headers",
        "usage_from_json",
    ]
    for name in gateway.proxy.__all__:
        assert hasattr(gateway.proxy, name)
