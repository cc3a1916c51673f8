"""Eden AI v2 async speech-to-text (``{base}/audio/speech_to_text_async/``).

Launch is a multipart ``file`` upload (streamed, not retried: Eden has no idempotency key) or
JSON ``file_url``; a job is ``GET``'s one at a time and listed with ``GET`` on the launch
path; ``DELETE`` there removes every finished job of the account (Eden deletes in bulk, not
one job). Eden cannot cancel a launched job.

One job runs on several vendors (``providers``). Each vendor's answer becomes a ``Result``
(text, sentence-sized segments built from its diarization's word entries, speakers kept); the
job's result is the first vendor that succeeded, with every vendor's under ``results``.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import whispercli.backends as backends
from whispercli.backends.base import Backend, Submission
from whispercli.backends.streams import CountingReader, MultipartBody
from whispercli.errors import NotFoundError, UsageError, WhisperCliError
from whispercli.protocol import JobInfo, Result, Segment, is_http_url
from whispercli.segments import split_segment  # pure: no server framework

if TYPE_CHECKING:
    from whispercli.client import Job

JOBS_PATH = "/audio/speech_to_text_async/"
JOB_PATH = "/audio/speech_to_text_async/{public_id}/"
STATUS = {"processing": "processing", "finished": "success", "failed": "failed"}
FINAL_OK = ("success", "sucess", "succeeded")  # "sucess": sic, Eden's v2 schema
PARAMS = frozenset({"language"})
"""The Whisper options Eden's launch has a field for."""
WHISPER = "whisper"
"""The embedded server's one provider: ``whisper/<model>`` picks its model."""


def with_model(providers: list[str], model: str) -> list[str]:
    """``-m NAME`` as Eden AI carries it: the bare ``whisper`` provider (the embedded
    server's) becomes ``whisper/NAME``. A vendor that picks its own model, or a
    ``whisper/OTHER`` already named, is a usage error (exit 2)."""
    mapped = []
    for provider in providers:
        name, _, chosen = provider.partition("/")
        if name != WHISPER:
            raise UsageError(
                f"Eden AI's vendor {provider!r} cannot take a model (-m {model}, or the "
                "profile's model)",
                hint=f"-m picks the model of the embedded server's provider ({WHISPER}/NAME); "
                f"drop -m, or name a vendor's model in the provider (e.g. {name}/MODEL) if "
                "Eden offers one",
            )
        if chosen and chosen != model:
            raise UsageError(
                f"-m {model} and --provider {provider} name two models",
                hint=f"use one: -m {model} with --provider {WHISPER}, or --provider {provider}",
            )
        mapped.append(f"{WHISPER}/{model}")
    return list(dict.fromkeys(mapped))


class EdenAIBackend(Backend):
    name = backends.EDENAI
    label = "Eden AI"

    def prepare(self, request: Submission) -> Submission:
        """The profile's providers unless given, with ``-m`` mapped (``with_model``): the job
        runs (and the saved job records) ``whisper/small``, or the vendors' names."""
        providers = request.providers or list(self.transport.settings.providers)
        if providers and request.model is not None:
            providers = with_model(providers, request.model)
        request = dataclasses.replace(request, providers=providers)
        self.check(request)
        return dataclasses.replace(request, model=",".join(providers))

    def check(self, request: Submission) -> None:
        if not (request.providers or self.transport.settings.providers):
            profile = self.transport.settings.profile
            raise UsageError(
                "Eden AI runs a job on vendors you pick",
                hint="name them with --provider deepgram,amazon or `whispercli config set "
                f"providers deepgram --profile {profile}`",
            )
        # Word timings need no field: every vendor's answer has them (diarization entries).
        others = sorted(
            name
            for name, value in request.params.items()
            if name not in PARAMS and not (name == "word_timestamps" and value is True)
        )
        if others:
            flags = ", ".join("--" + name.replace("_", "-") for name in others)
            raise self.unsupported(
                f"take {flags}", "its vendors take --language and --provider only"
            )

    def submit(self, request: Submission) -> JobInfo:
        providers = request.providers or list(self.transport.settings.providers)
        fields = {"providers": ",".join(providers)}
        if request.params.get("language"):
            fields["language"] = str(request.params["language"])
        if request.webhook is not None:
            fields["webhook_receiver"] = request.webhook
        source = str(request.source)
        if is_http_url(source):
            body = self.transport.call("POST", JOBS_PATH, json={**fields, "file_url": source})
        else:
            body = self._launch_file(Path(source), fields, request)
        public_id = body.get("public_id") if isinstance(body, dict) else None
        if not isinstance(public_id, str) or not public_id:
            raise WhisperCliError(f"Eden AI at {self.transport.url} gave no public_id for the job")
        return JobInfo(
            id=public_id,
            status="accepted",
            model=",".join(providers),
            poll_url=self.poll_url(public_id),
        )

    def _launch_file(self, file: Path, fields: dict[str, str], request: Submission) -> Any:
        try:
            size = file.stat().st_size
        except OSError as exc:
            raise NotFoundError(f"cannot read {file}: {exc.strerror}") from None
        boundary = uuid.uuid4().hex
        progress = request.on_upload_progress

        def open_body() -> MultipartBody:
            if progress is not None:
                progress(0, size)
            reader = CountingReader(file.open("rb"), size, progress)
            return MultipartBody(fields, "file", file.name, reader, boundary)

        return self.transport.call(
            "POST",
            JOBS_PATH,
            body=open_body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            read_timeout=max(60.0, size / 1_000_000),
        )

    def poll_url(self, job_id: str) -> str:
        return self.transport.http.url(JOB_PATH.format(public_id=quote(job_id, safe="")))

    def poll(self, job: Job, wait: float | None = None, until_done: bool = False) -> JobInfo:
        job.poll_url = job.poll_url or self.poll_url(job.id)
        return self.parse_job(self.transport.call("GET", job.poll_url), job.poll_url)

    def find(self, job_id: str) -> JobInfo:
        url = self.poll_url(job_id)
        return self.parse_job(self.transport.call("GET", url), url)

    def jobs(self, status: str | None = None, limit: int | None = None) -> list[JobInfo]:
        body = self.transport.call("GET", JOBS_PATH)
        rows = body.get("jobs") if isinstance(body, dict) else None
        infos = [
            JobInfo(
                id=row["public_id"],
                status=STATUS.get(str(row.get("state")), str(row.get("state"))),
                model=_text(row.get("providers")),
                accepted_at=_text(row.get("created_at")),
                poll_url=self.poll_url(row["public_id"]),
            )
            for row in rows or []
            if isinstance(row, dict) and isinstance(row.get("public_id"), str)
        ]
        infos = [i for i in infos if status is None or i.status == status]
        return infos[:limit] if limit else infos

    def cancel(self, job_id: str) -> JobInfo:
        raise self.unsupported(
            "cancel a job",
            "an Eden AI job runs to its end; `whispercli jobs rm JOB` forgets it here, and "
            "`--purge` deletes Eden's finished jobs",
        )

    def delete(self, job_id: str) -> None:
        """Eden's ``DELETE`` removes every finished job of the account: refused while this one
        still runs (it would not be removed)."""
        info = self.find(job_id)
        if not info.terminal:
            raise UsageError(
                f"job {job_id} is still {info.status}: Eden AI deletes only finished jobs",
                hint=f"wait for it first: whispercli wait {job_id}",
            )
        self.transport.call("DELETE", JOBS_PATH)

    def parse_job(self, body: Any, poll_url: str | None = None) -> JobInfo:
        if not isinstance(body, dict) or not isinstance(body.get("public_id"), str):
            raise WhisperCliError(
                f"unexpected answer from Eden AI at {self.transport.url}: no public_id"
            )
        raw = str(body.get("status", ""))
        status = STATUS.get(raw, raw)
        results = _dict(body.get("results"))
        per_vendor = {name: vendor_result(item) for name, item in results.items()}
        ok = [name for name, item in per_vendor.items() if item.get("error") is None]
        error = _message(body.get("error"))
        result = None
        if status == "success" and ok:
            result = _combined(per_vendor, ok[0])
        elif status == "success":  # every vendor failed
            status = "failed"
        if status == "failed" and per_vendor:
            error = "; ".join(f"{n}: {r['error']}" for n, r in per_vendor.items() if r["error"])
        return JobInfo(
            id=body["public_id"],
            status=status,
            model=",".join(per_vendor) or None,
            poll_url=poll_url,
            result=result,
            error=error,
        )


def vendor_result(item: Any) -> dict[str, Any]:
    """One vendor's answer as our result's fields: text, segments (with speakers), speakers,
    and ``error`` (None when it succeeded)."""
    if not isinstance(item, dict):
        return {"text": "", "segments": [], "speakers": 0, "error": "no answer"}
    diarization = _dict(item.get("diarization"))
    failed = str(item.get("final_status", "")).lower() not in FINAL_OK or item.get("error")
    error = None
    if failed:
        error = _message(item.get("error")) or _text(diarization.get("error_message")) or "failed"
    entries = diarization.get("entries")
    segments = segments_of(entries if isinstance(entries, list) else [])
    speakers = {s.extra.get("speaker") for s in segments} - {None}
    total = diarization.get("total_speakers")
    return {
        "text": _text(item.get("text")) or "",
        "segments": [s.to_dict() for s in segments],
        "speakers": total
        if isinstance(total, int) and not isinstance(total, bool)
        else len(speakers),
        "error": error,
    }


def segments_of(entries: list[Any]) -> list[Segment]:
    """Word entries -> sentence-sized segments (as the server's resegmentation cuts them),
    never across a change of speaker. Entries without times give no segments."""
    words: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        text, start, end = (
            _text(entry.get("segment")),
            _float(entry.get("start_time")),
            _float(entry.get("end_time")),
        )
        if not text or start is None or end is None:
            continue
        words.append(
            {
                "word": " " + text.strip(),
                "start": start,
                "end": end,
                "probability": _float(entry.get("confidence")),
                "speaker": entry.get("speaker"),
            }
        )
    runs: list[list[dict[str, Any]]] = []
    for word in words:
        if runs and runs[-1][-1]["speaker"] == word["speaker"]:
            runs[-1].append(word)
        else:
            runs.append([word])
    segments: list[Segment] = []
    for run in runs:
        speaker = run[0]["speaker"]
        plain = [{k: v for k, v in w.items() if k != "speaker"} for w in run]
        for piece in split_segment({"words": plain}):
            extra = {"words": piece["words"]}
            if speaker is not None:
                extra["speaker"] = speaker
            segments.append(
                Segment(len(segments), piece["start"], piece["end"], piece["text"], extra)
            )
    return segments


def _combined(per_vendor: dict[str, dict[str, Any]], chosen: str) -> Result:
    """The chosen vendor's result, with every vendor's under ``results``."""
    result = Result.from_dict(per_vendor[chosen])
    result.extra = {
        "provider": chosen,
        "speakers": per_vendor[chosen].get("speakers"),
        "results": per_vendor,
    }
    return result


def pick_provider(result: Result, name: str) -> Result:
    """The result of the vendor ``name`` from a combined result (a usage error when that
    vendor was not asked, or failed)."""
    vendors = result.extra.get("results")
    if not isinstance(vendors, dict):
        raise UsageError(f"--provider {name}: this job's result has one provider only")
    if name not in vendors:
        raise UsageError(f"the job did not run on {name!r}", hint="it ran on " + ", ".join(vendors))
    if vendors[name].get("error"):
        raise UsageError(
            f"{name} failed on this job: {vendors[name]['error']}",
            hint="pick another: " + ", ".join(n for n in vendors if n != name),
        )
    return _combined(vendors, name)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _message(value: Any) -> str | None:
    """Eden's ``error``: a string or ``{"type", "message"}``."""
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return str(value.get("message") or value.get("type") or value)
    return str(value)


BACKEND = EdenAIBackend
