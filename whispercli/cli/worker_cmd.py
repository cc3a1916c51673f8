"""`whispercli worker run`: a PostgreSQL-mode worker on this machine (see docs/SCALING.md).

Procrastinate and the engine are imported inside ``run`` only, so the rest of the CLI stays
light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from whispercli.cli.server import (
    ComputeTypeOpt,
    DeviceOpt,
    EngineJobsOpt,
    LogLevelOpt,
    MaxAudioHoursOpt,
    MaxLoadedOpt,
    SpeedOpt,
)
from whispercli.errors import UnreachableError, UsageError
from whispercli.extras import LOCAL, POSTGRES, require
from whispercli.server.defaults import Defaults as DEFAULTS

app = typer.Typer(
    help="Run transcription workers that take jobs from PostgreSQL.", no_args_is_help=True
)

DsnOpt = Annotated[
    str,
    typer.Option(
        help="PostgreSQL DSN (postgresql://USER@HOST/DB).", envvar="WHISPERCLI_DATABASE_URL"
    ),
]


@app.command()
def run(
    database: DsnOpt,
    queues: Annotated[
        str, typer.Option(help="Queues to serve, comma-separated: cpu (cpuflex), gpu (gpuflex).")
    ] = "cpu",
    cpu_threads: Annotated[
        int, typer.Option(help="Engine threads in all (0: one per CPU).", min=0)
    ] = DEFAULTS.cpu_threads,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of CTranslate2 models, one per name.", envvar="WHISPERCLI_MODELS_DIR"
        ),
    ] = None,
    speed: SpeedOpt = DEFAULTS.speed,
    retention_hours: Annotated[
        float,
        typer.Option(
            help="Hours before finished jobs and their files are deleted (one worker of the "
            "fleet sweeps every 10 s; give all workers the same value).",
            min=0.001,
        ),
    ] = DEFAULTS.retention / 3600,
    log_level: LogLevelOpt = "info",
    device: DeviceOpt = "auto",
    compute_type: ComputeTypeOpt = "auto",
    max_loaded_models: MaxLoadedOpt = DEFAULTS.max_loaded_models,
    max_audio_hours: MaxAudioHoursOpt = DEFAULTS.max_audio_hours,
    engine_jobs: EngineJobsOpt = DEFAULTS.engine_jobs,
) -> None:
    """Run jobs from PostgreSQL on this machine's engine, several at once, until SIGTERM."""
    require(LOCAL, "whispercli worker run")
    require(POSTGRES, "whispercli worker run")

    from whispercli.server import hosting
    from whispercli.server import logs as server_logs
    from whispercli.server.jobs.service import TIER_QUEUES
    from whispercli.server.scale.worker import run_worker
    from whispercli.server.storage.store import StoreUnavailable

    names = [q.strip() for q in queues.split(",") if q.strip()]
    known = sorted(set(TIER_QUEUES.values()))
    unknown = [q for q in names if q not in known]
    if not names or unknown:
        raise UsageError(f"unknown --queues {queues!r}; use {', '.join(known)}")
    server_logs.configure(log_level.upper())
    from whispercli.server.settings import ServerSettings

    settings = ServerSettings(
        database_url=database,
        cpu_threads=cpu_threads,
        models_dir=models_dir,
        speed=speed,
        retention=retention_hours * 3600,
        max_loaded_models=max_loaded_models,
        max_audio_hours=max_audio_hours,
        engine_jobs=engine_jobs,
    )
    settings.device_plan = hosting.choose_device(device, compute_type)  # after the env checks
    try:
        run_worker(settings, names)
    except StoreUnavailable as exc:
        raise UnreachableError(
            f"{exc} ({settings.database_shown})", hint="is PostgreSQL running? check --database"
        ) from None
