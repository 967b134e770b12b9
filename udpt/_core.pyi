# The compiled core (udpt/_core.c): the same signatures as the pure functions it stands in for.
from collections.abc import Callable, Iterable, Sequence

from udpt.events.batch import HashIntern, HashTable
from udpt.events.types import Event
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
