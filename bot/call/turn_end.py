"""Where a caller's request may end: learned from the NLU training examples.

At a short pause the call may end the caller's turn early (bot/call/machine.py, ``understood``).
The NLU alone is a poor judge of that: it routes most beginnings of a request as confidently
as the whole ("cho tôi hỏi về" already reads as a question). The last word says more: a
request rarely ends on "về", "cho" or "của", and often on "ạ", "không" or "gì". ``EndWords``
counts, for every word of the training examples, how often it is the last one; a pause after
a word that seldom ends an example waits for the whole trailing silence.
bench/endpoint_bench.py measures the rule on the held-out set.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.nlu.text import normalise

# Rasa's inline entity markup: [text](entity), [text]{"entity": ...}; only the text is spoken.
_ENTITY_MARKUP = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\})")


def example_texts(nlu_dir: Path | str) -> Iterable[str]:
    """The text of every ``- example`` line of every ``examples: |`` block under ``nlu_dir``
    (intents, lookups, synonyms), in the recogniser's form: lowercase, no punctuation and no
    entity markup."""
    import yaml

    for path in sorted(Path(nlu_dir).rglob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("nlu", None) or []:
            block = item.get("examples") if isinstance(item, dict) else None
            if not isinstance(block, str):
                continue
            for line in block.splitlines():
                line = line.strip()
                if line.startswith("- "):
                    yield normalise(_ENTITY_MARKUP.sub(r"\1", line[2:].strip()))


@dataclass(frozen=True)
class EndWords:
    """How often each word ends a training example."""

    ends: Mapping[str, int]  # word -> examples it ends
    seen: Mapping[str, int]  # word -> times it occurs

    @classmethod
    def from_training_data(cls, nlu_dir: Path | str) -> EndWords:
        ends: Counter[str] = Counter()
        seen: Counter[str] = Counter()
        for text in example_texts(nlu_dir):
            words = text.split()
            if words:
                seen.update(words)
                ends[words[-1]] += 1
        return cls(dict(ends), dict(seen))

    def rate(self, word: str) -> float:
        """The share of the word's occurrences that end an example. A word never seen in
        training gets 0.5: nothing says it cannot end a request."""
        return (self.ends.get(word, 0) + 0.5) / (self.seen.get(word, 0) + 1)

    def may_end(self, text: str, minimum: float) -> bool:
        words = normalise(text).split()
        return bool(words) and self.rate(words[-1]) >= minimum
