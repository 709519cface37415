"""The statistical reader: what a caller wants, from syllable and character n-grams.

One linear support-vector machine (scikit-learn, which Rasa already brings) over
TF-IDF weighted syllables and syllable pairs (the Vietnamese words) and character
n-grams within syllables (robust to a missing mark, a Hanoi onset merge or a
recogniser's near miss). Its classes are every intent, with each FAQ answer a class
of its own ("faq_f0/f0_thuoc"), so one model decides both the intent and the answer.
Its scores become confidences by a softmax at a fixed temperature.

Each training sentence of four syllables or more is also learnt with one syllable
left out, three times: callers leave words out and the recogniser drops them, and a model
that has seen a sentence without each of its words does not hang a route on one.

It also learns a class of noise: strings of the training data's syllables drawn at
random. Without it, a one-vs-rest SVM hands an utterance no class claims (a misheard
line, "hầm bà lằng xắng cấu") to whichever class claims it least badly, with all the
confidence a softmax gives; with it, such an utterance is confidently nothing, and
that share of the confidence is left to no intent, so the fallback threshold says
"not understood".

It replaced DIET and the two ResponseSelectors (README, "The NLU pipeline"): on the
development set the first linear model (a logistic regression) routed 94.5% of
sentences right against their 89.5%, and trained in about a minute where they took
nineteen; the SVM over the augmented sentences routes better still, and the whole
Rasa training takes about a minute and a half instead of two and a half (README,
"Figures"). Without a pretrained Vietnamese encoder (none can
be downloaded here) the n-grams are the meaning, and a linear model over them
generalises at least as well as a neural one trained on them.

Its output has Rasa's shapes, so everything downstream is unchanged: ``intent`` and
``intent_ranking`` (a retrieval intent's confidence is the sum of its answers'), and
``response_selector`` with each FAQ family's best answer and its confidence within
the family, which Rasa's retrieval actions read to speak the answer.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from typing import Any

import joblib
import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import (
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion
from sklearn.svm import LinearSVC

from bot.nlu.text import normalise

_MODEL_FILE = "ngram_classifier.joblib"
_STATE_FILE = "ngram_classifier.json"  # the FAQ answers' texts, for Rasa's output
_SELECTOR = "response_selector"
_ALL_RETRIEVAL_INTENTS = "all_retrieval_intents"
_RANKING_LENGTH = 10
# The class of random syllable strings (not an intent: its share goes to no intent).
NOISE_CLASS = "_noise"


def _label(message: Message) -> str:
    """The class of a training example: its answer key for FAQ questions."""
    return str(message.get(INTENT_RESPONSE_KEY) or message.get(INTENT))


def with_words_left_out(
    texts: list[str], labels: list[str], copies: int, min_syllables: int = 4
) -> tuple[list[str], list[str]]:
    """The sentences, and each one of ``min_syllables`` or more again ``copies`` times
    with one syllable left out (a different one each time; seeded by the sentence, so
    training is the same whatever the order of the data)."""
    out_texts, out_labels = list(texts), list(labels)
    for text, label in zip(texts, labels, strict=True):
        words = text.split()
        if len(words) < min_syllables:
            continue
        rng = random.Random(hashlib.sha256(text.encode()).digest())
        for gap in sorted(rng.sample(range(len(words)), min(copies, len(words)))):
            out_texts.append(" ".join(words[:gap] + words[gap + 1 :]))
            out_labels.append(label)
    return out_texts, out_labels


def syllable_noise(texts: list[str], count: int, seed: int = 0) -> list[str]:
    """``count`` strings of 2 to 8 syllables drawn at random from those of ``texts``."""
    syllables = sorted({w for text in texts for w in text.split()})
    if not syllables:
        return []
    rng = random.Random(seed)
    return [" ".join(rng.choices(syllables, k=rng.randint(2, 8))) for _ in range(count)]


def confidences(scores: np.ndarray[Any, Any], temperature: float) -> np.ndarray[Any, Any]:
    """The SVM's scores (one row per sentence) as confidences that add up to one."""
    if scores.ndim == 1:  # two classes: one score, for the second
        scores = np.stack([-scores, scores], axis=1)
    return np.asarray(softmax(scores / temperature, axis=1))


def _utter_action(key: str) -> str:
    return f"utter_{key}"


def _families(classes: Any) -> list[str]:
    """The retrieval intents among the classes ("faq_f0" of "faq_f0/f0_thuoc")."""
    return sorted({str(c).partition("/")[0] for c in classes if "/" in str(c)})


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class NgramIntentClassifier(GraphComponent, IntentClassifier):
    """Rasa pipeline component: intents and FAQ answers from one linear model."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            # The SVM's inverse regularisation; the temperature that turns its scores
            # into confidences (0.4 in config.yml is the fallback threshold on them); how
            # many copies of a sentence with one syllable left out it learns from; how many
            # random syllable strings it learns as noise. All chosen on the development set
            # (README, "Figures").
            "C": 1.0,
            "temperature": 0.2,
            "words_left_out": 3,
            "noise_sentences": 3000,
            "word_ngrams": [1, 2],
            "char_ngrams": [2, 4],
            "max_iter": 3000,
        }

    def __init__(
        self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource
    ) -> None:
        self._config = {**self.get_default_config(), **config}
        self._model_storage, self._resource = model_storage, resource
        self._features: FeatureUnion | None = None
        self._model: LinearSVC | None = None
        self._families: list[str] = []
        self._responses: dict[str, list[dict[str, Any]]] = {}

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> NgramIntentClassifier:
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> NgramIntentClassifier:
        component = cls(config, model_storage, resource)
        try:
            with model_storage.read_from(resource) as folder:
                component._features, component._model = joblib.load(folder / _MODEL_FILE)
                responses = json.loads((folder / _STATE_FILE).read_text(encoding="utf-8"))
        except ValueError:
            # Fine-tuning from a model trained without this component (DIET's): train()
            # builds it. Anywhere else a model without it is broken, and must say so
            # rather than read every caller as not understood.
            if execution_context.is_finetuning:
                return component
            raise
        component._families = _families(component._model.classes_)
        component._responses = responses
        return component

    def _vectoriser(self) -> FeatureUnion:
        words, chars = self._config["word_ngrams"], self._config["char_ngrams"]
        return FeatureUnion(
            [
                (
                    "words",
                    TfidfVectorizer(analyzer="word", ngram_range=tuple(words), sublinear_tf=True),
                ),
                (
                    "chars",
                    TfidfVectorizer(
                        analyzer="char_wb", ngram_range=tuple(chars), sublinear_tf=True
                    ),
                ),
            ]
        )

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if m.get(TEXT)]
        texts, labels = with_words_left_out(
            [normalise(m.get(TEXT)) for m in examples],
            [_label(m) for m in examples],
            copies=int(self._config["words_left_out"]),
        )
        noise = syllable_noise(texts, int(self._config["noise_sentences"]))
        texts, labels = texts + noise, labels + [NOISE_CLASS] * len(noise)
        self._features = self._vectoriser()
        self._model = LinearSVC(C=float(self._config["C"]), max_iter=int(self._config["max_iter"]))
        self._model.fit(self._features.fit_transform(texts), labels)
        self._families = _families(self._model.classes_)
        self._responses = {
            name: list(variants)
            for name, variants in training_data.responses.items()
            if "/" in name  # the FAQ answers: utter_faq_f0/f0_thuoc
        }
        with self._model_storage.write_to(self._resource) as folder:
            joblib.dump((self._features, self._model), folder / _MODEL_FILE)
            text = json.dumps(self._responses, ensure_ascii=False)
            (folder / _STATE_FILE).write_text(text, "utf-8")
        return self._resource

    def process(self, messages: list[Message]) -> list[Message]:
        if self._model is None or self._features is None:
            return messages
        texts = [normalise(m.get(TEXT) or "") for m in messages]
        scores = self._model.decision_function(self._features.transform(texts))
        probabilities = confidences(scores, float(self._config["temperature"]))
        for message, row in zip(messages, probabilities, strict=True):
            self._set_outputs(message, row)
        return messages

    def _set_outputs(self, message: Message, row: np.ndarray[Any, Any]) -> None:
        assert self._model is not None
        by_intent: dict[str, float] = defaultdict(float)
        answers: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for label, p in zip(self._model.classes_, row, strict=True):
            if label == NOISE_CLASS:
                continue  # the share of "none of these": no intent gets it
            intent, _, _ = label.partition("/")
            by_intent[intent] += float(p)
            if intent in self._families:
                answers[intent].append((label, float(p)))
        ranking = sorted(by_intent.items(), key=lambda item: -item[1])
        message.set(
            INTENT,
            {INTENT_NAME_KEY: ranking[0][0], PREDICTED_CONFIDENCE_KEY: ranking[0][1]},
            add_to_output=True,
        )
        message.set(
            INTENT_RANKING_KEY,
            [
                {INTENT_NAME_KEY: n, PREDICTED_CONFIDENCE_KEY: p}
                for n, p in ranking[:_RANKING_LENGTH]
            ],
            add_to_output=True,
        )
        selector: dict[str, Any] = {_ALL_RETRIEVAL_INTENTS: self._families}
        for intent, scored in answers.items():
            scored.sort(key=lambda item: -item[1])
            family = sum(p for _, p in scored) or 1.0
            best = scored[0][0]
            selector[intent] = {
                "response": {
                    "responses": self._responses.get(_utter_action(best), []),
                    PREDICTED_CONFIDENCE_KEY: scored[0][1] / family,
                    INTENT_RESPONSE_KEY: best,
                    "utter_action": _utter_action(best),
                },
                "ranking": [
                    {PREDICTED_CONFIDENCE_KEY: p / family, INTENT_RESPONSE_KEY: key}
                    for key, p in scored[:_RANKING_LENGTH]
                ],
            }
        message.set(_SELECTOR, selector, add_to_output=True)
