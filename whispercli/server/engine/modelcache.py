"""A small LRU of loaded models: ``--max-loaded-models`` of them, never evicting one in use.

:meth:`ModelCache.use` loads a model on first use (or reuses it), pins it while the caller
decodes with it, and evicts the least recently used unpinned models to stay within the
capacity. When every loaded model is pinned, the cache grows past it rather than fail the job,
and shrinks back as models are released.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from whispercli.server.defaults import Defaults

T = TypeVar("T")
DEFAULT_MAX_LOADED = Defaults.max_loaded_models


class ModelCache(Generic[T]):
    def __init__(
        self,
        load: Callable[[str], T],
        capacity: int = DEFAULT_MAX_LOADED,
        on_evict: Callable[[str], None] | None = None,
        close: Callable[[T], None] | None = None,
    ) -> None:
        """``close`` is called on a model as it is evicted (to stop its threads)."""
        if capacity < 1:
            raise ValueError("the cache must hold at least one model")
        self._load = load
        self.capacity = capacity
        self._on_evict = on_evict
        self._close = close
        self._models: OrderedDict[str, T] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._lock = threading.RLock()  # load and on_evict may call loaded()

    def loaded(self) -> list[str]:
        """Keys of the loaded models, least recently used first."""
        with self._lock:
            return list(self._models)

    def _evict(self, room: int) -> None:
        """Drop unpinned models, oldest first, until ``room`` more fit (lock held)."""
        for key in list(self._models):
            if len(self._models) + room <= self.capacity:
                return
            if not self._pins.get(key):
                model = self._models.pop(key)
                if self._close is not None:
                    self._close(model)
                if self._on_evict is not None:
                    self._on_evict(key)

    def acquire(self, key: str) -> T:
        """The model for ``key``, loaded if needed and pinned until :meth:`release`."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
            else:
                self._evict(room=1)
                self._models[key] = self._load(key)
            self._pins[key] = self._pins.get(key, 0) + 1
            return self._models[key]

    def release(self, key: str) -> None:
        with self._lock:
            self._pins[key] -= 1
            if not self._pins[key]:
                del self._pins[key]
            self._evict(room=0)

    @contextmanager
    def use(self, key: str) -> Iterator[T]:
        model = self.acquire(key)
        try:
            yield model
        finally:
            self.release(key)
