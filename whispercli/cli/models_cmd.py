"""`whispercli models list|pull|rm`: the Whisper models on this machine, and the endpoint's.

``models list`` shows the installed models when the endpoint is the local server, and the
names a remote endpoint's ``/v1/health`` lists (or the local server's, with ``--server``).
huggingface_hub and faster-whisper's name table are imported inside the commands, so
``whispercli --help`` stays light.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from whispercli.cli import options as o
from whispercli.cli.context import get_client
from whispercli.cli.output import data, emit_json, note, table_header
from whispercli.errors import AuthError, UnreachableError, UsageError, WhisperCliError

app = typer.Typer(help="List, download and remove Whisper models.", no_args_is_help=True)

ModelsDir = Annotated[
    Path | None,
    typer.Option(
        help="The server's folder of CTranslate2 models, one per name.",
        envvar="WHISPERCLI_MODELS_DIR",
    ),
]
NoDownload = Annotated[
    bool,
    typer.Option(
        "--no-download",
        help="Local server: fail (exit 4) rather than download a model that is not installed.",
    ),
]
_APPROX_MB = {
    "tiny": 75,
    "base": 145,
    "small": 484,
    "medium": 1530,
    "large": 3090,
    "distil-small": 332,
    "distil-medium": 789,
    "distil-large": 1510,
    "large-v3-turbo": 1620,
    "turbo": 1620,
}
"""Approximate model.bin sizes of the faster-whisper conversions (MB), for ``--available``."""


def _approx_mb(name: str) -> int | None:
    base = name.removesuffix(".en")
    if base in _APPROX_MB:
        return _APPROX_MB[base]
    family = max((k for k in _APPROX_MB if base.startswith(k)), key=len, default=None)
    return _APPROX_MB[family] if family else None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _list_server_models(client: Any, json_out: bool) -> None:
    """The names the endpoint's ``/v1/health`` lists (and those it has loaded)."""
    try:
        health = client.health()
    except (AuthError, UnreachableError):
        raise
    except WhisperCliError:
        health = {}  # no health extension (a remote Tiyaro endpoint)
    names = health.get("models")
    if not isinstance(names, list):
        raise WhisperCliError(
            f"the server at {client.url} does not list its models",
            hint="see the provider's documentation for the model names it offers",
        )
    loaded = health.get("loadedModels")
    loaded = [str(n) for n in loaded] if isinstance(loaded, list) else []
    if json_out:
        emit_json({"url": client.url, "models": names, "loadedModels": loaded})
        return
    table_header(("NAME", "LOADED"))
    for name in names:
        data(f"{name}\tloaded" if name in loaded else str(name))


@app.command("list")
def list_models(
    ctx: typer.Context,
    available: Annotated[
        bool, typer.Option("--available", help="Also list every name faster-whisper knows.")
    ] = False,
    server: Annotated[
        bool,
        typer.Option(
            "--server",
            help="List what the endpoint's /v1/health offers (the default for a remote "
            "endpoint), not the models installed here.",
        ),
    ] = False,
    models_dir: ModelsDir = None,
    json_out: o.Json = False,
) -> None:
    """Installed models: name, languages, size on disk, where (shipped, models dir, HF cache).

    With a remote endpoint (or --server): the models the endpoint lists, names for -m."""
    client = get_client(ctx)
    if server or not client.settings.auto_start:
        if available:
            raise UsageError("--available lists names to pull here; drop --server")
        _list_server_models(client, json_out)
        return
    import whispercli.modelhub as modelhub

    rows: list[dict[str, Any]] = [
        {**m.to_dict(), "installed": True} for m in modelhub.installed(models_dir)
    ]
    if available:
        have = {r["name"] for r in rows} | {r["repo"] for r in rows if r["source"] != "shipped"}
        for name, repo in modelhub.catalogue().items():
            if name in have or name == modelhub.PINNED_SHIPPED:
                continue
            mb = _approx_mb(name)
            rows.append(
                {
                    "name": name,
                    "repo": repo,
                    "languages": "English-only" if name.endswith(".en") else "multilingual",
                    "installed": False,
                    "download_bytes": mb * 1_000_000 if mb else None,
                }
            )
    if json_out:
        emit_json(rows)
        return
    table_header(("NAME", "LANGUAGES", "SIZE", "SOURCE", "LOCATION"))
    for r in rows:
        if r["installed"]:
            where = f"{r['source']}\t{r['path']}"
            data(f"{r['name']}\t{r['languages']}\t{_size(r['size_bytes'])}\t{where}")
        else:
            size = f"~{_size(r['download_bytes'])}" if r["download_bytes"] else "?"
            data(f"{r['name']}\t{r['languages']}\t{size}\tavailable\t{r['repo']}")


@app.command("pull")
def pull(
    name: Annotated[str, typer.Argument(metavar="NAME|ORG/REPO", help="A faster-whisper name.")],
    revision: Annotated[
        str | None, typer.Option(help="A branch, tag or commit of the repo [main].")
    ] = None,
    quiet: o.Quiet = False,
    json_out: o.Json = False,
) -> None:
    """Download a model into the Hugging Face cache (resumable); prints its folder."""
    import whispercli.modelhub as modelhub
    import whispercli.modelpull as modelpull

    info = modelpull.pull(name, revision=revision, progress=sys.stderr.isatty() and not quiet)
    note(f"{name}: {info.repo} in {info.path} ({_size(info.size_bytes)})", quiet=quiet)
    if name == modelhub.PINNED_SHIPPED:
        note(f"`-m {name}` stays the shipped English model; use -m {info.repo}", quiet=quiet)
    if json_out:
        emit_json(info.to_dict())
    else:
        data(str(info.path))


@app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(metavar="NAME|ORG/REPO")],
    models_dir: ModelsDir = None,
) -> None:
    """Delete a downloaded model from the Hugging Face cache (all its revisions)."""
    import whispercli.modelpull as modelpull

    folder = modelpull.remove(name, models_dir)
    note(f"removed {name} ({folder})")


def ensure_local_model(client: Any, model: str, *, no_download: bool, quiet: bool) -> None:
    """``transcribe -m NAME`` on the local default: pull NAME first when it is missing."""
    if not client.settings.auto_start:
        return
    import whispercli.modelpull as modelpull

    env_dir = os.environ.get("WHISPERCLI_MODELS_DIR")
    modelpull.ensure_installed(
        model, Path(env_dir) if env_dir else None, no_download=no_download, quiet=quiet
    )
