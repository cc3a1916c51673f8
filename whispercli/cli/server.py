"""`whispercli server run|start|stop|status`: the embedded server's lifecycle.

fastapi, uvicorn and the engine are imported inside ``run`` only, so the rest of the CLI stays
light. ``run`` serves in the foreground; ``start`` runs it detached with its log in the state
dir; ``stop`` sends SIGTERM to the pid ``run`` recorded and waits.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

import whispercli.launcher as launcher
import whispercli.paths as paths
from whispercli.cli.options import choice
from whispercli.errors import (
    AuthError,
    UnreachableError,
    UsageError,
    WhisperCliError,
    seconds_text,
)
from whispercli.extras import LOCAL, POSTGRES, require
from whispercli.protocol import SPEEDS
from whispercli.server.defaults import MIB
from whispercli.server.defaults import Defaults as DEFAULTS
from whispercli.server.engine.device import COMPUTE_TYPES, DEVICES

app = typer.Typer(
    help="Run and manage the embedded local transcription server.", no_args_is_help=True
)

HostOpt = Annotated[
    str, typer.Option(help="Interface to bind. Anything but loopback exposes the server.")
]
DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        help="PostgreSQL DSN (postgresql://USER@HOST/DB): jobs and uploads live there and the "
        "server runs no engine (workers do). Default: the embedded SQLite.",
        envvar="WHISPERCLI_DATABASE_URL",
        show_default=False,
    ),
]
DeviceOpt = Annotated[
    str,
    choice("--device", choices=DEVICES, help="auto: CUDA when a probe encode works, else CPU."),
]
ComputeTypeOpt = Annotated[
    str,
    choice("--compute-type", choices=COMPUTE_TYPES, help="auto: CPU int8, CUDA float16."),
]
SpeedOpt = Annotated[
    str,
    choice(
        "--speed",
        choices=SPEEDS,
        help="Decoding speed: accurate is sequential beam 5. A job's `speed` input wins.",
    ),
]
LOG_LEVELS = ("debug", "info", "warning", "error")
LogLevelOpt = Annotated[str, choice("--log-level", choices=LOG_LEVELS, help="What to log.")]
MaxLoadedOpt = Annotated[
    int, typer.Option(help="Models kept loaded at once (least recently used unloaded).", min=1)
]
MaxAudioHoursOpt = Annotated[
    float,
    typer.Option(
        help="Longest audio a job may have, in hours (checked from the file's header, then "
        "while decoding); longer fails the job.",
        min=0.001,
    ),
]
EngineJobsOpt = Annotated[
    int,
    typer.Option(
        help="Jobs the engine works on at once (their speech is decoded together); "
        "the rest wait in the queue.",
        min=1,
    ),
]
PortOpt = Annotated[
    int | None,
    typer.Option(
        help="TCP port [default: 8642, or WHISPERCLI_LOCAL_PORT].",
        min=1,
        max=65535,
        show_default=False,
    ),
]


def _port(port: int | None) -> int:
    """The port given, else the local default's (which honours WHISPERCLI_LOCAL_PORT)."""
    if port is not None:
        return port
    from urllib.parse import urlsplit

    from whispercli.config import local_default_url

    return urlsplit(local_default_url()).port or paths.DEFAULT_PORT


@app.command()
def run(
    host: HostOpt = DEFAULTS.host,
    port: PortOpt = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Database, uploads and results (default: the data dir).")
    ] = None,
    idle_timeout: Annotated[
        float,
        typer.Option(help="Exit after this many idle seconds with no work (0: never).", min=0),
    ] = DEFAULTS.idle_timeout,
    max_upload_mb: Annotated[
        float, typer.Option(help="Largest upload accepted, in MiB.", min=0.001)
    ] = DEFAULTS.max_upload_bytes / MIB,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of CTranslate2 models, one per name.", envvar="WHISPERCLI_MODELS_DIR"
        ),
    ] = None,
    default_model: Annotated[
        str,
        typer.Option(help="The model OpenAI's `whisper-1` names (the OpenAI-compatible routes)."),
    ] = DEFAULTS.default_model,
    max_queue: Annotated[
        int, typer.Option(help="Queued jobs before submit gets 429.", min=1)
    ] = DEFAULTS.max_queue,
    upload_url_ttl: Annotated[
        float, typer.Option(help="Seconds an upload URL stays valid.", min=1)
    ] = DEFAULTS.upload_url_ttl,
    retention_hours: Annotated[
        float,
        typer.Option(
            help="Hours before finished jobs and their files are deleted "
            "(with --database: `worker run --retention-hours` instead).",
            min=0.001,
        ),
    ] = DEFAULTS.retention / 3600,
    cpu_threads: Annotated[
        int,
        typer.Option(
            help="Engine threads in all, as single-thread model replicas (0: one per CPU).", min=0
        ),
    ] = DEFAULTS.cpu_threads,
    speed: SpeedOpt = DEFAULTS.speed,
    log_level: LogLevelOpt = "info",
    device: DeviceOpt = "auto",
    compute_type: ComputeTypeOpt = "auto",
    max_loaded_models: MaxLoadedOpt = DEFAULTS.max_loaded_models,
    max_audio_hours: MaxAudioHoursOpt = DEFAULTS.max_audio_hours,
    engine_jobs: EngineJobsOpt = DEFAULTS.engine_jobs,
    webhook_allow_private: Annotated[
        bool,
        typer.Option(
            help="Let webhooks and Eden file_url reach private and loopback addresses "
            "(loopback is allowed anyway when the server binds loopback)."
        ),
    ] = DEFAULTS.webhook_allow_private,
    webhook_first_retry: Annotated[
        float, typer.Option(hidden=True, min=0.01, help="Seconds before a webhook's first retry.")
    ] = DEFAULTS.webhook_first_retry,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="The URL clients reach this server by (e.g. https://stt.example.com): the "
            "upload and poll URLs it hands out start with it. Default: the bind address.",
            metavar="URL",
            show_default=False,
        ),
    ] = None,
    file_url_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds an Eden file_url download may take in all.", min=0.1, metavar="SECONDS"
        ),
    ] = DEFAULTS.file_url_seconds,
    header_timeout: Annotated[
        float,
        typer.Option(hidden=True, min=0.1, help="Seconds a client has to send its headers."),
    ] = DEFAULTS.header_timeout,
    database: DatabaseOpt = None,
) -> None:
    """Serve in the foreground until Ctrl-C or SIGTERM."""
    require(LOCAL, "whispercli server run")
    if database:
        require(POSTGRES, "whispercli server run --database")
    from whispercli.server import hosting
    from whispercli.server import logs as server_logs

    port = _port(port)
    server_logs.configure(log_level.upper())
    from whispercli.server.settings import ServerSettings, check_public_url

    try:
        public = None if public_url is None else check_public_url(public_url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = ServerSettings(
        host=host,
        port=port,
        max_upload_bytes=int(max_upload_mb * MIB),
        idle_timeout=idle_timeout,
        models_dir=models_dir,
        default_model=default_model,
        max_queue=max_queue,
        upload_url_ttl=upload_url_ttl,
        retention=retention_hours * 3600,
        cpu_threads=cpu_threads,
        speed=speed,
        max_loaded_models=max_loaded_models,
        max_audio_hours=max_audio_hours,
        engine_jobs=engine_jobs,
        webhook_allow_private=webhook_allow_private,
        webhook_first_retry=webhook_first_retry,
        file_url_seconds=file_url_timeout,
        header_timeout=header_timeout,
    )
    settings.device_plan = hosting.choose_device(device, compute_type)  # after the env checks
    settings.public_url = public
    if data_dir is not None:
        settings.data_dir = data_dir
    settings.database_url = database or None
    hosting.serve(settings, log_level)


@app.command()
def migrate(
    database: Annotated[
        str,
        typer.Option(
            help="PostgreSQL DSN (postgresql://USER@HOST/DB).", envvar="WHISPERCLI_DATABASE_URL"
        ),
    ],
) -> None:
    """Create or update the PostgreSQL schema (idempotent; `server run` also does it)."""
    from whispercli.server.scale.queue import migrate as apply_schema
    from whispercli.server.settings import redact_dsn
    from whispercli.server.storage.store import StoreUnavailable

    try:
        apply_schema(database)
    except StoreUnavailable as exc:
        raise UnreachableError(
            f"{exc} ({redact_dsn(database)})", hint="is PostgreSQL running? check --database"
        ) from None
    typer.echo(f"schema up to date in {redact_dsn(database)}", err=True)


@app.command()
def start(
    port: PortOpt = None,
    idle_timeout: Annotated[
        float,
        typer.Option(help="Exit after this many idle seconds with no work (0: never).", min=0),
    ] = DEFAULTS.idle_timeout,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to answer.")] = 30.0,
) -> None:
    """Start the server in the background (log in the state dir) and wait until it answers."""
    port = _port(port)
    url = f"http://{paths.DEFAULT_HOST}:{port}"
    if launcher.answers(url):
        typer.echo(f"a server already answers at {url}", err=True)
        typer.echo(url)
        return
    require(LOCAL, "whispercli server start")
    log_file = paths.server_log_file()
    proc = launcher.spawn_server(
        ["--port", str(port), "--idle-timeout", str(idle_timeout)], log_file
    )
    launcher.wait_until_up(url, proc, timeout, log_file)
    typer.echo(f"server started (pid {proc.pid}); log: {log_file}", err=True)
    typer.echo(url)


@app.command()
def stop(
    port: PortOpt = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to exit.")] = 20.0,
) -> None:
    """Stop the server recorded for PORT gracefully (SIGTERM, then wait)."""
    port = _port(port)
    record = launcher.read_pid_file(port)
    if record is None or not launcher.is_our_server(record["pid"]):
        paths.server_pid_file(port).unlink(missing_ok=True)
        typer.echo(f"no whispercli server is running on port {port}", err=True)
        return
    pid = record["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not launcher.is_our_server(pid):
            paths.server_pid_file(port).unlink(missing_ok=True)
            typer.echo(f"server stopped (pid {pid})", err=True)
            return
        time.sleep(0.1)
    raise WhisperCliError(
        f"the server (pid {pid}) did not exit within {seconds_text(timeout)}",
        hint=f"kill it with `kill -9 {pid}`",
    )


@app.command()
def status(
    ctx: typer.Context,
    port: PortOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the health body as JSON.")] = False,
) -> None:
    """Show whether the server answers, its version, models and queue (the local server, or
    the one the global --url or --profile names)."""
    from whispercli.cli.context import globals_of
    from whispercli.client import Client

    g = globals_of(ctx)
    port = _port(port)
    record = None if g.url or g.profile else launcher.read_pid_file(port)
    if g.url or g.profile:
        url = g.url
    elif record and isinstance(record.get("url"), str):
        url = record["url"]
    else:
        url = f"http://{paths.DEFAULT_HOST}:{port}"
    client = Client(url=url, api_key=g.api_key, profile=g.profile, auto_start=False)
    url = client.url
    try:
        body = dict(client.health())
    except UnreachableError:
        raise UnreachableError(
            f"no server answers at {url}", hint="start one with `whispercli server start`"
        ) from None
    except AuthError:
        raise
    except WhisperCliError as exc:  # a 404 or an HTML page: something else listens there
        raise WhisperCliError(
            f"{url} answers, but not as a whispercli server ({exc.message})",
            hint="check the URL and port",
        ) from None
    if "version" not in body or not isinstance(body.get("models", []), list):
        raise WhisperCliError(
            f"{url} answers /v1/health, but not as a whispercli server", hint="check the URL"
        )
    body["url"] = url
    body["pid"] = record["pid"] if record else None
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo("\n".join(_status_lines(body)))


def _status_lines(body: dict[str, Any]) -> list[str]:
    """``server status`` as text: the server, its models and queue, and in PostgreSQL mode
    the live workers and each queue's depth."""
    queue = body.get("queue", {})
    lines = [
        f"running at {body['url']} (version {body.get('version')}, pid {body['pid'] or 'unknown'})",
        f"models: {', '.join(body.get('models', [])) or 'none'}",
        f"queue: {queue.get('pending', 0)} pending, {queue.get('processing', 0)} processing",
    ]
    workers = body.get("workers")
    if not isinstance(workers, list):
        return lines  # the embedded server runs its own engine
    lines.append(
        f"workers: {len(workers)} live"
        if workers
        else "workers: none live (pending jobs wait for `whispercli worker run`)"
    )
    for w in workers:
        jobs = w.get("currentJobs") or []
        doing = "idle"
        if jobs:
            doing = f"running {', '.join(jobs)} ({len(jobs)} of {w.get('capacity')})"
        queues = ",".join(w.get("queues") or [])
        lines.append(f"  {w.get('id')}\tqueues {queues}\t{w.get('device')}\t{doing}")
    for name, depth in (body.get("queues") or {}).items():
        lines.append(
            f"queue {name}: {depth.get('pending', 0)} pending, "
            f"{depth.get('processing', 0)} processing"
        )
    return lines


@app.command("webhook-secret")
def webhook_secret() -> None:
    """Print the secret webhook receivers verify signatures with (created on first use)."""
    from whispercli.server.webhooks.signatures import WebhookSecretError, load_secret

    try:
        typer.echo(load_secret())
    except WebhookSecretError as exc:
        raise WhisperCliError(str(exc)) from None
