"""Settings: which endpoint to talk to and with which key.

Resolution order, first match wins, for each of the URL and the key separately:

1. flags (``--url``, ``--api-key``, ``--profile``);
2. environment (``WHISPERCLI_URL``, ``WHISPERCLI_API_KEY``, ``WHISPERCLI_PROFILE``, and the
   profile's own key variable, e.g. ``TIYARO_API_KEY`` for ``tiyaro``);
3. the TOML config file (``paths.config_file()``): a default ``profile`` and ``[profiles.NAME]``
   tables with ``url``, ``api_key``, ``api_key_env``, ``model``, ``tier``;
4. the built-in profiles: ``local`` (the embedded server at the local default URL, key from
   ``paths.api_key_file()``) and ``tiyaro`` (https://api.tiyaro.ai, key from ``TIYARO_API_KEY``).

Only the local default endpoint may be auto-started (see ``Settings.auto_start``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whispercli import paths
from whispercli.errors import UsageError, WhisperCliError
from whispercli.fsutil import atomic_write_text
from whispercli.protocol import is_http_url

LOCAL_PROFILE = "local"
TIYARO_PROFILE = "tiyaro"
TIYARO_URL = "https://api.tiyaro.ai"
LOCAL_PORT_ENV = "WHISPERCLI_LOCAL_PORT"
"""Overrides the local default port (tests and machines where 8642 is taken)."""

PROFILE_KEYS = ("url", "api_key", "api_key_env", "model", "tier")
"""Keys a ``[profiles.NAME]`` table may hold (``config set`` also takes ``profile``)."""


def local_default_url() -> str:
    """The embedded server's URL: ``paths.DEFAULT_LOCAL_URL`` unless the port is overridden."""
    port = os.environ.get(LOCAL_PORT_ENV)
    if port:
        if not port.isdigit():
            raise UsageError(f"{LOCAL_PORT_ENV} must be a port number, not {port!r}")
        return f"http://{paths.DEFAULT_HOST}:{int(port)}"
    return paths.DEFAULT_LOCAL_URL


def _builtin_profiles() -> dict[str, dict[str, Any]]:
    return {
        LOCAL_PROFILE: {},
        TIYARO_PROFILE: {"url": TIYARO_URL, "api_key_env": "TIYARO_API_KEY", "tier": "gpuflex"},
    }


@dataclass(frozen=True)
class Settings:
    """The resolved endpoint, key and defaults, with where each came from (for messages)."""

    url: str
    url_source: str
    api_key: str | None
    key_source: str
    profile: str
    key_file: Path | None = None
    """Local profile: the key lives in this file (read, or created, on first request)."""
    auto_start: bool = False
    """True only when the URL is the built-in local default: the CLI may start the server."""
    model: str | None = None
    tier: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def resolve_api_key(self) -> str | None:
        """The key to send; for the local profile this reads (or creates) the key file."""
        if self.api_key is not None:
            return self.api_key
        if self.key_file is not None:
            from whispercli.fsutil import read_or_create_secret

            return read_or_create_secret(self.key_file)
        return None

    def public_dict(self) -> dict[str, Any]:
        """What ``config show`` prints: everything but the key itself."""
        return {
            "profile": self.profile,
            "url": self.url,
            "url_source": self.url_source,
            "api_key": "set" if self.api_key or self.key_file else "not set",
            "key_source": self.key_source,
            "auto_start": self.auto_start,
            "model": self.model,
            "tier": self.tier,
            "config_file": str(paths.config_file()),
        }


def load_file(path: Path | None = None) -> dict[str, Any]:
    """Read the TOML config file; a missing file is an empty config, a corrupt one an error."""
    path = path or paths.config_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise WhisperCliError(
            f"the config file {path} is not UTF-8 text (byte {exc.start})",
            hint=f"fix or delete {path}",
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # The message carries "(at line N, column M)".
        raise WhisperCliError(
            f"the config file {path} is not valid TOML: {exc}",
            hint=f"fix or delete {path}",
        ) from None
    except RecursionError:
        raise WhisperCliError(
            f"the config file {path} is nested too deeply to read", hint=f"fix or delete {path}"
        ) from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(v, dict) for v in profiles.values()):
        raise WhisperCliError(
            f"the config file {path} is invalid: [profiles] must hold tables like [profiles.local]",
            hint=f"fix or delete {path}",
        )
    return data


def profiles(data: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Built-in profiles overlaid with the config file's."""
    data = load_file() if data is None else data
    merged = _builtin_profiles()
    for name, table in data.get("profiles", {}).items():
        merged[name] = {**merged.get(name, {}), **table}
    return merged


def resolve(
    url: str | None = None, api_key: str | None = None, profile: str | None = None
) -> Settings:
    """Resolve the settings for one command (flags given as arguments, the rest looked up)."""
    data = load_file()
    all_profiles = profiles(data)
    if profile:
        profile_source = "--profile"
    elif os.environ.get("WHISPERCLI_PROFILE"):
        profile, profile_source = os.environ["WHISPERCLI_PROFILE"], "WHISPERCLI_PROFILE"
    elif isinstance(data.get("profile"), str):
        profile, profile_source = data["profile"], f"config file {paths.config_file()}"
    else:
        profile, profile_source = LOCAL_PROFILE, "default"
    if profile not in all_profiles:
        raise UsageError(
            f"unknown profile {profile!r} (from {profile_source})",
            hint="known profiles: " + ", ".join(sorted(all_profiles)),
        )
    table = all_profiles[profile]

    auto_start = False
    if url:
        url_source = "--url"
    elif os.environ.get("WHISPERCLI_URL"):
        url, url_source = os.environ["WHISPERCLI_URL"], "WHISPERCLI_URL"
    elif isinstance(table.get("url"), str):
        url, url_source = table["url"], f"profile {profile!r}"
    else:
        url, url_source, auto_start = local_default_url(), "local default", True
    url = url.rstrip("/")
    if not is_http_url(url):
        raise UsageError(f"the URL {url!r} (from {url_source}) must start with http:// or https://")

    key_file: Path | None = None
    key_env = table.get("api_key_env")
    if api_key:
        key_source = "--api-key"
    elif os.environ.get("WHISPERCLI_API_KEY"):
        api_key, key_source = os.environ["WHISPERCLI_API_KEY"], "WHISPERCLI_API_KEY"
    elif isinstance(key_env, str) and os.environ.get(key_env):
        api_key, key_source = os.environ[key_env], key_env
    elif isinstance(table.get("api_key"), str):
        api_key, key_source = table["api_key"], f"profile {profile!r} in {paths.config_file()}"
    elif profile == LOCAL_PROFILE:
        key_file = paths.api_key_file()
        key_source = f"key file {key_file}"
    else:
        wanted = key_env if isinstance(key_env, str) else "WHISPERCLI_API_KEY"
        key_source = f"none (set {wanted} or --api-key)"

    return Settings(
        url=url,
        url_source=url_source,
        api_key=api_key,
        key_source=key_source,
        profile=profile,
        key_file=key_file,
        auto_start=auto_start,
        model=table.get("model") if isinstance(table.get("model"), str) else None,
        tier=table.get("tier") if isinstance(table.get("tier"), str) else None,
    )


def set_value(key: str, value: str, profile: str | None = None) -> Path:
    """Set ``profile`` (the default profile) or a profile key in the config file."""
    path = paths.config_file()
    data = load_file(path)
    if key == "profile":
        data["profile"] = value
    elif key in PROFILE_KEYS:
        name = profile or (data.get("profile") if isinstance(data.get("profile"), str) else None)
        name = name or LOCAL_PROFILE
        data.setdefault("profiles", {}).setdefault(name, {})[key] = value
    else:
        raise UsageError(
            f"unknown setting {key!r}",
            hint="settings: profile, " + ", ".join(PROFILE_KEYS),
        )
    import tomli_w

    atomic_write_text(path, tomli_w.dumps(data), mode=0o600)
    return path
