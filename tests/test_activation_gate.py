"""The activation gate's rule, on a small held-out set of its own and models given as answers.

Under a target (95 / 90 / 90) a candidate may only go up from the live model's figure; at or
over the target it passes; an emergency the live model catches may never be missed.
tests/test_model_registry.py checks the same gate with the real model's figures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.tools.comparison import (
    EMERGENCY,
    TARGETS,
    Figures,
    activation_problems,
    figures_for,
    gate_rule,
    percent,
)

pytestmark = pytest.mark.unit

# 20 sentences: one wrong answer costs 5 points on every variant. The last four are emergencies.
ROWS = [(f"câu hỏi số {i} về thủ tục", "faq:ho_ngheo") for i in range(8)]
ROWS += [(f"cho tôi gặp nhánh hai lần {i}", "transfer:2") for i in range(8)]
ROWS += [(f"bố tôi khó thở lắm lần {i}", EMERGENCY) for i in range(4)]


@pytest.fixture
def heldout(tmp_path: Path) -> Path:
    path = tmp_path / "heldout.tsv"
    path.write_text("text\troute\n" + "".join(f"{t}\t{r}\n" for t, r in ROWS), encoding="utf-8")
    return path


def model(heldout: Path, wrong: dict[int, str]) -> Figures:
    """Figures of a model that answers every held-out sentence right except the ``wrong``
    ones (row index -> the route it gives), on every variant alike."""

    def route(texts: list[str]) -> list[str]:
        return [wrong.get(i, ROWS[i][1]) for i in range(len(texts))]

    return figures_for(route, [], heldout)


def falls_back(*rows: int) -> dict[int, str]:
    return {i: "fallback" for i in rows}


def refusal(candidate: Figures, active: Figures | None) -> list[str]:
    return activation_problems(candidate, active)


Model = Callable[[dict[int, str]], Figures]


@pytest.fixture
def given(heldout: Path) -> Model:
    return lambda wrong: model(heldout, wrong)


def test_a_candidate_worse_than_the_live_model_under_the_target_is_refused(given: Model):
    live = given(falls_back(0, 1))  # 90%: under the clean target (95%)
    worse = given(falls_back(0, 1, 2))  # 85%
    problems = refusal(worse, live)
    clean = [p for p in problems if "«có dấu»" in p]
    assert len(clean) == 1
    assert percent(worse.accuracy("clean")) == "85,0%"
    assert "85,0%" in clean[0] and "90,0%" in clean[0] and "95%" in clean[0]
    # The other two variants are at their target (90%) with the live model: 85% is under both.
    assert len(problems) == 3


def test_a_candidate_better_than_an_under_target_live_model_is_allowed(given: Model):
    live = given(falls_back(0, 1, 2, 3))  # 80% on every variant: under every target
    better = given(falls_back(0, 1))  # 90%: still under the clean target
    assert better.accuracy("clean") < TARGETS["clean"]
    assert refusal(better, live) == []
    assert refusal(given(falls_back(0, 1, 2, 3)), live) == []  # as good: not stuck either


def test_over_the_target_any_figure_passes_even_below_the_live_model(given: Model):
    live = given({})  # 100%
    candidate = given(falls_back(0))  # 95%: at the clean target, over the other two
    assert refusal(candidate, live) == []
    assert refusal(given(falls_back(0, 1)), live)  # 90%: under the clean target and the live


def test_an_emergency_the_live_model_catches_refuses_even_a_better_candidate(given: Model):
    live = given(falls_back(0, 1, 2))  # 85%, catches every emergency
    candidate = given({0: "fallback", 19: "faq:f0_spo2"})  # 90%, misses row 19
    assert candidate.accuracy("clean") > live.accuracy("clean")
    problems = refusal(candidate, live)
    # One problem: the sentence, missed in each of the three variants, with examples.
    assert len(problems) == 1
    assert "bỏ lỡ 3 câu cấp cứu" in problems[0] and f"«{ROWS[19][0]}» (có dấu)" in problems[0]
    assert not [p for p in problems if "mục tiêu" in p]
    # An emergency the live model missed too is no reason to refuse.
    assert refusal(candidate, given({0: "fallback", 1: "fallback", 19: "fallback"})) == []


def test_without_a_live_model_the_targets_decide(given: Model):
    assert refusal(given(falls_back(0)), None) == []
    problems = refusal(given(falls_back(0, 1)), None)
    assert [p for p in problems if "«có dấu»" in p and "90,0%" in p and "95%" in p]


def test_the_page_states_the_gate_with_the_targets():
    rule = gate_rule()
    assert "có dấu 95%" in rule and "không dấu 90%" in rule and "giọng Hà Nội 90%" in rule
    assert "không thấp hơn mô hình đang chạy" in rule and "cấp cứu" in rule


def test_a_refusal_names_a_few_missed_emergencies_not_all(given: Model):
    live = given({})
    candidate = given(falls_back(16, 17, 18, 19))  # every emergency, in every variant
    problems = refusal(candidate, live)
    missed = [p for p in problems if "cấp cứu" in p]
    assert len(missed) == 1
    assert "bỏ lỡ 12 câu cấp cứu" in missed[0] and "và 9 câu nữa" in missed[0]
