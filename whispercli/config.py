"""Settings: which endpoint to talk to and with which key.

Resolution order, first match wins, for each of the URL and the key separately:

1. flags (``--url``, ``--api-key``, ``--profile``);
2. environment (``WHISPERCLI_URL``, ``WHISPERCLI_API_KEY``, ``WHISPERCLI_PROFILE``, and the
   profile's own key variable, e.g. ``TIYARO_API_KEY`` for ``tiyaro``);
3. the TOML config file (``paths.config_file()``): a default ``profile`` and ``[profiles.NAME]``
   tables with ``url``, ``api_key``, ``api_key_env``, ``model``, ``tier``, ``backend``
   (``tiyaro``, ``edenai``, ``octoai`` or ``openai``) and ``providers`` (Eden AI's vendors,
   comma-separated);
4. the built-in profiles: ``local`` (the embedded server at the local default URL, key from
   ``paths.api_key_file()``), ``tiyaro`` (https://api.tiyaro.ai, key from ``TIYARO_API_KEY``),
   ``edenai`` (https://api.edenai.run/v2, key from ``EDENAI_API_KEY``) and ``openai``
   (https://api.openai.com/v1, key from ``OPENAI_API_KEY``, model ``whisper-1``).

A profile with ``backend = "openai"`` and no ``url`` of its own (the built-in ``openai`` one)
honours ``OPENAI_BASE_URL`` as the openai SDK does, and takes its key from ``OPENAI_API_KEY``
unless it names another ``api_key_env``.

Every value in the file must be a string (``load_file`` names the file, key and type of one
that is not); ``config set``/``unset`` read the file unchecked so they can repair it.

Only the local default endpoint may be auto-started (see ``Settings.auto_start``).
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import whispercli.backends as backends
import whispercli.paths as paths
from whispercli.errors import UsageError, WhisperCliError
from whispercli.fsutil import atomic_write_text
from whispercli.protocol import TIERS, is_http_url

LOCAL_PROFILE = "local"
TIYARO_PROFILE = "tiyaro"
TIYARO_URL = "https://api.tiyaro.ai"
EDENAI_PROFILE = "edenai"
EDENAI_URL = "https://api.edenai.run/v2"
OPENAI_PROFILE = "openai"
OPENAI_URL = "https://api.openai.com/v1"
OPENAI_URL_ENV = "OPENAI_BASE_URL"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
LOCAL_PORT_ENV = "WHISPERCLI_LOCAL_PORT"
"""Overrides the local default port (tests and machines where 8642 is taken)."""

PROFILE_KEYS = ("url", "api_key", "api_key_env", "model", "tier", "backend", "providers")
"""Keys a ``[profiles.NAME]`` table may hold (``config set`` also takes ``profile``)."""
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def value_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be the profile setting ``key``, or None when it can: the one
    check for ``config set`` and for a value read from the file."""
    if key == "url" and not is_http_url(value.rstrip("/")):
        return "a URL must start with http:// or https://"
    if key == "tier" and value not in TIERS:
        return "a tier is one of " + ", ".join(TIERS)
    if key == "backend" and value not in backends.BACKENDS:
        return "a backend is one of " + ", ".join(backends.BACKENDS)
    if key == "api_key_env" and not _ENV_NAME.fullmatch(value):
        return "an environment variable's name (letters, digits, _), e.g. LAB_KEY"
    if key == "providers" and not split_providers(value):
        return "vendors' names, comma-separated, e.g. deepgram,amazon"
    if key in ("model", "api_key") and not value.strip():
        return f"{key} cannot be empty"
    return None


def did_you_mean(key: str, known: tuple[str, ...]) -> str:
    """``"did you mean model? "`` for a close misspelling of a known name, else ``""``."""
    import difflib

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"did you mean {close[0]}? " if close else ""


def local_default_url() -> str:
    """The embedded server's URL: ``paths.DEFAULT_LOCAL_URL`` unless the port is overridden."""
    port = os.environ.get(LOCAL_PORT_ENV)
    if port:
        if not port.isdigit():
            raise UsageError(f"{LOCAL_PORT_ENV} must be a port number, not {port!r}")
        return f"http://{paths.DEFAULT_HOST}:{int(port)}"
    return paths.DEFAULT_LOCAL_URL


def is_local_default(url: str) -> bool:
    """Whether ``url`` is the embedded server's local default endpoint (any path on it, any
    loopback name): its key is the local key file."""
    from urllib.parse import urlsplit

    here, there = urlsplit(local_default_url()), urlsplit(url)
    loopback = ("127.0.0.1", "localhost", "::1")
    return there.scheme == here.scheme and there.hostname in loopback and there.port == here.port


def _builtin_profiles() -> dict[str, dict[str, Any]]:
    return {
        LOCAL_PROFILE: {},
        TIYARO_PROFILE: {"url": TIYARO_URL, "api_key_env": "TIYARO_API_KEY", "tier": "gpuflex"},
        EDENAI_PROFILE: {
            "url": EDENAI_URL,
            "api_key_env": "EDENAI_API_KEY",
            "backend": backends.EDENAI,
        },
        OPENAI_PROFILE: {"backend": backends.OPENAI, "model": "whisper-1"},
    }


BUILTIN_PROFILES = tuple(_builtin_profiles())
"""The built-in profile names, in the order ``--help`` lists them."""


@dataclass(frozen=True)
class Settings:
    """The resolved endpoint, key and defaults, with where each came from (for messages)."""

    url: str
    url_source: str
    api_key: str | None
    key_source: str
    profile: str
    profile_source: str = "default"
    key_file: Path | None = None
    """Local profile: the key lives in this file (read, or created, on first request)."""
    auto_start: bool = False
    """True only when the URL is the built-in local default: the CLI may start the server."""
    model: str | None = None
    tier: str | None = None
    backend: str = backends.DEFAULT
    """The protocol spoken at ``url`` (``whispercli.backends.BACKENDS``)."""
    providers: tuple[str, ...] = ()
    """Eden AI: the vendors a job runs on when ``--provider`` is not given."""
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
            "profile_source": self.profile_source,
            "url": self.url,
            "url_source": self.url_source,
            "api_key": "set" if self.api_key or self.key_file else "not set",
            "key_source": self.key_source,
            "auto_start": self.auto_start,
            "model": self.model,
            "tier": self.tier,
            "backend": self.backend,
            "providers": ",".join(self.providers) or None,
            "config_file": str(paths.config_file()),
        }


def read_file(path: Path | None = None) -> dict[str, Any]:
    """Parse the TOML config file without checking its keys (``config set``/``unset`` repair
    a file that ``load_file`` refuses); a missing file is an empty config."""
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
        return tomllib.loads(text)
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


def load_file(path: Path | None = None) -> dict[str, Any]:
    """Read and check the config file: every known key has its type, no key is unknown."""
    path = path or paths.config_file()
    data = read_file(path)
    for key, value in data.items():
        if key == "profile":
            _check_type(
                path,
                key,
                value,
                str,
                "`whispercli config set profile NAME` or `config unset profile`",
            )
        elif key == "profiles":
            _check_type(path, key, value, dict, f"edit {path}")
            for name, table in value.items():
                _check_type(path, f"profiles.{name}", table, dict, f"edit {path}")
                for sub, item in table.items():
                    _check_profile_value(path, name, sub, item)
        else:
            where = " (it belongs in a [profiles.NAME] table)" if key in PROFILE_KEYS else ""
            raise _invalid(
                path,
                f"{key} is not a top-level setting{where}",
                f"{did_you_mean(key, ('profile', 'profiles'))}the top level takes profile and "
                f"[profiles.NAME] tables; `whispercli config unset {key}` removes it",
            )
    return data


def _check_profile_value(path: Path, name: str, key: str, value: Any) -> None:
    """A file's ``[profiles.NAME]`` entry: a known key with a valid string value."""
    fix = (
        f"`whispercli config set {key} VALUE --profile {name}` or "
        f"`whispercli config unset {key} --profile {name}`"
    )
    if key not in PROFILE_KEYS:
        raise _invalid(
            path,
            f"profiles.{name}.{key} is not a setting",
            f"{did_you_mean(key, PROFILE_KEYS)}a profile takes {', '.join(PROFILE_KEYS)}; "
            f"`whispercli config unset {key} --profile {name}` removes it",
        )
    _check_type(path, f"profiles.{name}.{key}", value, str, fix)
    problem = value_problem(key, value)
    if problem is not None:
        raise _invalid(path, f"profiles.{name}.{key} is {value!r}", f"{problem}; fix: {fix}")


_TOML_TYPES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    str: "a string",
    list: "an array",
    dict: "a table",
}


def _toml_type(value: Any) -> str:
    return next((name for t, name in _TOML_TYPES.items() if isinstance(value, t)), "a date")


def _check_type(path: Path, key: str, value: Any, expected: type, fix: str) -> None:
    if not isinstance(value, expected) or isinstance(value, bool) is not (expected is bool):
        raise _invalid(
            path, f"{key} must be {_TOML_TYPES[expected]}, not {_toml_type(value)}", f"fix: {fix}"
        )


def _invalid(path: Path, problem: str, hint: str) -> WhisperCliError:
    return WhisperCliError(f"the config file {path} is invalid: {problem}", hint=hint)


def profiles(data: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Built-in profiles overlaid with the config file's (tables only)."""
    data = load_file() if data is None else data
    merged = _builtin_profiles()
    tables = data.get("profiles")
    for name, table in (tables if isinstance(tables, dict) else {}).items():
        if isinstance(table, dict):
            merged[name] = {**merged.get(name, {}), **table}
    return merged


def _first(*candidates: tuple[str | None, str]) -> tuple[str | None, str]:
    """The precedence rule, once: the first candidate with a value, and where it came from."""
    for value, source in candidates:
        if value:
            return value, source
    return None, ""


def check_url(url: str, source: str) -> str:
    """``url`` without a trailing slash; a usage error unless it is http(s)."""
    url = url.rstrip("/")
    if not is_http_url(url):
        raise UsageError(f"the URL {url!r} (from {source}) must start with http:// or https://")
    return url


def resolve(
    url: str | None = None, api_key: str | None = None, profile: str | None = None
) -> Settings:
    """Resolve the settings for one command (flags given as arguments, the rest looked up)."""
    data = load_file()
    env = os.environ.get
    all_profiles = profiles(data)
    file_source = f"config file {paths.config_file()}"
    profile, profile_source = _first(
        (profile, "--profile"),
        (env("WHISPERCLI_PROFILE"), "WHISPERCLI_PROFILE"),
        (data.get("profile"), file_source),
        (LOCAL_PROFILE, "default"),
    )
    assert profile is not None
    if profile not in all_profiles:
        raise UsageError(
            f"unknown profile {profile!r} (from {profile_source})",
            hint="known profiles: " + ", ".join(sorted(all_profiles)),
        )
    table = all_profiles[profile]
    backend = table.get("backend") or backends.DEFAULT
    openai = backend == backends.OPENAI

    url, url_source = _first(
        (url, "--url"),
        (env("WHISPERCLI_URL"), "WHISPERCLI_URL"),
        (table.get("url"), f"profile {profile!r}"),
        (env(OPENAI_URL_ENV) if openai else None, OPENAI_URL_ENV),
        (OPENAI_URL if openai else None, "the openai backend's default"),
    )
    auto_start = url is None
    if url is None:
        url, url_source = local_default_url(), "local default"
    url = check_url(url, url_source)

    key_env = table.get("api_key_env") or (OPENAI_KEY_ENV if openai else None)
    api_key, key_source = _first(
        (api_key, "--api-key"),
        (env("WHISPERCLI_API_KEY"), "WHISPERCLI_API_KEY"),
        (env(key_env) if key_env else None, key_env or ""),
        (table.get("api_key"), f"profile {profile!r} in {paths.config_file()}"),
    )
    key_file: Path | None = None
    if api_key is None and (profile == LOCAL_PROFILE or is_local_default(url)):
        key_file = paths.api_key_file()
        key_source = f"key file {key_file}"
    elif api_key is None:
        key_source = (
            f"none (set {key_env or 'WHISPERCLI_API_KEY'}, give --api-key, or run `whispercli "
            f"config set api_key KEY --profile {profile}`; a whispercli server keeps its key in "
            f"its config dir: {paths.api_key_file()} here)"
        )

    return Settings(
        url=url,
        url_source=url_source,
        api_key=api_key,
        key_source=key_source,
        profile=profile,
        profile_source=profile_source,
        key_file=key_file,
        auto_start=auto_start,
        model=table.get("model"),
        tier=table.get("tier"),
        backend=backend,
        providers=split_providers(table.get("providers") or ""),
    )


def split_providers(text: str) -> tuple[str, ...]:
    """``"amazon, deepgram"`` -> ``("amazon", "deepgram")`` (empty names dropped)."""
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _default_profile(data: dict[str, Any]) -> str:
    name = data.get("profile")
    return name if isinstance(name, str) else LOCAL_PROFILE


def set_value(key: str, value: str, profile: str | None = None) -> Path:
    """Set ``profile`` (the default profile, which must exist) or a profile key."""
    path = paths.config_file()
    data = read_file(path)
    if key == "profile":
        known = profiles(data)
        if value not in known:
            raise UsageError(
                f"unknown profile {value!r}",
                hint="known profiles: "
                + ", ".join(sorted(known))
                + f"; create one with `whispercli config set url URL --profile {value}`",
            )
        data["profile"] = value
    elif key in PROFILE_KEYS:
        problem = value_problem(key, value)
        if problem is not None:
            raise UsageError(f"{value!r} is not a valid {key}", hint=problem)
        if key == "url":
            value = value.rstrip("/")
        tables = data.setdefault("profiles", {})
        name = profile or _default_profile(data)
        if not isinstance(tables, dict) or not isinstance(tables.setdefault(name, {}), dict):
            raise _invalid(path, f"profiles.{name} must be a table", f"fix or delete {path}")
        tables[name][key] = value
    else:
        raise UsageError(
            f"unknown setting {key!r}",
            hint=f"{did_you_mean(key, ('profile', *PROFILE_KEYS))}settings: profile, "
            + ", ".join(PROFILE_KEYS),
        )
    _write(path, data)
    return path


def unset_value(key: str, profile: str | None = None) -> bool:
    """Remove ``profile`` or a profile key (any value, even one of the wrong type); returns
    whether it was there."""
    path = paths.config_file()
    data = read_file(path)
    if key == "profile":
        found = data.pop("profile", None) is not None
    else:  # any key present, known or not (a misspelt one included)
        tables = data.get("profiles")
        table = tables.get(profile or _default_profile(data)) if isinstance(tables, dict) else None
        found = isinstance(table, dict) and table.pop(key, None) is not None
        if not found and profile is None:  # misplaced at the top level
            found = data.pop(key, None) is not None
    if found:
        _write(path, data)
    return found


def _write(path: Path, data: dict[str, Any]) -> None:
    import tomli_w

    atomic_write_text(path, tomli_w.dumps(data), mode=0o600)
