"""Kernel receive-buffer drops are read off the socket's own row in /proc/net/udp."""

from __future__ import annotations

import socket
import sys

import pytest

from udpt.udp import kernel_drops

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/net/udp is Linux's")


@pytest.mark.parametrize("family, host", [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")])
def test_datagrams_a_full_receive_buffer_loses_are_counted(family: int, host: str) -> None:
    with (
        socket.socket(family, socket.SOCK_DGRAM) as server,
        socket.socket(family, socket.SOCK_DGRAM) as client,
    ):
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        server.bind((host, 0))
        assert kernel_drops(server.fileno()) == 0
        for _ in range(2000):  # never read: the buffer fills and the kernel drops the rest
            client.sendto(b"x" * 512, server.getsockname())
        assert kernel_drops(server.fileno()) > 1000
