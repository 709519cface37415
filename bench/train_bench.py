"""Do live calls slow down while a model trains? 4 calls' latency without and with a job.

Runs bench/voice_bench.py (4 simultaneous stand-in calls over AudioSocket; its own server)
twice: first on a quiet machine, then while `python -m bot train --finetune` runs at the
console job's priority (nice 19, BOT_TRAIN_NICE), in a temporary models directory (a link to
the live model) so nothing real is registered or pruned; the console's job adds --candidate,
which only changes what happens after the training. The training is stopped after the second
batch, or after --max-seconds; the n-gram classifier trains in about 80 s, so the job may end
before the batch does (the output says whether it was still running). Prints both rows of
voice_bench's table, the training's progress when the second batch ran, and the 4 calls' p50
and p95 with training over without.

    .venv/bin/python bench/train_bench.py [--utterances 3] [--max-seconds 1500]

It trains (one fine-tune, cut short): on a shared machine, run it when nobody else trains.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.settings import Settings  # noqa: E402


def voice_batch(utterances: int, timeout: float) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "voice_bench.py"), "--calls", "4",
         "--utterances", str(utterances)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"voice_bench failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def figures(table: str) -> tuple[float, float] | None:
    """p50 and p95 (ms) of voice_bench's row for 4 calls; inf for ">8000" (no reply in time)."""
    for line in table.splitlines():
        cells = line.split()
        if len(cells) > 3 and cells[0] == "4" and cells[1].isdigit():
            return _ms(cells[2]), _ms(cells[3])
    return None


def _ms(cell: str) -> float:
    return float("inf") if cell.startswith(">") else float(cell)


def _change(before: float, after: float) -> str:
    if math.isinf(before) or math.isinf(after):
        return f"{before:.0f} -> {after:.0f} ms"
    return f"{before:.0f} -> {after:.0f} ms (x{after / before:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=1500.0)
    args = parser.parse_args()
    s = Settings.from_env()  # read once, here, and passed down
    from bot.tools.model_registry import default_registry
    from bot.tools.train_job import parse_progress, planned_epochs

    live = default_registry(s).active_path()

    quiet = voice_batch(args.utterances, args.max_seconds)
    tmp = Path(tempfile.mkdtemp(prefix="train-bench-"))
    (tmp / "models").mkdir()
    (tmp / "models" / live.name).symlink_to(live)
    env = {
        **os.environ,
        "BOT_MODELS_DIR": str(tmp / "models"),
        "BOT_BUILD_DIR": str(tmp / "build"),
        "PYTHONUNBUFFERED": "1",
    }
    log = (tmp / "train.log").open("wb")
    started = time.monotonic()
    # Its own process group (to stop it and its children), but not its own session: where
    # the kernel groups processes by session (sched_autogroup), a new session would be a
    # group of its own that nice does not rank against the server's, so the training would
    # take an equal share of the cores. The console's job stays in the server's session too.
    train = subprocess.Popen(
        ["nice", "-n", str(s.train_nice), sys.executable, "-m", "bot", "train",
         "--finetune", "--by", "train_bench"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=os.setpgrp,
    )  # fmt: skip
    try:
        # Measure while the job computes (its components), not while it loads.
        while "Starting to train component" not in (tmp / "train.log").read_text(errors="replace"):
            if train.poll() is not None or time.monotonic() - started > args.max_seconds:
                tail = (tmp / "train.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"the training ended or never started computing:\n{tail}")
            time.sleep(2)
        busy = voice_batch(args.utterances, args.max_seconds)
        still_training = train.poll() is None
        progress = parse_progress(
            (tmp / "train.log").read_text(errors="replace"),
            planned_epochs(s.rasa_config, fraction=s.finetune_epoch_fraction),
            time.monotonic() - started,
        )
    finally:
        if train.poll() is None:
            os.killpg(train.pid, signal.SIGTERM)  # the training we started, and its children
            train.wait(timeout=60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("## 4 calls, no training\n" + quiet)
    done = f"{progress.epochs_done}/{progress.epochs_planned} epochs, stage {progress.stage}"
    state = "still training" if still_training else "the training ended during the batch"
    print(f"## 4 calls, training at nice {s.train_nice} ({done}; {state})\n" + busy)
    before, during = figures(quiet), figures(busy)
    if before and during:
        print(
            f"4 calls, without -> with a training job: p50 {_change(before[0], during[0])}, "
            f"p95 {_change(before[1], during[1])} (inf: a reply later than voice_bench's timeout)"
        )


if __name__ == "__main__":
    main()
