"""Several hosts on one machine: network namespaces joined by a bridge (needs root).

    with Network(hosts=3) as network:
        network.gateway_address        # the bridge's address, in the test's own namespace
        network.addresses              # one address per host namespace
        network.command(0, [...])      # argv that runs a command inside host 0

Names and the /24 subnet are random per network, so parallel tests do not collide;
everything is removed when the block ends.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Sequence


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Network:
    def __init__(self, hosts: int) -> None:
        token = secrets.token_hex(3)
        self.bridge = f"gwbr{token}"
        self.namespaces = [f"gw{token}h{i}" for i in range(hosts)]
        subnet = 100 + secrets.randbelow(150)
        self.prefix = f"10.{200 + secrets.randbelow(50)}.{subnet}"
        self.gateway_address = f"{self.prefix}.1"
        self.addresses = [f"{self.prefix}.{11 + i}" for i in range(hosts)]
        self._veths: list[str] = []

    def __enter__(self) -> Network:
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway_address}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for index, (namespace, address) in enumerate(
                zip(self.namespaces, self.addresses, strict=True)
            ):
                outside = f"{self.bridge}v{index}"
                _ip("netns", "add", namespace)
                _ip(
                    "link",
                    "add",
                    outside,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    namespace,
                )
                self._veths.append(outside)
                _ip("link", "set", outside, "master", self.bridge, "up")
                inside = ["netns", "exec", namespace, "ip"]
                _ip(*inside, "addr", "add", f"{address}/24", "dev", "eth0")
                _ip(*inside, "link", "set", "eth0", "up")
                _ip(*inside, "link", "set", "lo", "up")
        except BaseException:
            self.__exit__()
            raise
        return self

    def command(self, host: int, argv: Sequence[str]) -> list[str]:
        """`argv` run inside host `host`'s namespace."""
        return ["ip", "netns", "exec", self.namespaces[host], *argv]

    def __exit__(self, *exc: object) -> None:
        for namespace in self.namespaces:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", namespace)
        for veth in self._veths:
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", veth)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)
