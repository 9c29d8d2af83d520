"""Pseudo-queries cut from page text: sentence splitting and random word spans.

The pieces both trainers cut queries with: distillation (`pseudo_queries`, over the sentences
of a page) and docpress.tune (`cut_queries`, which also needs where in the page a piece lies).
"""

from __future__ import annotations

import re

import numpy as np

from docpress.types import Page

SENTENCE_ENDS = ".!?;:"  # a word ending in one of these ends a sentence


def sentence_spans(words: list[str], ends: str = SENTENCE_ENDS) -> list[tuple[int, int]]:
    """Word spans [lo, hi) of the sentences: each ends at a word ending in one of `ends` (before
    a final newline, if any); the words after the last such word make the last span.

    >>> sentence_spans("Costs fell. Revenue: up 3%; cash flat".split(), ends=".;")
    [(0, 2), (2, 5), (5, 7)]
    """
    end = re.compile(f"[{re.escape(ends)}]$")
    spans, lo = [], 0
    for i, w in enumerate(words):
        if end.search(w):
            spans.append((lo, i + 1))
            lo = i + 1
    if lo < len(words):
        spans.append((lo, len(words)))
    return spans


def sentences(text: str, min_words: int = 3) -> list[str]:
    """The text cut at sentence ends (and colons, semicolons); pieces under min_words words go.

    >>> sentences("Revenue rose sharply. Net income fell to 3 million; costs were flat. Ok.")
    ['Revenue rose sharply.', 'Net income fell to 3 million;', 'costs were flat.']
    """
    words = text.split()
    pieces = [words[lo:hi] for lo, hi in sentence_spans(words)]
    return [" ".join(p) for p in pieces if len(p) >= min_words]


def random_span(n_words: int, min_size: int, max_size: int, rng: np.random.Generator) -> tuple[int, int]:
    """A random span [lo, hi) of min_size..max_size words (inclusive) within n_words words.

    Draws the size, then the start (two rng.integers calls, in that order).
    """
    size = int(rng.integers(min_size, max_size + 1))
    lo = int(rng.integers(0, n_words - size + 1))
    return lo, lo + size


def pseudo_queries(texts: list[str], n: int, rng: np.random.Generator, min_words: int = 5,
                   max_words: int = 16) -> list[str]:
    """Up to n query-like spans cut from `texts` (sentences): whole short sentences and
    random spans of min_words..max_words words, without repeats."""
    words_of = [t.split() for t in texts if len(t.split()) >= 3]
    if not words_of:
        return []
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(8 * n):
        if len(out) == n:
            break
        words = words_of[int(rng.integers(len(words_of)))]
        if len(words) <= max_words and rng.random() < 0.5:
            span = words
        else:
            lo, hi = random_span(len(words), min(min_words, len(words)), min(max_words, len(words)), rng)
            span = words[lo:hi]
        text = " ".join(span)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def split_sentences(page: Page, holdout: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(training sentences, held-out sentences) of a page; a page keeps at least one for training."""
    found = sentences(page.text)
    if not found and page.words:
        found = [page.text]
    order = rng.permutation(len(found))
    held = min(holdout, max(0, len(found) - 1))
    return [found[i] for i in order[held:]], [found[i] for i in order[:held]]
