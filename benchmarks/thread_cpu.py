#!/usr/bin/env python3
"""CPU per response of each of udpt's threads under ``benchmarks/run.py``'s load.

``python benchmarks/thread_cpu.py`` starts udpt as run.py does (pinned, fsync on),
drives it with the load generator for the workload's duration, and reads every
thread's user and system time from ``/proc/PID/task/*/stat`` before and after.
It prints responses/s and, per thread, CPU seconds per second and microseconds
per response: where the pinned core's time goes (the loop, the writer, the log
maintenance); what no thread is charged for is the kernel's and idle time.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import run


def thread_times(pid: int) -> dict[tuple[str, str], tuple[int, int]]:
    """(thread id, name) -> (user, system) clock ticks."""
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        times[tid, name] = (int(fields[11]), int(fields[12]))
    return times


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="udpt-bench-") as tmp:
        work = Path(tmp)
        loadgen = run.build_loadgen(work)
        workload = run.Workload()
        port = run.free_port()
        server = run.udpt_starter(work)(port)
        try:
            run.wait_for_udp(port)
            before, started = thread_times(server.pid), time.monotonic()
            load = subprocess.run(
                ["taskset", "-c", run.LOADGEN_CPU, str(loadgen), *workload.args(port, 0)],
                capture_output=True,
                text=True,
                check=True,
            )
            after, seconds = thread_times(server.pid), time.monotonic() - started
        finally:
            server.terminate()
            server.wait()
    responses = json.loads(load.stdout)["responses_per_s"]
    print(f"{responses:,.0f} responses/s")
    tick = os.sysconf("SC_CLK_TCK")
    for key, (user, system) in sorted(after.items()):
        user0, system0 = before.get(key, (0, 0))
        user_s, system_s = (user - user0) / tick / seconds, (system - system0) / tick / seconds
        if user_s + system_s >= 0.005:
            per = 1e6 * (user_s + system_s) / responses
            print(f"{key[1]:16s} user {user_s:.2f} system {system_s:.2f}: {per:.1f} µs/response")


if __name__ == "__main__":
    main()
