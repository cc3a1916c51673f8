"""One batch of chunks through faster-whisper: features, an encoder window, a batched decode.

:class:`BatchDecoder` is what the scheduler (engine.batcher) calls: the chunks of a batch may
come from several jobs that share one :class:`Setup` (language, task, beam...). It encodes them
in one call with an input as long as the longest chunk needs (``Setup.padding``: a full 30 s
window, or the chunk plus some seconds), decodes them with faster-whisper's batched pipeline
(one ``generate`` for the whole batch, word timings from the same encoder output) and maps every
time back from the chunk's packed speech to the file. A chunk whose text stops well before its
speech does, or starts well after it, is decoded again in halves (``RESCUE_TAIL_SECONDS``,
``RESCUE_HEAD_SECONDS``).
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline, WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens

from whispercli.server.engine.plans import MIN_WINDOW_SECONDS, SHORT_PADDING, WINDOW_SECONDS
from whispercli.server.engine.speech import Chunk

FRAMES_PER_SECOND = 100
WINDOW_FRAMES = int(WINDOW_SECONDS * FRAMES_PER_SECOND)
_DEFAULTS = inspect.signature(BatchedInferencePipeline.transcribe).parameters
_PUNCTUATION = (_DEFAULTS["prepend_punctuations"].default, _DEFAULTS["append_punctuations"].default)
"""faster-whisper's own punctuation sets for word timings."""
RESCUE_TAIL_SECONDS = 4.0
"""A chunk whose text ends with this much of its speech still to come was cut short: without
timestamp tokens the decoder sometimes ends a window packed with many short phrases after the
first few ("Ten of clubs. Four queen of clubs. ..." and the rest lost; faster-whisper's batched
pipeline loses the same words). A cut-short chunk is decoded again as two halves (in windows
sized to them: on a model with several replicas each half in a call of its own, both at once,
``BatchDecoder.apart``; else one call), up to ``RESCUE_DEPTH`` times; a chunk with no words at all
is left alone (noise or music the VAD let through: decoding it again would only cost time).
On 13 minutes of the real recordings (bench/real joined, 8 times over) WER went from 25.9 %
(the batched pipeline's too) to 12.8 % for 25 % more time; no chunk of the bench's other
files was cut short (bench/phrases.py, bench/RESULTS.md)."""
RESCUE_HEAD_SECONDS = 2.0
"""The same at the start: a chunk whose first word comes after this much of its speech lost
its first sentence (tiny.en skips "She had your dark suit in greasy wash water all year."
when a window starts with it, whatever the window's length or a lead of silence). Such a
chunk is decoded again in halves too. Silero pads a span by 400 ms, so 2 s of speech before
the first word is past any lead-in. With both rescues the 13 minutes above went to 8.6 % WER
(the sequential path's 8.4 %) for 29 % more time than with the tail one alone."""
RESCUE_DEPTH = 2


@dataclass(frozen=True)
class Setup:
    """What the chunks of one batch share: how to decode them."""

    tokenizer: Tokenizer
    options: TranscriptionOptions
    padding: float | None
    """Seconds of encoder input after the longest chunk (None: a full window)."""


def batch_key(kwargs: Mapping[str, Any], language: str, padding: float | None) -> tuple[Any, ...]:
    """The options that must be equal for two jobs' chunks to share a batch."""
    return (language, padding, *sorted((k, repr(v)) for k, v in kwargs.items()))


def make_setup(
    model: WhisperModel, kwargs: Mapping[str, Any], language: str, padding: float | None
) -> Setup:
    """A :class:`Setup` from a chunked plan's kwargs (plans.plan)."""
    tokenizer = Tokenizer(
        model.hf_tokenizer,
        model.model.is_multilingual,
        task=kwargs.get("task", "transcribe"),
        language=language,
    )
    temperature = kwargs.get("temperature", 0.0)
    first = temperature[0] if isinstance(temperature, list | tuple) else temperature
    suppress = kwargs.get("suppress_tokens", [-1])
    if isinstance(suppress, str):
        suppress = [int(t) for t in suppress.split(",") if t.strip()]
    options = TranscriptionOptions(
        beam_size=kwargs.get("beam_size", 5),
        best_of=kwargs.get("best_of", 5),
        patience=kwargs.get("patience", 1),
        length_penalty=kwargs.get("length_penalty", 1),
        repetition_penalty=1,
        no_repeat_ngram_size=0,
        log_prob_threshold=-1.0,
        no_speech_threshold=0.6,
        compression_ratio_threshold=2.4,
        temperatures=[float(first or 0.0)],
        initial_prompt=kwargs.get("initial_prompt"),
        prefix=None,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, suppress) if suppress else suppress,
        prepend_punctuations=_PUNCTUATION[0],
        append_punctuations=_PUNCTUATION[1],
        max_new_tokens=None,
        hotwords=kwargs.get("hotwords"),
        word_timestamps=True,
        hallucination_silence_threshold=None,
        condition_on_previous_text=False,
        clip_timestamps="0",
        prompt_reset_on_temperature=0.5,
        multilingual=False,
        without_timestamps=True,
        max_initial_timestamp=0.0,
    )
    return Setup(tokenizer, options, padding)


def window_frames(longest_seconds: float, padding: float | None) -> int:
    """Encoder input frames for a batch whose longest chunk lasts ``longest_seconds``."""
    if padding is None:
        return WINDOW_FRAMES
    seconds = max(MIN_WINDOW_SECONDS, math.ceil(longest_seconds + padding))
    return min(WINDOW_FRAMES, int(seconds * FRAMES_PER_SECOND))


class BatchDecoder:
    """Decodes batches of chunks on ``model`` (thread-safe: one pipeline object per call)."""

    def __init__(self, model: WhisperModel, *, apart: bool = False) -> None:
        """``apart``: the model has several replicas, so the halves of a chunk decoded again
        go in two calls at once (else one call for both: a single replica, a GPU's batch)."""
        self.model = model
        self.apart = apart

    def features(self, chunks: Sequence[Chunk], padding: float | None) -> np.ndarray:
        extract = self.model.feature_extractor
        feats = [extract(chunk.audio)[..., :-1] for chunk in chunks]
        frames = window_frames(max(c.seconds for c in chunks), padding)
        out = np.zeros((len(feats), feats[0].shape[0], frames), np.float32)
        for i, feat in enumerate(feats):
            n = min(frames, feat.shape[-1])
            out[i, :, :n] = feat[:, :n]
        return out

    def decode(self, setup: Setup, chunks: Sequence[Chunk]) -> list[list[dict[str, Any]]]:
        """Each chunk's segments (usually one), with file times and words."""
        return [
            self._rescue(setup, chunk, segments, RESCUE_DEPTH)
            for chunk, segments in zip(chunks, self._decode(setup, chunks), strict=True)
        ]

    def _decode(self, setup: Setup, chunks: Sequence[Chunk]) -> list[list[dict[str, Any]]]:
        padding = setup.padding
        if padding is None and all(chunk.half for chunk in chunks):
            padding = SHORT_PADDING  # half a window's speech needs no full window's work
        features = self.features(chunks, padding)
        meta = [{"offset": 0.0, "duration": c.seconds, "segments": []} for c in chunks]
        pipeline = BatchedInferencePipeline(self.model)
        outputs = pipeline.forward(features, setup.tokenizer, meta, setup.options)
        temperature = setup.options.temperatures[0]
        return [
            [_to_file_times(chunk, seg, temperature) for seg in segments]
            for chunk, segments in zip(chunks, outputs, strict=True)
        ]

    def _rescue(
        self, setup: Setup, chunk: Chunk, segments: list[dict[str, Any]], depth: int
    ) -> list[dict[str, Any]]:
        """``segments``, or the chunk decoded again in halves if its text was cut short."""
        if depth == 0 or len(chunk.spans) < 2:
            return segments
        words = [w for seg in segments for w in seg.get("words", ())]
        if not words:
            return segments  # no speech Whisper knows (noise, music): not cut short
        head = chunk.speech_before(words[0]["start"]) >= RESCUE_HEAD_SECONDS
        if not head and chunk.speech_after(words[-1]["end"]) < RESCUE_TAIL_SECONDS:
            return segments
        halves = chunk.halves()
        if self.apart:
            return self._halves_apart(setup, halves, depth - 1)
        return [
            segment
            for half, decoded in zip(halves, self._decode(setup, halves), strict=True)
            for segment in self._rescue(setup, half, decoded, depth - 1)
        ]

    def _halves_apart(
        self, setup: Setup, halves: tuple[Chunk, Chunk], depth: int
    ) -> list[dict[str, Any]]:
        """Both halves at once, each in a call of its own: the model's next free replica takes
        the second (for a lone job, the one that would otherwise wait idle)."""
        second: list[list[dict[str, Any]] | BaseException] = []

        def decode_second() -> None:
            try:
                second.append(
                    self._rescue(setup, halves[1], self._decode(setup, halves[1:])[0], depth)
                )
            except BaseException as exc:  # raised on the replica's own thread, below
                second.append(exc)

        helper = threading.Thread(target=decode_second, name="engine-rescue", daemon=True)
        helper.start()
        try:
            first = self._rescue(setup, halves[0], self._decode(setup, halves[:1])[0], depth)
        finally:
            helper.join()
        if isinstance(second[0], BaseException):
            raise second[0]
        return first + second[0]


def _to_file_times(chunk: Chunk, seg: dict[str, Any], temperature: float) -> dict[str, Any]:
    words = [
        {
            "start": round(chunk.file_time(float(w["start"])), 3),
            "end": round(chunk.file_time(float(w["end"]), is_end=True), 3),
            "word": w["word"],
            "probability": w["probability"],
        }
        for w in seg.get("words") or []
    ]
    start = words[0]["start"] if words else chunk.file_time(float(seg["start"]))
    end = words[-1]["end"] if words else chunk.file_time(float(seg["end"]), is_end=True)
    out: dict[str, Any] = {
        "id": 0,
        "seek": int(chunk.spans[0].start / 160),
        "start": round(float(start), 3),
        "end": round(float(end), 3),
        "text": seg["text"],
        "tokens": list(seg["tokens"]),
        "temperature": temperature,
        "avg_logprob": seg["avg_logprob"],
        "compression_ratio": seg["compression_ratio"],
        "no_speech_prob": seg["no_speech_prob"],
    }
    if words:
        out["words"] = words
    return out
