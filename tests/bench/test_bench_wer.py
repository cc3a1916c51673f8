"""bench/wer.py: the number converter, normalisation and the word alignment."""

from __future__ import annotations

import pytest
import wer


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety nine"),
        (100, "one hundred"),
        (305, "three hundred five"),
        (1_250, "one thousand two hundred fifty"),
        (300_000, "three hundred thousand"),
        (1_000_001, "one million one"),
        (
            999_999_999,
            "nine hundred ninety nine million nine hundred ninety nine thousand "
            "nine hundred ninety nine",
        ),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert wer.number_to_words(n) == words


@pytest.mark.parametrize("n", [-1, 1_000_000_000])
def test_number_to_words_refuses_out_of_range(n: int) -> None:
    with pytest.raises(ValueError):
        wer.number_to_words(n)


@pytest.mark.parametrize(
    ("year", "words"),
    [
        (1847, "eighteen forty seven"),
        (1905, "nineteen oh five"),
        (1900, "nineteen hundred"),
        (2000, "two thousand"),
        (2005, "two thousand five"),
        (2010, "twenty ten"),
        (2023, "twenty twenty three"),
        (1066, "ten sixty six"),
    ],
)
def test_year_to_words(year: int, words: str) -> None:
    assert wer.year_to_words(year) == words


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (1, "first"),
        (3, "third"),
        (12, "twelfth"),
        (14, "fourteenth"),
        (20, "twentieth"),
        (61, "sixty first"),
        (100, "one hundredth"),
    ],
)
def test_ordinal_words(n: int, words: str) -> None:
    assert wer.ordinal_words(n) == words


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Hello, World!", "hello world"),
        ("Don't stop—it's twenty-five.", "dont stop its twenty five"),
        ("2,000 visitors", "two thousand visitors"),
        ("built in 1847", "built in eighteen forty seven"),
        ("the 14th of March", "the fourteenth of march"),
        ("at 22:15 or 7:05", "at twenty two fifteen or seven oh five"),
        ("3.2 billion, 12%", "three point two billion twelve percent"),
        ("$45 and $3 million", "forty five dollars and three million dollars"),
    ],
)
def test_normalize(text: str, words: str) -> None:
    assert wer.normalize(text) == words.split()


def test_digits_and_words_score_equal() -> None:
    assert (
        wer.wer(
            "About 2,000 people came in 1994.",
            "about two thousand people came in nineteen ninety four",
        )
        == 0.0
    )


def test_alignment_counts_each_error_kind() -> None:
    counts = wer.align(["a", "b", "c", "d"], ["a", "x", "c", "d", "e"])
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 0, 1)
    assert counts.wer == pytest.approx(2 / 4)
    counts = wer.align(["a", "b", "c", "d"], ["a", "d"])
    assert (counts.substitutions, counts.deletions, counts.insertions) == (0, 2, 0)


def test_empty_texts() -> None:
    assert wer.wer("", "") == 0.0
    assert wer.wer("", "words") == 1.0
    assert wer.wer("two words", "") == 1.0


def test_counts_add_up_before_dividing() -> None:
    total = wer.score("a b c d", "a b c d") + wer.score("e f", "x y")
    assert total.reference_words == 6
    assert total.wer == pytest.approx(2 / 6)  # not the mean of 0 and 1
