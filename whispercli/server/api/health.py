"""``GET /v1/health``: version, installed and loaded models, device, queue depth (the OctoAI
health check)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from whispercli.protocol import HEALTH_PATH
from whispercli.server.api.deps import AUTH, JobRunner, Service, errors_doc
from whispercli.server.api.schemas import HealthResponse
from whispercli.server.jobs import models
from whispercli.server.jobs.service import TIER_QUEUES
from whispercli.version import __version__

QUEUES = sorted(set(TIER_QUEUES.values()))

router = APIRouter()


@router.get(
    HEALTH_PATH,
    response_model=HealthResponse,
    response_model_exclude_unset=True,
    dependencies=AUTH,
    responses=errors_doc(),
    summary="Server version, installed models, queue depth (and live workers: PostgreSQL)",
)
async def health(service: Service, runner: JobRunner) -> dict[str, Any]:
    depth = await service.queue_depth()
    body: dict[str, Any] = {
        "status": "ok",
        "version": __version__,
        "models": service.installed_models(),
        "loadedModels": models.loaded_names(runner.loaded_paths, service.settings.models_dir),
        "device": runner.device,
        "queue": depth,
        "maxUploadBytes": service.settings.max_upload_bytes,
        "longPoll": True,
    }
    fleet = await service.workers()
    if fleet is not None:
        workers, queues = fleet
        body["workers"] = [
            {
                "id": w.id,
                "host": w.host,
                "queues": w.queues,
                "device": w.device,
                "models": w.models,
                "currentJobs": w.current_jobs,
                "capacity": w.capacity,
                "heartbeatAge": w.heartbeat_age,
            }
            for w in workers
        ]
        body["queues"] = {q: queues.get(q, {"pending": 0, "processing": 0}) for q in QUEUES}
    return body
