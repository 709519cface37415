"""How the early end of turn would behave on the held-out set, with the real Rasa model.

At a short pause the call routes the partial transcript, and ends the caller's turn at once
if the NLU understands it and its last word often ends a request (``bot.call.understood``).
This benchmark asks, for every held-out sentence, for each confidence threshold in
``--thresholds`` and each minimum end rate of the last word in ``--end-rates`` (0: the NLU
alone):

- **fast**: would the whole sentence, followed by a pause, end the turn early? Those replies
  skip the rest of the trailing silence (700 - 250 ms with the defaults).
- **right when fast**: of those, how many the NLU routed to the expected route.
- **cut per pause**: the share of word boundaries inside sentences where a pause would end
  the turn before the caller has finished: the chance that one mid-sentence pause cuts a
  caller off.
- **cut, other route**: of those cuts, how many would have been answered with another route
  than the whole sentence's; a cut with the same route costs nothing the caller would hear.
- **wrong cut per pause**: the two together: the chance that one mid-sentence pause gets the
  caller an answer to another request (until they go on, and the bot asks again with all).
- **sentences cut**: the share of sentences with at least one such boundary (the worst case:
  a caller who pauses at every word).

Prints figures; asserts nothing. Usage (after `make model`):

    .venv/bin/python bench/endpoint_bench.py [--thresholds 0.8,0.85,0.9] \
        [--end-rates 0,0.05,0.1,0.2]

About 2 minutes: one model load and one parse per prefix of each sentence.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.settings import Settings, quiet_libraries  # noqa: E402

SETTINGS = Settings.from_env()
quiet_libraries(SETTINGS.log_level)

from bot.call.machine import CallConfig, understood  # noqa: E402
from bot.call.turn_end import EndWords  # noqa: E402
from bot.nlu.brain import Brain, newest_model, run  # noqa: E402
from bot.nlu.routes import RouteResult  # noqa: E402
from bot.tools.evaluation import load_heldout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thresholds", default="0.8,0.85,0.9")
    parser.add_argument("--end-rates", default="0,0.05,0.1,0.2")
    parser.add_argument("--model", help="Rasa model file (default: newest in models/)")
    args = parser.parse_args()
    thresholds = [float(t) for t in args.thresholds.split(",")]
    end_rates = [float(r) for r in args.end_rates.split(",")]
    end_words = EndWords.from_training_data(SETTINGS.nlu_data)

    rows = load_heldout(SETTINGS.heldout)
    brain = Brain(args.model or newest_model(SETTINGS.models_dir))
    run(brain.route("xin chào"))  # warm-up: the first parse builds TensorFlow's graphs
    started = time.perf_counter()
    # Every sentence and every proper prefix of it, parsed once.
    parsed: list[tuple[str, RouteResult, list[RouteResult]]] = []  # expected, whole, prefixes
    for text, expected in rows:
        words = text.split()
        full = run(brain.route(text))
        prefixes = [run(brain.route(" ".join(words[:k]))) for k in range(1, len(words))]
        parsed.append((expected, full, prefixes))
    seconds = time.perf_counter() - started
    parses = sum(1 + len(p) for _, _, p in parsed)
    print(f"model: {Path(brain.model_path).name}")
    print(
        f"held-out: {len(rows)} sentences, {parses} parses in {seconds:.0f} s "
        f"({1000 * seconds / parses:.0f} ms each)\n"
    )

    print(
        f"{'threshold':>9} {'end rate':>8} {'fast':>7} {'right when fast':>15} "
        f"{'cut per pause':>13} {'cut, other route':>16} {'wrong cut per pause':>19} "
        f"{'sentences cut':>13}"
    )
    for threshold, end_rate in [(t, r) for t in thresholds for r in end_rates]:
        config = dataclasses.replace(
            CallConfig(),
            early_end_confidence=threshold,
            end_words=end_words if end_rate > 0 else None,
            early_end_min_end_rate=end_rate,
        )

        def ends(r: RouteResult, config: CallConfig = config) -> bool:
            return understood(r.text, r.route, r.intent, r.confidence, config)

        fast = [(expected, full) for expected, full, _ in parsed if ends(full)]
        right = sum(full.route == expected for expected, full in fast)
        boundaries = sum(len(p) for _, _, p in parsed)
        cuts = [(full, r) for _, full, prefixes in parsed for r in prefixes if ends(r)]
        other = sum(r.route != full.route for full, r in cuts)
        cut_sentences = sum(any(map(ends, p)) for _, _, p in parsed)
        print(
            f"{threshold:>9.2f} {end_rate:>8.2f} {pct(len(fast), len(parsed)):>7} "
            f"{pct(right, len(fast)):>15} {pct(len(cuts), boundaries):>13} "
            f"{pct(other, len(cuts)):>16} {pct(other, boundaries):>19} "
            f"{pct(cut_sentences, len(parsed)):>13}"
        )
    print(
        f"\nthe call's settings: BOT_EARLY_END_CONFIDENCE = {SETTINGS.early_end_confidence}, "
        f"BOT_EARLY_END_MIN_END_RATE = {SETTINGS.early_end_min_end_rate}; "
        f"complete dialogue acts: {sorted(CallConfig().early_end_intents)}"
    )


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


if __name__ == "__main__":
    main()
