from typing import Any

def receive(
    fd: int, limit: int, size: int, /
) -> tuple[list[tuple[bytes, tuple[Any, ...]]], int, int]: ...
