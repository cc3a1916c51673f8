"""Step 3 (submit) and step 4 (poll, long-poll), plus the list, cancel and delete extensions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response

from whispercli.protocol import (
    IDEMPOTENCY_HEADER,
    JOB_CANCEL_PATH,
    JOB_PATH,
    JOBS_PATH,
    MAX_LONG_POLL_SECONDS,
    SUBMIT_PATH,
    Status,
)
from whispercli.server.api.deps import AUTH, ID_PATTERN, Service, UrlSigner, errors_doc
from whispercli.server.api.schemas import ErrorBody, JobBody, JobList, SubmitRequest, SubmitResponse
from whispercli.server.jobs.service import JobService
from whispercli.server.storage.store import JobRecord

router = APIRouter()
JobId = Annotated[str, Path(pattern=ID_PATTERN)]


async def job_body(
    service: JobService, links: UrlSigner, job: JobRecord, *, with_result: bool = True
) -> JobBody:
    result = await service.result(job) if with_result else None
    waiting = await service.waiting(job) if with_result else None  # not for each of a list
    return JobBody.from_job(job, links.poll_url(job), result, waiting)


@router.post(
    SUBMIT_PATH.replace("{model}", "{model:path}"),  # an explicit model id has a slash
    status_code=202,
    response_model=SubmitResponse,
    response_model_exclude_unset=True,
    dependencies=AUTH,
    responses={
        **errors_doc("invalid_input", "model_not_found", "invalid_webhook"),
        429: {"model": ErrorBody, "description": "Queue full; see Retry-After."},
    },
    summary="Step 3: submit a transcription job",
)
async def submit(
    service: Service,
    links: UrlSigner,
    model: str,
    body: SubmitRequest,
    service_tier: Annotated[str, Query(alias="serviceTier")] = "cpuflex",
    idempotency_key: Annotated[str | None, Header(alias=IDEMPOTENCY_HEADER, max_length=200)] = None,
) -> dict[str, Any]:
    job_request = service.validate(model, service_tier, body.input)
    upload_id = links.upload_id(body.URL)
    if body.webhook is not None:
        await service.check_webhook(body.webhook)
    job = await service.submit(job_request, upload_id, idempotency_key)
    if body.webhook is not None:
        await service.add_webhook(job, body.webhook, "tiyaro", links.base_url)
    return {"response": await job_body(service, links, job)}


@router.get(
    JOB_PATH,
    response_model=JobBody,
    response_model_exclude_unset=True,
    dependencies=AUTH,
    responses=errors_doc("bad_signature", "job_not_found"),
    summary="Step 4: poll a job (signed URL); ?wait=SECONDS long-polls",
)
async def poll(
    request: Request,
    service: Service,
    links: UrlSigner,
    job_id: JobId,
    wait: Annotated[
        float | None,
        Query(ge=0, description=f"Long-poll up to this many seconds (<= {MAX_LONG_POLL_SECONDS})."),
    ] = None,
    until: Annotated[
        Literal["change", "done"],
        Query(
            description="With wait: answer on any status change (change) or only once the "
            "job has finished (done)."
        ),
    ] = "change",
    expires: Annotated[str | None, Query()] = None,
    sig: Annotated[str | None, Query()] = None,
) -> JobBody:
    # The Bearer key alone is enough to read a job; a signature, when given, must be valid.
    if expires is not None or sig is not None:
        links.verify("GET", request.url.path, expires, sig)
    if wait:
        job = await service.wait(
            job_id, wait, until_done=until == "done", disconnected=request.is_disconnected
        )
    else:
        job = await service.get(job_id)
    return await job_body(service, links, job)


@router.get(
    JOBS_PATH,
    response_model=JobList,
    response_model_exclude_unset=True,
    dependencies=AUTH,
    responses=errors_doc("invalid_request"),
    summary="List jobs, newest first (without results)",
)
async def list_jobs(
    service: Service,
    links: UrlSigner,
    status: Annotated[Status | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    jobs = await service.list(status, limit)
    return {"jobs": [await job_body(service, links, j, with_result=False) for j in jobs]}


@router.post(
    JOB_CANCEL_PATH,
    response_model=JobBody,
    response_model_exclude_unset=True,
    dependencies=AUTH,
    responses=errors_doc("job_not_found", "already_finished"),
    summary="Cancel a queued or processing job",
)
async def cancel(service: Service, links: UrlSigner, job_id: JobId) -> JobBody:
    job = await service.cancel(job_id)
    return await job_body(service, links, job)


@router.delete(
    JOB_PATH,
    status_code=204,
    response_class=Response,
    dependencies=AUTH,
    responses=errors_doc("job_not_found", "job_running"),
    summary="Delete a finished job, its upload and its result",
)
async def delete(service: Service, job_id: JobId) -> Response:
    await service.delete(job_id)
    return Response(status_code=204)
