"""What recording a call costs: CPU time and disk per minute of call, on this machine.

A call's audio is fed to ``CallRecorder`` as the voice line feeds it: 20 ms frames of the
caller (16 kHz, after conversion) and the bot's speech (8 kHz, as sent to a phone line) for
half of the time, converted and written in one-second chunks with the WAV header kept up to
date. Prints figures; asserts nothing. Usage:

    .venv/bin/python bench/recorder_bench.py [--minutes 5] [--calls 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bot.audio.formats import RECOGNISER, TELEPHONE, AudioChunk
from bot.session.recorder import CallRecorder


def one_call(path: Path, minutes: float) -> float:
    """CPU seconds to record a call of ``minutes``."""
    rng = np.random.default_rng(7)
    caller = AudioChunk(rng.integers(-3000, 3000, 320, dtype=np.int16).tobytes(), RECOGNISER)
    bot = AudioChunk(rng.integers(-3000, 3000, 160, dtype=np.int16).tobytes(), TELEPHONE)
    frames = int(minutes * 60 * 50)
    started = time.process_time()
    recorder = CallRecorder(path, TELEPHONE)
    for i in range(frames):
        recorder.caller(caller)
        if (i // 250) % 2:  # the bot speaks five seconds out of ten
            recorder.bot(bot)
    recorder.close()
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        costs, sizes = [], []
        for n in range(args.calls):
            path = Path(folder) / f"call{n}.wav"
            costs.append(one_call(path, args.minutes))
            sizes.append(path.stat().st_size)
    per_minute_ms = [1000 * c / args.minutes for c in costs]
    print(f"{args.calls} calls of {args.minutes:g} min each")
    print(
        "CPU per minute of call: "
        + ", ".join(f"{m:.0f} ms" for m in per_minute_ms)
        + f" (median {np.median(per_minute_ms):.0f} ms, "
        f"{np.median(per_minute_ms) / 600:.2f}% of one core)"
    )
    print(f"disk per minute of call: {np.median(sizes) / args.minutes / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
