"""Fuzz the two parsers that take bytes from outside: AudioSocket frames (from the PBX) and
the softphone's WebSocket messages (from a browser page).

    .venv/bin/python bench/fuzz.py [--inputs 100000] [--seed 1022]

Each input is random bytes, or a valid stream/message mutated (bits flipped, bytes cut,
inserted, repeated, lengths lied about, JSON nested deep, lone surrogates), fed in random
splits. An input must end in events or the parser's own AudioSocketProtocolError; anything else
(another exception, a hang) is a bug, printed with the input that caused it. Bounded: a
fixed number of inputs, each at most 64 KiB. Prints the counts; the exit status is 1 if
any input found a bug. The test suite runs the same properties with a small hypothesis
budget (tests/test_audiosocket.py, tests/test_softphone.py).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import struct
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.transports import audiosocket as asock  # noqa: E402
from bot.transports import softphone  # noqa: E402

MAX_INPUT = 64 * 1024


def _frame(kind: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BH", kind, len(payload)) + payload


def valid_stream(rng: random.Random) -> bytes:
    parts = [_frame(0x01, uuid.UUID(int=rng.getrandbits(128)).bytes)]
    for _ in range(rng.randint(0, 12)):
        kind = rng.choice((0x10, 0x10, 0x10, 0x03, 0xFF))
        if kind == 0x10:
            parts.append(_frame(0x10, rng.randbytes(2 * rng.randint(0, 400))))
        elif kind == 0x03:
            parts.append(_frame(0x03, rng.choice(b"0123456789*#ABCD").to_bytes(1, "big")))
        else:
            parts.append(_frame(0xFF, rng.randbytes(rng.randint(0, 1))))
            break
    if rng.random() < 0.7:
        parts.append(_frame(0x00))
    return b"".join(parts)


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(6)
        if how == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif how == 1 and buf:  # cut
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 64)]
        elif how == 2:  # insert random bytes
            i = rng.randint(0, len(buf))
            buf[i:i] = rng.randbytes(rng.randint(1, 16))
        elif how == 3 and buf:  # repeat a slice
            i = rng.randrange(len(buf))
            buf[i:i] = buf[i : i + rng.randint(1, 64)] * rng.randint(1, 8)
        elif how == 4 and len(buf) >= 3:  # lie about a length
            i = rng.randrange(len(buf) - 2)
            buf[i + 1 : i + 3] = rng.randrange(65536).to_bytes(2, "big")
        else:  # a random frame type byte
            i = rng.randint(0, len(buf))
            buf[i:i] = bytes([rng.randrange(256)])
    return bytes(buf[:MAX_INPUT])


def splits(data: bytes, rng: random.Random) -> list[bytes]:
    if not data:
        return []
    cuts = sorted(rng.sample(range(1, len(data) + 1), min(len(data), rng.randint(0, 8))))
    pieces, start = [], 0
    for cut in [*cuts, len(data)]:
        if cut > start:
            pieces.append(data[start:cut])
            start = cut
    return pieces


def audiosocket_input(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.2:
        return rng.randbytes(rng.randint(0, 2048))
    if kind < 0.3:
        return valid_stream(rng)
    return mutate(valid_stream(rng), rng)


def run_audiosocket(data: bytes, rng: random.Random) -> str:
    parser = asock.AudioSocketParser(max_payload=4096)
    events = 0
    try:
        for piece in splits(data, rng):
            events += len(parser.feed(piece))
        events += len(parser.feed_eof())
    except asock.AudioSocketProtocolError:
        return "protocol error (refused)"
    return "valid call" if parser.call_id is not None else "valid, no call"


MESSAGES = [
    {"type": "start"},
    {"type": "hangup"},
    {"type": "dtmf", "digit": "5"},
    {"type": "dtmf", "digit": "*"},
]


def websocket_input(rng: random.Random) -> tuple[str, bytes | str]:
    kind = rng.random()
    if kind < 0.15:  # binary audio frames of any length
        return "binary", rng.randbytes(rng.choice((0, 1, 639, 640, 641, rng.randint(0, 70000))))
    base = json.dumps(rng.choice(MESSAGES))
    if kind < 0.3:
        return "text", base
    if kind < 0.45:  # deep nesting
        depth = rng.choice((2, 9, 100, 1000, 20000))
        return "text", "[" * depth + "]" * depth if rng.random() < 0.5 else (
            '{"type": "start", "x": ' + "[" * depth + "]" * depth + "}"
        )
    if kind < 0.6:  # lone surrogates, escaped or raw
        bad = chr(rng.randrange(0xD800, 0xE000))
        escaped = json.dumps(bad)
        return "text", rng.choice(
            (
                f'{{"type": "dtmf", "digit": {escaped}}}',
                f'{{"type": "start", {escaped}: 1}}',
                f'{{"type": {escaped}}}',
                f'{{"type": "start", "note": "{bad}"}}',
            )
        )
    if kind < 0.75:  # random text
        return "text", "".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randint(0, 64)))
    raw = mutate(base.encode(), rng)
    return "text", raw.decode("utf-8", errors="replace")


def run_websocket(item: tuple[str, bytes | str], rng: random.Random) -> str:
    kind, data = item
    try:
        if kind == "binary":
            assert isinstance(data, bytes)
            event: object = softphone.parse_binary(data)
        else:
            assert isinstance(data, str)
            event = softphone.parse_text(data)
    except softphone.AudioSocketProtocolError:
        return f"{kind}: protocol error (refused)"
    return f"{kind}: {type(event).__name__}"


def fuzz(
    name: str,
    make: Callable[[random.Random], object],
    check: Callable[[object, random.Random], str],
    count: int,
    seed: int,
) -> int:
    rng = random.Random(seed)
    outcomes: collections.Counter[str] = collections.Counter()
    bugs: list[tuple[object, BaseException]] = []
    started = time.perf_counter()
    for _ in range(count):
        item = make(rng)
        try:
            outcomes[check(item, rng)] += 1
        except Exception as e:  # noqa: BLE001  (a bug: counted and shown, the run goes on)
            outcomes[f"BUG {type(e).__name__}"] += 1
            if len(bugs) < 5:
                bugs.append((item, e))
    elapsed = time.perf_counter() - started
    print(f"{name}: {count:,} inputs in {elapsed:.1f} s (seed {seed})")
    for outcome, n in sorted(outcomes.items()):
        print(f"  {outcome:<40} {n:>9,}")
    for item, error in bugs:
        print(f"  bug: {error!r:.120} on {repr(item)[:120]}")
    return sum(n for outcome, n in outcomes.items() if outcome.startswith("BUG"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=100_000, help="inputs per parser")
    parser.add_argument("--seed", type=int, default=1022)
    args = parser.parse_args()
    bugs = fuzz("AudioSocket parser", audiosocket_input, run_audiosocket, args.inputs, args.seed)
    bugs += fuzz(
        "WebSocket (softphone) parser", websocket_input, run_websocket, args.inputs, args.seed
    )  # type: ignore[arg-type]
    print(f"bugs found: {bugs}")
    raise SystemExit(1 if bugs else 0)


if __name__ == "__main__":
    main()
