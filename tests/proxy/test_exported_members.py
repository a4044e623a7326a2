import gateway.proxy


def test_the_public_surface_of_gateway_proxy() -> None:
    assert gateway.proxy.__all__ == [
        "BodyRefused",
        "DigestFactory",
        "ForwardResult",
        "Forwarder",
        "IncrementalDigest",
        "Route",
        "StreamUsage",
        "UpstreamPool",
        "UpstreamSettings",
        "Usage",
        "client_headers",
        "parse_body",
        "request_id_from",
        "upstream_headers",
        "usage_from_json",
    ]
    for name in gateway.proxy.__all__:
        assert hasattr(gateway.proxy, name)
