"""How the emergency fast path's rules read beginnings of sentences.

On the voice line, a partial transcript of at least ``emergency_min_words`` words that the
red-flag layer reads as an emergency transfers the call to 115 at once, before the caller
has finished (``bot.call.machine``). That is the point for "mẹ tôi khó thở…", and a risk
for a sentence whose end takes it back: "mẹ tôi khó thở (hôm qua, giờ đỡ rồi)". This
benchmark runs the rules alone (no model) over every beginning of every sentence the
project has, and prints:

- for non-emergencies (the training examples of other intents, the held-out and development
  sets' other routes, the hard set's near-misses): the share with at least one beginning
  the rules read as an emergency, by the rule that fired, with examples (a whole sentence
  is read as the final transcript: tests/test_red_flags.py keeps the hard set's clean);
- for emergencies (held-out, development, hard set): the share the rules catch at all, and
  how many words in they first do;
- whole sentences, as written, without diacritics and accent-merged (the training data's
  variants): how many of the non-emergencies the rules read as an emergency, and how many
  of the emergencies, training examples included, they catch.

Prints figures; asserts nothing. Usage: ``.venv/bin/python bench/partial_flags_bench.py``
(a few seconds; no model needed).
"""

from __future__ import annotations

import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.settings import Settings  # noqa: E402
from bot.call.machine import CallConfig  # noqa: E402
from bot.nlu.red_flags import EMERGENCY_INTENT, ROUTE, red_flag  # noqa: E402
from bot.nlu.text import normalise  # noqa: E402
from bot.tools.evaluation import load_hard, load_heldout  # noqa: E402
from bot.tools.training import load_examples, variants_of  # noqa: E402


def forms(text: str) -> list[str]:
    """The sentence as written and its variants (bare, canonically and randomly merged)."""
    return [normalise(text), *variants_of(text)]


def first_flag(text: str, min_words: int) -> tuple[int, str, str] | None:
    """(words heard, rule, beginning) of the first beginning the rules read as an
    emergency, or None."""
    words = text.split()
    for n in range(min_words, len(words) + 1):
        beginning = " ".join(words[:n])
        flag = red_flag(beginning, partial=n < len(words))  # as the voice line reads it
        if flag is not None:
            return n, str(flag.rule), beginning
    return None


def main() -> None:
    s = Settings.from_env()
    min_words = CallConfig().emergency_min_words
    others: list[tuple[str, str]] = []
    emergencies: list[str] = []
    for path in (s.heldout, s.dev_set):
        for text, route in load_heldout(path):
            if route == ROUTE:
                emergencies.append(text)
            else:
                others.append((text, route))
    for row in load_hard(s.emergency_hard):
        if row.kind == "near_miss":
            others.append((row.text, "near-miss"))
        else:
            emergencies.append(row.text)
    trained_emergencies: list[str] = []
    for intent, texts in load_examples(s.nlu_data).items():
        if intent != EMERGENCY_INTENT:
            others += [(t, intent) for t in texts]
        else:
            trained_emergencies += texts

    fired = [(t, r, f) for t, r in others if (f := first_flag(t, min_words)) is not None]
    share = len(fired) / len(others)
    print(
        f"non-emergencies: {len(others)} sentences; a beginning of {len(fired)} ({share:.1%}) "
        f"reads as an emergency (partial transcripts of {min_words} words or more)"
    )
    for rule, count in Counter(f[1] for _, _, f in fired).most_common():
        print(f"  {rule}: {count}")
    for text, route, (_, _, beginning) in fired[:12]:
        print(f"    [{route}] {beginning!r} <- {text!r}")

    caught = [f for t in emergencies if (f := first_flag(t, min_words)) is not None]
    share = len(caught) / len(emergencies)
    print(
        f"emergencies: {len(emergencies)} sentences; the rules catch {len(caught)} ({share:.1%}),"
        " the rest are left to the classifier"
    )
    if caught:
        words = [f[0] for f in caught]
        median, most = statistics.median(words), max(words)
        print(f"  words heard when they first fire: median {median:g}, max {most}")

    whole = [v for t, _ in others for v in forms(t)]
    false = [v for v in whole if red_flag(v) is not None]
    print(
        f"whole sentences, each as written and in 3 variants: {len(false)} of {len(whole)} "
        f"non-emergency forms ({len(false) / len(whole):.2%}) read as an emergency"
    )
    for text in false[:8]:
        print(f"    {text!r}")
    emergency_forms = [v for t in emergencies + trained_emergencies for v in forms(t)]
    caught_whole = sum(red_flag(v) is not None for v in emergency_forms)
    print(
        f"  emergencies (training examples too): the rules catch {caught_whole} "
        f"of {len(emergency_forms)} forms"
    )


if __name__ == "__main__":
    main()
