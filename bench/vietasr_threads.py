"""Does vietasr decode on several threads at once? (The embedded Vietnamese recogniser.)

    .venv/bin/python bench/vietasr_threads.py [--threads 1,2,4] [--samples 300]

Two measurements on the six vieneu clips (build/vieneu/, `make test` puts them there):

1. For 1, 2, 4 threads, each decoding every clip on its own session of one shared pipeline:
   wall time, the process's CPU time, and CPU seconds per second of audio. A lock inside the
   library would keep CPU per wall second at one core whatever the threads; on a shared
   machine the scheduler's share for the process caps it too, so read it with (2).
2. While two threads decode (one shared pipeline, then two pipelines), the state of each
   thread sampled every 20 ms from /proc: a thread blocked on a lock sleeps ("S", in
   futex_wait); two threads that both stay runnable ("R") are not serialised.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.audio.formats import RECOGNISER, Converter, read_wav  # noqa: E402
from bot.tools.vieneu_clips import ensure_clips  # noqa: E402

FRAME = RECOGNISER.bytes_for_ms(20)


def pipeline() -> Any:
    import vietasr
    from vietasr.ffi import native

    native.lib.vietasr_set_log_level(3)
    return vietasr.Pipeline.new().add("vietasr").build()


def clips() -> list[bytes]:
    out = []
    for wav in sorted(ensure_clips().glob("*.wav")):
        audio = read_wav(wav)
        convert = Converter(audio.format, RECOGNISER)
        out.append(convert.convert(audio).data + convert.flush().data)
    return out


def decode_all(pipe: Any, audio: list[bytes], stop: threading.Event | None = None) -> None:
    while True:
        for pcm in audio:
            session = pipe.stream(float(RECOGNISER.rate))
            for start in range(0, len(pcm), FRAME):
                session.accept(pcm[start : start + FRAME])
            session.final()
            session.close()
        if stop is None or stop.is_set():
            return


def cost(pipe: Any, audio: list[bytes], threads: int) -> str:
    seconds = sum(len(p) for p in audio) / RECOGNISER.bytes_for_ms(1000)
    workers = [threading.Thread(target=decode_all, args=(pipe, audio)) for _ in range(threads)]
    wall, cpu = time.perf_counter(), time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return (
        f"{threads} thread(s): wall {wall:.1f} s, process CPU {cpu:.1f} s, "
        f"{cpu / wall:.2f} cores busy, {cpu / (threads * seconds):.3f} CPU-s per audio s"
    )


def states(pipes: list[Any], audio: list[bytes], samples: int) -> str:
    stop = threading.Event()
    ids: list[int] = []

    def work(i: int) -> None:
        ids.append(threading.get_native_id())
        decode_all(pipes[i % len(pipes)], audio, stop)

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(2)]
    for w in workers:
        w.start()
    time.sleep(1.0)
    seen: collections.Counter[tuple[str, ...]] = collections.Counter()
    for _ in range(samples):
        now = []
        for tid in ids:
            state = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            wchan = Path(f"/proc/self/task/{tid}/wchan").read_text()
            now.append(state if state == "R" else f"{state}:{wchan}")
        seen[tuple(sorted(now))] += 1
        time.sleep(0.02)
    stop.set()
    for w in workers:
        w.join()
    return ", ".join(f"{'+'.join(k)} {n}/{samples}" for k, n in seen.most_common())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2,4")
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    audio = clips()
    shared = pipeline()
    for n in (int(x) for x in args.threads.split(",")):
        print(cost(shared, audio, n), flush=True)
    print("thread states, one shared pipeline:", states([shared], audio, args.samples))
    print("thread states, two pipelines:", states([shared, pipeline()], audio, args.samples))


if __name__ == "__main__":
    main()
