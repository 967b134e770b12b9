# The compiled core (udpt/_core.c): the same signatures as the pure functions it stands in for.
from collections.abc import Callable, Iterable, Mapping, Sequence
from random import Random

from udpt.events.batch import HashIntern, HashNumbers, HashTable
from udpt.events.types import AnnounceAccepted, Event
from udpt.wire import Request

def bind_wire(
    connect: type,
    announce: type,
    scrape: type,
    invalid: type,
    parse_request: Callable[..., object],
    may_be_request: Callable[..., object],
    build_connect_response: Callable[..., object],
    build_announce_response: Callable[..., object],
    build_scrape_response: Callable[..., object],
    build_error_response: Callable[..., object],
    /,
) -> None: ...
def bind_codec(
    announce_accepted: type,
    announce_events: tuple[object, ...],
    decode_error: type[Exception],
    encode_event: Callable[..., object],
    decode_event: Callable[..., object],
    /,
) -> None: ...
def bind_batch(
    encode_event: Callable[..., object],
    decode_event: Callable[..., object],
    encode_batch: Callable[..., object],
    decode_batch: Callable[..., object],
    /,
) -> None: ...
def parse_request(data: bytes, max_scrape_hashes: int = 74) -> Request | None: ...
def may_be_request(data: bytes) -> bool: ...
def build_connect_response(transaction_id: bytes, connection_id: bytes) -> bytes: ...
def build_announce_response(
    transaction_id: bytes, interval: int, leechers: int, seeders: int, peers: bytes
) -> bytes: ...
def build_scrape_response(
    transaction_id: bytes, entries: Iterable[tuple[int, int, int]]
) -> bytes: ...
def build_error_response(transaction_id: bytes, message: str) -> bytes: ...
def encode_event(event: Event) -> bytes: ...
def decode_event(data: bytes) -> Event: ...
def encode_batch(
    events: Sequence[Event], intern: HashIntern | None = None, compress: bool = True
) -> bytes: ...
def decode_batch(value: bytes, hashes: HashTable = ()) -> list[Event]: ...
def decode_batch_compiled_only(value: bytes, hashes: HashTable = ()) -> list[Event]: ...

class StoredRun:
    """batch.StoredRunPy, compiled (udpt/_recut.c)."""

    def __len__(self) -> int: ...
    def encode(self, start: int, count: int, /) -> bytes: ...

def stored_run(
    values: list[bytes], hashes: list[bytes], numbers: HashNumbers, /
) -> StoredRun | None: ...

class HashIndex:
    """hash_index.HashIndexPy, compiled (udpt/_hashindex.c)."""

    def __init__(self, hashes: list[bytes]) -> None: ...
    def get(self, info_hash: bytes, default: int | None = None, /) -> int | None: ...
    def __getitem__(self, info_hash: bytes) -> int: ...
    def __contains__(self, info_hash: object) -> bool: ...
    def __len__(self) -> int: ...

class Swarm:
    """udpt/projections/swarms.py's SwarmPy, packed (udpt/_swarm.c)."""

    seeders: int
    leechers: int
    def __len__(self) -> int: ...
    def __contains__(self, peer: bytes) -> bool: ...
    def counts(self) -> tuple[int, int, int, int]: ...
    def record(self, peer: bytes) -> tuple[bool, bytes] | None: ...
    def items(self) -> list[tuple[bytes, bool, bytes]]: ...
    def announce(self, peer: bytes, e: AnnounceAccepted) -> bool: ...
    def remove(self, peer: bytes) -> bool: ...
    def clear(self) -> None: ...
    def peers_from(self, ip: bytes, v4_bytes: int, v6_bytes: int) -> int: ...
    def oldest_ms(self) -> int | None: ...
    def expire(self, cutoff_ms: int) -> int: ...
    def select(self, requester: bytes, is_seeder: bool, count: int, rng: Random) -> bytes: ...
    def pack(self) -> bytes: ...
    def load(self, packed: bytes | memoryview, sizes: tuple[int, int, int, int]) -> None: ...

class Torrent(Swarm):
    """udpt/projections/torrents.py's TorrentPy, compiled (udpt/_swarm.c): its own swarm."""

    flagged: bool
    registered: bool
    completed: int
    last_announce_ms: int
    def __init__(
        self,
        *,
        flagged: bool = False,
        registered: bool = False,
        completed: int = 0,
        last_announce_ms: int = 0,
    ) -> None: ...
    @property
    def swarm(self) -> Torrent: ...
    def is_forgettable(self, torrent_cutoff_ms: int) -> bool: ...

def bind_fold(announce_accepted: type, time_index: type, /) -> None: ...
def write_snapshot_torrents(torrents: Mapping[bytes, object], fd: int, /) -> None: ...
def fold_announce(
    torrents: Mapping[bytes, object], by_oldest_peer: object, idle: object, event: Event, /
) -> None: ...
def fold_announces(state: object, first_seq: int, events: list[Event], start: int, /) -> int: ...
def fold_answered(
    state: object,
    first_seq: int,
    batch: list[tuple[Event, bytes, object]],
    start: int,
    tracker: object,
    failed: Callable[[int, Event, BaseException], object],
    answer_failed: Callable[[int, BaseException], object],
    /,
) -> int: ...
def fold_batch(
    state: object,
    first_seq: int,
    value: bytes,
    hashes: HashTable,
    start: int,
    stop: int,
    apply_other: Callable[[int, Event], object],
    failed: Callable[[int, Event, BaseException], object],
    /,
) -> bool: ...
def bind_lane(
    commit: type,
    announce_accepted: type,
    announce_events: tuple[object, ...],
    over_quota: str,
    new_torrents_over_quota: str,
    flagged: str,
    announce_request: type,
    /,
) -> None: ...
def answer_announce(tracker: object, context: tuple[object, bytes], /) -> bytes: ...

class Lane:
    """udpt/udp.py's UdpEndpoint.handle for accepted announces, compiled (udpt/_lane.c)."""

    handled: int
    def __init__(
        self,
        endpoint: object,
        request_keys: tuple[tuple[str, str], ...],
        accepted_result: tuple[str, str],
        scraped_result: tuple[str, str],
        answer: Callable[[object], bytes],
    ) -> None: ...
    def handle_all(self, taken: list[tuple[bytes, tuple[object, ...]]], now_ms: int, /) -> None: ...
