"""Benchmark of the brain: training time, model size, load time, routing time.

Prints figures; asserts nothing. Medians over repeats, since these machines are
shared and noisy. Usage (after `make model`):

    .venv/bin/python bench/brain_bench.py [--loads 3] [--repeats 3] [--train]

--train retrains into a temporary directory to time training afresh; without it
the time recorded by the last `python -m bot train` (models/fingerprint.json) is shown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.settings import Settings, quiet_libraries  # noqa: E402

SETTINGS = Settings.from_env()
quiet_libraries(SETTINGS.log_level)

from bot.nlu.brain import Brain, newest_model, run  # noqa: E402
from bot.nlu.text import strip_diacritics  # noqa: E402
from bot.tools.evaluation import load_heldout  # noqa: E402


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train", action="store_true")
    args = parser.parse_args()

    model = newest_model(SETTINGS.models_dir)
    print(f"model: {model.name}  size: {model.stat().st_size / 1e6:.1f} MB")
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")

    if args.train:
        with tempfile.TemporaryDirectory() as out:
            env = dict(os.environ, BOT_MODELS_DIR=out)
            started = time.monotonic()
            subprocess.run(
                [sys.executable, "-m", "bot", "train"],
                cwd=ROOT,
                env=env,
                check=True,
                capture_output=True,
            )
            print(f"training (fresh, incl. variant generation): {time.monotonic() - started:.0f} s")
    else:
        recorded = json.loads((SETTINGS.models_dir / "fingerprint.json").read_text())
        print(f"training (recorded by the last `bot train`): {recorded.get('seconds', '?')} s")

    loads = []
    for _ in range(args.loads):
        started = time.monotonic()
        brain = Brain(model)
        loads.append(time.monotonic() - started)
    print(f"model load: median {statistics.median(loads):.2f} s over {args.loads} loads")

    texts = [t for t, _ in load_heldout(SETTINGS.heldout)]
    run(brain.route(texts[0]))  # warm-up: the first prediction builds TensorFlow graphs
    # Typed without diacritics, a message is parsed twice: as typed and restored.
    for name, batch in (("", texts), (" typed without diacritics", map(strip_diacritics, texts))):
        batch = list(batch)
        per_utterance = []
        for _ in range(args.repeats):
            for text in batch:
                started = time.perf_counter()
                run(brain.route(text))
                per_utterance.append(time.perf_counter() - started)
        per_utterance.sort()
        p95 = per_utterance[int(0.95 * (len(per_utterance) - 1))]
        print(
            f"routing one utterance{name}: median {ms(statistics.median(per_utterance))}, "
            f"p95 {ms(p95)} over {len(per_utterance)} routings"
        )

    # The trainers' tool end to end: a thousand lines through `python -m bot route`.
    lines = "\n".join(texts[i % len(texts)] for i in range(1000)) + "\n"
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "bot", "route"],
        cwd=ROOT,
        input=lines.encode(),
        check=True,
        capture_output=True,
    )
    print(
        f"`python -m bot route` on 1000 lines (process start and model load included): "
        f"{time.monotonic() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
