"""What the brain does with noise: strings of the training data's own syllables in random order.

A misheard line, a caller's television or two people talking at once reach the brain as
strings of real Vietnamese syllables that say nothing. A hotline should answer those with
"please say it again", not with an FAQ answer or, worst, a transfer to 115. This benchmark
draws ``--count`` such strings the way the classifier draws its noise (``syllable_noise``,
2 to 8 syllables) from the written training examples, with its own seed so they are not the
strings the classifier learnt as noise, and prints how many the brain routes (any route but
``fallback``), how many to the emergency branch, and the median
confidence. Asserts nothing. Usage (after `make model`):

    .venv/bin/python bench/noise_bench.py [--count 1000] [--model MODEL]

About a minute: one model load and one parse per string.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.settings import Settings, quiet_libraries  # noqa: E402

SETTINGS = Settings.from_env()
quiet_libraries(SETTINGS.log_level)

from bot.nlu.brain import Brain, newest_model, run  # noqa: E402
from bot.nlu.classifier import syllable_noise  # noqa: E402
from bot.nlu.text import normalise  # noqa: E402
from bot.tools.training import load_examples  # noqa: E402
from bot.vocabulary import EMERGENCY, Route  # noqa: E402

_SEED = 20261201  # not the classifier's (0): these strings were never trained on


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--model", help="Rasa model file (default: newest in models/)")
    args = parser.parse_args()
    examples = load_examples(SETTINGS.nlu_data)
    written = [normalise(t) for texts in examples.values() for t in texts]
    syllables = {w for t in written for w in t.split()}
    noise = syllable_noise(written, args.count, seed=_SEED)

    brain = Brain(args.model or newest_model(SETTINGS.models_dir))
    results = [run(brain.route(text)) for text in noise]
    routed = [r for r in results if r.route != Route.FALLBACK]
    routes = Counter(str(r.route) for r in routed)
    print(f"model: {Path(brain.model_path).name}")
    print(f"{len(noise)} random strings of {len(syllables)} training syllables (2-8 each)")
    print(
        f"routed (not 'please say it again'): {len(routed)} ({100 * len(routed) / len(noise):.1f}%)"
    )
    emergencies = sum(r.route == EMERGENCY for r in results)
    print(f"to the emergency branch: {emergencies} ({100 * emergencies / len(noise):.1f}%)")
    print(f"median confidence: {statistics.median(r.confidence for r in results):.2f}")
    print("most frequent routes:", ", ".join(f"{k} {v}" for k, v in routes.most_common(5)))
    for r in routed[:5]:
        print(f"  e.g. {r.text!r} -> {r.route} ({r.confidence:.2f})")


if __name__ == "__main__":
    main()
