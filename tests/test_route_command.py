"""`python -m bot route`: the trainers' contract. One JSON object per input line,
in order; an empty line is `fallback`; bad lines get an error and lose nothing."""

from __future__ import annotations

import json

import pytest

from bot.vocabulary import Route
from tests.conftest import run_bot

pytestmark = pytest.mark.engines

LINES = [
    "bố tôi khó thở quá gọi cấp cứu giúp tôi",
    "",
    "nhà tôi hết gạo rồi",
    "nhánh năm",
    "ép không uống thuốc hạ sốt thế nào",
    "   ",
    "cho tôi gặp tổng đài viên",
    "nha toi het gao roi",  # typed without diacritics
]


@pytest.fixture(scope="module")
def routed():
    result = run_bot("route", stdin=("\n".join(LINES) + "\n").encode())
    assert result.returncode == 0, result.stderr.decode()
    return [json.loads(line) for line in result.stdout.decode().splitlines()]


def test_one_object_per_line_in_order(routed):
    assert [r["text"] for r in routed] == LINES
    for r in routed:
        # "red_flag" only when the red-flag layer sent the line to 115, "restored_text"
        # only for text typed without diacritics.
        assert set(r) - {"red_flag", "restored_text"} == {"text", "route", "intent", "confidence"}
        assert r["route"] in set(Route)
        assert 0.0 <= r["confidence"] <= 1.0


def test_a_red_flag_says_why_in_the_json(routed):
    assert routed[0]["red_flag"] == {
        "rule": "danger_sign",
        "matched": "khó thở",
        "route": "transfer:1",
    }
    assert all("red_flag" not in r for r in routed[1:])


def test_routes_of_known_sentences(routed):
    assert [r["route"] for r in routed] == [
        "transfer:1",
        "fallback",
        "transfer:6",
        "transfer:5",
        "faq:f0_thuoc",
        "fallback",
        "operator",
        "transfer:6",
    ]


def test_text_typed_without_diacritics_shows_how_it_was_read(routed):
    assert routed[-1]["text"] == "nha toi het gao roi"
    assert routed[-1]["restored_text"] == "nhà tôi hết gạo rồi"
    assert all("restored_text" not in r for r in routed[:-1])


def test_empty_lines_are_fallback_with_no_intent(routed):
    assert routed[1] == {"text": "", "route": "fallback", "intent": "", "confidence": 0.0}


def test_last_line_without_newline_and_crlf_endings():
    result = run_bot("route", stdin="nhánh ba\r\nnhánh sáu".encode())
    rows = [json.loads(x) for x in result.stdout.decode().splitlines()]
    assert [(r["text"], r["route"]) for r in rows] == [
        ("nhánh ba", "transfer:3"),
        ("nhánh sáu", "transfer:6"),
    ]


def test_invalid_utf8_and_huge_lines_get_a_clear_error_and_the_rest_is_routed():
    huge = b"a" * (3 * 1024 * 1024)
    stdin = b"nh\xe1nh n\xe3m\n" + b"nh\xc3\xa1nh n\xc4\x83m\n" + huge + b"\n" + b"phim ba\n"
    result = run_bot("route", stdin=stdin)
    assert result.returncode == 1  # some lines were rejected
    rows = [json.loads(x) for x in result.stdout.decode().splitlines()]
    assert len(rows) == 4
    assert rows[0]["route"] == "fallback" and "not valid UTF-8" in rows[0]["error"]
    assert rows[1]["text"] == "nhánh năm" and rows[1]["route"] == "transfer:5"
    assert rows[2]["route"] == "fallback" and "too long" in rows[2]["error"]
    assert rows[3]["route"] == "transfer:3"
    stderr = result.stderr.decode()
    assert "line 1: not valid UTF-8" in stderr and "line 3: too long" in stderr
    assert "Traceback" not in stderr


def test_no_input_gives_no_output():
    result = run_bot("route", stdin=b"")
    assert result.returncode == 0 and result.stdout == b""


def test_a_missing_model_is_a_clear_error():
    result = run_bot("route", "--model", "models/does-not-exist.tar.gz", stdin=b"alo\n")
    assert result.returncode != 0
    assert "model file not found" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
