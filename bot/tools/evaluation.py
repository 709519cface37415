"""Score the held-out set and the emergency hard set: where routing fails, not only how often.

The held-out set (tests/data/heldout.tsv) is written apart from the training
data and never trained on: no sentence shares a run of four syllables with a
training example (tests/test_heldout.py checks). Each sentence is scored three
ways: as written (the recogniser's form), without diacritics (typed text) and
with Hanoi onset merges applied at random, in both directions, to half the
syllables; that is a different draw from the one used for training variants
(bot/tools/training.py).

For each variant: accuracy, per-route precision and recall, the most frequent
confusions with example sentences, and a reliability table (confidence against
accuracy) that ``bot eval --plot FILE.png`` also draws, so a trainer can see
where the fallback threshold (config.yml) and the confirmation policy should sit.

The hard set (tests/data/emergency_hard.tsv) holds emergencies and near-misses:
its figures are the emergency recall and the false-emergency rate.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.app.settings import rasa_pipeline
from bot.nlu.text import merge_accent, strip_diacritics
from bot.vocabulary import Route

# The seed of the evaluation's accent merges (training uses per-sentence seeds).
MERGE_SEED = 20211019
EMERGENCY = Route.TRANSFER_1
TOP_CONFUSIONS = 12
EXAMPLES_PER_CONFUSION = 2
RELIABILITY_BINS = 10

# A router: texts in, (route, confidence) out, in order.
Router = Callable[[list[str]], list[tuple[str, float]]]


def _read_tsv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        missing = set(columns) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        rows = list(reader)
    unknown = {r[columns[1]] for r in rows if r[columns[1]] not in set(Route)}
    if unknown:
        raise ValueError(f"{path}: routes not in the route table: {sorted(unknown)}")
    return rows


def load_heldout(path: Path) -> list[tuple[str, str]]:
    return [(r["text"], r["route"]) for r in _read_tsv(path, ("text", "route"))]


@dataclass(frozen=True)
class HardRow:
    text: str
    expected: str
    kind: str  # "emergency" or "near_miss"


def load_hard(path: Path) -> list[HardRow]:
    rows = _read_tsv(path, ("text", "expected_route", "kind"))
    bad = {r["kind"] for r in rows} - {"emergency", "near_miss"}
    if bad:
        raise ValueError(f"{path}: kinds must be emergency or near_miss, not {sorted(bad)}")
    wrong = [
        r["text"] for r in rows if (r["kind"] == "emergency") != (r["expected_route"] == EMERGENCY)
    ]
    if wrong:
        raise ValueError(f"{path}: an emergency must expect {EMERGENCY}, a near-miss not: {wrong}")
    return [HardRow(r["text"], r["expected_route"], r["kind"]) for r in rows]


def variants(rows: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    rng = random.Random(MERGE_SEED)
    return {
        "clean": rows,
        "no_diacritics": [(strip_diacritics(t), r) for t, r in rows],
        "accent_merged": [(merge_accent(t, rng, rate=0.5), r) for t, r in rows],
    }


@dataclass(frozen=True)
class Bin:
    """One confidence band of the reliability table."""

    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability(points: Sequence[tuple[float, bool]], bins: int = RELIABILITY_BINS) -> list[Bin]:
    """(confidence, correct) pairs -> equal-width confidence bands with their accuracy.

    A well calibrated router has accuracy close to mean confidence in every band;
    bands without predictions are left out."""
    grouped: dict[int, list[tuple[float, bool]]] = defaultdict(list)
    for confidence, correct in points:
        index = min(int(max(confidence, 0.0) * bins), bins - 1)
        grouped[index].append((confidence, correct))
    return [
        Bin(
            low=i / bins,
            high=(i + 1) / bins,
            count=len(members),
            mean_confidence=sum(c for c, _ in members) / len(members),
            accuracy=sum(ok for _, ok in members) / len(members),
        )
        for i, members in sorted(grouped.items())
    ]


def calibration_error(table: Sequence[Bin]) -> float:
    """Expected calibration error: |accuracy - confidence| weighted by the band's size."""
    total = sum(b.count for b in table)
    return (
        sum(b.count * abs(b.accuracy - b.mean_confidence) for b in table) / total if total else 0.0
    )


@dataclass
class Score:
    name: str
    total: int = 0
    correct: int = 0
    per_route: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    confusions: list[tuple[str, str, str]] = field(default_factory=list)  # expected, got, text
    points: list[tuple[float, bool]] = field(default_factory=list)  # confidence, correct

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def add(self, text: str, expected: str, got: str, confidence: float | None = None) -> None:
        self.total += 1
        if confidence is not None:
            self.points.append((confidence, got == expected))
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

    def top_confusions(
        self, n: int = TOP_CONFUSIONS, examples: int = EXAMPLES_PER_CONFUSION
    ) -> list[tuple[str, str, int, list[str]]]:
        """The most frequent (expected, got) pairs, each with a few of its sentences."""
        pairs = Counter((e, g) for e, g, _ in self.confusions)
        return [
            (e, g, count, [t for ee, gg, t in self.confusions if (ee, gg) == (e, g)][:examples])
            for (e, g), count in pairs.most_common(n)
        ]

    def as_dict(self) -> dict[str, Any]:
        table = reliability(self.points)
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
            "reliability": [b.__dict__ for b in table],
            "calibration_error": round(calibration_error(table), 4),
        }


def score(name: str, rows: list[tuple[str, str]], route: Router) -> Score:
    result = Score(name)
    for (text, expected), (got, confidence) in zip(rows, route([t for t, _ in rows]), strict=True):
        result.add(text, expected, got, confidence)
    return result


@dataclass
class HardScore:
    """Emergency recall and false emergencies on the hard set."""

    emergencies: int = 0
    caught: int = 0
    near_misses: int = 0
    near_right: int = 0  # near-misses given their own route
    missed: list[tuple[str, str]] = field(default_factory=list)  # text, route given
    false_emergencies: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.emergencies if self.emergencies else 1.0

    @property
    def false_rate(self) -> float:
        return len(self.false_emergencies) / self.near_misses if self.near_misses else 0.0

    def add(self, row: HardRow, got: str) -> None:
        if row.kind == "emergency":
            self.emergencies += 1
            if got == EMERGENCY:
                self.caught += 1
            else:
                self.missed.append((row.text, got))
        else:
            self.near_misses += 1
            self.near_right += got == row.expected
            if got == EMERGENCY:
                self.false_emergencies.append(row.text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "emergencies": self.emergencies,
            "emergency_recall": round(self.recall, 4),
            "near_misses": self.near_misses,
            "false_emergency_rate": round(self.false_rate, 4),
            "near_miss_route_accuracy": round(self.near_right / self.near_misses, 4)
            if self.near_misses
            else None,
            "missed": [{"text": t, "got": g} for t, g in self.missed],
            "false_emergencies": self.false_emergencies,
        }


def score_hard(rows: list[HardRow], route: Router) -> HardScore:
    result = HardScore()
    for row, (got, _) in zip(rows, route([r.text for r in rows]), strict=True):
        result.add(row, got)
    return result


def report(s: Score) -> str:
    lines = [f"## {s.name}: accuracy {s.accuracy:.1%} ({s.correct}/{s.total})", ""]
    lines.append(f"{'route':28} {'precision':>9} {'recall':>7} {'n':>4}")
    for r in Route:
        p, rec, n = s.precision_recall(r)
        if n or s.per_route[r]["fp"]:
            lines.append(f"{r:28} {p:9.2f} {rec:7.2f} {n:4d}")
    if s.confusions:
        lines += ["", "top confusions (expected -> got: examples):"]
        for e, g, n, examples in s.top_confusions():
            lines.append(f"  {n} x {e} -> {g}: " + " | ".join(examples))
    table = reliability(s.points)
    if table:
        lines += ["", "reliability (confidence band: predictions, mean confidence, accuracy):"]
        for b in table:
            band = f"{b.low:.1f}-{b.high:.1f}"
            lines.append(f"  {band}: {b.count:4d}  {b.mean_confidence:.2f}  {b.accuracy:.2f}")
        lines.append(f"  calibration error {calibration_error(table):.3f}")
    return "\n".join(lines)


def report_hard(h: HardScore) -> str:
    lines = [
        f"## hard set: emergency recall {h.recall:.1%} ({h.caught}/{h.emergencies}), "
        f"false emergencies {h.false_rate:.1%} ({len(h.false_emergencies)}/{h.near_misses}), "
        f"near-misses routed right {h.near_right}/{h.near_misses}"
    ]
    lines += [f"  missed: {t} -> {g}" for t, g in h.missed]
    lines += [f"  false emergency: {t}" for t in h.false_emergencies]
    return "\n".join(lines)


def fallback_threshold(config: Path) -> float | None:
    """The FallbackClassifier's threshold in a Rasa config, if it has one."""
    from rasa.nlu.classifiers.fallback_classifier import THRESHOLD_KEY, FallbackClassifier

    for component in rasa_pipeline(config):
        if component.get("name") == FallbackClassifier.__name__:
            default = FallbackClassifier.get_default_config()[THRESHOLD_KEY]
            return float(component.get(THRESHOLD_KEY, default))
    return None


def plot_reliability(scores: Sequence[Score], path: Path, threshold: float | None = None) -> Path:
    """Draw confidence against accuracy for each variant into a PNG, with the
    fallback threshold marked."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7, 8), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    for s in scores:
        table = reliability(s.points)
        top.plot(
            [b.mean_confidence for b in table],
            [b.accuracy for b in table],
            marker="o",
            label=f"{s.name} (ECE {calibration_error(table):.3f})",
        )
        width = 1 / RELIABILITY_BINS / (len(scores) + 1)
        offset = width * scores.index(s)
        bottom.bar(
            [b.low + offset for b in table],
            [b.count for b in table],
            width=width,
            align="edge",
            label=s.name,
        )
    if threshold is not None:
        for axis in (top, bottom):
            axis.axvline(threshold, color="red", linewidth=0.8, linestyle="--")
        top.text(threshold + 0.01, 0.05, f"fallback {threshold:g}", color="red")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1.02)
    top.set_title("Routing reliability on the held-out set")
    top.legend(loc="upper left")
    bottom.set_xlabel("confidence")
    bottom.set_ylabel("predictions")
    bottom.set_yscale("log")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def evaluate(
    brain: Any,
    heldout: Path,
    json_out: Path | None = None,
    plot: Path | None = None,
    hard: Path | None = None,
    threshold: float | None = None,
) -> int:
    from bot.nlu.brain import run

    rows = load_heldout(heldout)

    def route(texts: list[str]) -> list[tuple[str, float]]:
        results = [run(brain.route(t)) for t in texts]
        return [(r.route, r.confidence) for r in results]

    scores = [score(name, vrows, route) for name, vrows in variants(rows).items()]
    print(
        f"# Held-out routing: {heldout.name}, {len(rows)} sentences, "
        f"model {brain.model_path.name}, {dt.date.today().isoformat()}\n"
    )
    for s in scores:
        print(report(s) + "\n")
    hard_score = None
    if hard is not None:
        hard_score = score_hard(load_hard(hard), route)
        print(report_hard(hard_score) + "\n")
    print("summary: " + ", ".join(f"{s.name} {s.accuracy:.1%}" for s in scores))
    if hard_score:
        print(
            f"hard set: emergency recall {hard_score.recall:.1%}, "
            f"false emergencies {hard_score.false_rate:.1%}"
        )
    if plot:
        print(f"reliability plot written to {plot_reliability(scores, plot, threshold)}")
    if json_out:
        json_out.write_text(
            json.dumps(
                {
                    "model": brain.model_path.name,
                    "date": dt.date.today().isoformat(),
                    **{s.name: s.as_dict() for s in scores},
                    **({"hard": hard_score.as_dict()} if hard_score else {}),
                },
                ensure_ascii=False,
                indent=1,
            )
        )
    return 0
