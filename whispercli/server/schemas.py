"""Pydantic models of the HTTP bodies: they document every endpoint in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["no job with id 0123 on this server"])


class ErrorBody(BaseModel):
    error: ErrorDetail


class PutUrl(BaseModel):
    PUT: str = Field(description="Signed URL to PUT the raw file bytes to (no auth header).")


class UploadUrlResponse(BaseModel):
    uploadUrl: PutUrl


class UploadDone(BaseModel):
    size: int = Field(description="Bytes stored.")


class SubmitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: dict[str, Any] | None = Field(
        default=None,
        description="Whisper parameters (language, task, temperature, beam_size, ...). "
        "An unknown or ill-typed parameter is a 400 naming it.",
    )
    URL: str = Field(description="The upload URL returned by step 1, after the PUT of step 2.")


class GetUrl(BaseModel):
    GET: str = Field(description="Signed poll URL (send the Bearer key too).")


class ResultBody(BaseModel):
    model_config = ConfigDict(extra="allow")
    text: str
    segments: list[dict[str, Any]]
    language: str | None = None
    duration: float | None = None


class JobBody(BaseModel):
    id: str
    status: str = Field(description="accepted, pending, processing, success, failed or cancelled.")
    model: str
    acceptedAt: str | None
    startedAt: str | None
    completedAt: str | None
    urls: GetUrl
    progress: float | None = Field(default=None, description="0..1 (extension).")
    segments: list[dict[str, Any]] | None = Field(
        default=None, description="Segments so far, while processing (extension)."
    )
    result: ResultBody | None = Field(default=None, description="On success.")
    error: str | None = Field(default=None, description="On failure: what went wrong.")


class SubmitResponse(BaseModel):
    response: JobBody


class JobList(BaseModel):
    jobs: list[JobBody]


class QueueDepth(BaseModel):
    pending: int
    processing: int


class HealthResponse(BaseModel):
    status: str
    version: str
    models: list[str] = Field(description="Installed model names (any of them can be submitted).")
    loadedModels: list[str] = Field(default=[], description="Models loaded in the worker now.")
    device: str | None = Field(default=None, description="cpu or cuda: where jobs decode.")
    queue: QueueDepth
    maxUploadBytes: int
    longPoll: bool
