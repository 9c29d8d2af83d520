"""Token and word tests shared by compression (pruning) and search (query token weights)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import numpy as np


def _is_symbol(ch: str) -> bool:
    cat = unicodedata.category(ch)
    return cat.startswith("P") or cat.startswith("S")


@lru_cache(maxsize=1 << 16)  # a query's tokens are judged for every hit: a vocabulary repeats
def is_punctuation(word: str) -> bool:
    """True for a non-empty word made only of punctuation and symbols ("$", "(1)" is not).

    >>> is_punctuation("—"), is_punctuation("$"), is_punctuation("$5"), is_punctuation("")
    (True, True, False, False)
    """
    return bool(word) and all(_is_symbol(c) for c in word)


def strip_symbols(word: str) -> str:
    """The word without punctuation and symbols at either end.

    >>> strip_symbols("(Revenue),")
    'Revenue'
    """
    start, end = 0, len(word)
    while start < end and _is_symbol(word[start]):
        start += 1
    while end > start and _is_symbol(word[end - 1]):
        end -= 1
    return word[start:end]


def token_weights(tokens: list[str]) -> np.ndarray:
    """(n_tokens,) float32 MaxSim weight of each query token: 0 for punctuation (it matches any
    page's punctuation), else 1. WordPiece continuations ("##.") are judged without "##".

    >>> token_weights(["revenue", "?", "##,"]).tolist()
    [1.0, 0.0, 0.0]
    """
    return np.asarray([0.0 if is_punctuation(t.removeprefix("##")) else 1.0 for t in tokens],
                      dtype=np.float32)
