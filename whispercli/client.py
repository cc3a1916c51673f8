"""The Python client: async transcription jobs as an OctoAI-style future, over a backend
(``whispercli.backends``: the Tiyaro protocol by default, Eden AI, OctoAI).

    from whispercli import Client

    client = Client()                          # settings as the CLI resolves them
    job = client.submit("talk.mp3", model="tiny", language="en")
    result = job.wait(timeout=600)             # long-polls when the server offers it
    print(result.text)

``Client(url=..., api_key=...)`` talks to any Tiyaro-compatible endpoint (a profile's
``backend`` picks another protocol); without arguments it
uses the same settings as the CLI (flags > environment > config file > the local server).
Every failure is a ``whispercli.errors.WhisperCliError`` subclass with a readable message.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

import whispercli.backends as backends
import whispercli.protocol as protocol
from whispercli.backends.base import JobCallback, Submission
from whispercli.backends.streams import ProgressCallback
from whispercli.config import Settings, resolve
from whispercli.errors import (
    AuthError,
    JobFailedError,
    UnreachableError,
    WaitTimeoutError,
    WhisperCliError,
    seconds_text,
)
from whispercli.http import RETRY_STATUSES, HttpCore, redact_url
from whispercli.http import deadline as http_deadline
from whispercli.protocol import JobInfo, Result

if TYPE_CHECKING:
    from whispercli.backends.tiyaro import TiyaroBackend

POLL_START = 1.0
POLL_FACTOR = 1.5
POLL_CAP = 15.0
LONG_POLL_SECONDS = 30
DOWNLOAD_CHUNK = 64 * 1024
"""Downloads report progress every 64 KiB (a read returns only when the chunk is full)."""
AUTO_START_TIMEOUT = 60.0
OUTAGE_GRACE = 60.0
"""How long ``Job.wait`` keeps trying while a server that answered before is unreachable."""

log = logging.getLogger("whispercli.client")


class Client:
    """A connection to one endpoint. Thread-safe enough for a small pool of jobs."""

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        profile: str | None = None,
        settings: Settings | None = None,
        auto_start: bool | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        """``auto_start`` (default: True when the endpoint is the built-in local default)
        starts the embedded server once when nothing answers there."""
        self.settings = settings or resolve(url=url, api_key=api_key, profile=profile)
        self.auto_start = self.settings.auto_start if auto_start is None else auto_start
        kwargs: dict[str, Any] = {}
        if connect_timeout is not None:
            kwargs["connect_timeout"] = connect_timeout
        if read_timeout is not None:
            kwargs["read_timeout"] = read_timeout
        self.http = HttpCore(
            self.settings.url,
            self.settings.resolve_api_key,
            key_source=self.settings.key_source,
            local_hint=self.settings.auto_start,
            **kwargs,
        )
        self.backend = backends.create(self.settings.backend, self)
        self._started = False
        self._start_failure: WhisperCliError | None = None
        self._start_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.settings.url

    # -- plumbing -------------------------------------------------------------------------

    def call(self, method: str, path_or_url: str, **kwargs: Any) -> Any:
        """One JSON request through the HTTP core (a backend's way to the endpoint: see
        ``backends.base.Transport``); starts the local server once if it is not running."""
        self._require_key()
        try:
            return self.http.json(method, path_or_url, **kwargs)
        except UnreachableError:
            if not self.auto_start:
                raise
            self.ensure_server()
            return self.http.json(method, path_or_url, **kwargs)

    def _require_key(self) -> None:
        """A profile without a key fails here, before any network, instead of as a 401."""
        if self.settings.api_key is None and self.settings.key_file is None:
            raise AuthError(
                f"no API key for profile {self.settings.profile!r} ({self.url})",
                hint=self.settings.key_source.removeprefix("none (").removesuffix(")"),
            )

    def ensure_server(self) -> None:
        """Start the embedded server (detached) unless something answers at the local URL.

        Once per client: the first thread that finds the server down starts it, and the
        threads that failed meanwhile (parallel jobs from a cold start) wait here for that
        start to finish, then try again. A server that goes away later is not restarted; a
        start that failed fails every later call the same way (a caller that tolerates a
        failed request must not hide why the server is not there).
        """
        from whispercli.launcher import ensure_local_server  # heavy-ish; only when needed

        with self._start_lock:
            if self._start_failure is not None:
                raise self._start_failure
            if self._started:
                return
            self._started = True
            try:
                ensure_local_server(self.url, AUTO_START_TIMEOUT)
            except WhisperCliError as exc:
                self._start_failure = exc
                raise

    # -- endpoints (each through the backend) ---------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /v1/health`` (a local-server extension): version, models, queue, longPoll."""
        return self._tiyaro("report its health or models").health()

    def supports_long_poll(self) -> bool:
        """Whether the backend can hold a poll until the status changes."""
        return self.backend.long_poll()

    def _tiyaro(self, verb: str) -> TiyaroBackend:
        from whispercli.backends.tiyaro import TiyaroBackend

        if not isinstance(self.backend, TiyaroBackend):
            raise self.backend.unsupported(verb, "the embedded server and Tiyaro do")
        return self.backend

    def check_upload_size(self, path: str | os.PathLike[str], size: int) -> None:
        """Refuse a file larger than the endpoint takes (when it says), before it is hashed
        or sent."""
        self.backend.check_upload_size(path, size)

    def upload(
        self, path: str | os.PathLike[str], on_progress: ProgressCallback | None = None
    ) -> str:
        """Upload a local file (Tiyaro's steps 1 and 2) and return its upload URL."""
        return self.backend.upload(path, on_progress)

    def submit(
        self,
        path_or_upload_url: str | os.PathLike[str],
        model: str | None = None,
        tier: str = protocol.DEFAULT_TIER,
        idempotency_key: str | None = None,
        *,
        on_upload_progress: ProgressCallback | None = None,
        providers: list[str] | None = None,
        webhook: str | None = None,
        on_progress: JobCallback | None = None,
        **whisper_params: Any,
    ) -> Job:
        """Submit a transcription (uploading a local file first) and return its ``Job``.

        ``model``: a model name (``tiny`` when None, on the Tiyaro protocol; Eden AI maps it
        to its ``whisper`` provider, ``whisper/<model>``). ``whisper_params`` are the Whisper
        input parameters (``language``, ``task``, ``beam_size``, ...; see
        ``protocol.WHISPER_PARAMS``); ``None`` values are dropped.
        ``providers`` picks Eden AI's vendors (the profile's ``providers`` when not given).
        ``webhook``: a URL the server POSTs the job to when it ends (an extension of the
        embedded server; Eden AI's ``webhook_receiver``). The Tiyaro backend always sends an
        ``Idempotency-Key`` (random unless given), so a retried POST never creates a second
        job on a server that honours it. ``on_progress``: a backend whose submit answers only
        once the job has ended (OpenAI's, ``backend.has_jobs`` False) streams and calls it with
        the segments so far; the returned job has then ended (``job.wait()`` returns at once).
        """
        request = Submission(
            source=path_or_upload_url,
            model=model,
            tier=tier,
            params={k: v for k, v in whisper_params.items() if v is not None},
            providers=list(providers or []),
            idempotency_key=idempotency_key,
            on_upload_progress=on_upload_progress,
            webhook=webhook,
            on_progress=on_progress,
        )
        self._require_key()
        info = self.backend.submit(self.backend.prepare(request))
        return Job(self, info.id, info.poll_url, info)

    def prepare(
        self,
        model: str | None,
        params: dict[str, Any],
        providers: list[str] | None = None,
        webhook: str | None = None,
    ) -> Submission:
        """Check, before any request, what a submit would send, and return it as the backend
        will send it: ``model`` is then what the job runs (saved with it) and ``providers``
        Eden AI's vendors. A missing API key comes first (exit 5); options the protocol
        cannot carry are a ``UsageError`` (exit 2)."""
        self._require_key()
        return self.backend.prepare(
            Submission("", model, "", dict(params), list(providers or []), webhook=webhook)
        )

    def must_download(self, url: str) -> bool:
        """True for a URL this endpoint cannot take as input, so the client downloads it and
        uploads the bytes (the embedded server takes only its own upload URLs; OctoAI takes
        the audio inline)."""
        return self.backend.must_download(url)

    def download(self, url: str, folder: Path, on_progress: ProgressCallback | None = None) -> Path:
        """Stream ``url`` into a file in ``folder`` (named after the URL's path) and return it.

        Through the same HTTP core (timeouts, retries of the GET), without the API key: the
        URL is another host's.
        """
        target = folder / (Path(urlsplit(url).path).name or "download")
        shown = redact_url(url)
        fix = f"check the URL, or fetch it yourself: curl -fL '{shown}' | whispercli transcribe -"
        try:
            resp = self.http.request("GET", url, auth=False, stream=True)
        except UnreachableError:
            raise UnreachableError(f"cannot download {shown}: no answer", hint=fix) from None
        except WhisperCliError as exc:
            exc.message, exc.hint = f"cannot download {shown}: {exc.message}", fix
            raise
        total = int(resp.headers.get("Content-Length") or 0)
        got = 0
        try:
            with resp, target.open("wb") as fh:
                for chunk in resp.iter_content(DOWNLOAD_CHUNK):
                    fh.write(chunk)
                    got += len(chunk)
                    if on_progress is not None:
                        on_progress(got, total)
        except requests.RequestException:
            got = -1
        if got < 0 or (total and got != total):
            raise UnreachableError(f"the download of {shown} broke off", hint=fix)
        return target

    def job(self, job_id: str, poll_url: str | None = None) -> Job:
        """A ``Job`` handle for an existing job (the poll URL is looked up when not given)."""
        if poll_url is None:
            poll_url = self.backend.poll_url(job_id) or self.get_info(job_id).poll_url
        return Job(self, job_id, poll_url)

    def get_info(self, job_id: str) -> JobInfo:
        """A job by id (on Tiyaro, from the server's job list: a local-server extension)."""
        return self.backend.find(job_id)

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[JobInfo]:
        """The server's jobs, newest first."""
        return self.backend.jobs(status, limit)

    def cancel(self, job_id: str) -> JobInfo:
        """Cancel a queued or running job (409 from the server if it already finished)."""
        return self.backend.cancel(job_id)

    def delete(self, job_id: str) -> None:
        """Delete a job and its data on the server."""
        self.backend.delete(job_id)


class Job:
    """A submitted job: the future. ``info`` holds the last body the server sent."""

    def __init__(
        self, client: Client, job_id: str, poll_url: str | None, info: JobInfo | None = None
    ) -> None:
        self.client = client
        self.id = job_id
        self.poll_url = poll_url or (info.poll_url if info else None)
        self.info = info

    def __repr__(self) -> str:
        status = self.info.status if self.info else "unknown"
        return f"<Job {self.id} {status}>"

    def refresh(self, wait: float | None = None, *, until_done: bool = False) -> JobInfo:
        """Poll once; with ``wait`` the server may hold the answer until the status changes
        (or, with ``until_done``, until the job finishes)."""
        self.info = self.client.backend.poll(self, wait, until_done)
        return self.info

    def status(self) -> str:
        """Poll once and return the status (``accepted`` ... ``success``)."""
        return self.refresh().status

    def ready(self) -> bool:
        """Poll once: True when the job finished (successfully or not)."""
        return self.refresh().terminal

    def result(self) -> Result:
        """The transcript of a finished job; raises ``JobFailedError`` if it failed."""
        info = self.info if self.info and self.info.terminal else self.refresh()
        return _result_of(info)

    def cancel(self) -> JobInfo:
        self.info = self.client.cancel(self.id)
        return self.info

    def wait(
        self,
        timeout: float | None = None,
        on_progress: JobCallback | None = None,
        *,
        long_poll: float = LONG_POLL_SECONDS,
    ) -> Result:
        """Block until the job finishes and return its result.

        Long-polls (``?wait=``, at most ``long_poll`` seconds a request) when the server can
        (the embedded server always can; another endpoint is asked once through its health
        extension), else polls with backoff (1 s, x1.5, capped at 15 s). Without
        ``on_progress`` the server is asked to answer only once the job has finished, and the
        first request already waits: a quiet wait costs one request per long-poll. ``timeout``
        is measured on a monotonic clock and raises ``WaitTimeoutError`` (the job keeps
        running). A failed or cancelled job raises ``JobFailedError``. A server that goes
        away mid-wait (a restart) is retried for up to ``OUTAGE_GRACE`` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        use_long_poll = self.client.supports_long_poll()
        until_done = on_progress is None
        cap = min(long_poll, protocol.MAX_LONG_POLL_SECONDS)
        delay = POLL_START
        # With progress to show, the first poll answers at once; a quiet wait starts waiting.
        wait: float | None = None
        if use_long_poll and until_done:
            wait = max(1.0, cap if deadline is None else min(cap, timeout or 0.0))
        previous: str | None = None
        outage_since: float | None = None
        while True:
            started = time.monotonic()
            try:
                with http_deadline(deadline):  # no retry or Retry-After sleeps past it
                    info = self.refresh(wait=wait, until_done=until_done)
            except WhisperCliError as exc:
                now = time.monotonic()
                if deadline is not None and now >= deadline - 0.05:
                    raise self._timed_out(
                        f"has no result after {seconds_text(timeout or 0.0)} ({exc.message})"
                    ) from None
                # A server restarting under a long wait: ride it out for a while, but a server
                # that never answered this client is an error at once. One that answers "busy"
                # (429, 502, 503, 504 past the request's own retries) is waited out only until
                # the caller's deadline, when there is one.
                unreachable = isinstance(exc, UnreachableError)
                busy = exc.status in RETRY_STATUSES and deadline is not None
                if not (unreachable or busy):
                    raise
                outage_since = outage_since or now
                never_answered = unreachable and not self.client.http.answered
                if never_answered or now - outage_since > OUTAGE_GRACE:
                    raise
                log.debug("server unavailable; retrying (%.0f s so far)", now - outage_since)
                time.sleep(_pause(min(delay, 5.0), None if deadline is None else deadline - now))
                delay = min(delay * POLL_FACTOR, POLL_CAP)
                continue
            outage_since = None
            if on_progress is not None:
                on_progress(info)
            if info.terminal:
                return _result_of(info)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise self._timed_out(
                    f"is still {info.status} after {seconds_text(timeout or 0.0)}"
                )
            if use_long_poll:
                if wait and info.status == previous and time.monotonic() - started < 0.5:
                    # The server ignored ?wait: do not spin, back off instead.
                    time.sleep(_pause(delay, remaining))
                    delay = min(delay * POLL_FACTOR, POLL_CAP)
                wait = max(1.0, cap if remaining is None else min(cap, remaining))
            else:
                time.sleep(_pause(delay, remaining))
                delay = min(delay * POLL_FACTOR, POLL_CAP)
            previous = info.status

    def _timed_out(self, what: str) -> WaitTimeoutError:
        return WaitTimeoutError(
            f"job {self.id} {what}",
            hint=f"it keeps running; wait again later (job id {self.id})",
        )


def _pause(delay: float, remaining: float | None) -> float:
    return delay if remaining is None else max(0.0, min(delay, remaining))


def _result_of(info: JobInfo) -> Result:
    if info.status == protocol.Status.SUCCESS:
        if info.result is None:
            raise WhisperCliError(f"job {info.id} succeeded but the server sent no result")
        return info.result
    if info.status == protocol.Status.FAILED:
        raise JobFailedError(f"job {info.id} failed: {info.error or 'no reason given'}")
    if info.status == protocol.Status.CANCELLED:
        raise JobFailedError(f"job {info.id} was cancelled")
    raise WhisperCliError(f"job {info.id} is not finished (status {info.status})")
