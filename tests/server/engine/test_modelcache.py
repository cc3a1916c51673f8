"""The worker's LRU of loaded models (whispercli.server.engine.modelcache)."""

from __future__ import annotations

import pytest

from whispercli.server.engine.modelcache import ModelCache


class Loads:
    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.evicted: list[str] = []

    def load(self, key: str) -> str:
        self.loaded.append(key)
        return f"model:{key}"


def make(capacity: int = 2) -> tuple[ModelCache[str], Loads]:
    loads = Loads()
    return ModelCache(loads.load, capacity, loads.evicted.append), loads


def test_two_models_serve_interleaved_jobs_without_reloading() -> None:
    cache, loads = make()
    for key in ("a", "b", "a", "b", "a"):
        with cache.use(key) as model:
            assert model == f"model:{key}"
    assert loads.loaded == ["a", "b"]
    assert loads.evicted == []
    assert cache.loaded() == ["b", "a"]  # least recently used first


def test_a_third_model_evicts_the_least_recently_used() -> None:
    cache, loads = make()
    for key in ("a", "b", "a", "c"):
        with cache.use(key):
            pass
    assert loads.evicted == ["b"]
    assert cache.loaded() == ["a", "c"]
    with cache.use("b"):
        pass
    assert loads.loaded == ["a", "b", "c", "b"]
    assert loads.evicted == ["b", "a"]


def test_a_model_in_use_is_never_evicted() -> None:
    cache, loads = make()
    with cache.use("a"), cache.use("b"):
        with cache.use("c"):  # a and b are busy: the cache grows past its capacity
            assert cache.loaded() == ["a", "b", "c"]
            assert loads.evicted == []
        assert loads.evicted == ["c"]  # released and the least recently used unpinned one
        assert cache.loaded() == ["a", "b"]
    assert cache.loaded() == ["a", "b"]


def test_a_pinned_old_model_survives_and_the_next_oldest_goes() -> None:
    cache, loads = make()
    with cache.use("a"):
        with cache.use("b"):
            pass
        with cache.use("c"):
            pass
        assert loads.evicted == ["b"]
        assert cache.loaded() == ["a", "c"]


def test_a_failed_load_leaves_the_cache_as_it_was() -> None:
    def load(key: str) -> str:
        raise RuntimeError("bad model")

    cache: ModelCache[str] = ModelCache(load, 2)
    with pytest.raises(RuntimeError), cache.use("x"):
        pass
    assert cache.loaded() == []


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ModelCache(str, 0)
