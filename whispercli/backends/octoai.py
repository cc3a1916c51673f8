"""OctoAI async inference (``POST {base}/predict`` with ``X-OctoAI-Async: 1``).

The audio travels inline, base64 in the JSON body (so there is no upload step, and a URL
input is downloaded first); the answer names a ``poll_url``, whose ``completed`` status gives
a ``response_url`` with the result (``response.text``, ``response.segments``,
``transcription``). OctoAI's protocol has no list, cancel or delete. It knows no failed
state: a failed job answers its poll with an HTTP error (422 failed, 410 cancelled on the
embedded server), which becomes the job's failure here.
"""

from __future__ import annotations

import base64
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import whispercli.backends as backends
from whispercli.backends.base import Backend, Submission
from whispercli.errors import NotFoundError, UsageError, WhisperCliError
from whispercli.protocol import JobInfo, Result
from whispercli.units import human_bytes

if TYPE_CHECKING:
    from whispercli.client import Job

PREDICT_PATH = "/predict"
ASYNC_HEADER = "X-OctoAI-Async"
MAX_AUDIO_BYTES = 64 * 1024 * 1024
"""The largest file sent: base64 makes it a third larger, all in one request held in memory
(OctoAI's own service took 10 MB; the embedded server takes 128 MiB of body)."""
STATUS = {"pending": "pending", "running": "processing", "completed": "success"}
ENDED_BADLY = {422: "failed", 410: "cancelled"}
"""A poll's HTTP error for a job that ended badly (the embedded server's OctoAI router)."""


class OctoAIBackend(Backend):
    name = backends.OCTOAI
    label = "OctoAI"

    def must_download(self, url: str) -> bool:
        return True  # the audio goes inline

    def check_upload_size(self, path: str | os.PathLike[str], size: int) -> None:
        if size > MAX_AUDIO_BYTES:
            raise UsageError(
                f"{Path(path).name} is {human_bytes(size)}: OctoAI sends the audio base64 inside "
                f"one request, and this client sends at most {human_bytes(MAX_AUDIO_BYTES)}",
                hint="cut or re-encode it (e.g. ffmpeg -i IN -ac 1 -b:a 32k OUT.mp3), or use a "
                "profile with another backend",
            )

    def prepare(self, request: Submission) -> Submission:
        """An OctoAI endpoint serves the one model deployed there: ``-m`` cannot pick one,
        and what the job runs is that endpoint's model (not known here: saved as None)."""
        self.check(request)
        if request.model is not None:
            raise self.unsupported(
                f"pick a model (-m {request.model}, or the profile's model)",
                "an OctoAI endpoint serves one model: drop -m, or point the profile's url at "
                "the endpoint that serves the model you want",
            )
        return dataclasses.replace(request, model=None)

    def check(self, request: Submission) -> None:
        super().check(request)
        if request.webhook is not None:
            raise self.unsupported(
                "call a webhook", "wait for the job instead: `whispercli wait JOB`"
            )

    def submit(self, request: Submission) -> JobInfo:
        file, _ = self.inline_file(
            request, "OctoAI takes the audio inline: download the file first"
        )
        audio = file.read_bytes()
        if request.on_upload_progress is not None:
            request.on_upload_progress(0, len(audio))
        body = self.transport.call(
            "POST",
            PREDICT_PATH,
            json={"audio": base64.b64encode(audio).decode("ascii"), **request.params},
            headers={ASYNC_HEADER: "1"},
            read_timeout=max(60.0, len(audio) / 1_000_000),
        )
        if request.on_upload_progress is not None:
            request.on_upload_progress(len(audio), len(audio))
        response_id = body.get("response_id") if isinstance(body, dict) else None
        poll_url = body.get("poll_url") if isinstance(body, dict) else None
        if not isinstance(response_id, str) or not isinstance(poll_url, str):
            raise WhisperCliError(
                f"OctoAI at {self.transport.url} answered no response_id and poll_url"
            )
        return JobInfo(id=response_id, status="pending", poll_url=poll_url)

    def poll(self, job: Job, wait: float | None = None, until_done: bool = False) -> JobInfo:
        if not job.poll_url:
            raise self.unsupported(
                "look up a job by id alone", "only jobs submitted from here (saved) resume"
            )
        try:
            body = self.transport.call("GET", job.poll_url)
        except NotFoundError:
            raise
        except WhisperCliError as exc:
            status = ENDED_BADLY.get(exc.status or 0)
            if status is None:
                raise
            # The job's reason, not the HTTP status that carried it.
            reason = exc.message.removesuffix(f" (HTTP {exc.status})")
            return JobInfo(id=job.id, status=status, poll_url=job.poll_url, error=reason)
        if not isinstance(body, dict):
            raise WhisperCliError(f"unexpected poll answer from OctoAI at {self.transport.url}")
        raw = str(body.get("status", ""))
        info = JobInfo(
            id=job.id,
            status=STATUS.get(raw, raw),
            accepted_at=body.get("created_at") if isinstance(body.get("created_at"), str) else None,
            poll_url=job.poll_url,
        )
        if info.status == "success":
            response_url = body.get("response_url")
            if not isinstance(response_url, str):
                raise WhisperCliError(
                    f"OctoAI says job {job.id} completed but gives no response_url"
                )
            info.result = result_of(self.transport.call("GET", response_url))
        return info


def result_of(body: Any) -> Result:
    """``{"response": {text, segments, ...}, "transcription"}`` -> a ``Result``."""
    response = body.get("response") if isinstance(body, dict) else None
    if not isinstance(response, dict):
        response = {}
    result = Result.from_dict(response)
    if not result.text and isinstance(body, dict) and isinstance(body.get("transcription"), str):
        result.text = body["transcription"]
    return result


BACKEND = OctoAIBackend
