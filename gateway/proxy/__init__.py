"""Forwarding: upstream pools, header hygiene, streaming relay and usage accounting."""

from gateway.proxy._body import BodyRefused, parse_body
from gateway.proxy._forward import DigestFactory, Forwarder, ForwardResult, IncrementalDigest
from gateway.proxy._headers import client_headers, request_id_from, upstream_headers
from gateway.proxy._upstream import Route, UpstreamPool, UpstreamSettings
from gateway.proxy._usage import StreamUsage, Usage, usage_from_json

__all__ = [
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
