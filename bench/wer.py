"""Word error rate with simple normalisation (no dependencies).

Normalisation: lower case; numbers written as words (cardinals up to 999,999,999, four-digit
years the way they are read, ordinals, decimals, clock times, percent and dollar signs); hyphens
split words; other punctuation and apostrophes are dropped. Both the reference and the hypothesis
go through the same function, so "2,000" and "two thousand" score as equal.

WER = (substitutions + deletions + insertions) / reference words, from a Levenshtein alignment on
words. Over a set, sum the counts and divide once (`Counts.__add__`), not an average of rates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((1_000_000, "million"), (1_000, "thousand"))
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
MAX_CARDINAL = 999_999_999


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [_ONES[hundreds], "hundred"]
    if rest >= 20:
        tens, ones = divmod(rest, 10)
        words.append(_TENS[tens])
        if ones:
            words.append(_ONES[ones])
    elif rest or not words:
        words.append(_ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """Cardinal in words, without "and": 1_250 -> "one thousand two hundred fifty"."""
    if not 0 <= n <= MAX_CARDINAL:
        raise ValueError(f"{n} is outside 0..{MAX_CARDINAL}")
    words: list[str] = []
    for scale, name in _SCALES:
        count, n = divmod(n, scale)
        if count:
            words += [*_below_thousand(count), name]
    if n or not words:
        words += _below_thousand(n)
    return " ".join(words)


def year_to_words(year: int) -> str:
    """A year as people read it: 1847 -> "eighteen forty seven", 1905 -> "nineteen oh five",
    1900 -> "nineteen hundred", 2005 -> "two thousand five", 2023 -> "twenty twenty three"."""
    if not 1000 <= year <= 9999:
        raise ValueError(f"{year} is not a four-digit year")
    high, low = divmod(year, 100)
    if high % 10 == 0 and low < 10:  # 2000..2009, 1000..1009
        return number_to_words(year)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    if low < 10:
        return f"{number_to_words(high)} oh {number_to_words(low)}"
    return f"{number_to_words(high)} {number_to_words(low)}"


def ordinal_words(n: int) -> str:
    """Ordinal in words: 14 -> "fourteenth", 61 -> "sixty first", 20 -> "twentieth"."""
    *head, last = number_to_words(n).split()
    if last in _ORDINAL_WORDS:
        last = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _digits_words(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _number_token(match: re.Match[str]) -> str:
    """Words for one numeric token found by _NUMBER (see its groups)."""
    if match.group("hour"):
        hour, minute = int(match.group("hour")), int(match.group("minute"))
        spoken = number_to_words(hour)
        if minute:
            spoken += (" oh " if minute < 10 else " ") + number_to_words(minute)
        return f" {spoken} "
    raw = match.group("int")
    value = int(raw.replace(",", ""))
    if value > MAX_CARDINAL:
        return f" {_digits_words(raw.replace(',', ''))} "
    if match.group("suffix"):
        return f" {ordinal_words(value)} "
    if match.group("frac"):
        return f" {number_to_words(value)} point {_digits_words(match.group('frac'))} "
    is_year = "," not in raw and len(raw) == 4 and 1100 <= value <= 2099
    spoken = year_to_words(value) if is_year else number_to_words(value)
    return f" {spoken} "


_NUMBER = re.compile(
    r"(?P<hour>\d{1,2}):(?P<minute>\d{2})\b"
    r"|(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?(?P<suffix>st|nd|rd|th)?\b"
)
_CURRENCY = re.compile(r"\$\s*(\d[\d,]*(?:\.\d+)?)(\s*(?:million|billion|thousand))?")


def normalize(text: str) -> list[str]:
    """Lower-case words with numbers spelled out and punctuation removed."""
    text = text.lower().replace("%", " percent ").replace("&", " and ")
    text = _CURRENCY.sub(lambda m: f" {m.group(1)}{m.group(2) or ''} dollars ", text)
    text = _NUMBER.sub(_number_token, text)
    text = re.sub(r"['\u2019]", "", text)  # apostrophes join: "don't" -> "dont"
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return text.split()


@dataclass(frozen=True)
class Counts:
    """Alignment counts; add them up over a set and take `.wer` once."""

    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_words: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Error rate as a fraction (0.05 = 5 %); an empty reference scores 0 or 1."""
        if self.reference_words == 0:
            return 0.0 if self.errors == 0 else 1.0
        return self.errors / self.reference_words

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
            self.reference_words + other.reference_words,
        )


def align(reference: list[str], hypothesis: list[str]) -> Counts:
    """Levenshtein alignment on words; among equal-cost paths, any one is taken."""
    # Each cell holds (cost, substitutions, deletions, insertions) for ref[:i] vs hyp[:j].
    prev = [(j, 0, 0, j) for j in range(len(hypothesis) + 1)]
    for i, ref_word in enumerate(reference, start=1):
        cur = [(i, 0, i, 0)]
        for j, hyp_word in enumerate(hypothesis, start=1):
            diag = prev[j - 1]
            if ref_word == hyp_word:
                best = diag
            else:
                sub = (diag[0] + 1, diag[1] + 1, diag[2], diag[3])
                up = prev[j]
                dele = (up[0] + 1, up[1], up[2] + 1, up[3])
                left = cur[j - 1]
                ins = (left[0] + 1, left[1], left[2], left[3] + 1)
                best = min(sub, dele, ins)
            cur.append(best)
        prev = cur
    _, subs, dels, ins_ = prev[-1]
    return Counts(subs, dels, ins_, len(reference))


def score(reference: str, hypothesis: str) -> Counts:
    """Normalise both texts and align them."""
    return align(normalize(reference), normalize(hypothesis))


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate of one hypothesis against one reference, as a fraction."""
    return score(reference, hypothesis).wer
