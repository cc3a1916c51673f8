"""The embedded server's settings: one dataclass, filled from flags by ``server run``
(defaults: server/defaults.py)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import whispercli.paths as paths
from whispercli.envvars import env_seconds
from whispercli.fsutil import is_private, read_or_create_secret
from whispercli.server.defaults import Defaults
from whispercli.server.engine.device import DevicePlan, cpu_plan
from whispercli.server.webhooks import guard
from whispercli.server.webhooks import signatures as signing

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
DATABASE_ENV = "WHISPERCLI_DATABASE_URL"
FAKE_ENGINE_ENV = "WHISPERCLI_FAKE_ENGINE_SECONDS"
HEARTBEAT_ENV = "WHISPERCLI_HEARTBEAT_SECONDS"
STALLED_AFTER_ENV = "WHISPERCLI_STALLED_AFTER_SECONDS"
QUEUE_POLL_ENV = "WHISPERCLI_QUEUE_POLL_SECONDS"
RETENTION_SWEEP_ENV = "WHISPERCLI_RETENTION_SWEEP_SECONDS"


class InsecureKeyFileError(RuntimeError):
    """The API key file can be read by other users: refuse to serve with it."""


def _seconds_from_env(name: str, default: float, most: float = math.inf) -> Callable[[], float]:
    """A field default: :func:`env_seconds` read when the settings are made."""
    return lambda: env_seconds(name, default, most=most)


def _fake_engine_seconds() -> float | None:
    """Tests and benchmarks only: None unless ``FAKE_ENGINE_ENV`` is set."""
    if not os.environ.get(FAKE_ENGINE_ENV, "").strip():
        return None
    return env_seconds(FAKE_ENGINE_ENV, 0.0, zero=True, unset="the real engine")


def _models_dir_from_env() -> Path | None:
    value = os.environ.get("WHISPERCLI_MODELS_DIR")
    return Path(value) if value else None


@dataclass
class ServerSettings:
    host: str = Defaults.host
    port: int = Defaults.port
    data_dir: Path = field(default_factory=paths.data_dir)
    api_key_file: Path = field(default_factory=paths.api_key_file)
    max_upload_bytes: int = Defaults.max_upload_bytes
    upload_url_ttl: float = Defaults.upload_url_ttl
    """Seconds an upload URL stays valid (tests use 1 s to see it expire)."""
    retention: float = Defaults.retention
    """Seconds after which uploads, results and finished jobs are deleted."""
    poll_url_ttl: float = Defaults.poll_url_ttl
    """Seconds a poll URL stays valid from submit: a job may wait in the queue, then is kept
    for ``retention`` after it ends, so this is never less than twice the retention."""
    max_queue: int = Defaults.max_queue
    """Queued (not yet processing) jobs beyond which submit answers 429."""
    idle_timeout: float = Defaults.idle_timeout
    """Exit after this many seconds without a request and with no work (0: never)."""
    models_dir: Path | None = field(default_factory=_models_dir_from_env)
    default_model: str = Defaults.default_model
    """The model OpenAI's ``whisper-1`` names on this server (``server run --default-model``)."""
    cpu_threads: int = Defaults.cpu_threads
    """CTranslate2 threads for the engine in all (0: one per CPU); see engine.device.layout."""
    speed: str = Defaults.speed
    """The decoding speed (whispercli.server.engine.plans.SPEEDS); a job's ``speed`` param wins."""
    engine_jobs: int = Defaults.engine_jobs
    """Jobs the engine works on at once: their chunks are decoded together (engine.batcher)."""
    max_audio_hours: float = Defaults.max_audio_hours
    """Longer audio fails its job: checked from the file's header before decoding, and while
    decoding (a small file can decode to hours of audio)."""
    max_attempts: int = Defaults.max_attempts
    """Times a job is started before a crash (of the worker or the server) fails it."""
    device_plan: DevicePlan = field(default_factory=lambda: cpu_plan("int8", "default"))
    """Where and how the engine decodes (``server run`` chooses it: ``engine.device``)."""
    max_loaded_models: int = Defaults.max_loaded_models
    """Models the engine process keeps loaded (least recently used unloaded first)."""
    webhook_secret_file: Path = field(default_factory=signing.secret_file)
    webhook_allow_private: bool = Defaults.webhook_allow_private
    """Let webhooks and Eden ``file_url`` reach private and loopback addresses."""
    webhook_first_retry: float = Defaults.webhook_first_retry
    """Seconds before the first retry of a failed delivery (tests make it short)."""
    file_url_seconds: float = Defaults.file_url_seconds
    """Seconds an Eden ``file_url`` download may take in all."""
    public_url: str | None = None
    """The base URL clients reach this server by (``--public-url``): the signed upload and
    poll URLs it hands out start with it. None: the bind address (never a request's Host)."""
    header_timeout: float = Defaults.header_timeout
    """Seconds a client has to send a request's headers (a half-sent request is dropped)."""
    fake_engine_seconds: float | None = field(default_factory=_fake_engine_seconds)
    """Tests and benchmarks: a fake engine that spends this long per job (fake_engine.py)."""
    database_url: str | None = field(default_factory=lambda: os.environ.get(DATABASE_ENV) or None)
    """PostgreSQL DSN (``postgresql://USER@HOST/DB``): jobs, uploads and change notification
    live there and the server runs no engine of its own; None: the embedded SQLite default."""
    heartbeat_seconds: float = field(default_factory=_seconds_from_env(HEARTBEAT_ENV, 1.0))
    """PostgreSQL mode: how often a worker refreshes its heartbeat (its fleet row and its
    Procrastinate worker row)."""
    stalled_after_seconds: float = field(default_factory=_seconds_from_env(STALLED_AFTER_ENV, 5.0))
    """PostgreSQL mode: a worker whose heartbeat is this old is dead; its job goes to another
    worker and ``/v1/health`` no longer lists it. Give every process of a fleet the same."""
    queue_poll_seconds: float = field(default_factory=_seconds_from_env(QUEUE_POLL_ENV, 1.0))
    """PostgreSQL mode: workers also look for tasks this often (besides LISTEN: the retry of a
    dead worker's task sends no NOTIFY)."""
    retention_sweep_seconds: float = field(
        default_factory=_seconds_from_env(RETENTION_SWEEP_ENV, 10.0, most=59)
    )
    """PostgreSQL mode: one worker of the fleet deletes expired jobs, results and uploads this
    often (whole seconds, at most 59: a periodic task's cron)."""

    @property
    def effective_poll_url_ttl(self) -> float:
        return max(self.poll_url_ttl, 2 * self.retention)

    @property
    def database_shown(self) -> str | None:
        """The DSN without its password, for logs and messages."""
        return redact_dsn(self.database_url) if self.database_url else None

    @property
    def is_loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    @property
    def base_url(self) -> str:
        """Where the signed URLs point: ``public_url``, else the bind address."""
        return (self.public_url or display_url(self.host, self.port)).rstrip("/")

    @property
    def webhook_policy(self) -> guard.Policy:
        """Loopback receivers are allowed when the server itself is bound to loopback."""
        return guard.Policy(
            allow_private=self.webhook_allow_private, allow_loopback=self.is_loopback
        )

    def load_api_key(self) -> str:
        """Read the API key, creating it (0600) on first run; refuse a key others can read."""
        key = read_or_create_secret(self.api_key_file)
        if not is_private(self.api_key_file):
            raise InsecureKeyFileError(
                f"the API key file {self.api_key_file} is readable by other users; "
                f"run `chmod 600 {self.api_key_file}` and start the server again"
            )
        return key


def display_url(host: str, port: int) -> str:
    """How a client reaches a server bound to ``host``:``port`` (a wildcard bind: loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def check_public_url(url: str) -> str:
    """``url`` as a ``--public-url`` (``http(s)://host[:port][/prefix]``, no trailing slash);
    ValueError says what is wrong."""
    parts = urlsplit(url.strip())
    try:
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        raise ValueError(f"--public-url {url!r} has a bad port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--public-url must look like http://HOST:PORT, not {url!r}")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError(f"--public-url takes no user, query or fragment: {url!r}")
    return url.strip().rstrip("/")


def redact_dsn(dsn: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db`` (also a
    ``password=`` keyword)."""
    shown = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", shown)
