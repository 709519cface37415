"""Callers' personal data found in transcripts, typed or spoken, and masked."""

from __future__ import annotations

import pytest

from bot.console.pii import mask_caller, mask_text, mask_words

pytestmark = pytest.mark.unit

CCCD = "001099012345"
SPOKEN_PHONE = "không chín tám ba một hai ba bốn năm sáu"
CALLER = "0912345678"


# --- personal data --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, hidden",
    [
        (f"cccd {CCCD}", CCCD),
        ("số căn cước không không một không chín chín không một hai ba bốn năm", "chín chín"),
        (f"số em là {SPOKEN_PHONE}", "chín tám ba"),
        ("so dien thoai khong chin tam ba mot hai ba bon nam sau", "chin tam"),
        ("gọi số 0983.123.456 giúp tôi", "0983"),
        ("nhà tôi ở số nhà mười hai ngõ ba mươi tư phố hàng bài", "hàng bài"),
        ("tôi ở ngõ 45 ngách 12 đường láng", "ngách 12"),
    ],
)
def test_personal_data_is_found_typed_or_spoken(text: str, hidden: str) -> None:
    masked = mask_text(text)
    assert masked and hidden not in masked and "đã ẩn" in masked


@pytest.mark.parametrize(
    "text",
    [
        "nối máy một một lăm",
        "nhánh năm",
        "tôi năm nay sáu mươi tuổi",
        "số tiền hỗ trợ là bao nhiêu",
    ],
)
def test_requests_are_not_masked(text: str) -> None:
    assert mask_text(text) == text


def test_word_lists_and_caller_numbers_are_masked() -> None:
    words = [{"word": w, "start": float(i)} for i, w in enumerate(f"gọi {SPOKEN_PHONE}".split())]
    masked = mask_words(words)
    assert masked is not None
    assert [w["word"] for w in masked] == ["gọi"] + ["•••"] * 10
    assert [w["start"] for w in masked] == [w["start"] for w in words]
    assert mask_caller(CALLER) == "••••••••78"


def test_every_record_kind_named_in_the_console_exists() -> None:
    from bot.console.labels import KINDS, ROUTE_CHOICES
    from bot.vocabulary import NoteKind, Route

    assert set(KINDS) <= {str(k) for k in NoteKind}
    assert [r for r, _ in ROUTE_CHOICES] == [str(r) for r in Route]
