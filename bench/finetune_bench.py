"""Fine-tuning from the active model vs a full training: time and held-out accuracy.

Both train the same data: nlu_data/ plus a few new examples (a trainer's typical
batch), in a temporary copy, so nlu_data/ and models/ are left alone. Each model is
scored on tests/data/heldout.tsv (three variants) and on the new examples.
Run at low priority; it trains twice (10-25 min each on two cores at full speed):

    nice -n 15 .venv/bin/python bench/finetune_bench.py [--base MODEL] [--epoch-fraction 0.5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.app.settings import Settings, quiet_libraries  # noqa: E402

# Three sentences in the recogniser's form, of three routes, none in the training data.
NEW_EXAMPLES = {
    "emergency": "ông nhà tôi ngã cầu thang chảy nhiều máu lắm",
    "essential_supplies": "khu tôi bị phong tỏa ba hôm nay không có rau ăn",
    "cdc": "cho tôi hỏi chỗ tiêm vắc xin mũi ba ở đâu",
}
ROUTES = {"emergency": "transfer:1", "essential_supplies": "transfer:6", "cdc": "transfer:2"}


def main() -> None:
    s = Settings.from_env()  # read once, here, and passed down
    quiet_libraries(s.log_level)  # before Rasa is imported
    from bot.nlu.brain import Brain
    from bot.tools.comparison import score_model
    from bot.tools.examples import add_example_to
    from bot.tools.model_registry import default_registry

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, help="model to fine-tune (default: the live one)")
    parser.add_argument("--epoch-fraction", type=float, default=0.5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    base = args.base or default_registry(s).active_path()
    from bot.tools.training import train

    tmp = Path(tempfile.mkdtemp(prefix="finetune-bench-"))
    data = tmp / "nlu_data"
    shutil.copytree(s.nlu_data, data)
    for intent, text in NEW_EXAMPLES.items():
        add_example_to(data, intent, text)
    added = [(text, ROUTES[i]) for i, text in NEW_EXAMPLES.items()]
    figures: dict[str, object] = {"base": base.name, "epoch_fraction": args.epoch_fraction}
    for kind, finetune in (("finetune", base), ("full", None)):
        out = tmp / kind
        out.mkdir()
        started = time.monotonic()
        model = train(
            s, data_dir=data, output=out, finetune_from=finetune, epoch_fraction=args.epoch_fraction
        )
        seconds = time.monotonic() - started
        scores = score_model(Brain(model), added, s.heldout)
        figures[kind] = {"seconds": round(seconds, 1), **scores.summary()}
        print(f"{kind}: {seconds:.0f} s, {scores.summary()}", flush=True)
    print(json.dumps(figures, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
