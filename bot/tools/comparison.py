"""A model's figures, and a candidate's against the active model's, before it goes live.

Figures: routing accuracy on the held-out set (tests/data/heldout.tsv) in its three variants
(bot/tools/evaluation.py), recall per route, the route given to every sentence (so two
models' answers can be compared sentence by sentence), and the same on the examples added
since the active model. The activation gate is here too: the product's targets (95 / 90 / 90)
and no emergency the active model catches may be missed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.tools.evaluation import Score, load_heldout, score, variants
from bot.vocabulary import Route

# docs/product.md: held-out routing accuracy a model must reach to go live.
TARGETS: dict[str, float] = {"clean": 0.95, "no_diacritics": 0.90, "accent_merged": 0.90}
EMERGENCY = Route.TRANSFER_1.value
_ROUTE_ORDER = [r.value for r in Route]  # how routes are listed: the vocabulary's order
ADDED = "added"  # the examples added since the active model, scored as a fourth set


@dataclass
class Figures:
    """JSON-ready: {"variants": {name: {...}}, "routed": {name: [[text, expected, got]]}}."""

    data: dict[str, Any]

    def accuracy(self, variant: str) -> float:
        return float(self.data["variants"][variant]["accuracy"])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {v: self.accuracy(v) for v in TARGETS}
        out["emergency_recall"] = self.data["emergency_recall"]
        added = self.data["variants"].get(ADDED)
        if added and added["total"]:
            out[ADDED] = f"{added['correct']}/{added['total']}"
        return out


def _variant_figures(s: Score) -> dict[str, Any]:
    return {
        "accuracy": round(s.accuracy, 4),
        "correct": s.correct,
        "total": s.total,
        "recall": {
            r: round(s.precision_recall(r)[1], 4) for r in _ROUTE_ORDER if s.precision_recall(r)[2]
        },
    }


def _answers(got: list[str]) -> Callable[[list[str]], list[tuple[str, float]]]:
    # Only routes are compared here; the confidence (for calibration) is not used.
    return lambda _texts: [(g, 0.0) for g in got]


def figures_for(
    route: Callable[[list[str]], list[str]],
    added: list[tuple[str, str]] | None,
    heldout: Path,
) -> Figures:
    """Score a routing function on the held-out variants (``heldout``, the settings'
    tests/data/heldout.tsv) and on ``added`` (text, route)."""
    sets = variants(load_heldout(heldout))
    sets[ADDED] = list(added or [])
    data: dict[str, Any] = {"variants": {}, "routed": {}}
    caught = total = 0
    for name, rows in sets.items():
        got = route([t for t, _ in rows]) if rows else []
        s = score(name, rows, _answers(got))
        data["variants"][name] = _variant_figures(s)
        data["routed"][name] = [[t, e, g] for (t, e), g in zip(rows, got, strict=True)]
        if name in TARGETS:
            for (_, e), g in zip(rows, got, strict=True):
                if e == EMERGENCY:
                    total += 1
                    caught += g == EMERGENCY
    data["emergency_recall"] = round(caught / total, 4) if total else 1.0
    return Figures(data)


def score_model(brain: Any, added: list[tuple[str, str]] | None, heldout: Path) -> Figures:
    from bot.nlu.brain import run

    def route(texts: list[str]) -> list[str]:
        return [str(run(brain.route(t)).route) for t in texts]

    return figures_for(route, added, heldout)


def rescore_added(
    figures: Figures, route: Callable[[list[str]], list[str]], added: list[tuple[str, str]]
) -> Figures:
    """The same figures with the 'added' set replaced (the set grows after a model is scored)."""
    got = route([t for t, _ in added]) if added else []
    s = score(ADDED, added, _answers(got))
    data = dict(figures.data)
    data["variants"] = {**data["variants"], ADDED: _variant_figures(s)}
    data["routed"] = {
        **data["routed"],
        ADDED: [[t, e, g] for (t, e), g in zip(added, got, strict=True)],
    }
    return Figures(data)


@dataclass(frozen=True)
class Comparison:
    accuracy: dict[str, tuple[float, float]]  # variant -> (active, candidate)
    recall: dict[str, dict[str, tuple[float, float]]]  # variant -> route -> (active, candidate)
    fixed: list[tuple[str, str, str, str]]  # variant, text, expected, active's wrong route
    broken: list[tuple[str, str, str, str]]  # variant, text, expected, candidate's wrong route
    emergencies_missed: list[tuple[str, str, str]]  # variant, text, candidate's route
    emergency_recall: tuple[float, float]


def compare(active: Figures, candidate: Figures) -> Comparison:
    accuracy: dict[str, tuple[float, float]] = {}
    recall: dict[str, dict[str, tuple[float, float]]] = {}
    fixed: list[tuple[str, str, str, str]] = []
    broken: list[tuple[str, str, str, str]] = []
    missed: list[tuple[str, str, str]] = []
    for name, cand in candidate.data["variants"].items():
        act = active.data["variants"].get(name)
        if act is None:
            continue
        accuracy[name] = (act["accuracy"], cand["accuracy"])
        routes = sorted(set(act["recall"]) | set(cand["recall"]), key=_ROUTE_ORDER.index)
        recall[name] = {r: (act["recall"].get(r, 0.0), cand["recall"].get(r, 0.0)) for r in routes}
        # The same sentences in the same order (the held-out set and its seeded variants).
        before = {t: g for t, _, g in active.data["routed"].get(name, [])}
        for text, expected, got in candidate.data["routed"][name]:
            was = before.get(text)
            if was is None or was == got:
                continue
            if got == expected:
                fixed.append((name, text, expected, was))
            elif was == expected:
                broken.append((name, text, expected, got))
            if expected == EMERGENCY and was == EMERGENCY and got != EMERGENCY:
                missed.append((name, text, got))
    return Comparison(
        accuracy=accuracy,
        recall=recall,
        fixed=fixed,
        broken=broken,
        emergencies_missed=missed,
        emergency_recall=(active.data["emergency_recall"], candidate.data["emergency_recall"]),
    )


def activation_problems(candidate: Figures, active: Figures | None) -> list[str]:
    """Why ``candidate`` may not go live (Vietnamese, for the trainer); empty: it may."""
    problems = [
        f"Độ chính xác «{name}» {candidate.accuracy(name):.1%} dưới mục tiêu {target:.0%}."
        for name, target in TARGETS.items()
        if candidate.accuracy(name) < target
    ]
    if active is not None:
        for variant, text, got in compare(active, candidate).emergencies_missed:
            problems.append(
                f"Bỏ lỡ một ca cấp cứu mà mô hình đang chạy bắt được ({variant}): "
                f"«{text}» -> {got}."
            )
    return problems
