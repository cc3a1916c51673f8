"""The server's view of the installed models: what a submit may name, what health lists.

The lookups live in :mod:`whispercli.modelhub` (shared with ``whispercli models``); the server
never downloads: a model that is not installed is a 404 at submit that lists what is.
"""

from __future__ import annotations

import os
from pathlib import Path

from whispercli.modelhub import ModelInfo, resolve, vocabulary_size

__all__ = ["ModelInfo", "installed", "keep_hub_offline", "resolve", "vocabulary_size"]


def keep_hub_offline() -> None:
    """The server never downloads: keep huggingface_hub (and faster-whisper through it)
    offline in this process and the engine processes it starts, unless the environment says
    otherwise. Called where a server or worker process starts, before the hub is imported
    (it reads the variable once); the CLI's ``models pull`` never calls it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def installed(models_dir: Path | None) -> list[str]:
    """The names :func:`resolve` finds, sorted."""
    import whispercli.modelhub as modelhub

    return [m.name for m in modelhub.installed(models_dir)]


def loaded_names(paths: list[str], models_dir: Path | None) -> list[str]:
    """The installed names whose folders are among ``paths`` (the worker's loaded models)."""
    import whispercli.modelhub as modelhub

    loaded = set(paths)
    return [m.name for m in modelhub.installed(models_dir) if str(m.path) in loaded]
