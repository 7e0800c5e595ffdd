"""Free TCP ports for the servers the tests start of their own."""

from __future__ import annotations

import socket

# Ports handed out in this test run. A port stays free until its server binds it, and the kernel
# hands a free port out again: without this, two servers of one test were once given the same.
_handed_out: set[int] = set()


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now, none handed out before in this run."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            held.append(sock)  # kept bound until all are chosen, so none comes twice
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def free_port() -> int:
    return free_ports(1)[0]
