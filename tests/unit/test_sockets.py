"""Compiled datagram I/O against its reference: ``socket.recvfrom``/``sendto``, ``may_be_request``.

The same datagrams go to two sockets; one is read by ``udpt._receive.receive``, the
other as the reference endpoint reads (one ``recvfrom`` each, garbage rejected by
``may_be_request``). Both must see the same datagrams, cut alike, from the same
addresses, and reject the same number.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from udpt.udp import bind_udp_socket, compiled_sockets
from udpt.wire import may_be_request

io = compiled_sockets()
receive, send = (None, None) if io is None else io
pytestmark = pytest.mark.skipif(io is None, reason="udpt._sockets is not built")

HEADER = st.builds(
    lambda cid, action, rest: cid + action.to_bytes(4, "big") + rest,
    st.binary(min_size=8, max_size=8),
    st.sampled_from([0, 1, 2, 3, 4, 256, 1 << 24]),
    st.binary(max_size=120),
)
DATAGRAMS = st.lists(st.one_of(st.binary(max_size=64), HEADER), max_size=60)


@contextmanager
def sockets(host: str) -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    compiled, reference = bind_udp_socket(host, 0), bind_udp_socket(host, 0)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client = socket.socket(family, socket.SOCK_DGRAM)
    client.bind(("::1" if ":" in host else "127.0.0.1", 0))
    try:
        yield compiled, reference, client
    finally:
        for sock in (compiled, reference, client):
            sock.close()


def read_reference(
    sock: socket.socket, size: int, expected: int
) -> tuple[list[tuple[bytes, Any]], int]:
    taken, rejected = [], 0
    deadline = time.monotonic() + 5
    while len(taken) + rejected < expected and time.monotonic() < deadline:
        select.select([sock], [], [], 0.1)
        try:
            data, addr = sock.recvfrom(size)
        except BlockingIOError:
            continue
        if may_be_request(data):
            taken.append((data, addr))
        else:
            rejected += 1
    return taken, rejected


def read_compiled(sock: socket.socket, size: int, expected: int) -> tuple[list[Any], int]:
    """Everything ``expected`` datagrams give, read in calls of at most 7 (batches cut short)."""
    assert receive is not None
    taken: list[Any] = []
    rejected = 0
    deadline = time.monotonic() + 5
    while len(taken) + rejected < expected and time.monotonic() < deadline:
        select.select([sock], [], [], 0.1)
        more, more_rejected, errors = receive(sock.fileno(), 7, size)
        assert errors == 0
        taken += more
        rejected += more_rejected
    return taken, rejected


def send_to_both(
    client: socket.socket, targets: list[socket.socket], datagrams: list[bytes]
) -> None:
    for target in targets:
        address = target.getsockname()
        for datagram in datagrams:
            client.sendto(datagram, address)


@settings(max_examples=40, deadline=None)
@given(DATAGRAMS, st.sampled_from([16, 20, 8192]))
def test_compiled_receive_sees_what_the_reference_sees(datagrams: list[bytes], size: int) -> None:
    with sockets("127.0.0.1") as (compiled, reference, client):
        send_to_both(client, [compiled, reference], datagrams)
        seen = read_compiled(compiled, size, len(datagrams))
        assert seen == read_reference(reference, size, len(datagrams))


def test_dual_stack_addresses_are_the_socket_modules() -> None:
    try:
        probe = bind_udp_socket("::", 0)
    except OSError:
        pytest.skip("no IPv6")
    probe.close()
    datagram = bytes(8) + (0).to_bytes(4, "big") + b"txid"
    with sockets("::") as (compiled, reference, client):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for sender, host in ((client, "::1"), (v4, "127.0.0.1")):
                for target in (compiled, reference):
                    sender.sendto(datagram, (host, target.getsockname()[1]))
            assert read_compiled(compiled, 8192, 2) == read_reference(reference, 8192, 2)
        finally:
            v4.close()


def test_an_empty_socket_returns_at_once_and_the_limit_holds() -> None:
    assert receive is not None
    with sockets("127.0.0.1") as (compiled, _, client):
        assert receive(compiled.fileno(), 10, 8192) == ([], 0, 0)
        send_to_both(client, [compiled], [bytes(16)] * 100)
        select.select([compiled], [], [], 1)
        taken, rejected, _ = receive(compiled.fileno(), 70, 8192)
        assert (len(taken), rejected) == (70, 0)
        taken, rejected, _ = receive(compiled.fileno(), 70, 8192)
        assert (len(taken), rejected) == (30, 0)


def test_a_pending_socket_error_is_counted_not_raised() -> None:
    assert receive is not None
    with sockets("127.0.0.1") as (compiled, _, _client):
        closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        closed.bind(("127.0.0.1", 0))
        gone = closed.getsockname()
        closed.close()
        # Linux reports an ICMP port unreachable on a connected socket's next read.
        compiled.connect(gone)
        compiled.send(b"reply")
        deadline = time.monotonic() + 5
        errors = 0
        while errors == 0 and time.monotonic() < deadline:
            select.select([compiled], [], [], 0.1)
            taken, rejected, errors = receive(compiled.fileno(), 10, 8192)
            assert (taken, rejected) == ([], 0)
        assert errors == 1
        assert receive(compiled.fileno(), 10, 8192) == ([], 0, 0)  # reported once, then cleared


def test_bad_arguments_are_refused() -> None:
    assert receive is not None
    with pytest.raises(ValueError):
        receive(0, 0, 8192)
    with pytest.raises(ValueError):
        receive(0, 1, 15)
    with pytest.raises(OSError):
        receive(-1, 1, 8192)


def drain(sock: socket.socket, expected: int) -> list[bytes]:
    got: list[bytes] = []
    deadline = time.monotonic() + 5
    while len(got) < expected and time.monotonic() < deadline:
        select.select([sock], [], [], 0.1)
        try:
            got.append(sock.recv(65536))
        except BlockingIOError:
            continue
    return got


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=200), st.booleans()), max_size=150))
def test_compiled_send_delivers_what_sendto_delivers(messages: list[tuple[bytes, bool]]) -> None:
    assert send is not None
    with sockets("127.0.0.1") as (compiled, reference, _):
        targets = [bind_udp_socket("127.0.0.1", 0) for _ in range(4)]
        try:
            by_c = [(data, targets[first].getsockname()) for data, first in messages]
            by_py = [(data, targets[2 + first].getsockname()) for data, first in messages]
            assert send(compiled.fileno(), by_c) == bytes(len(messages))
            for data, address in by_py:
                reference.sendto(data, address)
            for one, other in ((0, 2), (1, 3)):
                count = sum(1 for _, first in messages if first == (one == 1))
                assert drain(targets[one], count) == drain(targets[other], count)
        finally:
            for target in targets:
                target.close()


def test_a_message_that_cannot_be_sent_fails_alone() -> None:
    assert send is not None
    with sockets("127.0.0.1") as (compiled, target, _):
        good = target.getsockname()
        messages: list[Any] = [
            (b"a", good),
            (b"b", ("not an address", 1)),
            (b"c", ("127.0.0.1", 70000)),
            ("text", good),
            (b"d", ("127.0.0.1",)),
            (b"e", good),
        ]
        assert send(compiled.fileno(), messages) == bytes([0, 2, 2, 2, 2, 0])
        assert drain(target, 2) == [b"a", b"e"]


def test_a_dual_stack_socket_answers_both_families() -> None:
    try:
        server = bind_udp_socket("::", 0)
    except OSError:
        pytest.skip("no IPv6")
    assert receive is not None and send is not None
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        port = server.getsockname()[1]
        v4.sendto(bytes(16), ("127.0.0.1", port))
        v6.sendto(bytes(16), ("::1", port))
        taken, _ = read_compiled(server, 8192, 2)
        assert send(server.fileno(), [(b"to " + data[:1], addr) for data, addr in taken]) == bytes(
            2
        )
        assert drain(v4, 1) == drain(v6, 1) == [b"to \x00"]
    finally:
        for sock in (server, v4, v6):
            sock.close()
