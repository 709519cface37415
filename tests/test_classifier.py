"""The n-gram classifier (bot/nlu/classifier.py) on a small training set: Rasa's output
shapes, the FAQ answer as part of the class, and the model's round trip through storage."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.brain import parse_of
from bot.nlu.classifier import (
    NgramIntentClassifier,
    confidences,
    syllable_noise,
    with_words_left_out,
)
from bot.nlu.routes import route_for
from bot.vocabulary import Route

pytestmark = pytest.mark.unit

EXAMPLES = {
    "emergency": [
        "mẹ tôi khó thở tím tái cả môi",
        "bố tôi ngất xỉu trong nhà tắm rồi",
        "có người ngã xe chảy nhiều máu lắm",
    ],
    "cdc": [
        "tôi muốn đăng ký xét nghiệm cho cả nhà",
        "chỗ nào lấy mẫu xét nghiệm miễn phí",
        "khu tôi có ca nhiễm thì báo ai",
    ],
    "faq_f0/f0_thuoc": [
        "người dương tính uống thuốc gì",
        "thuốc hạ sốt uống mấy viên một ngày",
        "túi thuốc cho người bệnh có những thuốc gì",
    ],
    "faq_f0/f0_spo2": [
        "máy đo ô xy dùng thế nào",
        "đo spo hai ở ngón tay nào",
        "chỉ số ô xy bao nhiêu là bình thường",
    ],
    "faq_social/chi_tra": [
        "bao giờ thì nhận được tiền hỗ trợ",
        "tiền hỗ trợ phát ở phường hay chuyển khoản",
        "nhận tiền hỗ trợ cần mang giấy gì",
    ],
    "greet": ["xin chào", "chào em", "alo tổng đài đấy à"],
}
RESPONSES = {
    "utter_faq_f0/f0_thuoc": [{"text": "Dạ, người bệnh uống thuốc theo đơn của bác sĩ ạ."}],
    "utter_faq_f0/f0_spo2": [{"text": "Dạ, anh chị kẹp máy vào đầu ngón tay ạ."}],
    "utter_faq_social/chi_tra": [{"text": "Dạ, phường sẽ báo lịch nhận tiền ạ."}],
}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> NgramIntentClassifier:
    storage = LocalModelStorage(tmp_path_factory.mktemp("model"))
    resource = Resource("ngram")
    messages = [Message.build(text, intent) for intent, texts in EXAMPLES.items() for text in texts]
    trained = NgramIntentClassifier.create({"C": 10}, storage, resource, None)  # type: ignore[arg-type]
    trained.train(TrainingData(messages, responses=RESPONSES))
    # What the server runs is the model loaded back from storage, not the trained object.
    return NgramIntentClassifier.load({"C": 10}, storage, resource, None)  # type: ignore[arg-type]


def _parse(classifier: NgramIntentClassifier, text: str) -> dict:
    message = Message(data={"text": text})
    classifier.process([message])
    return message.as_dict(only_output_properties=True)


def test_a_faq_question_gets_its_family_as_intent_and_its_answer_in_the_selector(classifier):
    data = _parse(classifier, "người bệnh cô vít uống thuốc gì")
    assert data["intent"]["name"] == "faq_f0"
    selector = data["response_selector"]
    assert selector["all_retrieval_intents"] == ["faq_f0", "faq_social"]
    best = selector["faq_f0"]["response"]
    # Rasa's retrieval action speaks utter_action; the brain reads intent_response_key.
    assert best["intent_response_key"] == "faq_f0/f0_thuoc"
    assert best["utter_action"] == "utter_faq_f0/f0_thuoc"
    assert best["responses"] == RESPONSES["utter_faq_f0/f0_thuoc"]
    assert route_for(parse_of(data)) == Route.FAQ_F0_THUOC


def test_confidences_add_up(classifier):
    data = _parse(classifier, "người bệnh cô vít uống thuốc gì")
    ranking = data["intent_ranking"]
    confidences = [i["confidence"] for i in ranking]
    assert confidences == sorted(confidences, reverse=True)
    # Six intents, all ranked; what they leave is the noise class's share (none of these).
    assert 0.9 < sum(confidences) <= 1.0
    assert data["intent"]["confidence"] == pytest.approx(confidences[0])
    # An answer's confidence is within its family: the family's answers add up to one.
    for family in ("faq_f0", "faq_social"):
        answers = data["response_selector"][family]["ranking"]
        assert sum(a["confidence"] for a in answers) == pytest.approx(1.0)
        assert (
            answers[0]["confidence"] == data["response_selector"][family]["response"]["confidence"]
        )


def test_random_syllables_are_understood_as_nothing(classifier):
    # Strings of the training syllables in no order the examples have: the noise class's,
    # so no intent reaches the fallback threshold (0.4) and the bot asks again.
    for text in ("chào thuốc hỗ trợ uống tím", "tiền gì em tôi bệnh xin"):
        data = _parse(classifier, text)
        assert data["intent"]["confidence"] < 0.4, (text, data["intent"])
        assert sum(i["confidence"] for i in data["intent_ranking"]) < 0.5
    # A sentence of the examples' kind is still understood with confidence.
    assert _parse(classifier, "bà tôi khó thở môi tím tái rồi")["intent"]["confidence"] > 0.6


def test_noise_is_drawn_from_the_training_syllables_and_is_the_same_every_time():
    texts = ["bà tôi khó thở", "xin chào em"]
    noise = syllable_noise(texts, 50)
    assert noise == syllable_noise(texts, 50)  # seeded: training is repeatable
    syllables = {w for t in texts for w in t.split()}
    assert all(2 <= len(n.split()) <= 8 and set(n.split()) <= syllables for n in noise)
    assert syllable_noise([], 5) == []


def test_a_request_to_transfer_has_no_answer_key(classifier):
    data = _parse(classifier, "bà tôi khó thở môi tím tái rồi")
    assert data["intent"]["name"] == "emergency"
    assert route_for(parse_of(data)) == Route.TRANSFER_1


def test_text_is_read_in_the_recognisers_form(classifier):
    # Punctuation and capitals, as typed, are normalised like the training examples.
    assert _parse(classifier, "Máy đo Ô XY dùng thế nào?")["intent"]["name"] == "faq_f0"


def test_an_untrained_classifier_leaves_messages_alone(tmp_path):
    untrained = NgramIntentClassifier.create({}, LocalModelStorage(tmp_path), Resource("x"), None)  # type: ignore[arg-type]
    message = Message(data={"text": "xin chào"})
    untrained.process([message])
    assert message.get("intent") is None


def test_a_model_without_the_classifier_fails_to_load_unless_fine_tuning(tmp_path):
    storage, resource = LocalModelStorage(tmp_path), Resource("never-trained")
    serving = ExecutionContext(GraphSchema({}))
    with pytest.raises(ValueError):
        NgramIntentClassifier.load({}, storage, resource, serving)
    # Fine-tuning from a model of another pipeline: train() builds the classifier.
    finetuning = ExecutionContext(GraphSchema({}), is_finetuning=True)
    loaded = NgramIntentClassifier.load({}, storage, resource, finetuning)
    message = Message(data={"text": "xin chào"})
    loaded.process([message])
    assert message.get("intent") is None


def test_each_long_sentence_is_learnt_again_with_one_syllable_left_out():
    texts = ["bà tôi khó thở quá", "xin chào"]
    out, labels = with_words_left_out(texts, ["emergency", "greet"], copies=2)
    assert out[:2] == texts  # the sentences as written come first, unchanged
    extra = out[2:]
    assert labels[2:] == ["emergency", "emergency"]  # "xin chào" is too short to lose a word
    assert len(set(extra)) == 2  # a different syllable each time
    for sentence in extra:
        words = sentence.split()
        assert len(words) == 4
        # The written sentence less one syllable, in order.
        assert any(words == texts[0].split()[:i] + texts[0].split()[i + 1 :] for i in range(5))
    # Seeded by the sentence: the same copies whatever else is in the data or its order.
    again, _ = with_words_left_out(["một câu khác hẳn", texts[0]], ["x", "emergency"], copies=2)
    assert set(again) >= set(extra)


def test_scores_become_confidences_that_add_up_and_keep_their_order():
    scores = np.array([[1.0, -0.5, 0.2], [-1.0, -1.0, -0.9]])
    sharp, soft = confidences(scores, 0.15), confidences(scores, 1.0)
    for row in (*sharp, *soft):
        assert row.sum() == pytest.approx(1.0)
    assert list(sharp.argmax(axis=1)) == list(scores.argmax(axis=1)) == [0, 2]
    assert sharp[0, 0] > soft[0, 0]  # a lower temperature is surer of the same winner
    # With two classes the SVM gives one score, for the second class.
    two = confidences(np.array([2.0, -2.0]), 1.0)
    assert two.shape == (2, 2) and two[0, 1] > 0.9 and two[1, 0] > 0.9
