"""Connection ids (docs/PROTOCOL.md §4, tests B5, B7-B9, B11, B13) with ``now`` as a plain value."""

from __future__ import annotations

import hashlib
import random
import socket

import pytest

from udpt.connection_ids import ConnectionIds, new_secret

T0 = 1_000_000.0  # docs/PROTOCOL.md §15: the clock starts at t = 1 000 000
LOCALHOST = socket.inet_pton(socket.AF_INET, "127.0.0.1")
LOCALHOST_2 = socket.inet_pton(socket.AF_INET, "127.0.0.2")
LOCALHOST_V6 = socket.inet_pton(socket.AF_INET6, "::1")
SECRET = bytes(range(32))


@pytest.fixture
def ids() -> ConnectionIds:
    return ConnectionIds(SECRET)


def test_id_is_8_bytes(ids: ConnectionIds) -> None:
    assert len(ids.issue(LOCALHOST, T0)) == 8
    assert len(ids.issue(LOCALHOST_V6, T0)) == 8


def test_id_matches_the_documented_construction(ids: ConnectionIds) -> None:
    # docs/PROTOCOL.md §4.2: BLAKE2b-64 keyed with the secret over window + family + IP.
    window = int(T0 // 120)
    expected = hashlib.blake2b(
        window.to_bytes(8, "big") + b"\x04" + LOCALHOST, key=SECRET, digest_size=8
    ).digest()
    assert ids.issue(LOCALHOST, T0) == expected


def test_id_is_accepted_at_once(ids: ConnectionIds) -> None:
    assert ids.is_valid(ids.issue(LOCALHOST, T0), LOCALHOST, T0)


@pytest.mark.parametrize(
    ("case", "elapsed", "accepted"),
    [
        ("B7 +119 s", 119, True),
        ("B8 +120 s (guaranteed minimum)", 120, True),
        ("B9 +241 s", 241, False),
    ],
)
def test_id_lifetime(ids: ConnectionIds, case: str, elapsed: float, accepted: bool) -> None:
    connection_id = ids.issue(LOCALHOST, T0)
    assert ids.is_valid(connection_id, LOCALHOST, T0 + elapsed) is accepted


@pytest.mark.parametrize("offset", [0.0, 0.5, 59.9, 119.999])
def test_every_issue_time_in_a_window_is_honoured_120_s_and_dropped_after_240_s(
    ids: ConnectionIds, offset: float
) -> None:
    issued_at = 120 * 9000 + offset  # positions within one window
    connection_id = ids.issue(LOCALHOST, issued_at)
    assert ids.is_valid(connection_id, LOCALHOST, issued_at + 120)
    assert not ids.is_valid(connection_id, LOCALHOST, issued_at + 240.001)


def test_id_from_the_future_is_rejected(ids: ConnectionIds) -> None:
    assert not ids.is_valid(ids.issue(LOCALHOST, T0 + 240), LOCALHOST, T0)


def test_b5_id_is_bound_to_the_ip(ids: ConnectionIds) -> None:
    assert not ids.is_valid(ids.issue(LOCALHOST, T0), LOCALHOST_2, T0)


def test_b13_id_from_ipv6_is_rejected_over_ipv4(ids: ConnectionIds) -> None:
    assert not ids.is_valid(ids.issue(LOCALHOST_V6, T0), LOCALHOST, T0)


def test_family_byte_separates_ipv4_from_ipv6_with_the_same_leading_bytes(
    ids: ConnectionIds,
) -> None:
    ipv6_starting_like_localhost = LOCALHOST + bytes(12)
    assert ids.issue(LOCALHOST, T0) != ids.issue(ipv6_starting_like_localhost, T0)


def test_b11_other_secret_rejects(ids: ConnectionIds) -> None:
    restarted = ConnectionIds(new_secret())
    assert not restarted.is_valid(ids.issue(LOCALHOST, T0), LOCALHOST, T0)


def test_ids_differ_per_ip_and_per_window(ids: ConnectionIds) -> None:
    issued = {
        ids.issue(ip, T0 + 120 * window)
        for ip in (LOCALHOST, LOCALHOST_2, LOCALHOST_V6)
        for window in range(3)
    }
    assert len(issued) == 9


def test_same_window_gives_the_same_id(ids: ConnectionIds) -> None:
    window_start = 120 * 9000
    assert ids.issue(LOCALHOST, window_start) == ids.issue(LOCALHOST, window_start + 119.9)


@pytest.mark.parametrize(
    "forged",
    [
        bytes(8),
        (0x41727101980).to_bytes(8, "big"),  # B2: the protocol magic
        b"\xff" * 8,
    ],
)
def test_forged_id_is_rejected(ids: ConnectionIds, forged: bytes) -> None:
    assert not ids.is_valid(forged, LOCALHOST, T0)


def test_random_ids_are_rejected(ids: ConnectionIds) -> None:
    rng = random.Random(15)
    assert not any(ids.is_valid(rng.randbytes(8), LOCALHOST, T0) for _ in range(10_000))


def test_id_of_the_wrong_length_is_rejected(ids: ConnectionIds) -> None:
    connection_id = ids.issue(LOCALHOST, T0)
    assert not ids.is_valid(connection_id[:7], LOCALHOST, T0)
    assert not ids.is_valid(connection_id + b"\0", LOCALHOST, T0)


def test_window_length_is_configurable() -> None:
    short = ConnectionIds(SECRET, window_s=10)
    connection_id = short.issue(LOCALHOST, T0)
    assert short.is_valid(connection_id, LOCALHOST, T0 + 10)
    assert not short.is_valid(connection_id, LOCALHOST, T0 + 20.001)


def test_new_secret_is_32_fresh_bytes() -> None:
    first, second = new_secret(), new_secret()
    assert len(first) == 32
    assert first != second


@pytest.mark.parametrize("secret", [b"", bytes(15), bytes(65)])
def test_secret_of_unusable_size_is_refused(secret: bytes) -> None:
    with pytest.raises(ValueError, match="secret"):
        ConnectionIds(secret)


def test_non_positive_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        ConnectionIds(SECRET, window_s=0)


def test_packed_ip_of_wrong_length_is_refused(ids: ConnectionIds) -> None:
    with pytest.raises(ValueError, match="4 or 16"):
        ids.issue(b"\x7f\0\0", T0)
