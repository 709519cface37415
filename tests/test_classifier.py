"""The n-gram classifier (bot/nlu/classifier.py) on a small training set: Rasa's output
shapes, the FAQ answer as part of the class, and the model's round trip through storage."""

from __future__ import annotations

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.brain import parse_of
from bot.nlu.classifier import NgramIntentClassifier
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
    assert sum(confidences) == pytest.approx(1.0)  # six intents, all ranked
    assert data["intent"]["confidence"] == pytest.approx(confidences[0])
    # An answer's confidence is within its family: the family's answers add up to one.
    for family in ("faq_f0", "faq_social"):
        answers = data["response_selector"][family]["ranking"]
        assert sum(a["confidence"] for a in answers) == pytest.approx(1.0)
        assert (
            answers[0]["confidence"] == data["response_selector"][family]["response"]["confidence"]
        )


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
