"""Forwarding: upstream pools, header hygiene, streaming relay and usage accounting."""

from gateway.proxy._assertion import (
    ASSERTION_HEADER,
    AssertionSettings,
    AssertionSigner,
    assertion_claims,
    generate_signing_key,
)
from gateway.proxy._body import BodyRefused, parse_body
from gateway.proxy._forward import DigestFactory, Forwarder, ForwardResult, IncrementalDigest
from gateway.proxy._headers import (
    InboundHeaders,
    client_headers,
    request_id_from,
    upstream_headers,
)
from gateway.proxy._rewrite import ModelRewrite
from gateway.proxy._upstream import Route, UpstreamPool, UpstreamSettings
from gateway.proxy._usage import StreamUsage, Usage, usage_from_json

__all__ = [
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
