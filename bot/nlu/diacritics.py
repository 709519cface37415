"""Typed text without diacritics, given its marks back for a second reading.

A caller who types "ong toi kho tho" has dropped the marks that tell "không" from
"khổng" and "tỉnh" from "tính". The model is trained on bare variants of every
example too, but bare text is more ambiguous than marked text: on the held-out set
it routed 86.0% of bare sentences right against 89.9% of the same sentences with
their marks.

``DiacriticModel`` learns from the written training examples and the FAQ answers
which marked syllable a bare syllable most often is, and next to which neighbours
(a bigram model, decoded with Viterbi). It never learns from the generated variants
(bot/tools/training.py marks them): an accent-merged "nàm" would outvote "làm".
``DiacriticRestorer`` keeps that model in the Rasa model and adds the restored text
to the parse result (``restored_text``) of a message typed with no marks at all; the
brain then reads the message a second time, restored (bot/nlu/brain.py,
``read_typed_text``). Text with any mark is the recogniser's or a careful typist's,
and is left as it is.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Iterable

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import METADATA, METADATA_INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.nlu.components import OneFileComponent
from bot.nlu.routes import RESTORED_TEXT_KEY
from bot.nlu.text import has_marks, normalise, strip_diacritics

# Intent-level metadata of the generated variants (bot/tools/training.py writes it).
GENERATED_VARIANT = "generated_variant"
# Weight of the bigram against the unigram estimate. Chosen on the development set
# (tests/data/dev.tsv): syllables restored right were 93.2% at 0.3, 93.8% at 0.7,
# 93.7% at 0.9.
BIGRAM_WEIGHT = 0.7
_START, _END = "<s>", "</s>"


class DiacriticModel:
    """Syllable unigram and bigram counts of marked sentences, and the decoder."""

    def __init__(
        self, unigrams: Counter[str] | None = None, bigrams: Counter[tuple[str, str]] | None = None
    ) -> None:
        self.unigrams: Counter[str] = unigrams or Counter()
        self.bigrams: Counter[tuple[str, str]] = bigrams or Counter()
        self._index()

    def _index(self) -> None:
        self._total = sum(self.unigrams.values())
        self._types = len(self.unigrams) + 1
        self._marked_forms: dict[str, list[str]] = defaultdict(list)
        for word in self.unigrams:
            if word not in (_START, _END):
                self._marked_forms[strip_diacritics(word)].append(word)

    @classmethod
    def learn(cls, texts: Iterable[str]) -> DiacriticModel:
        """Counts from the sentences that carry marks; a sentence typed bare teaches nothing."""
        unigrams: Counter[str] = Counter()
        bigrams: Counter[tuple[str, str]] = Counter()
        for text in texts:
            words = normalise(text).split()
            if not words or not has_marks(" ".join(words)):
                continue
            unigrams.update(words)
            unigrams[_START] += 1
            padded = [_START, *words, _END]
            bigrams.update(zip(padded, padded[1:], strict=False))
        return cls(unigrams, bigrams)

    def _log_p(self, previous: str, word: str) -> float:
        unigram = (
            1 / self._types
            if word == _END
            else (self.unigrams[word] + 1) / (self._total + self._types)
        )
        seen = self.unigrams[previous]
        bigram = self.bigrams[previous, word] / seen if seen else 0.0
        return math.log(BIGRAM_WEIGHT * bigram + (1 - BIGRAM_WEIGHT) * unigram)

    def _best_before(
        self, best: dict[str, tuple[float, list[str]]], form: str
    ) -> tuple[float, list[str]]:
        """The best path that ends in ``form``, and its log probability."""
        score, path = max(
            ((s + self._log_p(prev, form), p) for prev, (s, p) in best.items()),
            key=lambda scored: scored[0],
        )
        return score, [*path, form]

    def restore(self, text: str) -> str | None:
        """``text`` with its marks back, or None: when it has marks already, or when
        there is nothing to restore. A syllable never seen stays as typed."""
        words = normalise(text).split()
        if not words or not self.unigrams or has_marks(" ".join(words)):
            return None
        # Viterbi over the marked forms of each syllable: best score and path per form.
        best: dict[str, tuple[float, list[str]]] = {_START: (0.0, [])}
        for word in words:
            forms = self._marked_forms.get(word) or [word]
            best = {form: self._best_before(best, form) for form in forms}
        _, path = self._best_before(best, _END)
        restored = " ".join(path[:-1])
        return restored if restored != " ".join(words) else None

    def to_json(self) -> str:
        return json.dumps(
            {
                "unigrams": dict(self.unigrams),
                "bigrams": [[a, b, n] for (a, b), n in self.bigrams.items()],
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, raw: str) -> DiacriticModel:
        data = json.loads(raw)
        return cls(Counter(data["unigrams"]), Counter({(a, b): n for a, b, n in data["bigrams"]}))


def _written(message: Message) -> bool:
    """A hand-written example, not a generated variant."""
    intent_metadata = (message.get(METADATA) or {}).get(METADATA_INTENT) or {}
    return not (isinstance(intent_metadata, dict) and intent_metadata.get(GENERATED_VARIANT))


# Registered as an intent classifier only for the graph's wiring (trained on the
# training data, run on each message); it sets no intent.
@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class DiacriticRestorer(OneFileComponent):
    """Rasa pipeline component: learns a ``DiacriticModel`` at training time and adds
    ``restored_text`` to the parse result of a message typed without any marks."""

    FILE = "diacritics.json"

    def __init__(self, model_storage: ModelStorage, resource: Resource) -> None:
        super().__init__(model_storage, resource)
        self.model = DiacriticModel()

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m.get(TEXT) or "" for m in training_data.training_examples if _written(m)]
        answers = [str(r.get(TEXT) or "") for rs in training_data.responses.values() for r in rs]
        self.model = DiacriticModel.learn([*examples, *answers])
        return self.save(self.model.to_json())

    def restore_state(self, state: str) -> None:
        self.model = DiacriticModel.from_json(state)

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            restored = self.model.restore(message.get(TEXT) or "")
            if restored:
                message.set(RESTORED_TEXT_KEY, restored, add_to_output=True)
        return messages
