"""The embedded server's settings: one dataclass, filled from flags by ``server run``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from whispercli import paths
from whispercli.fsutil import is_private, read_or_create_secret
from whispercli.server.device import DevicePlan, cpu_plan
from whispercli.server.modelcache import DEFAULT_MAX_LOADED

GIB = 1024**3
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class InsecureKeyFileError(RuntimeError):
    """The API key file can be read by other users: refuse to serve with it."""


def _models_dir_from_env() -> Path | None:
    value = os.environ.get("WHISPERCLI_MODELS_DIR")
    return Path(value) if value else None


@dataclass
class ServerSettings:
    host: str = paths.DEFAULT_HOST
    port: int = paths.DEFAULT_PORT
    data_dir: Path = field(default_factory=paths.data_dir)
    api_key_file: Path = field(default_factory=paths.api_key_file)
    max_upload_bytes: int = 4 * GIB
    upload_url_ttl: float = 3600.0
    """Seconds an upload URL stays valid (tests use 1 s to see it expire)."""
    retention: float = 24 * 3600.0
    """Seconds after which uploads, results and finished jobs are deleted."""
    poll_url_ttl: float = 7 * 24 * 3600.0
    """Seconds a poll URL stays valid from submit: a job may wait in the queue, then is kept
    for ``retention`` after it ends, so this is never less than twice the retention."""
    max_queue: int = 100
    """Queued (not yet processing) jobs beyond which submit answers 429."""
    idle_timeout: float = 0.0
    """Exit after this many seconds without a request and with no work (0: never)."""
    models_dir: Path | None = field(default_factory=_models_dir_from_env)
    cpu_threads: int = 0
    """CTranslate2 threads for the engine in all (0: one per CPU); see engine.replica_layout."""
    speed: str = "default"
    """The decoding profile (whispercli.decoding.PROFILES); a job's ``speed`` param wins."""
    max_attempts: int = 3
    """Times a job is started before a crash (of the worker or the server) fails it."""
    device_plan: DevicePlan = field(default_factory=lambda: cpu_plan("int8", "default"))
    """Where and how the engine decodes (``server run`` chooses it: whispercli.server.device)."""
    max_loaded_models: int = DEFAULT_MAX_LOADED
    """Models the worker keeps loaded (least recently used unloaded first)."""

    @property
    def effective_poll_url_ttl(self) -> float:
        return max(self.poll_url_ttl, 2 * self.retention)

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    def load_api_key(self) -> str:
        """Read the API key, creating it (0600) on first run; refuse a key others can read."""
        key = read_or_create_secret(self.api_key_file)
        if not is_private(self.api_key_file):
            raise InsecureKeyFileError(
                f"the API key file {self.api_key_file} is readable by other users; "
                f"run `chmod 600 {self.api_key_file}` and start the server again"
            )
        return key
