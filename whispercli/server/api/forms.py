"""Multipart bodies streamed into an upload: the protocols that take the audio in a form
(Eden AI's launch, OpenAI's transcriptions) read it through here, so the file part goes to the
blob store as it arrives (never spooled to /tmp, the upload limit checked as bytes come) and
the text fields stay in the reader (vendors/multipart.py caps their number and size)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request

from whispercli.server.jobs.service import JobService
from whispercli.server.vendors.multipart import FormReader


async def receive_form(
    request: Request, service: JobService, boundary: bytes
) -> tuple[FormReader, str]:
    """Stream the request's form: its file part into a new upload, whose id is returned with
    the reader (``reader.fields``, ``reader.has_file``). The reader's ``FormError``, a
    ``ClientDisconnect`` and the service's ``ServiceError`` (too large, storage full) propagate:
    each protocol answers them in its own shape."""
    reader = FormReader(boundary)
    upload_id = await service.new_upload(None)

    async def file_bytes() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            for piece in reader.feed(chunk):
                yield piece
        reader.finish()

    await service.receive_upload(upload_id, file_bytes(), None)
    return reader, upload_id
