"""Fuzz the parsers that read data from outside: the saved-jobs file, the config file and the
upload-URL signature. Each may only fail with its documented error type:

* ``state.JobStore`` never raises on a bad file: it moves it aside (keeping its bytes) and
  starts afresh; looking a job up raises only ``WhisperCliError`` (not found / ambiguous);
* ``config`` raises only ``WhisperCliError`` for a bad config file;
* ``signing.Signer.verify`` raises only ``SignatureError``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from fuzzkit import fuzz_settings, json_values
from hypothesis import assume, given
from hypothesis import strategies as st
from support.figures import bump

import whispercli.config as config
import whispercli.state as state
from whispercli.errors import WhisperCliError
from whispercli.server.api.signed_urls import SignatureError, Signer

pytestmark = pytest.mark.reliability

SETTINGS = fuzz_settings(max_examples=400)
entry_keys = st.sampled_from(
    ["id", "endpoint", "poll_url", "url", "path", "file", "created", "status", "model", "size"]
)
entry_like = st.dictionaries(entry_keys, json_values, max_size=8)
state_like = st.one_of(
    st.lists(entry_like, max_size=4),  # version 0: a bare list
    st.fixed_dictionaries(
        {
            "version": st.sampled_from([0, 1, 2, -1, "1", None]),
            "jobs": st.lists(entry_like, max_size=4),
        }
    ),
    st.fixed_dictionaries(
        {
            "version": st.just(1),
            "jobs": st.lists(
                st.fixed_dictionaries(
                    {"id": st.text(min_size=1, max_size=8), "endpoint": st.just("")},
                    optional={"created": json_values, "status": json_values},
                ),
                max_size=4,
            ),
        }
    ),
    json_values,
)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="wcli-fuzz-") as tmp:
        yield Path(tmp)


def _exercise_store(path: Path) -> None:
    """Load a jobs file the way every command does, and look jobs up in it."""
    store = state.JobStore(path)
    original = path.read_bytes()
    jobs = store.all()
    if not path.exists():  # moved aside: nothing lost, the bytes are kept next to it
        asides = list(path.parent.glob(path.name + ".corrupt-*"))
        assert any(a.read_bytes() == original for a in asides), "a corrupt file was lost"
        bump("fuzz", "state_moved_aside")
    for ref in ("last", "a", "zz-not-there", *(j.id for j in jobs[:2] if isinstance(j.id, str))):
        with suppress(WhisperCliError):
            store.resolve(ref)
    store.find_reusable("0" * 64, "tiny", {}, "", "cpuflex")
    store.add(state.SavedJob(id="fuzz-added", endpoint="http://127.0.0.1:1"))
    assert any(j.id == "fuzz-added" for j in store.all())


def _fresh(scratch: Path, name: str) -> Path:
    directory = Path(tempfile.mkdtemp(dir=scratch))
    return directory / name


@SETTINGS
@given(state_like)
def test_state_file_json_content(scratch: Path, data: Any) -> None:
    bump("fuzz", "state_cases")
    path = _fresh(scratch, "jobs.json")
    path.write_text(json.dumps(data), encoding="utf-8")
    _exercise_store(path)


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_state_file_raw_bytes(scratch: Path, raw: bytes) -> None:
    bump("fuzz", "state_cases")
    path = _fresh(scratch, "jobs.json")
    path.write_bytes(raw)
    _exercise_store(path)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,  # nesting deeper than the json module's recursion limit
        b'{"version": 1, "jobs": [' + b'{"id": "a", "endpoint": ""},' * 3 + b"",  # cut short
        b'{"version": 1e999, "jobs": []}',
        b"\xef\xbb\xbf{}",  # a BOM
        b"\x00" * 64,
    ],
    ids=["deep-nesting", "truncated", "inf-version", "bom", "nul-bytes"],
)
def test_state_file_hostile_cases(tmp_path: Path, raw: bytes) -> None:
    bump("hostile", "state_files")
    path = tmp_path / "jobs.json"
    path.write_bytes(raw)
    _exercise_store(path)


@contextmanager
def _config_env(directory: Path) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("WHISPERCLI_CONFIG_DIR", "WHISPERCLI_PROFILE")}
    os.environ["WHISPERCLI_CONFIG_DIR"] = str(directory)
    os.environ.pop("WHISPERCLI_PROFILE", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _exercise_config(directory: Path) -> None:
    with _config_env(directory):
        try:
            settings_ = config.resolve()
        except WhisperCliError:
            bump("fuzz", "config_rejected")
            return
        assert settings_.url.startswith(("http://", "https://")), f"unusable URL {settings_.url!r}"
        for key in ("url", "model"):
            with suppress(WhisperCliError):
                config.set_value(key, "x")


toml_keys = st.sampled_from(["url", "api_key", "api_key_env", "model", "tier", "profile", "x"])
toml_scalars = st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=12)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(toml_keys, inner, max_size=4),
    max_leaves=12,
)
config_like = st.fixed_dictionaries(
    {},
    optional={
        "profile": toml_values | st.sampled_from(["local", "tiyaro", "nope"]),
        "profiles": st.dictionaries(
            st.sampled_from(["local", "tiyaro", "mine", "a b"]),
            toml_values | st.dictionaries(toml_keys, toml_values, max_size=5),
            max_size=3,
        )
        | toml_values,
    },
)


@SETTINGS
@given(config_like)
def test_config_structured(scratch: Path, data: dict[str, Any]) -> None:
    bump("fuzz", "config_cases")
    directory = Path(tempfile.mkdtemp(dir=scratch))
    (directory / "config.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
    _exercise_config(directory)


@SETTINGS
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_config_raw_bytes(scratch: Path, raw: bytes) -> None:
    bump("fuzz", "config_cases")
    directory = Path(tempfile.mkdtemp(dir=scratch))
    (directory / "config.toml").write_bytes(raw)
    _exercise_config(directory)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe[profiles]\n",
        b'url = "\xc3\x28"\n',
        b"a = " + b"[" * 5000,
        b"[profiles]\nx=1\n",
        b'[profiles.local]\nurl = ""\n',
        b'[profiles.local]\nurl = "localhost:8642"\n',
    ],
    ids=["utf16-bom", "bad-utf8", "deep-arrays", "profile-not-a-table", "empty-url", "no-scheme"],
)
def test_config_hostile_cases(tmp_path: Path, raw: bytes) -> None:
    bump("hostile", "config_files")
    (tmp_path / "config.toml").write_bytes(raw)
    _exercise_config(tmp_path)


SIGNER = Signer("fuzz-secret")
text_or_none = st.none() | st.text(max_size=80)


@SETTINGS
@given(st.text(max_size=8), st.text(max_size=80), text_or_none, text_or_none, st.booleans())
def test_signature_verifier_raises_only_signature_error(
    method: str, path: str, expires: str | None, sig: str | None, check_expiry: bool
) -> None:
    bump("fuzz", "signature_cases")
    try:
        SIGNER.verify(method, path, expires, sig, check_expiry=check_expiry)
    except SignatureError:
        return
    # Accepting a random signature would be a forgery.
    raise AssertionError(f"accepted a forged signature {sig!r} for {method} {path}")


@SETTINGS
@given(
    st.sampled_from(["PUT", "GET"]),
    st.text(min_size=1, max_size=40),
    st.text(min_size=1, max_size=40),
    st.integers(min_value=1, max_value=10**6),
)
def test_a_signature_opens_only_its_own_path(method: str, path: str, other: str, ttl: int) -> None:
    assume(path != other)
    bump("fuzz", "signature_cases")
    signed = SIGNER.sign(method, path, ttl)
    query = dict(part.split("=", 1) for part in signed.rsplit("?", 1)[1].split("&"))
    SIGNER.verify(method, path, query["expires"], query["sig"])
    with pytest.raises(SignatureError):
        SIGNER.verify(method, other, query["expires"], query["sig"])
    with pytest.raises(SignatureError):
        SIGNER.verify(method, path, str(int(query["expires"]) + 1), query["sig"])
    with pytest.raises(SignatureError):
        Signer("another-secret").verify(method, path, query["expires"], query["sig"])


@pytest.mark.parametrize(
    ("expires", "sig"),
    [
        ("9999999999", "é" * 64),  # non-ASCII signature
        ("9999999999", "0" * 10_000),
        ("1" * 5000, "ab"),
        ("-1", ""),
        ("0x10", "ab"),
        (" 12 ", "ab"),
        ("١٢٣", "ab"),  # Arabic-Indic digits: int() accepts them
        ("9999999999", "%00"),
        ("9999999999", "\x00"),
    ],
    ids=[
        "non-ascii-sig",
        "long-sig",
        "long-expires",
        "negative",
        "hex",
        "spaces",
        "arabic",
        "pct",
        "nul",
    ],
)
def test_signature_verifier_hostile_cases(expires: str, sig: str) -> None:
    bump("hostile", "signatures")
    with pytest.raises(SignatureError):
        SIGNER.verify("PUT", "/v1/input/uploads/abc", expires, sig)
