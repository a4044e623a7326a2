"""Command-line options of the demo upstream that `gateway demo-upstream` shares.

Only argparse here: `gateway --help` must not pay for importing the upstream itself.
"""

from __future__ import annotations

import argparse

from gateway.arguments import existing_file


def add_assertion_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that make the upstream require the gateway's identity assertion."""
    parser.add_argument(
        "--assertion-audience",
        metavar="NAME",
        help="require an x-gateway-assertion addressed to NAME (the upstream's name in the "
        "gateway's settings); needs --assertion-jwks",
    )
    parser.add_argument(
        "--assertion-jwks",
        metavar="URL_OR_FILE",
        help="the gateway's assertion keys: its https://.../.well-known/jwks.json, or the "
        "JWKS file `gateway keys assertion` wrote",
    )
    parser.add_argument(
        "--assertion-ca",
        type=existing_file,
        metavar="FILE",
        help="CA bundle to verify the gateway's TLS certificate when fetching the JWKS",
    )
