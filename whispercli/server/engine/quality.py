"""Whisper's own confidence signals, read after decoding: what to drop, what to warn about.

Pure Python over the result's segment dicts (``avg_logprob``, ``temperature``,
``no_speech_prob``, ``compression_ratio``, as openai-whisper reports them), so it is tested
without a model.

- The *no-speech gate* drops what Whisper itself calls "probably not speech" and the loops it
  falls into on silence or music: a segment with ``no_speech_prob`` of at least
  ``NO_SPEECH_GATE``, and a line repeated more than ``MAX_REPEATS`` times in a row.
- *Warnings* say when a transcript is not to be trusted: low confidence (typically speech in
  another language on an English-only model, which Whisper "translates" into fluent nonsense
  such as "Thank you for watching."), text that repeats itself (a high compression ratio), or
  no speech at all, however short the file.

Low confidence is one logistic rule over four signals (:class:`Signals`), not a threshold on one
of them, or most of the speech skipped: int8 kernels differ between CPUs, and a French clip
that one CPU decodes at an average log-probability of -1.09 with temperature fallback, another
decodes at -0.85 without (but with a no-speech probability of 0.57 and a phrase said twice).
Each signal moves a little between CPUs; together they keep a margin on both sides. The weights
were fitted once on a labelled set (bench/quality_guard.py: English voices, accents, noise and
real recordings against twelve other languages, decoded natively and as an AVX2 CPU decodes)
and are recorded below; bench/RESULTS.md has the confusion table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

NO_SPEECH_GATE = 0.8
"""A segment whose no-speech probability is at least this is dropped (Whisper's own
``no_speech_threshold`` is 0.6, applied only with a low log-probability)."""
MAX_REPEATS = 2
"""Identical consecutive lines kept; further repeats are a decoding loop."""
MAX_COMPRESSION_RATIO = 2.4
"""Whisper's ``compression_ratio_threshold``: above it, text repeats itself."""
MIN_SPEECH_SECONDS = 1.0
"""Below this much speech (VAD), speech Whisper skipped is no evidence of anything."""

MAX_UNHEARD = 0.75
"""Whisper skipped at least this share of the speech the VAD found (see Signals.unheard):
low confidence whatever the other signals say. English, real recordings included, stays under
0.35 (the VAD pads speech, and Whisper's timestamps trim it)."""
WEIGHTS = {"logprob": -7.0, "fallback": 3.0, "no_speech": 4.0, "repetition": 8.0}
"""Logistic weights per signal (see :class:`Signals`): the transcript is low-confidence when
``BIAS + sum(weight * signal)`` is above 0. With no fallback, no repeats and a no-speech
probability of 0.1, that is an average log-probability below -1.09; a no-speech probability of
0.5 moves the line to -0.86, fallback on all the speech by 0.43, 10 % repeated trigrams by 0.11.

Calibrated once with bench/quality_guard.py (bench/RESULTS.md, 2026-12-06): a logistic
regression on its clips decoded natively and as an AVX2 CPU decodes (English weighted 10x) gives
-7.8, 2.7, 3.4 and 6.5; rounded, then the bias set so that the highest-scoring English clip
sits 0.85 below the line (bar one: a sentence the Caribbean voice garbles into "Raga, na, na,
na", above it when decoded as an AVX2 CPU does). A clip's score moves by 0.2 (median) between
the two decodings. Measured: 106 of 109 clips in other languages warned, 0 of 112 English
(native); 49 of 52 and 1 of 32 (AVX2)."""
BIAS = -8.0

_WORD = re.compile(r"[a-z0-9']+")


class Gate:
    """The no-speech gate, one segment at a time (segments arrive as they are decoded): it
    refuses the probably-not-speech segments and runs of repeated lines, and keeps what it
    refused in ``dropped``: they still count as evidence for :func:`warnings` (a language the
    model does not know often sounds like no speech)."""

    def __init__(self, dropped: list[dict[str, Any]] | None = None) -> None:
        self._last: str | None = None
        self._run = 0
        self.dropped: list[dict[str, Any]] = dropped if dropped is not None else []

    def admit(self, segment: dict[str, Any]) -> bool:
        """False for a probably-not-speech segment and for repeats past ``MAX_REPEATS``."""
        if float(segment.get("no_speech_prob") or 0.0) >= NO_SPEECH_GATE:
            keep = False
        else:
            text = str(segment.get("text", "")).strip().lower()
            self._run = self._run + 1 if text == self._last else 1
            self._last = text
            keep = self._run <= MAX_REPEATS
        if not keep:
            self.dropped.append(segment)
        return keep


def gate(
    segments: Iterable[dict[str, Any]], dropped: list[dict[str, Any]] | None = None
) -> Iterator[dict[str, Any]]:
    """The segments the :class:`Gate` admits; the others are appended to ``dropped``."""
    keeper = Gate(dropped)
    return (segment for segment in segments if keeper.admit(segment))


def _repetition(text: str) -> float:
    """The share of word trigrams that repeat an earlier one (0 for prose, near 1 for loops)."""
    words = _WORD.findall(text.lower())
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    return 1.0 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0


@dataclass(frozen=True)
class Signals:
    """What the decoded segments say about the transcript's trustworthiness.

    Averages are weighted by segment duration, over every decoded segment (the gated ones too).
    """

    logprob: float
    """Average log-probability per token."""
    fallback: float
    """Share of the speech Whisper decoded above the first temperature (its first try scored
    too low or repeated itself)."""
    no_speech: float
    """Average no-speech probability: how much Whisper thinks the speech is not speech."""
    repetition: float
    """Share of the transcript's word trigrams that repeat an earlier one."""
    unheard: float
    """Share of the speech the VAD found that no segment covers: Whisper skips a window it
    calls silence (no-speech probability above 0.6 with a log-probability below -1)."""
    seconds: float = 0.0
    """Seconds of decoded segments (0: Whisper kept nothing, and only ``unheard`` counts)."""
    speech: float = 0.0
    """Seconds of speech the VAD found (0: unknown)."""

    @classmethod
    def read(
        cls, segments: Sequence[dict[str, Any]], first_temperature: float, speech: float | None
    ) -> Signals:
        """The signals of ``segments`` (in time order); ``speech`` is the VAD's speech seconds."""
        covered = sum(float(s["end"]) - float(s["start"]) for s in segments)
        unheard = max(0.0, 1.0 - covered / speech) if speech else 0.0
        if not segments:
            return cls(0.0, 0.0, 0.0, 0.0, unheard=unheard, speech=speech or 0.0)
        weights = [max(float(s["end"]) - float(s["start"]), 0.01) for s in segments]
        total = sum(weights)

        def mean(values: Iterable[float]) -> float:
            return sum(w * v for w, v in zip(weights, values, strict=True)) / total

        return cls(
            logprob=mean(float(s.get("avg_logprob") or 0.0) for s in segments),
            fallback=mean(
                float(float(s.get("temperature") or 0.0) > first_temperature + 1e-6)
                for s in segments
            ),
            no_speech=mean(float(s.get("no_speech_prob") or 0.0) for s in segments),
            repetition=_repetition("".join(str(s.get("text", "")) for s in segments)),
            unheard=unheard,
            seconds=covered,
            speech=speech or 0.0,
        )

    def score(self) -> float:
        """The logistic score of the decoded segments: above 0, they are low-confidence."""
        return BIAS + sum(weight * getattr(self, name) for name, weight in WEIGHTS.items())

    def doubtful(self) -> bool:
        """Low confidence: a score above 0, or most of the speech skipped."""
        skipped = self.speech >= MIN_SPEECH_SECONDS and self.unheard >= MAX_UNHEARD
        return skipped or (self.seconds > 0 and self.score() > 0)

    def describe(self) -> str:
        """The signals a reader can check, for the warning."""
        signs = []
        if self.seconds > 0:
            signs.append(f"average log-probability {self.logprob:.2f}")
            if self.fallback > 0:
                signs.append(f"temperature fallback on {self.fallback:.0%} of the speech")
            signs.append(f"no-speech probability {self.no_speech:.2f}")
            if self.repetition >= 0.05:
                signs.append(f"{self.repetition:.0%} repeated phrases")
        if self.unheard >= 0.05:
            signs.append(f"{self.unheard:.0%} of {self.speech:.1f} s of speech skipped as silence")
        return ", ".join(signs)


def _hint(multilingual: bool) -> str:
    if multilingual:
        return "the audio may be noisy or unclear; a larger model (e.g. 'medium') may help"
    return (
        "the model is English-only: if the speech is not English, use a multilingual "
        "model (e.g. 'small': whispercli transcribe -m small)"
    )


def warnings(
    segments: list[dict[str, Any]],
    duration: float,
    *,
    multilingual: bool,
    first_temperature: float = 0.0,
    dropped: Sequence[dict[str, Any]] = (),
    speech: float | None = None,
) -> list[str]:
    """Readable warnings about the transcript ``segments`` of ``duration`` seconds of audio.

    A segment decoded above ``first_temperature`` (the job's first) needed Whisper's fallback:
    its first attempt scored too low or repeated itself. ``dropped`` are the segments the gate
    took out; ``speech`` the seconds of speech the VAD passed to Whisper (None: unknown).
    """
    decoded = sorted([*segments, *dropped], key=lambda s: float(s["start"]))
    out = []
    signals = Signals.read(decoded, first_temperature, speech)
    if signals.doubtful():
        out.append(
            f"the transcript is low-confidence ({signals.describe()}); {_hint(multilingual)}"
        )
    elif not segments:  # an empty transcript always says why (a 0.3 s clip too)
        return [f"no speech was found in {duration:.1f} s of audio"]
    if segments:
        ratio = max(float(s.get("compression_ratio") or 0.0) for s in segments)
        if ratio > MAX_COMPRESSION_RATIO:
            out.append(
                f"the transcript repeats itself (compression ratio {ratio:.1f} > "
                f"{MAX_COMPRESSION_RATIO}): Whisper may be looping on noise or music"
            )
    return out
