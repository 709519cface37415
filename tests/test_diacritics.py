"""Typed text without diacritics given its marks back (bot/nlu/diacritics.py), and the
brain's choice between the two readings (bot/nlu/brain.py, ``read_typed_text``)."""

from __future__ import annotations

import pytest
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.brain import parse_of, read_typed_text
from bot.nlu.diacritics import GENERATED_VARIANT, DiacriticModel, DiacriticRestorer
from bot.nlu.routes import RESTORED_TEXT_KEY, route_for
from bot.tools.training import write_variants
from bot.vocabulary import Route

pytestmark = pytest.mark.unit

CORPUS = [
    "bố tôi không tỉnh lại được",
    "công ty không tính lương cho tôi",
    "tôi muốn hỏi về tiền lương tháng này",
    "mẹ tôi khó thở quá",
    "xin chào tổng đài",
]


def test_the_neighbours_choose_between_marked_forms():
    model = DiacriticModel.learn(CORPUS)
    # "tinh" is "tỉnh" beside "lại" and "tính" beside "lương": the bigrams decide.
    assert model.restore("bo toi khong tinh lai duoc") == "bố tôi không tỉnh lại được"
    assert model.restore("cong ty khong tinh luong") == "công ty không tính lương"
    assert model.restore("Me toi kho tho qua!") == "mẹ tôi khó thở quá"


def test_a_syllable_never_seen_stays_as_typed():
    model = DiacriticModel.learn(CORPUS)
    assert model.restore("me toi bop nguc") == "mẹ tôi bop nguc"


@pytest.mark.parametrize(
    "text",
    [
        "mẹ tôi khó thở quá",  # the recogniser's text: marked already
        "me tôi kho tho",  # one mark: typed by someone who uses them, left alone
        "",
        "   ",
        "bop nguc",  # nothing the model knows
    ],
)
def test_nothing_to_restore_is_none(text):
    assert DiacriticModel.learn(CORPUS).restore(text) is None


def test_a_sentence_typed_bare_teaches_nothing():
    model = DiacriticModel.learn([*CORPUS, "me toi kho tho qua", "me toi kho tho qua"])
    assert model.restore("me toi kho tho") == "mẹ tôi khó thở"


def test_an_untrained_model_restores_nothing():
    assert DiacriticModel().restore("me toi kho tho") is None


def test_the_model_survives_its_json():
    model = DiacriticModel.learn(CORPUS)
    again = DiacriticModel.from_json(model.to_json())
    assert again.unigrams == model.unigrams and again.bigrams == model.bigrams
    assert again.restore("cong ty khong tinh luong") == "công ty không tính lương"


def _restorer(tmp_path, messages: list[Message], responses=None) -> DiacriticRestorer:
    storage, resource = LocalModelStorage(tmp_path), Resource("diacritics")
    restorer = DiacriticRestorer.create({}, storage, resource, None)  # type: ignore[arg-type]
    restorer.train(TrainingData(messages, responses=responses or {}))
    return DiacriticRestorer.load({}, storage, resource, None)  # type: ignore[arg-type]


def test_the_component_learns_written_examples_and_answers_not_generated_variants(tmp_path):
    written = Message.build("tôi làm công nhân", "faq_social")
    # The accent-merged variants of a training run ("nàm" for "làm"), three of them:
    # counted, they would outvote the one written sentence.
    variants = [
        Message.build("tôi nàm công nhân", "faq_social", intent_metadata={GENERATED_VARIANT: True})
        for _ in range(3)
    ]
    answers = {"utter_faq_social/a": [{"text": "Dạ, công nhân được hỗ trợ ạ."}]}
    restorer = _restorer(tmp_path, [written, *variants], answers)
    assert restorer.model.restore("toi lam cong nhan") == "tôi làm công nhân"
    assert restorer.model.restore("duoc ho tro") == "được hỗ trợ"  # from the answer


def test_the_component_adds_restored_text_to_bare_messages_only(tmp_path):
    restorer = _restorer(tmp_path, [Message.build("mẹ tôi khó thở quá", "emergency")])
    bare, marked = Message(data={"text": "me toi kho tho"}), Message(data={"text": "mẹ tôi"})
    restorer.process([bare, marked])
    assert bare.get(RESTORED_TEXT_KEY) == "mẹ tôi khó thở"
    assert RESTORED_TEXT_KEY in bare.as_dict(only_output_properties=True)
    assert marked.get(RESTORED_TEXT_KEY) is None


def test_generated_variants_carry_their_mark(tmp_path):
    data = tmp_path / "nlu"
    data.mkdir()
    (data / "nlu.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: faq_social\n  examples: |\n    - tôi làm công nhân\n',
        encoding="utf-8",
    )
    from rasa.shared.nlu.training_data.loading import load_data

    path, count = write_variants(data, tmp_path / "build")
    generated = load_data(str(path)).intent_examples
    assert count == len(generated) > 0
    assert all(m.get("metadata")["intent"] == {GENERATED_VARIANT: True} for m in generated)
    written = load_data(str(data / "nlu.yml")).intent_examples
    assert all(not m.get("metadata") for m in written)


def _parse(text: str, intent: str, confidence: float = 0.9, restored: str | None = None) -> dict:
    data = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": []}
    return data | ({RESTORED_TEXT_KEY: restored} if restored else {})


def test_the_restored_reading_is_acted_on_with_the_typed_text_kept():
    typed = _parse("toi lam cong nhan", "nlu_fallback", 0.55, restored="tôi làm công nhân")
    restored = _parse("tôi làm công nhân", "social_officer", 0.97)
    chosen = read_typed_text(typed, restored)
    assert chosen["intent"]["name"] == "social_officer"
    assert chosen["text"] == "toi lam cong nhan"
    assert chosen[RESTORED_TEXT_KEY] == "tôi làm công nhân"


def test_an_emergency_heard_as_typed_is_never_given_up():
    typed = _parse("ong toi om nguc ren dau", "emergency", 0.96, restored="ông tôi ôm ngực rên đâu")
    restored = _parse("ông tôi ôm ngực rên đâu", "nlu_fallback", 0.55)
    assert read_typed_text(typed, restored) is typed


def test_a_key_named_in_typed_text_is_kept_when_the_restorer_reads_the_digit_otherwise():
    key = {"entity": "branch", "value": "6", "extractor": "SpokenBranchClassifier"}
    typed = _parse("noi may sau", "choose_branch", 1.0, restored="nối máy sau") | {
        "entities": [key]
    }
    restored = _parse("nối máy sau", "nlu_fallback", 0.4)
    chosen = read_typed_text(typed, restored)
    assert chosen is typed
    assert route_for(parse_of(chosen)) == Route.TRANSFER_6
