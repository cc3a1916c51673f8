"""``GET /v1/health``: version, installed models, queue depth (the OctoAI health check)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from whispercli import __version__
from whispercli.protocol import HEALTH_PATH
from whispercli.server.api.deps import AUTH, Service, errors_doc
from whispercli.server.schemas import HealthResponse

router = APIRouter()


@router.get(
    HEALTH_PATH,
    response_model=HealthResponse,
    dependencies=AUTH,
    responses=errors_doc(),
    summary="Server version, installed models and queue depth",
)
async def health(service: Service) -> dict[str, Any]:
    depth = await service.queue_depth()
    return {
        "status": "ok",
        "version": __version__,
        "models": service.installed_models(),
        "queue": {"pending": depth.pending, "processing": depth.processing},
        "maxUploadBytes": service.settings.max_upload_bytes,
        "longPoll": True,
    }
