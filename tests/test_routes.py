import pytest

from bot.nlu.components import spoken_branch
from bot.nlu.routes import Parse, responsible_branch, route_for, route_of_response
from bot.vocabulary import (
    FAQ_ROUTES,
    CallEnd,
    NoteKind,
    Route,
    Speaker,
    branch_route,
    parse_outcome,
    settled_by_bot,
)

pytestmark = pytest.mark.unit


def test_route_table_matches_the_product_brief():
    assert len(FAQ_ROUTES) == 13
    assert len(Route) == 21
    assert [r.value for r in Route][:6] == [f"transfer:{n}" for n in range(1, 7)]
    assert [r.branch for r in Route][:6] == [1, 2, 3, 4, 5, 6]
    assert Route.FAQ_F0_THUOC.faq_key == "f0_thuoc" and Route.OPERATOR.branch is None
    assert str(Route.TRANSFER_4) == "transfer:4" and f"{Route.FALLBACK}" == "fallback"


def test_a_route_that_does_not_exist_is_refused_with_the_list():
    with pytest.raises(
        ValueError, match="'transfer:7' is not a Route; expected one of: transfer:1"
    ):
        Route("transfer:7")
    with pytest.raises(ValueError):
        Route.faq("no_such_key")


def test_outcomes_are_routes_or_call_ends():
    assert parse_outcome("faq:chi_tra") is Route.FAQ_CHI_TRA
    assert parse_outcome("goodbye") is CallEnd.GOODBYE
    with pytest.raises(ValueError, match="not an outcome"):
        parse_outcome("hang-up")
    assert settled_by_bot(Route.FAQ_F0_SPO2) and settled_by_bot(CallEnd.GOODBYE)
    assert not settled_by_bot(Route.TRANSFER_2) and not settled_by_bot(CallEnd.HANGUP)
    assert not settled_by_bot(Route.FALLBACK) and not settled_by_bot(None)


def test_every_note_kind_has_its_speaker():
    assert NoteKind.UTTERANCE.speaker is Speaker.CALLER
    assert NoteKind.SAY.speaker is Speaker.BOT
    # The call's own events were once stored as the caller's words.
    for kind in ("silence", "error", "early_end", "call_started", "call_ended"):
        assert NoteKind(kind).speaker is Speaker.SYSTEM


def test_faq_answers_are_known_by_their_response():
    assert route_of_response("utter_faq_f0/f0_thuoc") is Route.FAQ_F0_THUOC
    assert route_of_response("utter_faq_social/f0_thuoc") is None  # the other family's key
    assert route_of_response("utter_offer_5") is None
    assert route_of_response(None) is None


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
    assert responsible_branch(Route.FAQ_CHI_TRA) == 5
    assert responsible_branch(Route.FAQ_F0_SPO2) == 3
    assert responsible_branch(Route.OPERATOR) is None


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
