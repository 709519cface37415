"""Errors more than one stage raises, defined once."""

from __future__ import annotations

from pathlib import Path


class ModelMissing(FileNotFoundError):
    """A model (the trained Rasa model, the recogniser's, the voice) is not where the
    settings say, or cannot be loaded; the message says what and how to get it."""

    @classmethod
    def unloadable(cls, what: str, path: Path, error: BaseException, howto: str) -> ModelMissing:
        """A model file that is there but does not load (a truncated download, a wrong
        folder): the engine's own words, then how to get a good copy."""
        return cls(f"{what}: {path} could not be loaded ({error})\n{howto}")
