"""Model lookup (whispercli.modelhub) on a hand-made Hugging Face cache: no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub import constants

import whispercli.modelhub as modelhub
from whispercli.modelhub import MULTILINGUAL_VOCABULARY, resolve

_shipped = modelhub.shipped_model()
assert _shipped is not None
SHIPPED: Path = _shipped
COMMIT = "a" * 40


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "hub"
    root.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(root))
    return root


def snapshot(
    cache: Path,
    repo: str,
    *,
    multilingual: bool = False,
    skip: tuple[str, ...] = (),
    tree: list[str] | None = None,
    config: dict[str, object] | None = None,
) -> Path:
    """A cache entry for ``repo`` (files linked to the shipped model), refs/main -> COMMIT."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    snap = folder / "snapshots" / COMMIT
    snap.mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    for item in SHIPPED.iterdir():
        if item.name in skip:
            continue
        if item.name == "vocabulary.txt" and multilingual:
            (snap / item.name).write_text("t\n" * MULTILINGUAL_VOCABULARY)
        elif item.name == "config.json" and config is not None:
            (snap / item.name).write_text(json.dumps(config))
        else:
            (snap / item.name).symlink_to(item)
    if tree is not None:
        (folder / "trees").mkdir()
        files = {name: {"size": 1, "blob_id": "b" * 40} for name in tree}
        (folder / "trees" / f"{COMMIT}.json").write_text(
            json.dumps({"format_version": 1, "files": files})
        )
    return snap


def test_names_map_through_faster_whispers_table(cache: Path) -> None:
    snap = snapshot(cache, "mobiuslabsgmbh/faster-whisper-large-v3-turbo", multilingual=True)
    for name in ("large-v3-turbo", "turbo", "mobiuslabsgmbh/faster-whisper-large-v3-turbo"):
        info = resolve(name, None)
        assert info is not None and info.path == snap and info.source == "hf-cache"
        assert not info.english_only  # from the vocabulary size
    assert resolve("large-v3", None) is None
    assert [m.name for m in modelhub.installed(None)] == ["large-v3-turbo", "tiny", "tiny.en"]


def test_tiny_is_always_the_shipped_model_and_tiny_en_prefers_a_pulled_copy(cache: Path) -> None:
    snapshot(cache, "Systran/faster-whisper-tiny", multilingual=True)
    info = resolve("tiny", None)
    assert info is not None and info.source == "shipped" and info.path == SHIPPED
    assert resolve("tiny.en", None).source == "shipped"  # type: ignore[union-attr]
    pulled = snapshot(cache, "Systran/faster-whisper-tiny.en")
    assert resolve("tiny.en", None).path == pulled  # type: ignore[union-attr]
    multilingual_tiny = resolve("Systran/faster-whisper-tiny", None)
    assert multilingual_tiny is not None and not multilingual_tiny.english_only
    names = [m.name for m in modelhub.installed(None)]
    assert names == ["Systran/faster-whisper-tiny", "tiny", "tiny.en"]


def test_an_incomplete_snapshot_is_not_installed(cache: Path) -> None:
    snapshot(cache, "Systran/faster-whisper-small", skip=("tokenizer.json",))
    assert resolve("small", None) is None
    listed = ["config.json", "model.bin", "tokenizer.json", "vocabulary.txt", "vocabulary.json"]
    snapshot(cache, "Systran/faster-whisper-base", tree=listed)  # vocabulary.json not there
    assert resolve("base", None) is None
    snapshot(cache, "Systran/faster-whisper-medium", tree=[*listed[:4], "README.md"])
    assert resolve("medium", None) is not None  # README.md is not a model file
    assert [m.name for m in modelhub.installed(None)] == ["medium", "tiny", "tiny.en"]


def test_only_whisper_repos_are_listed(cache: Path) -> None:
    snapshot(cache, "someone/whisper-ct2")
    snapshot(cache, "someone/translator-ct2", config={"add_source_bos": False})
    assert "someone/whisper-ct2" in [m.name for m in modelhub.installed(None)]
    assert "someone/translator-ct2" not in [m.name for m in modelhub.installed(None)]


def test_models_dir_comes_before_the_cache(cache: Path, tmp_path: Path) -> None:
    snapshot(cache, "Systran/faster-whisper-small.en")
    mine = tmp_path / "models" / "small.en"
    mine.mkdir(parents=True)
    (mine / "model.bin").write_bytes(b"")
    info = resolve("small.en", tmp_path / "models")
    assert info is not None and info.source == "models-dir" and info.english_only


@pytest.mark.parametrize("name", ["../tiny", "a/b/c", "", "-x", "org/..", "x" * 200])
def test_bad_names_resolve_to_nothing(cache: Path, name: str) -> None:
    assert resolve(name, None) is None
