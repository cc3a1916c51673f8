"""The server's view of the installed models: what a submit may name, what health lists.

The lookups live in :mod:`whispercli.modelhub` (shared with ``whispercli models``); the server
never downloads: a model that is not installed is a 404 at submit that lists what is.
"""

from __future__ import annotations

import os
from pathlib import Path

from whispercli.modelhub import ModelInfo, resolve

# The one place the hub is kept offline, for the hub client here and faster-whisper in the
# engine (the worker imports this module before the engine): read when the hub is imported.
# The CLI's `models pull` never imports this module.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

__all__ = ["ModelInfo", "installed", "resolve"]


def installed(models_dir: Path | None) -> list[str]:
    """The names :func:`resolve` finds, sorted."""
    from whispercli import modelhub

    return [m.name for m in modelhub.installed(models_dir)]


def loaded_names(paths: list[str], models_dir: Path | None) -> list[str]:
    """The installed names whose folders are among ``paths`` (the worker's loaded models)."""
    from whispercli import modelhub

    loaded = set(paths)
    return [m.name for m in modelhub.installed(models_dir) if str(m.path) in loaded]
