"""Score the held-out set: per-route precision and recall, confusions, accuracy.

The held-out set (tests/data/heldout.tsv) is written apart from the training
data and never trained on. Each sentence is scored three ways: as written
(the recogniser's form), without diacritics (typed text) and with Hanoi onset
merges applied at random, in both directions, to half the syllables; that is
a different draw from the one used for training variants (bot/tools/training.py).
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.nlu.text import merge_accent, strip_diacritics
from bot.vocabulary import Route

# The seed of the evaluation's accent merges (training uses per-sentence seeds).
MERGE_SEED = 20211019


def load_heldout(path: Path) -> list[tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = [(r["text"], r["route"]) for r in csv.DictReader(f, delimiter="\t")]
    unknown = {route for _, route in rows if route not in set(Route)}
    if unknown:
        raise ValueError(f"{path}: routes not in the route table: {sorted(unknown)}")
    return rows


def variants(rows: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(MERGE_SEED)
    return {
        "clean": rows,
        "no_diacritics": [(strip_diacritics(t), r) for t, r in rows],
        "accent_merged": [(merge_accent(t, rng, rate=0.5), r) for t, r in rows],
    }


@dataclass
class Score:
    name: str
    total: int = 0
    correct: int = 0
    per_route: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    confusions: list[tuple[str, str, str]] = field(default_factory=list)  # expected, got, text

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def add(self, text: str, expected: str, got: str) -> None:
        self.total += 1
        if got == expected:
            self.correct += 1
            self.per_route[expected]["tp"] += 1
        else:
            self.per_route[expected]["fn"] += 1
            self.per_route[got]["fp"] += 1
            self.confusions.append((expected, got, text))

    def precision_recall(self, route: str) -> tuple[float, float, int]:
        c = self.per_route[route]
        tp, fp, fn = c["tp"], c["fp"], c["fn"]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        return precision, recall, tp + fn

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 4),
            "correct": self.correct,
            "total": self.total,
            "routes": {
                r: dict(
                    zip(("precision", "recall", "support"), self.precision_recall(r), strict=True)
                )
                for r in Route
            },
            "confusions": [{"expected": e, "got": g, "text": t} for e, g, t in self.confusions],
        }


def score(name: str, rows: list[tuple[str, str]], route: Callable[[list[str]], list[str]]) -> Score:
    result = Score(name)
    for (text, expected), got in zip(rows, route([t for t, _ in rows]), strict=True):
        result.add(text, expected, got)
    return result


def report(s: Score) -> str:
    lines = [f"## {s.name}: accuracy {s.accuracy:.1%} ({s.correct}/{s.total})", ""]
    lines.append(f"{'route':28} {'precision':>9} {'recall':>7} {'n':>4}")
    for r in Route:
        p, rec, n = s.precision_recall(r)
        if n or s.per_route[r]["fp"]:
            lines.append(f"{r:28} {p:9.2f} {rec:7.2f} {n:4d}")
    if s.confusions:
        lines += ["", "confusions (expected -> got: text):"]
        pairs = Counter((e, g) for e, g, _ in s.confusions)
        for (e, g), n in pairs.most_common():
            example = next(t for ee, gg, t in s.confusions if (ee, gg) == (e, g))
            lines.append(f"  {n} x {e} -> {g}: {example}")
    return "\n".join(lines)


def evaluate(brain: Any, heldout: Path, json_out: Path | None = None) -> int:
    from bot.nlu.brain import run

    rows = load_heldout(heldout)

    def route(texts: list[str]) -> list[str]:
        return [run(brain.route(t)).route for t in texts]

    scores = [score(name, vrows, route) for name, vrows in variants(rows).items()]
    print(
        f"# Held-out routing: {heldout.name}, {len(rows)} sentences, "
        f"model {brain.model_path.name}, {dt.date.today().isoformat()}\n"
    )
    for s in scores:
        print(report(s) + "\n")
    print("summary: " + ", ".join(f"{s.name} {s.accuracy:.1%}" for s in scores))
    if json_out:
        json_out.write_text(
            json.dumps(
                {
                    "model": brain.model_path.name,
                    "date": dt.date.today().isoformat(),
                    **{s.name: s.as_dict() for s in scores},
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    return 0
