"""Whisper's own confidence signals, read after decoding: what to drop, what to warn about.

Pure Python over the result's segment dicts (``avg_logprob``, ``temperature``,
``no_speech_prob``, ``compression_ratio``, as openai-whisper reports them), so it is tested
without a model.

- The *no-speech gate* drops what Whisper itself calls "probably not speech" and the loops it
  falls into on silence or music: a segment with ``no_speech_prob`` of at least
  ``NO_SPEECH_GATE``, and a line repeated more than ``MAX_REPEATS`` times in a row.
- *Warnings* say when a transcript is not to be trusted: a low average log-probability or a
  temperature fallback over half of the speech or more (typically speech in another language on an
  English-only model, which Whisper "translates" into fluent nonsense), text that repeats
  itself (a high compression ratio), or no speech at all in a long file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

NO_SPEECH_GATE = 0.8
"""A segment whose no-speech probability is at least this is dropped (Whisper's own
``no_speech_threshold`` is 0.6, applied only with a low log-probability)."""
MAX_REPEATS = 2
"""Identical consecutive lines kept; further repeats are a decoding loop."""
LOW_LOGPROB = -0.9
"""Below this average log-probability per token (weighted by duration), a transcript is
low-confidence: English read to the English-only tiny model scores about -0.3, French -1.1.
Whisper retries a window at a higher temperature below -1.0."""
MAX_COMPRESSION_RATIO = 2.4
"""Whisper's ``compression_ratio_threshold``: above it, text repeats itself."""
SILENT_SECONDS = 5.0
"""An empty transcript of a file at least this long gets a warning."""


class Gate:
    """The no-speech gate, one segment at a time (segments arrive as they are decoded)."""

    def __init__(self) -> None:
        self._last: str | None = None
        self._run = 0

    def admit(self, segment: dict[str, Any]) -> bool:
        """False for a probably-not-speech segment and for repeats past ``MAX_REPEATS``."""
        if float(segment.get("no_speech_prob") or 0.0) >= NO_SPEECH_GATE:
            return False
        text = str(segment.get("text", "")).strip().lower()
        self._run = self._run + 1 if text == self._last else 1
        self._last = text
        return self._run <= MAX_REPEATS


def gate(segments: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The segments, minus the probably-not-speech ones and runs of repeated lines."""
    keeper = Gate()
    return (segment for segment in segments if keeper.admit(segment))


def warnings(
    segments: list[dict[str, Any]],
    duration: float,
    *,
    multilingual: bool,
    first_temperature: float = 0.0,
) -> list[str]:
    """Readable warnings about the transcript ``segments`` of ``duration`` seconds of audio.

    A segment decoded above ``first_temperature`` (the job's first) needed Whisper's fallback:
    its first attempt scored too low or repeated itself.
    """
    if not segments:
        if duration >= SILENT_SECONDS:
            return [f"no speech was found in {duration:.1f} s of audio"]
        return []
    out = []
    weights = [max(float(s["end"]) - float(s["start"]), 0.01) for s in segments]
    logprobs = [float(s.get("avg_logprob") or 0.0) for s in segments]
    logprob = sum(w * v for w, v in zip(weights, logprobs, strict=True)) / sum(weights)
    hot = [float(s.get("temperature") or 0.0) > first_temperature + 1e-6 for s in segments]
    fallback = sum(w for w, h in zip(weights, hot, strict=True) if h) / sum(weights)
    if logprob < LOW_LOGPROB or fallback >= 0.5:
        signs = f"average log-probability {logprob:.2f}"
        if fallback > 0:
            signs += f", temperature fallback on {fallback:.0%} of the speech"
        if multilingual:
            hint = "the audio may be noisy or unclear; a larger model (e.g. 'medium') may help"
        else:
            hint = (
                "the model is English-only: if the speech is not English, use a multilingual "
                "model (e.g. 'small': whispercli transcribe -m small)"
            )
        out.append(f"the transcript is low-confidence ({signs}); {hint}")
    ratio = max(float(s.get("compression_ratio") or 0.0) for s in segments)
    if ratio > MAX_COMPRESSION_RATIO:
        out.append(
            f"the transcript repeats itself (compression ratio {ratio:.1f} > "
            f"{MAX_COMPRESSION_RATIO}): Whisper may be looping on noise or music"
        )
    return out
