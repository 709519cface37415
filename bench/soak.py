"""Soak: 12 calls at a time for N minutes over loopback AudioSocket, on the stand-in models.

    .venv/bin/python bench/soak.py [--minutes 30] [--calls 12] [--call-seconds 60]

Starts ``server.py --stand-in-models`` (free ports, a fresh call store in a temporary
directory), then keeps ``--calls`` callers on the line until ``--minutes`` have passed:
each slot runs one call after another (the voice bench's caller: UUID, a frame every
20 ms, Korean utterances, listening, hanging up after at most ``--call-seconds``). Every
minute it prints the server's resident memory, open files (``/proc/<pid>/fd``), the late
frames (the server's ``bot_late_frames_total`` and the callers' own count) and the calls
done, so a leak shows as a column that keeps growing: flat memory is the target.
Bounded: no new call starts after ``--minutes``, a call lasts at most ``--call-seconds``,
and the server is stopped at the end. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import voice_bench as vb  # noqa: E402  (the same caller and server as the load bench)


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Totals:
    def __init__(self) -> None:
        self.calls = 0
        self.problems = 0
        self.caller_late = 0
        self.kinds: collections.Counter[str] = collections.Counter()  # what went wrong


async def slot(
    n: int,
    server: vb.Server,
    clips: list[vb.Clip],
    args: argparse.Namespace,
    deadline: float,
    totals: Totals,
) -> None:
    """One line that is never free for long: a call, a short pause, the next call."""
    rng = random.Random(args.seed * 100 + n)
    noise = vb.line_noise(None)
    batch = 0
    while time.monotonic() < deadline:
        script = vb.call_scripts(1, args.utterances, clips, batch * 31 + n)[0]
        caller = vb.Caller(
            server.audiosocket_port, script, args.call_seconds, 3.0, noise, rng.randrange(1 << 30)
        )
        result = await caller.run(rng.uniform(0.0, 2.0))
        totals.calls += 1
        totals.caller_late += result.late_frames
        if result.problem and "call cut at" not in result.problem:
            totals.problems += 1
            totals.kinds[result.problem.split(":")[0][:60]] += 1
        elif result.bot_hung_up and not result.utterances:
            totals.problems += 1
            totals.kinds["the bot hung up before the caller spoke"] += 1
        batch += 1


async def report(server: vb.Server, totals: Totals, started: float, stop: asyncio.Event) -> None:
    print("minute  RSS MB  open files  late frames (server / callers)  calls done  problems")
    late0 = None
    minute = 0
    while True:
        metrics = await asyncio.to_thread(server.metrics)
        late = metrics.get("bot_late_frames_total", 0.0)
        late0 = late if late0 is None else late0
        print(
            f"{minute:>6}  {server.memory_mb('VmRSS'):>6.0f}  {open_files(server.pid):>10}  "
            f"{late - late0:>14.0f} / {totals.caller_late:<14}  {totals.calls:>10}  "
            f"{totals.problems:>8}",
            flush=True,
        )
        if stop.is_set():
            return
        minute += 1
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), started + 60 * minute - time.monotonic())


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        clips = vb.make_speech(workdir)
        server = vb.Server(workdir)
        server.start()
        try:
            ready = await asyncio.to_thread(server.wait_ready, args.startup_timeout)
            print(
                f"soak: {args.calls} calls for {args.minutes:g} min; server pid {server.pid} "
                f"ready after {ready:.0f} s; load average {os.getloadavg()[0]:.1f}"
            )
            totals = Totals()
            started = time.monotonic()
            deadline = started + 60 * args.minutes
            stop = asyncio.Event()
            reporter = asyncio.create_task(report(server, totals, started, stop))
            await asyncio.gather(
                *(slot(n, server, clips, args, deadline, totals) for n in range(args.calls))
            )
            await vb.wait_calls_closed(server)
            stop.set()
            await reporter
            metrics = await asyncio.to_thread(server.metrics)
            print(
                f"after {(time.monotonic() - started) / 60:.1f} min: {totals.calls} calls, "
                f"{metrics.get('bot_calls_active', 0):.0f} still active on the server, "
                f"peak RSS {server.memory_mb():.0f} MB"
            )
            for kind, n in totals.kinds.most_common():
                print(f"  problem: {kind}: {n}")
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (30)")
    parser.add_argument("--calls", type=int, default=12, help="calls at once (12)")
    parser.add_argument("--call-seconds", type=float, default=60.0, help="longest call (60)")
    parser.add_argument("--utterances", type=int, default=3, help="utterances per call (3)")
    parser.add_argument("--seed", type=int, default=1022)
    parser.add_argument("--startup-timeout", type=float, default=900.0)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
