"""Where whispercli keeps its files. Every path comes from platformdirs, or from an
environment override (tests and sandboxes point these at temporary directories)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "whispercli"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8642
DEFAULT_LOCAL_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


def _dir(env: str, default: str) -> Path:
    override = os.environ.get(env)
    return Path(override) if override else Path(default)


def config_dir() -> Path:
    """Settings (config.toml) and the local server's API key."""
    return _dir("WHISPERCLI_CONFIG_DIR", platformdirs.user_config_dir(APP_NAME))


def state_dir() -> Path:
    """The saved-jobs file, the auto-started server's log and pid file."""
    return _dir("WHISPERCLI_STATE_DIR", platformdirs.user_state_dir(APP_NAME))


def data_dir() -> Path:
    """The embedded server's database, uploads and results."""
    return _dir("WHISPERCLI_DATA_DIR", platformdirs.user_data_dir(APP_NAME))


def config_file() -> Path:
    return config_dir() / "config.toml"


def api_key_file() -> Path:
    return config_dir() / "api-key"


def jobs_file() -> Path:
    return state_dir() / "jobs.json"


def server_log_file() -> Path:
    return state_dir() / "server.log"


def server_pid_file(port: int) -> Path:
    """Where ``server run`` records its pid and URL (one file per port)."""
    return state_dir() / f"server-{port}.pid"
