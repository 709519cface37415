import pytest

from bot.nlu.components import spoken_branch
from bot.nlu.routes import ALL_ROUTES, FAQ_KEYS, Parse, branch_route, responsible_branch, route_for


def test_route_table_matches_the_product_brief():
    assert len(FAQ_KEYS) == 13
    assert len(ALL_ROUTES) == 21
    assert ALL_ROUTES[:6] == tuple(f"transfer:{n}" for n in range(1, 7))


@pytest.mark.parametrize(
    "parse, route",
    [
        (Parse("emergency", 0.9), "transfer:1"),
        (Parse("essential_supplies", 0.9), "transfer:6"),
        (Parse("faq_f0", 0.9, faq_key="f0_thuoc"), "faq:f0_thuoc"),
        # A selector key from the other family is not trusted.
        (Parse("faq_f0", 0.9, faq_key="ho_ngheo"), "fallback"),
        (Parse("operator", 0.9), "operator"),
        (Parse("choose_branch", 1.0, branch="4"), "transfer:4"),
        (Parse("choose_branch", 1.0, branch="0"), "operator"),
        (Parse("choose_branch", 0.8), "fallback"),
        (Parse("affirm", 0.99), "fallback"),
        (Parse("nlu_fallback", 0.4), "fallback"),
    ],
)
def test_route_for(parse, route):
    assert route_for(parse) == route


def test_branch_route_rejects_what_is_not_a_branch():
    assert branch_route("7") == "fallback"
    assert branch_route("x") == "fallback"
    assert branch_route(None) == "fallback"


def test_responsible_branch_of_faq_families():
    assert responsible_branch("faq:chi_tra") == 5
    assert responsible_branch("faq:f0_spo2") == 3
    assert responsible_branch("operator") is None


@pytest.mark.parametrize(
    "text, branch",
    [
        ("nhánh năm", 5),
        ("cho tôi phím ba", 3),
        ("em ơi cho chị sang nhánh lăm với", 5),
        ("bấm số bốn", 4),
        ("nối máy một một lăm", 1),
        ("gọi 115", 1),
        ("dạ năm ạ", 5),
        ("sáu", 6),
        ("phím không", 0),
        ("cho tôi số không", 0),
        ("nhanh nam", 5),  # typed without diacritics
        ("nhánh xáu", 6),  # s/x merge
        ("lối máy xố bốn tro tôi", 4),  # l/n, s/x, tr/ch merges at once
        ("nhánh lăm", 5),
    ],
)
def test_spoken_branch_finds_the_number(text, branch):
    assert spoken_branch(text) == branch


@pytest.mark.parametrize(
    "text",
    [
        "không",  # "no", not branch zero
        "dạ không ạ",
        "năm nay tôi sáu mươi tuổi",
        "nhà tôi có ba người",
        "bấm hai lần rồi mà không được",
        "nhánh bảy",
        "nhánh ba mươi",
        "",
    ],
)
def test_spoken_branch_ignores_numbers_that_are_not_branches(text):
    assert spoken_branch(text) is None
