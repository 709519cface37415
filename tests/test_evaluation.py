"""The figures of `bot eval`, on small made-up inputs (no model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.tools.evaluation import (
    HardRow,
    Score,
    calibration_error,
    fallback_threshold,
    load_hard,
    plot_reliability,
    reliability,
    score,
    score_hard,
)

pytestmark = pytest.mark.unit


def _score() -> Score:
    s = Score("clean")
    s.add("a", "transfer:2", "transfer:2", 0.95)
    s.add("b", "transfer:2", "faq:f0_dinh_duong", 0.60)
    s.add("c", "transfer:2", "faq:f0_dinh_duong", 0.58)
    s.add("d", "faq:f0_dinh_duong", "faq:f0_dinh_duong", 0.91)
    s.add("e", "transfer:4", "faq:tam_hoan_hdld", 0.50)
    return s


def test_precision_and_recall_per_route():
    s = _score()
    assert s.accuracy == pytest.approx(2 / 5)
    precision, recall, support = s.precision_recall("transfer:2")
    assert (precision, recall, support) == (1.0, pytest.approx(1 / 3), 3)
    precision, recall, support = s.precision_recall("faq:f0_dinh_duong")
    assert (precision, recall, support) == (pytest.approx(1 / 3), 1.0, 1)


def test_top_confusions_come_with_their_sentences_most_frequent_first():
    assert _score().top_confusions(n=2, examples=1) == [
        ("transfer:2", "faq:f0_dinh_duong", 2, ["b"]),
        ("transfer:4", "faq:tam_hoan_hdld", 1, ["e"]),
    ]


def test_reliability_bands_compare_confidence_with_accuracy():
    points = [(0.95, True), (0.92, False), (0.55, True), (0.51, False), (1.0, True)]
    table = reliability(points, bins=10)
    assert [(b.low, b.count) for b in table] == [(0.5, 2), (0.9, 3)]
    top = table[-1]
    assert top.mean_confidence == pytest.approx((0.95 + 0.92 + 1.0) / 3)
    assert top.accuracy == pytest.approx(2 / 3)
    # Expected calibration error: band gaps weighted by band size.
    expected = (2 * abs(0.5 - 0.53) + 3 * abs(2 / 3 - top.mean_confidence)) / 5
    assert calibration_error(table) == pytest.approx(expected)
    assert reliability([]) == [] and calibration_error([]) == 0.0


def test_score_keeps_the_routers_confidence():
    s = score("x", [("a", "operator"), ("b", "fallback")], lambda t: [("operator", 0.9)] * 2)
    assert s.points == [(0.9, True), (0.9, False)]
    assert s.as_dict()["reliability"][0]["count"] == 2


def test_hard_set_recall_and_false_emergencies():
    rows = [
        HardRow("e1", "transfer:1", "emergency"),
        HardRow("e2", "transfer:1", "emergency"),
        HardRow("n1", "faq:f0_dau_hieu_nguy_hiem", "near_miss"),
        HardRow("n2", "faq:f0_spo2", "near_miss"),
        HardRow("n3", "transfer:2", "near_miss"),
        HardRow("n4", "transfer:3", "near_miss"),
    ]
    got = {"e1": "transfer:1", "e2": "faq:f0_spo2", "n1": "transfer:1", "n2": "faq:f0_spo2"}

    def route(texts: list[str]) -> list[tuple[str, float]]:
        return [(got.get(t, "fallback"), 0.9) for t in texts]

    h = score_hard(rows, route)
    assert h.recall == 0.5
    assert h.missed == [("e2", "faq:f0_spo2")]
    assert h.false_rate == 0.25
    assert h.false_emergencies == ["n1"]
    assert h.as_dict()["near_miss_route_accuracy"] == 0.25


def test_load_hard_rejects_an_emergency_without_route_one(tmp_path: Path):
    path = tmp_path / "hard.tsv"
    path.write_text("text\texpected_route\tkind\nbố tôi ngất\ttransfer:3\temergency\n")
    with pytest.raises(ValueError, match="must expect transfer:1"):
        load_hard(path)
    path.write_text("text\troute\nx\ttransfer:1\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_hard(path)


def test_plot_writes_a_png(tmp_path: Path):
    out = plot_reliability([_score()], tmp_path / "plots" / "reliability.png", 0.4)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_plotted_threshold_is_the_configs(tmp_path: Path):
    config = tmp_path / "config.yml"
    config.write_text("pipeline:\n- name: X\n- name: FallbackClassifier\n  threshold: 0.42\n")
    assert fallback_threshold(config) == 0.42
    config.write_text("pipeline:\n- name: FallbackClassifier\n")
    assert fallback_threshold(config) == 0.3  # Rasa's default
    config.write_text("pipeline:\n- name: X\n")
    assert fallback_threshold(config) is None
