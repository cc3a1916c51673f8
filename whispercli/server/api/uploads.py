"""Steps 1 and 2: a signed upload URL, then the raw bytes PUT to it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.requests import ClientDisconnect

from whispercli.protocol import UPLOAD_PUT_PATH, UPLOAD_URL_PATH
from whispercli.server.api.deps import AUTH, ID_PATTERN, Service, UrlSigner, errors_doc
from whispercli.server.api.gate import UPLOAD, body_limit
from whispercli.server.api.schemas import UploadDone, UploadUrlResponse
from whispercli.server.jobs.errors import ServiceError

router = APIRouter()


@router.post(
    UPLOAD_URL_PATH,
    status_code=201,
    response_model=UploadUrlResponse,
    dependencies=AUTH,
    responses=errors_doc("invalid_extension"),
    summary="Step 1: get a signed URL to upload a file to",
)
async def create_upload_url(
    service: Service,
    links: UrlSigner,
    extension: Annotated[
        str | None, Query(description="A hint only (e.g. mp3): decoding goes by content.")
    ] = None,
) -> dict[str, Any]:
    upload_id = await service.new_upload(extension)
    return {"uploadUrl": {"PUT": links.upload_url(upload_id)}}


@router.put(
    UPLOAD_PUT_PATH,
    response_model=UploadDone,
    responses=errors_doc(
        "upload_interrupted",
        "bad_signature",
        "upload_not_found",
        "upload_used",
        "too_large",
        "disk_full",
        auth=False,
    ),
    summary="Step 2: upload the raw bytes (the signed URL is the credential; it takes one file)",
    openapi_extra={
        **body_limit(UPLOAD),
        "requestBody": {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
    },
)
async def put_upload(
    request: Request,
    service: Service,
    links: UrlSigner,
    upload_id: Annotated[str, Path(pattern=ID_PATTERN)],
    expires: Annotated[str | None, Query()] = None,
    sig: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    links.verify("PUT", request.url.path, expires, sig)
    declared = request.headers.get("content-length", "")
    try:
        size = await service.receive_upload(
            upload_id, request.stream(), int(declared) if declared.isdigit() else None
        )
    except ClientDisconnect:
        raise ServiceError(
            "upload_interrupted", "the upload was interrupted; PUT the file again"
        ) from None
    return {"size": size}
