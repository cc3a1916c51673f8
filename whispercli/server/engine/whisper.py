"""The transcription engine: faster-whisper for many jobs at once (CPU int8 or CUDA: device).

Only the engine process imports this module (the server keeps the Hugging Face hub offline).
:meth:`Engine.start` begins a job and returns at once; the job's audio is read in pieces
(engine.audio) on its own thread and, on the chunked path, cut into chunks (engine.speech) that
the scheduler (engine.batcher) decodes together with every other job's on the plan's replicas.
Each job hears back through its :class:`JobSink`: segments in time order as they are decoded,
progress while a chunk decodes, then one end. :func:`whispercli.server.engine.plans.plan`
picks the path per job; bench/engine.py measures them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel

from whispercli.modelhub import vocabulary_size
from whispercli.segments import split_segment
from whispercli.server.engine import plans, quality
from whispercli.server.engine.audio import (
    DEFAULT_MAX_AUDIO_HOURS,
    SAMPLE_RATE,
    AudioStream,
    open_audio,
)
from whispercli.server.engine.batcher import JobChunks, Scheduler
from whispercli.server.engine.decode import BatchDecoder, Setup, batch_key, make_setup
from whispercli.server.engine.device import (
    DevicePlan,
    cpu_plan,
    idle_cores,
    layout,
    memory_bytes,
    wide_threads,
)
from whispercli.server.engine.outcome import AudioError, JobCancelled, JobInputError, JobSink
from whispercli.server.engine.speech import Chunk, Chunker, bound_vad_batches
from whispercli.server.jobs.params import ParamError, check_token_ids

__all__ = ["AudioError", "Engine", "JobCancelled", "JobSink"]

VAD_PIECE_SECONDS = 120.0
"""Audio the VAD sees at a time: each cut between pieces may move a chunk's edge a little, so
pieces are longer than a window (120 s of float32 is 7.7 MB)."""
SEQUENTIAL_BLOCK_SECONDS = 300.0
"""The sequential path decodes long audio in blocks of about this length (bounded memory)."""
SegmentCallback = Callable[[dict[str, Any] | None, float], None]
"""Called with each finished segment and the progress (0..1), or with None and the progress
alone while a chunk decodes (about every second); may raise to stop the job."""


class _Progress:
    """A job's progress: it never goes back, whichever estimate moved it last."""

    def __init__(self) -> None:
        self.value = 0.0

    def advance(self, value: float) -> bool:
        """Move to ``value`` (capped at 1) if it is further; True if it moved by 0.5 % or more."""
        value = min(1.0, value)
        if value < self.value + 0.005:
            return False
        self.value = value
        return True


def gate_on(params: dict[str, Any]) -> bool:
    """The no-speech gate (quality.gate): on unless turned off, by itself or with the VAD."""
    explicit = params.get("no_speech_gate")
    return bool(explicit) if explicit is not None else params.get("vad_filter") is not False


@dataclass
class _Run:
    """One job in the engine: what it has produced so far."""

    id: str
    params: dict[str, Any]
    sink: JobSink
    audio: AudioStream
    gate: quality.Gate | None
    language: str | None = None
    probability: float | None = None
    speech: float | None = None
    """Seconds of speech the VAD passed to Whisper on the sequential path (None: unknown;
    the chunked path decodes every chunk it cuts, so nothing is skipped there)."""
    collected: list[dict[str, Any]] = field(default_factory=list)
    progress: _Progress = field(default_factory=_Progress)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def duration(self) -> float:
        decoded = self.audio.decoded_samples / SAMPLE_RATE
        return max(self.audio.header_seconds or 0.0, decoded, 1e-3)

    def add(self, segment: dict[str, Any]) -> None:
        """Gate, number and hand on one segment (sentence-sized already)."""
        if self.gate is not None and not self.gate.admit(segment):
            return
        segment["id"] = len(self.collected)
        self.collected.append(segment)
        self.sink.segment(segment, self.progress.value)

    def tick(self, share: float) -> None:
        if self.progress.advance(share):
            self.sink.segment(None, self.progress.value)


class Engine:
    """One loaded model (kept loaded across jobs by the engine process), many jobs at once."""

    def __init__(
        self,
        model_path: str,
        *,
        cpu_threads: int = 0,
        speed: str = plans.DEFAULT_SPEED,
        plan: DevicePlan | None = None,
        max_audio_hours: float = DEFAULT_MAX_AUDIO_HOURS,
    ) -> None:
        """``speed`` is the server's decoding speed (a job's ``speed`` param overrides it);
        ``plan`` the device's (engine.device), ``cpu_threads`` its thread budget (0: all)."""
        self.model_path = model_path
        self.speed = speed
        self.plan = plan or cpu_plan("int8", "default")
        self.max_audio_hours = max_audio_hours
        self.layout = layout(self.plan, cpu_threads)
        self.model = WhisperModel(
            model_path,
            device=self.plan.device,
            compute_type=self.plan.compute_type,
            cpu_threads=self.layout.threads,
            num_workers=self.layout.replicas,
        )
        self._decoder = BatchDecoder(self.model, apart=self.layout.replicas > 1)
        model_bytes = sum(f.stat().st_size for f in Path(model_path).glob("*.bin"))
        self.wide_threads = wide_threads(self.plan, self.layout, model_bytes, memory_bytes())
        """Threads of the sequential path's own copy of the model (0: none; device.py)."""
        self._wide: WhisperModel | None = None
        self._wide_free = threading.Lock()
        bound_vad_batches()
        size = vocabulary_size(Path(model_path))
        self.vocabulary = size or self.model.hf_tokenizer.get_vocab_size(with_added_tokens=True)
        """Tokens of the model: a token id at or past this would index past native tables."""
        self._setups: dict[tuple[Any, ...], Setup] = {}
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self.scheduler: Scheduler[list[dict[str, Any]]] = Scheduler(
            self._decode_batch,
            replicas=self.layout.replicas,
            batch_size=self.layout.batch_size,
        )

    def close(self) -> None:
        """Stop the decoding threads (the model is being unloaded; no job is using it)."""
        self.scheduler.stop()
        self._wide = None

    # -- jobs ------------------------------------------------------------------------------
    def start(self, job_id: str, path: str, params: dict[str, Any], sink: JobSink) -> None:
        """Begin ``job_id``; returns at once (a bad upload is reported through ``sink``)."""
        threading.Thread(
            target=self._run_job,
            args=(job_id, path, params, sink),
            name=f"job-{job_id}",
            daemon=True,
        ).start()

    def cancel(self, job_id: str) -> None:
        """Stop ``job_id``: its sink hears :class:`JobCancelled` within a chunk's time."""
        with self._lock:
            run = self._runs.get(job_id)
        if run is not None:
            run.cancelled.set()
            self.scheduler.cancel(job_id)

    def transcribe(
        self, path: str, params: dict[str, Any], on_segment: SegmentCallback
    ) -> dict[str, Any]:
        """One job, waited for: the protocol's ``result`` object (tests, benchmarks)."""
        finished = threading.Event()
        outcome: dict[str, Any] = {}
        engine = self

        class _WaitingSink:
            def segment(self, segment: dict[str, Any] | None, progress: float) -> None:
                try:
                    on_segment(segment, progress)
                except Exception:
                    engine.cancel(job_id)
                    raise

            def done(self, result: dict[str, Any] | None, error: BaseException | None) -> None:
                outcome.update(result=result, error=error)
                finished.set()

        job_id = f"local-{id(outcome)}"
        self.start(job_id, path, params, _WaitingSink())
        finished.wait()
        if outcome["error"] is not None:
            raise outcome["error"]
        result: dict[str, Any] = outcome["result"]
        return result

    def _run_job(self, job_id: str, path: str, params: dict[str, Any], sink: JobSink) -> None:
        """The job's own thread: it reads the audio (and closes it: only this thread uses
        the decoder) and feeds the chunks, or decodes sequentially."""
        try:  # the server checks at submit too; a job queued by another server may not be
            check_token_ids(params, self.vocabulary)
            audio = open_audio(path, self.max_audio_hours)
        except ParamError as exc:
            sink.done(None, JobInputError(str(exc)))
            return
        except Exception as exc:
            sink.done(None, exc)
            return
        run = _Run(job_id, params, sink, audio, quality.Gate() if gate_on(params) else None)
        with self._lock:
            self._runs[job_id] = run
        try:
            plan = plans.plan(self.speed, params, audio.header_seconds)
            if plan.chunked:
                self._run_chunked(run, plan)
            else:
                self._run_sequential(run, plan)
        except Exception as exc:
            self._end(run, exc)
        finally:
            audio.close()

    def _end(self, run: _Run, error: BaseException | None) -> None:
        with self._lock:
            if self._runs.pop(run.id, None) is None:
                return
        if error is None and run.cancelled.is_set():
            error = JobCancelled(run.id)
        run.sink.done(None if error else self._result(run), error)

    # -- the chunked path: chunks to the scheduler -----------------------------------------
    def _chunks(self, run: _Run) -> Iterator[Chunk]:
        chunker = Chunker()
        pieces = run.audio.pieces(VAD_PIECE_SECONDS)
        piece = next(pieces, None)
        while piece is not None:
            following = next(pieces, None)
            yield from chunker.feed(piece, final=following is None)
            piece = following

    def _run_chunked(self, run: _Run, plan: plans.Plan) -> None:
        chunks = self._chunks(run)
        first = next(chunks, None)
        kwargs = dict(plan.kwargs)
        run.language = kwargs.pop("language", None) or self._language(first)
        key = batch_key(kwargs, run.language, plan.encoder_padding)
        with self._lock:
            if key not in self._setups:
                self._setups[key] = make_setup(
                    self.model, kwargs, run.language, plan.encoder_padding
                )
        keep_words = bool(run.params.get("word_timestamps"))

        def on_result(chunk: Chunk, segments: list[dict[str, Any]]) -> None:
            run.progress.advance(chunk.end_seconds / run.duration)
            for segment in segments:
                for piece in split_segment(segment):
                    if "tokens" not in piece:  # a sentence cut from the chunk: its own tokens
                        piece["tokens"] = self._text_tokens(piece["text"])
                    if not keep_words:
                        piece.pop("words", None)
                    run.add(piece)

        job: JobChunks[list[dict[str, Any]]] = JobChunks(
            run.id,
            key,
            on_result,
            lambda error: self._end(run, error),
            lambda seconds: run.tick(seconds / run.duration),
        )
        self.scheduler.add(job)
        try:
            self.scheduler.feed(job, _prepend(first, chunks))
        except JobCancelled:
            return
        except Exception as exc:
            self.scheduler.fail(job, exc)

    def _text_tokens(self, text: str) -> list[int]:
        """The model's text tokens for ``text`` (what its decoder would emit for it)."""
        return list(self.model.hf_tokenizer.encode(text, add_special_tokens=False).ids)

    def _language(self, first: Chunk | None) -> str:
        if not self.model.model.is_multilingual:
            return "en"
        audio = first.audio if first is not None else np.zeros(SAMPLE_RATE, np.float32)
        return str(self.model.detect_language(audio)[0])

    def _decode_batch(
        self, batch: Sequence[tuple[JobChunks[list[dict[str, Any]]], Chunk]]
    ) -> list[list[dict[str, Any]]]:
        setup = self._setups[batch[0][0].key]  # type: ignore[index]
        return self._decoder.decode(setup, [chunk for _, chunk in batch])

    # -- the sequential path ---------------------------------------------------------------
    @contextmanager
    def _sequential_model(self) -> Iterator[WhisperModel]:
        """The model a sequential job decodes on: the copy with every thread
        (``wide_threads``, loaded on first use), lent to one job at a time while the machine's
        cores are otherwise idle (``device.idle_cores``); a job that finds it taken or the
        cores busy, or an engine without one, decodes on the replicas."""
        if not self.wide_threads or not self._wide_free.acquire(blocking=False):
            yield self.model
            return
        if idle_cores() < self.wide_threads - 0.5:  # another job or process wants the cores
            self._wide_free.release()
            yield self.model
            return
        try:
            if self._wide is None:
                self._wide = WhisperModel(
                    self.model_path,
                    device="cpu",
                    compute_type=self.plan.compute_type,
                    cpu_threads=self.wide_threads,
                )
            yield self._wide
        finally:
            self._wide_free.release()

    def _run_sequential(self, run: _Run, plan: plans.Plan) -> None:
        offset = 0.0
        for block in _blocks(run.audio.pieces()):
            with self._sequential_model() as model:  # per block: the machine's load changes
                if not self._decode_block(run, plan, model, block, offset):
                    return
            offset += block.size / SAMPLE_RATE
        self._end(run, None)

    def _decode_block(
        self, run: _Run, plan: plans.Plan, model: WhisperModel, block: np.ndarray, offset: float
    ) -> bool:
        """One block of a sequential job's audio; False if the job was cancelled (and ended)."""
        segments, info = model.transcribe(block, **plan.kwargs)
        run.language, run.probability = info.language, round(info.language_probability, 4)
        if plan.kwargs.get("vad_filter"):
            run.speech = (run.speech or 0.0) + float(info.duration_after_vad)
        for seg in segments:
            if run.cancelled.is_set():
                segments.close()
                self._end(run, JobCancelled(run.id))
                return False
            item = _segment_dict(seg, offset)
            run.progress.advance(item["end"] / run.duration)
            run.add(item)
        return True

    # -- the result --------------------------------------------------------------------------
    def _result(self, run: _Run) -> dict[str, Any]:
        duration = run.audio.decoded_samples / SAMPLE_RATE
        schedule = plans.temperatures(run.params)
        first = schedule[0] if isinstance(schedule, tuple) else schedule or 0.0
        notes = quality.warnings(
            run.collected,
            duration,
            multilingual=bool(self.model.model.is_multilingual),
            first_temperature=first,
            dropped=run.gate.dropped if run.gate is not None else (),
            speech=run.speech,
        )
        return {
            "text": "".join(s["text"] for s in run.collected),
            "segments": run.collected,
            "language": run.language or "en",
            "language_probability": run.probability,
            "duration": round(duration, 3),
            "warnings": notes,
            "device": self.plan.device,
        }


def _prepend(first: Chunk | None, rest: Iterator[Chunk]) -> Iterator[Chunk]:
    if first is not None:
        yield first
        yield from rest


def _blocks(pieces: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Pieces joined into blocks of about ``SEQUENTIAL_BLOCK_SECONDS``, each cut at its
    quietest tenth of a second in its last 10 s (a pause, not a word)."""
    size = int(SEQUENTIAL_BLOCK_SECONDS * SAMPLE_RATE)
    held = np.zeros(0, np.float32)
    for piece in pieces:
        held = np.concatenate([held, piece])
        if held.size >= size:
            cut = _quiet_cut(held[:size])
            yield held[:cut]
            held = held[cut:]
    if held.size:
        yield held


def _quiet_cut(block: np.ndarray) -> int:
    step = SAMPLE_RATE // 10
    tail = block[-10 * SAMPLE_RATE :]
    frames = tail[: tail.size // step * step].reshape(-1, step)
    quietest = int(np.argmin((frames**2).mean(axis=1)))
    return block.size - tail.size + quietest * step + step // 2


def _segment_dict(seg: Any, offset: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": seg.id,
        "seek": seg.seek + int(offset * 100),
        "start": round(float(seg.start) + offset, 3),
        "end": round(float(seg.end) + offset, 3),
        "text": seg.text,
        "tokens": list(seg.tokens),
        "temperature": seg.temperature,
        "avg_logprob": seg.avg_logprob,
        "compression_ratio": seg.compression_ratio,
        "no_speech_prob": seg.no_speech_prob,
    }
    if seg.words:
        out["words"] = [
            {"start": round(w.start + offset, 3), "end": round(w.end + offset, 3),
             "word": w.word, "probability": w.probability}
            for w in seg.words
        ]  # fmt: skip
    return out
