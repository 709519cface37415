"""A model's figures, and a candidate's against the active model's, before it goes live.

Figures: routing accuracy on the held-out set (tests/data/heldout.tsv) in its three variants
(bot/tools/evaluation.py), recall per route, the route given to every sentence (so two
models' answers can be compared sentence by sentence), and the same on the examples added
since the active model. The activation gate is here too: a candidate under a target
(95 / 90 / 90) may still replace a live model that is further under it, never a better one,
and it may miss no emergency the live model catches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.tools.evaluation import Score, load_heldout, score, variants
from bot.vocabulary import Route

# Held-out routing accuracy a model should reach (issue 12). Under a target a new model may
# only go up from the live model's figure (activation_problems), so that a hotline whose live
# model is under the targets can still get a better one.
TARGETS: dict[str, float] = {"clean": 0.95, "no_diacritics": 0.90, "accent_merged": 0.90}
# How the trainers' page and the gate's messages name the variants (the page's table adds
# what the accent merge means).
VARIANT_NAMES: dict[str, str] = {
    "clean": "có dấu",
    "no_diacritics": "không dấu",
    "accent_merged": "giọng Hà Nội",
    "added": "câu mới thêm",
}
# A refusal names a few missed emergencies; the comparison on the page lists them all.
EMERGENCY_EXAMPLES = 3
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


def percent(x: float) -> str:
    """0.805 -> "80,5%" (the Vietnamese decimal comma)."""
    return f"{x * 100:.1f}%".replace(".", ",")


def gate_rule() -> str:
    """The gate in one sentence, for the trainers' page."""
    targets = ", ".join(f"{VARIANT_NAMES[name]} {t:.0%}" for name, t in TARGETS.items())
    return (
        f"Mô hình mới được kích hoạt khi, trên từng bộ kiểm tra, nó đạt mục tiêu ({targets}) "
        "hoặc không thấp hơn mô hình đang chạy, và không bỏ lỡ ca cấp cứu nào mà mô hình "
        "đang chạy bắt được."
    )


def activation_problems(candidate: Figures, active: Figures | None) -> list[str]:
    """Why ``candidate`` may not replace ``active`` (Vietnamese, for the trainer); empty: it may.

    A held-out variant refuses the candidate when its accuracy is under the target AND under
    the active model's: under the target a model may only go up; at or over it, it passes.
    Without an active model to compare with (a first activation) the targets alone decide.
    Any emergency (transfer:1) the active model catches and the candidate misses refuses it.
    """
    problems = []
    for name, target in TARGETS.items():
        got = candidate.accuracy(name)
        live = active.accuracy(name) if active is not None else None
        if got >= target or (live is not None and got >= live):
            continue
        label = VARIANT_NAMES[name]
        if live is None:
            problems.append(
                f"Bộ «{label}»: mô hình mới đúng {percent(got)}, chưa đạt mục tiêu {target:.0%}."
            )
        else:
            problems.append(
                f"Bộ «{label}»: mô hình mới đúng {percent(got)}, thấp hơn mô hình đang chạy "
                f"({percent(live)}) và chưa đạt mục tiêu {target:.0%}."
            )
    missed = compare(active, candidate).emergencies_missed if active is not None else []
    if missed:
        shown = "; ".join(
            f"«{text}» ({VARIANT_NAMES.get(variant, variant)})"
            for variant, text, _ in missed[:EMERGENCY_EXAMPLES]
        )
        more = (
            f"; và {len(missed) - EMERGENCY_EXAMPLES} câu nữa"
            if len(missed) > EMERGENCY_EXAMPLES
            else ""
        )
        problems.append(
            f"Mô hình mới bỏ lỡ {len(missed)} câu cấp cứu mà mô hình đang chạy bắt được "
            f"(tính trên cả ba bộ): {shown}{more}."
        )
    return problems
