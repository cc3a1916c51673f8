"""The Tiyaro async API (the embedded server's own protocol) and the local server's extensions:
presigned upload, submit, signed poll URLs (long-polled where offered), list, cancel, delete."""

from __future__ import annotations

import math
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import whispercli.backends as backends
import whispercli.protocol as protocol
from whispercli.backends.base import Backend, Submission
from whispercli.backends.streams import CountingReader, ProgressCallback
from whispercli.errors import AuthError, NotFoundError, UnreachableError, WhisperCliError
from whispercli.protocol import JobInfo, check_job_id, is_http_url
from whispercli.units import human_bytes

if TYPE_CHECKING:
    from whispercli.backends.base import Transport
    from whispercli.client import Job


class TiyaroBackend(Backend):
    name = backends.TIYARO
    label = "Tiyaro"

    def __init__(self, transport: Transport) -> None:
        super().__init__(transport)
        self._health: dict[str, Any] | None = None

    def health(self) -> dict[str, Any]:
        """``GET /v1/health`` (a local-server extension): version, models, queue, longPoll."""
        body = self.transport.call("GET", protocol.HEALTH_PATH)
        self._health = body if isinstance(body, dict) else {}
        return self._health

    def _known_health(self) -> dict[str, Any]:
        """The health answer, asked once; ``{}`` from a server without the extension."""
        if self._health is None:
            try:
                self.health()
            except (AuthError, UnreachableError):
                raise
            except WhisperCliError:  # e.g. 404: a server without the extension (Tiyaro)
                self._health = {}
        return self._health or {}

    def supports_long_poll(self) -> bool:
        """Whether ``?wait=N`` works; a server without /v1/health (Tiyaro) does not."""
        return bool(self._known_health().get("longPoll"))

    def long_poll(self) -> bool:
        return self.transport.settings.auto_start or self.supports_long_poll()

    def must_download(self, url: str) -> bool:
        """The embedded server (it answers /v1/health with its version) transcribes only its
        own upload URLs; another endpoint is given the URL as it is."""
        if urlsplit(url).netloc == urlsplit(self.transport.url).netloc:
            return False
        return "version" in self._known_health()

    def check_upload_size(self, path: str | os.PathLike[str], size: int) -> None:
        """Refuse a file larger than the server's ``maxUploadBytes`` (when its health says).
        A server without /v1/health (Tiyaro) is not asked again."""
        limit = self._known_health().get("maxUploadBytes")
        if isinstance(limit, int) and not isinstance(limit, bool) and size > limit > 0:
            raise WhisperCliError(
                f"{Path(path).name} is {human_bytes(size)}, more than the server's upload "
                f"limit of {human_bytes(limit)}",
                hint="split or compress it (e.g. `ffmpeg -i IN -ac 1 -b:a 32k OUT.mp3`), or "
                "raise the limit (`whispercli server run --max-upload-mb N`)",
            )

    def upload(self, path: str | os.PathLike[str], on_progress: ProgressCallback | None) -> str:
        """Steps 1 and 2: the file streams from disk with a known Content-Length, so memory
        stays flat whatever its size; a retried PUT re-opens the file and sends it again."""
        file, size = self.sendable(path)
        extension = file.suffix.lstrip(".").lower() or "mp3"
        body = self.transport.call(
            "POST",
            protocol.UPLOAD_URL_PATH,
            params={"extension": extension},
            json={},
            idempotent=True,  # an unused upload slot is harmless
        )
        try:
            put_url = body["uploadUrl"]["PUT"]
        except (TypeError, KeyError):
            raise WhisperCliError(
                f"the server at {self.transport.url} gave no upload URL (no uploadUrl.PUT in its "
                "answer)"
            ) from None

        def open_body() -> CountingReader:
            if on_progress is not None:
                on_progress(0, size)
            return CountingReader(file.open("rb"), size, on_progress)

        self.transport.http.request(
            "PUT",
            put_url,
            body=open_body,
            headers={"Content-Type": "application/octet-stream"},
            auth=False,
            idempotent=True,
            read_timeout=max(60.0, size / 1_000_000),
        )
        return str(put_url)

    def submit(self, request: Submission) -> JobInfo:
        """Step 3; an ``Idempotency-Key`` is always sent, so a retried POST never creates a
        second job on a server that honours it."""
        source = str(request.source)
        if is_http_url(source):
            upload_url = source
        else:
            upload_url = self.upload(source, request.on_upload_progress)
        body: dict[str, Any] = {"input": request.params, "URL": upload_url}
        if request.webhook is not None:
            body["webhook"] = request.webhook
        model = request.model or protocol.DEFAULT_MODEL
        try:
            answer = self.transport.call(
                "POST",
                protocol.SUBMIT_PATH.format(model=quote(model, safe="")),
                params={"serviceTier": request.tier},
                json=body,
                headers={protocol.IDEMPOTENCY_HEADER: request.idempotency_key or uuid.uuid4().hex},
            )
        except NotFoundError as exc:  # the model: the upload was just made
            exc.hint = exc.hint or (
                f"`whispercli models list` lists the models of {self.transport.url}"
            )
            raise
        return self._parse(answer)

    def poll(self, job: Job, wait: float | None = None, until_done: bool = False) -> JobInfo:
        if not job.poll_url:
            job.poll_url = self.find(job.id).poll_url
            if not job.poll_url:
                raise WhisperCliError(f"the server gave no poll URL for job {job.id}")
        params: dict[str, Any] | None = None
        if wait:
            params = {protocol.WAIT_PARAM: math.ceil(wait)}  # 29.99 s left: ask for 30
            if until_done:
                params[protocol.UNTIL_PARAM] = "done"
        timeout = (wait or 0) + self.transport.http.read_timeout
        try:
            body = self.transport.call("GET", job.poll_url, params=params, read_timeout=timeout)
        except AuthError as exc:
            if exc.status != 403 or not _expired(job.poll_url):
                raise  # a key refused, or a signature altered: exit 5
            # The signed poll URL expired: the job list hands out a fresh one.
            fresh = self.find(job.id).poll_url
            if not fresh or fresh == job.poll_url:
                raise
            job.poll_url = fresh
            body = self.transport.call("GET", job.poll_url, params=params, read_timeout=timeout)
        return self._parse(body)

    def find(self, job_id: str) -> JobInfo:
        """A job by id, from the server's job list (a local-server extension)."""
        for info in self.jobs(limit=1000):
            if info.id == job_id:
                return info
        raise NotFoundError(f"no job {job_id!r} on the server at {self.transport.url}")

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[JobInfo]:
        """``GET /v1/async/jobs`` (a local-server extension), newest first."""
        params: dict[str, Any] = {}
        if status:
            params["status"] = status
        if limit:
            params["limit"] = limit
        body = self.transport.call("GET", protocol.JOBS_PATH, params=params)
        items = body.get("jobs", []) if isinstance(body, dict) else body
        return [self._parse(item) for item in items or [] if isinstance(item, dict)]

    def cancel(self, job_id: str) -> JobInfo:
        """409 from the server if the job already finished."""
        path = protocol.JOB_CANCEL_PATH.format(job_id=quote(check_job_id(job_id), safe=""))
        return self._parse(self.transport.call("POST", path, json={}))

    def delete(self, job_id: str) -> None:
        path = protocol.JOB_PATH.format(job_id=quote(check_job_id(job_id), safe=""))
        self.transport.call("DELETE", path)

    def _parse(self, body: Any) -> JobInfo:
        try:
            return JobInfo.from_body(body)
        except protocol.ProtocolError as exc:
            raise WhisperCliError(
                f"unexpected answer from the server at {self.transport.url}: {exc}"
            ) from None


def _expired(url: str) -> bool:
    """Whether a signed URL's own ``expires`` time has passed (True when it has none)."""
    try:
        return float(parse_qs(urlsplit(url).query)["expires"][0]) <= time.time()
    except (KeyError, IndexError, ValueError):
        return True


BACKEND = TiyaroBackend
