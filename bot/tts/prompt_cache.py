"""The fixed responses of domain.yml rendered once in the line's format, so the greeting
and transfer notices cost no synthesis at call time."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from bot.audio.formats import AudioChunk, AudioFormat, AudioFormatError
from bot.tts.normalise import normalise_vi
from bot.tts.piper_voice import Speaker, SpeechVoice

# --- prompt cache -----------------------------------------------------------------


class RenderCount(NamedTuple):
    rendered: int
    cached: int


class PromptCache:
    """Pre-rendered fixed prompts on disk, one raw audio file per (text, voice, format).

    Files are keyed by sha256 of the normalised text, the voice name and the format,
    so a changed text, voice or line format simply misses and is rendered anew."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(text: str, voice: str, fmt: AudioFormat) -> str:
        material = "\n".join((normalise_vi(text), voice, str(fmt)))
        return hashlib.sha256(material.encode("utf-8")).hexdigest()

    def path(self, text: str, voice: SpeechVoice | str, fmt: AudioFormat) -> Path:
        name = voice if isinstance(voice, str) else voice.name
        return self.directory / f"{self.key(text, name, fmt)}.{fmt.encoding}"

    def get(self, text: str, voice: SpeechVoice | str, fmt: AudioFormat) -> AudioChunk | None:
        try:
            data = self.path(text, voice, fmt).read_bytes()
            return AudioChunk(data, fmt) if data else None
        except (OSError, AudioFormatError):  # absent or damaged: render again
            return None

    def put(self, text: str, voice: SpeechVoice | str, chunk: AudioChunk) -> Path:
        path = self.path(text, voice, chunk.format)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(chunk.data)
        partial.replace(path)  # atomic: a reader never sees half a prompt
        return path

    def render_all(
        self,
        speaker: Speaker,
        texts: Iterable[str],
        fmt: AudioFormat | None = None,
        stop: threading.Event | None = None,
    ) -> RenderCount:
        """Render every text not yet cached; ``stop`` ends the work between two texts (a
        server that is stopping is not held up by a background render)."""
        fmt = fmt or speaker.format
        rendered = cached = 0
        for text in dict.fromkeys(texts):
            if stop is not None and stop.is_set():
                break
            if self.get(text, speaker.voice, fmt) is not None:
                cached += 1
                continue
            self.put(text, speaker.voice, speaker.render(text, fmt))
            rendered += 1
        return RenderCount(rendered, cached)
