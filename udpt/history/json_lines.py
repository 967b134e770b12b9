"""Events as JSON objects and back: the codec of ``tools/replay.py --export`` lines.

``{"seq", "type", then the event's fields by name}``; the field names are the
events' own, so they are stable as long as the events are. Pure: values in,
values out; ``export.py`` reads the log.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any

from udpt.events.codec import encode_event
from udpt.events.types import EVENT_TYPES, AnnounceEvent, Event, RefusalReason

__all__ = ["FIELD_NAMES", "event_from_json", "event_to_json"]


def _ip_text(ip: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(ip) == 4 else socket.AF_INET6, ip)


def _ip_bytes(text: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except (OSError, TypeError):
        raise ValueError(f"not an IP address: {text!r}") from None


def _hex(text: str) -> bytes:
    if not isinstance(text, str):
        raise ValueError(f"expected a hex string, got {text!r}")
    return bytes.fromhex(text)


def _integer(value: object) -> int:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _boolean(value: object) -> bool:
    if type(value) is not bool:
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _string(value: object) -> str:
    if type(value) is not str:
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _enum_name(value: AnnounceEvent | RefusalReason) -> str:
    return value.name.lower()


# Field name -> (to JSON, from JSON). Fields not listed are integers.
_FIELDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "info_hash": (bytes.hex, _hex),
    "peer_id": (bytes.hex, _hex),
    "ip": (_ip_text, _ip_bytes),
    "event": (_enum_name, lambda text: AnnounceEvent[_string(text).upper()]),
    "reason": (_enum_name, lambda text: RefusalReason[_string(text).upper()]),
    "is_flagged": (bool, _boolean),
    "actor": (str, _string),
}
_INTEGER = (int, _integer)
_TYPES_BY_NAME = {kind.__name__: kind for kind in EVENT_TYPES}
FIELD_NAMES: dict[type, tuple[str, ...]] = {
    kind: kind._fields  # type: ignore[attr-defined]  # every event type is a NamedTuple
    for kind in EVENT_TYPES
}
"""Each event type's fields, in order: the keys of its lines after ``seq`` and ``type``."""
_CONVERTERS = {
    kind: tuple((name, *_FIELDS.get(name, _INTEGER)) for name in names)
    for kind, names in FIELD_NAMES.items()
}


def event_to_json(seq: int, event: Event) -> dict[str, Any]:
    """``{"seq", "type", then the event's fields by name}``: bytes as lowercase hex, ``ip``
    as address text, ``event``/``reason`` as lowercase names."""
    obj: dict[str, Any] = {"seq": seq, "type": type(event).__name__}
    for (name, to_json, _), value in zip(_CONVERTERS[type(event)], event, strict=True):
        obj[name] = to_json(value)
    return obj


def event_from_json(obj: Mapping[str, Any]) -> tuple[int, Event]:
    """The (seq, event) that ``event_to_json`` made ``obj`` from; ValueError if it cannot be."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"expected a JSON object, got {obj!r}")
    kind = _TYPES_BY_NAME.get(obj.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise ValueError(f"unknown event type {obj.get('type')!r}")
    converters = _CONVERTERS[kind]
    unexpected = obj.keys() - {"seq", "type"} - {name for name, _, _ in converters}
    if unexpected:
        raise ValueError(f"{kind.__name__} has no field {sorted(unexpected)[0]!r}")
    values = []
    for name, _, from_json in converters:
        if name not in obj:
            raise ValueError(f"{kind.__name__} needs the field {name!r}")
        try:
            values.append(from_json(obj[name]))
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{kind.__name__}.{name}: bad value {obj[name]!r}") from exc
    try:
        seq = _integer(obj.get("seq"))
    except ValueError as exc:
        raise ValueError(f"seq: {exc}") from None
    event = kind(*values)
    encode_event(event)  # the sizes and ranges a record can hold: ValueError otherwise
    return seq, event
