"""What the recogniser costs per second of speech: free decoding, with a grammar, and with
other decoder settings.

Decodes the Korean clips of voice_bench.py (espeak-ng, 20 clips, 8 kHz converted to the
recogniser's 16 kHz, fed in 20 ms chunks as a call does) with the stand-in Vosk model, or
the one given by ``--vosk``, and prints CPU-seconds per second of speech (process time,
median of ``--repeats``) for:

- **free**: the model's own language model, as the server decodes by default;
- **grammar**: a grammar of the clips' sentences (their words the model knows, and [unk]),
  which is what ``BOT_ASR_VOCABULARY=1`` does with the phrases of nlu_data/;
- **conf**: free, with ``--conf`` overriding Kaldi options of the model's conf/model.conf
  (for example ``max-active=1000,beam=8``), through a copy of the model folder whose other
  parts are links.

It also prints the first transcripts of each, since a cheaper decoder may hear other words.
Prints figures; asserts nothing. Usage:

    .venv/bin/python bench/asr_bench.py [--conf max-active=1000,beam=8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from voice_bench import SENTENCES, make_speech  # noqa: E402

from bot.asr.vosk_engine import VoskModel, VoskRecognition  # noqa: E402
from bot.audio.formats import RECOGNISER, AudioChunk, AudioFormat, Converter  # noqa: E402
from bot.speech_models import stand_in_models  # noqa: E402

CHUNK = RECOGNISER.bytes_for_ms(20)


def decode(
    model: VoskModel, clips: Sequence[bytes], phrases: list[str] | None
) -> tuple[float, list[str]]:
    """CPU-seconds spent, and the transcripts."""
    spent, texts = 0.0, []
    for pcm in clips:
        recognition = VoskRecognition(model, phrases)
        started = time.process_time()
        for i in range(0, len(pcm) - CHUNK + 1, CHUNK):
            recognition.accept(AudioChunk(pcm[i : i + CHUNK], RECOGNISER))
        texts.append(recognition.finish().text)
        spent += time.process_time() - started
    return spent, texts


def with_conf(model_dir: Path, overrides: str, into: Path) -> Path:
    """A copy of the model folder whose conf/model.conf has these Kaldi options changed."""
    into.mkdir()
    for part in model_dir.iterdir():
        if part.name != "conf":
            (into / part.name).symlink_to(part)
    (into / "conf").mkdir()
    for part in (model_dir / "conf").iterdir():
        if part.name != "model.conf":
            (into / "conf" / part.name).symlink_to(part)
    text = (model_dir / "conf" / "model.conf").read_text()
    for item in overrides.split(","):
        key, _, value = item.partition("=")
        text, found = re.subn(rf"--{re.escape(key.strip())}=\S+", f"--{key.strip()}={value}", text)
        if not found:
            text += f"--{key.strip()}={value}\n"
    (into / "conf" / "model.conf").write_text(text)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vosk", type=Path, help="Vosk model folder (default: the stand-in)")
    parser.add_argument("--conf", help="Kaldi options to override, e.g. max-active=1000,beam=8")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model_dir = args.vosk or stand_in_models().vosk

    with tempfile.TemporaryDirectory(prefix="asr-bench-") as work:
        clips = make_speech(Path(work))
        to_recogniser = Converter(AudioFormat(8000), RECOGNISER)
        pcm = [to_recogniser.convert(AudioChunk(c.pcm, AudioFormat(8000))).data for c in clips]
        seconds = sum(c.seconds for c in clips)
        model = VoskModel(model_dir)
        grammar = [" ".join(w for w in s.split() if model.knows(w)) for s in SENTENCES]
        runs: list[tuple[str, VoskModel, list[str] | None]] = [
            ("free", model, None),
            (f"grammar ({len({w for p in grammar for w in p.split()})} words)", model, grammar),
        ]
        if args.conf:
            tuned = with_conf(model_dir, args.conf, Path(work) / "tuned")
            runs.append((f"conf {args.conf}", VoskModel(tuned), None))

        print(f"model: {model_dir}; {len(clips)} clips, {seconds:.1f} s of speech")
        for name, m, phrases in runs:
            spent: list[float] = []
            for _ in range(args.repeats):
                cpu, texts = decode(m, pcm, phrases)
                spent.append(cpu)
            rtf = statistics.median(spent) / seconds
            print(f"{name:>40}: {rtf:.3f} CPU-s per s of speech; first: {' / '.join(texts[:2])}")


if __name__ == "__main__":
    main()
