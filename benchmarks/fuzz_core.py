"""Fuzz the compiled core's byte-level code (udpt/_codec.c) with libFuzzer, ASan and UBSan.

    python benchmarks/fuzz_core.py                 # 10M executions (BENCHMARKS.md)
    python benchmarks/fuzz_core.py --runs 200000   # the short run of the test suite

Builds tools/fuzz/fuzz_codec.c with clang, seeds the corpus with real datagrams,
batch bodies and records from the pure Python encoders, runs one process on one
core and prints the executions and crashes. Exit status 1 on a crash.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import bep15  # noqa: E402
from udpt.events.batch import encode_batch_py  # noqa: E402
from udpt.events.codec import encode_event_py  # noqa: E402
from udpt.events.types import AnnounceAccepted, AnnounceEvent, PeersExpired  # noqa: E402


def seeds() -> list[bytes]:
    """Inputs of every target: byte 0 picks it (0 request, 1 batch body, 2 record)."""
    announce = bep15.announce_request(bytes(8), b"tid!", b"h" * 20, b"p" * 20)
    requests = [
        bep15.connect_request(b"tid!"),
        announce,
        announce + b"\x02\x05/path\x01\x00",
        bep15.scrape_request(bytes(8), b"tid!", b"h" * 20, b"i" * 20),
    ]
    events = [
        AnnounceAccepted(
            1000 + i,
            bytes([i % 3]) * 20,
            bytes(4 if i % 2 else 16),
            6881,
            bytes([i % 4]) * 20,
            i,
            AnnounceEvent(i % 4),
            i,
            2 * i,
            3 * i,
        )
        for i in range(6)
    ]
    mixed = [*events[:3], PeersExpired(2000, 1000, 0), *events[3:]]
    batches = []
    for batch in (events, mixed, events[:1]):
        value = encode_batch_py(batch)
        body = zlib.decompress(value[13:]) if value[0] == 0xB1 else value[13:]
        batches.append(len(batch).to_bytes(2, "big") + bytes(2) + body)
    return (
        [b"\x00" + r for r in requests]
        + [b"\x01" + b for b in batches]
        + [b"\x02" + encode_event_py(e) for e in events[:2]]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000_000)
    parser.add_argument("--clang", default="clang")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="udpt-fuzz-") as tmp:
        work = Path(tmp)
        binary = work / "fuzz_codec"
        command = [
            args.clang,
            "-g",
            "-O1",
            "-fsanitize=fuzzer,address,undefined",
            "-fno-sanitize-recover=undefined",
            str(ROOT / "tools/fuzz/fuzz_codec.c"),
            str(ROOT / "udpt/_codec.c"),
            "-o",
            str(binary),
        ]
        subprocess.run(command, check=True)
        corpus = work / "corpus"
        corpus.mkdir()
        for number, seed in enumerate(seeds()):
            (corpus / f"seed{number}").write_bytes(seed)
        run = [
            str(binary),
            f"-runs={args.runs}",
            "-max_len=2048",
            f"-artifact_prefix={work}/",
            str(corpus),
        ]
        print("$", " ".join(run), flush=True)
        done = subprocess.run(run, capture_output=True, text=True)
        crashes = sorted(p.name for p in work.iterdir() if p.name.startswith(("crash", "leak")))
        executed = re.search(r"Done (\d+) runs in (\d+) second", done.stderr)
        if executed:
            print(f"executions: {int(executed[1]):,} in {executed[2]} s")
        else:
            print(done.stderr[-3000:])
        print(f"crashes: {len(crashes)} {crashes if crashes else ''}".rstrip())
        return 0 if done.returncode == 0 and not crashes and executed else 1


if __name__ == "__main__":
    sys.exit(main())
