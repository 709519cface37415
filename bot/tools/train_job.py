"""Training as a background job of the server: one at a time, at the lowest CPU priority.

The job is ``python -m bot train --candidate [--finetune]`` in a child process under
``nice -n BOT_TRAIN_NICE`` (19), its output in a log file under var/training/. Progress is
read from that log: Rasa prints a progress bar per trained component ("Epochs: 45%|...|
18/40"); the epochs planned come from config.yml (times the fine-tune's share of them).
A job is refused while another runs or while more than BOT_TRAIN_MAX_LIVE_CALLS calls are up.
The child registers and scores the model it trains (bot/tools/model_registry.py); it never
activates it: a trainer does, after the comparison.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app.settings import ROOT, rasa_pipeline

FINETUNE = "finetune"
FULL = "full"
_EPOCHS = re.compile(r"Epochs:\s+\d+%\|[^|\r\n]*\|\s*(\d+)/(\d+)")
_TRAINED = re.compile(r"==> trained (\S+\.tar\.gz) in")
_COMPONENT = re.compile(r"Starting to train component '([^']+)'")


class JobRefused(RuntimeError):
    """The job was not started; the message (Vietnamese, for the trainer) says why."""


def planned_epochs(config: Path, fraction: float = 1.0) -> int:
    """Epochs of every trained NLU component in config.yml (Rasa's fine-tune runs
    ceil(epochs x fraction) of each)."""
    return sum(
        math.ceil(int(c["epochs"]) * fraction) for c in rasa_pipeline(config) if "epochs" in c
    )


@dataclass(frozen=True)
class Progress:
    epochs_done: int
    epochs_planned: int
    elapsed_s: float
    remaining_s: float | None  # None until the first epoch ends
    stage: str
    done: bool = False

    @property
    def fraction(self) -> float:
        if self.done:
            return 1.0
        # A pipeline without epochs (the n-gram classifier trains in one go) shows its
        # stage only, until it is done.
        return min(1.0, self.epochs_done / self.epochs_planned) if self.epochs_planned else 0.0


def parse_progress(log: str, planned: int, elapsed_s: float) -> Progress:
    """Epochs done so far from Rasa's progress bars (one bar per component, redrawn with \\r)."""
    done = 0
    last_n = 0
    last_total = 0
    for m in _EPOCHS.finditer(log):
        n, total = int(m.group(1)), int(m.group(2))
        if n < last_n or total != last_total:  # a new component's bar
            done += last_n
        last_n, last_total = n, total
    done += last_n
    components = _COMPONENT.findall(log)
    stage = components[-1] if components else "chuẩn bị dữ liệu"
    remaining = elapsed_s / done * max(0, planned - done) if done else None
    return Progress(done, planned, elapsed_s, remaining, stage)


@dataclass
class Job:
    id: str
    kind: str
    by: str
    log_path: Path
    planned: int
    started: float = field(default_factory=time.monotonic)
    started_at: float = field(default_factory=time.time)
    finished: float | None = None
    returncode: int | None = None
    model: str | None = None
    process: asyncio.subprocess.Process | None = None

    @property
    def status(self) -> str:
        if self.returncode is None:
            return "running"
        return "succeeded" if self.returncode == 0 and self.model else "failed"

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def progress(self) -> Progress:
        end = self.finished if self.finished is not None else time.monotonic()
        p = parse_progress(self.log(), self.planned, end - self.started)
        if self.status == "succeeded":
            return Progress(p.epochs_planned, p.epochs_planned, p.elapsed_s, 0.0, "xong", True)
        return p

    def as_dict(self) -> dict[str, Any]:
        p = self.progress()
        return {
            "id": self.id,
            "kind": self.kind,
            "by": self.by,
            "status": self.status,
            "model": self.model,
            "epochs_done": p.epochs_done,
            "epochs_planned": p.epochs_planned,
            "fraction": round(p.fraction, 3),
            "elapsed_s": round(p.elapsed_s, 1),
            "remaining_s": None if p.remaining_s is None else round(p.remaining_s, 1),
            "stage": p.stage,
        }


class TrainingJobs:
    """The server's training jobs: at most one running."""

    def __init__(
        self,
        *,
        log_dir: Path,  # Settings.train_log_dir
        config: Path,  # Settings.rasa_config: the epochs planned
        max_live_calls: int,  # Settings.train_max_live_calls
        nice: int,  # Settings.train_nice
        finetune_fraction: float,  # Settings.finetune_epoch_fraction
        command: list[str] | None = None,
        cwd: Path = ROOT,
    ) -> None:
        self.log_dir = log_dir
        self.finetune_fraction = finetune_fraction
        # The training command; tests give a tiny Rasa project's instead.
        self.command = command or [sys.executable, "-m", "bot", "train", "--candidate"]
        self.max_live_calls = max_live_calls
        self.nice = nice
        self.config = config
        self.cwd = cwd
        self.jobs: list[Job] = []

    @property
    def current(self) -> Job | None:
        return self.jobs[-1] if self.jobs else None

    def running(self) -> Job | None:
        job = self.current
        return job if job is not None and job.returncode is None else None

    async def start(
        self, kind: str, by: str, live_calls: int, env: dict[str, str] | None = None
    ) -> Job:
        if kind not in (FINETUNE, FULL):
            raise JobRefused(f"Không có kiểu huấn luyện «{kind}».")
        if self.running():
            raise JobRefused("Đang có một lượt huấn luyện chạy; mỗi lần chỉ chạy một lượt.")
        if live_calls > self.max_live_calls:
            raise JobRefused(
                f"Đang có {live_calls} cuộc gọi (tối đa {self.max_live_calls} khi huấn luyện). "
                "Anh chị thử lại sau ít phút ạ."
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        job_id = time.strftime("%Y%m%d-%H%M%S") + f"-{kind}"
        fraction = self.finetune_fraction if kind == FINETUNE else 1.0
        job = Job(
            job_id, kind, by, self.log_dir / f"{job_id}.log", planned_epochs(self.config, fraction)
        )
        args = [*self.command, "--by", by]
        if kind == FINETUNE:
            args += ["--finetune", "--epoch-fraction", str(fraction)]
        with job.log_path.open("wb") as log:
            job.process = await asyncio.create_subprocess_exec(
                "nice",
                "-n",
                str(self.nice),
                *args,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.cwd,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            )
        self.jobs.append(job)
        asyncio.get_running_loop().create_task(self._wait(job))
        return job

    async def _wait(self, job: Job) -> None:
        assert job.process is not None
        job.returncode = await job.process.wait()
        job.finished = time.monotonic()
        found = _TRAINED.findall(job.log())
        job.model = found[-1] if found else None

    async def wait(self) -> Job | None:
        """Until the current job ends (tests, shutdown)."""
        job = self.current
        while job is not None and job.finished is None:
            await asyncio.sleep(0.2)
        return job
