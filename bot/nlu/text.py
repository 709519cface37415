"""Vietnamese text helpers shared by training, evaluation and routing.

Callers reach the bot three ways that must all land on the same route: the
recogniser's output (lowercase syllables with diacritics), text typed without
diacritics, and speech with Hanoi sound merges (l/n, tr/ch, s/x, d/gi/r), which
recognisers reproduce. The functions here produce those variants so the model is
trained on them and scored on them.
"""

from __future__ import annotations

import random
import re
import unicodedata

# Syllable onsets that Hanoi speech (and so the recogniser) confuses. Each class is
# a set of spellings that sound alike; longest spellings first so "tr" wins over "t".
MERGE_CLASSES: tuple[tuple[str, ...], ...] = (
    ("l", "n"),
    ("tr", "ch"),
    ("s", "x"),
    ("gi", "d", "r"),
)
# One fixed direction per class, the way a Hanoi speaker most often merges.
CANONICAL_MERGE: dict[str, str] = {"l": "n", "tr": "ch", "s": "x", "gi": "d", "r": "d"}

_ONSETS = sorted({o for cls in MERGE_CLASSES for o in cls}, key=len, reverse=True)
_CLASS_OF = {o: cls for cls in MERGE_CLASSES for o in cls}
_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")


def strip_diacritics(text: str) -> str:
    """'hỗ trợ đồng bào' -> 'ho tro dong bao' (đ is a letter, not a mark: mapped by hand)."""
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    return unicodedata.normalize("NFC", bare.replace("đ", "d").replace("Đ", "D"))


def normalise(text: str) -> str:
    """The recogniser's form: NFC, lowercase, no punctuation, single spaces."""
    text = unicodedata.normalize("NFC", text).lower()
    return _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip()


def fold(text: str) -> str:
    """A key for 'is this the same sentence': normalised and without diacritics."""
    return strip_diacritics(normalise(text))


def _split_onset(syllable: str) -> tuple[str, str]:
    for onset in _ONSETS:
        if syllable.startswith(onset):
            rest = syllable[len(onset) :]
            # "ng"/"nh" are onsets of their own, not "n" + vowel; "gi" needs a
            # following letter to be an onset ("gì" is g + ì, still merged to "dì").
            if onset == "n" and rest[:1] in ("g", "h"):
                return "", syllable
            return onset, rest
    return "", syllable


def merge_accent(text: str, rng: random.Random | None = None, rate: float = 1.0) -> str:
    """Apply Hanoi onset merges to each syllable.

    Without ``rng``: the canonical direction (l->n, tr->ch, s->x, gi/r->d) on every
    syllable that has one. With ``rng``: each mergeable syllable is changed with
    probability ``rate`` to another spelling of its class, in any direction, which
    is what an evaluation set should use so it does not mirror the training variant.
    """
    out = []
    for syllable in text.split(" "):
        onset, rest = _split_onset(syllable)
        if onset:
            if rng is None:
                onset = CANONICAL_MERGE.get(onset, onset)
            elif rng.random() < rate:
                onset = rng.choice([o for o in _CLASS_OF[onset] if o != onset])
            syllable = onset + rest
        out.append(syllable)
    return " ".join(out)
