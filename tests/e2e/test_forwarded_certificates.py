"""Forwarded client certificates over a real TLS socket from a trusted proxy address.

The test client plays the TLS-terminating proxy: it connects from 127.0.0.1 (listed in
`trusted_proxies`) and sends the XFCC header. Inside muse-spark-2's grant window, alice
(US CAISI, US) is served; an element that also carries carol's certificate must never be.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.e2e.audit_support import GRANT_WINDOW, chat, the_record
from tests.harness import Clock, RunningGateway, instant, running_gateway

CHAT = "/v1/chat/completions"
XFCC = "x-forwarded-client-cert"


@pytest.fixture
async def behind_proxy(tmp_path: Path, pki: Path) -> AsyncIterator[RunningGateway]:
    identity = {
        "certificate_authorities": [
            {"id": "agency", "bundle": str(pki / "agency-ca" / "ca.pem")},
            {"id": "corp", "bundle": str(pki / "corp-ca" / "ca.pem")},
        ],
        "forwarded_certificate": {"format": "xfcc", "trusted_proxies": ["127.0.0.1/32"]},
    }
    async with running_gateway(
        tmp_path, pki, clock=Clock(instant(GRANT_WINDOW)), identity=identity
    ) as running:
        yield running


def _encoded(pki: Path, who: str) -> str:
    return quote((pki / f"{who}.pem").read_text(), safe="")


def _hash(pki: Path, who: str) -> str:
    certificate = x509.load_pem_x509_certificate((pki / f"{who}.pem").read_bytes())
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def _proxy(gateway: RunningGateway, header: str) -> httpx.AsyncClient:
    """The trusted proxy: TLS from 127.0.0.1 without a certificate of its own."""
    return gateway.client(None, headers={XFCC: header})


async def test_a_well_formed_element_from_the_proxy_is_served_as_its_certificate(
    behind_proxy: RunningGateway,
) -> None:
    header = f'Hash={_hash(behind_proxy.pki, "alice")};Cert="{_encoded(behind_proxy.pki, "alice")}"'

    response = await _proxy(behind_proxy, header).post(CHAT, json=chat("muse-spark-2"))

    assert response.status_code == 200
    record = await the_record(behind_proxy, response.headers["x-request-id"], "request")
    assert (record["principal"]["subject"], record["principal"]["auth_methods"]) == (
        "alice",
        ["mtls-forwarded"],
    )


@pytest.mark.parametrize(
    "template",
    [
        # The finding: carol's own element with alice's certificate appended.
        'Hash={carol_hash};Cert="{carol}";Subject="CN=carol";Cert="{alice}"',
        'Cert="{carol}";CERT="{alice}"',
        'Cert="{carol}";cert={alice}',
        'Cert="{carol}"; Cert="{alice}"',
        'Hash={carol_hash};Cert="{carol}";URI=https://x.example/?a=b;Cert="{alice}"',
        'Cert="{carol}";Chain="{alice}"',
        'Hash={carol_hash};Cert="{alice}"',
        'Cert="{alice}",Cert="{carol}"',
    ],
)
async def test_an_element_naming_two_certificates_is_refused_and_recorded_as_malformed(
    behind_proxy: RunningGateway, template: str
) -> None:
    pki = behind_proxy.pki
    header = template.format(
        alice=_encoded(pki, "alice"), carol=_encoded(pki, "carol"), carol_hash=_hash(pki, "carol")
    )

    response = await _proxy(behind_proxy, header).post(CHAT, json=chat("muse-spark-2"))

    assert response.status_code == 401
    assert response.json()["error"]["message"] == "Authentication failed."
    record = await the_record(behind_proxy, response.headers["x-request-id"], "auth_failure")
    assert (record["reason"], record["principal"], record["status"]) == (
        "cert.malformed",
        None,
        401,
    )
    assert "alice" not in response.text
