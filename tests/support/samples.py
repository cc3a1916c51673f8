"""The repository's sample and how tests judge a transcript of it.

No test pins one CPU's words: a transcript is compared with the sample's reference text within
a word-error-rate bound (bench/wer.py, the one scorer), or with what the same engine made of
the same audio.
"""

from __future__ import annotations

from pathlib import Path

from wer import wer

REPO = Path(__file__).resolve().parents[2]
SAMPLE_MP3 = REPO / "samples" / "sample.mp3"
SAMPLE_TXT = REPO / "samples" / "sample.txt"
SAMPLE_TEXT = SAMPLE_TXT.read_text(encoding="utf-8")
SAMPLE_WER = 0.10
"""tiny.en on the sample: 0 to 1 words of 29 wrong on the CPUs seen so far."""


def is_sample(text: str, bound: float = SAMPLE_WER) -> bool:
    """Whether ``text`` is the sample's transcript, within ``bound`` word error rate."""
    return wer(SAMPLE_TEXT, text) <= bound


def assert_sample(text: str, bound: float = SAMPLE_WER) -> None:
    """``text`` is the sample's transcript (within ``bound`` WER): says the rate if not."""
    rate = wer(SAMPLE_TEXT, text)
    assert rate <= bound, f"WER {rate:.2f} > {bound} against samples/sample.txt: {text!r}"
