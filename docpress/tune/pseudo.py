"""Pseudo-queries cut from a page's own text, and BM25-mined hard negatives, with no labels.

A pseudo-query is a piece of a page (a sentence, a visual line such as a heading, the label of
a table row, or a random Contriever-style span of words); its positive is the same page with
that piece cut out: every token vector whose word lies in the cut is dropped, so the query's
words never appear in what it must find and the head has to learn from the context around them.
Sentence splitting and random spans are docpress.train.pseudo's, shared with distillation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from docpress.train.pseudo import random_span, sentence_spans

KINDS = ("sentence", "line", "row", "span")
SENTENCE_ENDS = ".!?;"  # where a "sentence" piece ends (distillation's sentences also end at colons)
_NUMBER = re.compile(r"^[(\[$€£-]*[\d.,%)\]]*\d[\d.,%)\]]*$")
_LETTERS = re.compile(r"[A-Za-z]{2,}")


@dataclass(frozen=True)
class PseudoQuery:
    """A query cut from page `page`; words [cut[0], cut[1]) of the page text are its source."""

    text: str
    page: int
    cut: tuple[int, int]
    kind: str


@dataclass
class CutOptions:
    """How pieces are cut: query length in words, and the least page a positive may keep."""

    min_words: int = 4
    max_words: int = 16
    min_kept_vectors: int = 16


def word_lines(n_words: int, vector_words: np.ndarray, boxes: np.ndarray) -> list[tuple[int, int]]:
    """Word spans [lo, hi) of the page's visual lines, from the boxes of the words' vectors.

    A new line starts where a word sits lower than the previous one by over half its height,
    or left of it (a wrap). Words without a vector continue the current line.
    """
    first = np.full(n_words, -1, np.int64)
    valid = np.flatnonzero((vector_words >= 0) & (vector_words < n_words))
    owners, at = np.unique(vector_words[valid], return_index=True)  # each word's first vector
    first[owners] = valid[at]
    spans, lo, prev = [], 0, None
    for w in range(n_words):
        if first[w] < 0:
            continue
        x0, y0, _, y1 = boxes[first[w]]
        if prev is not None:
            px0, py0, _, py1 = prev
            if abs((y0 + y1) - (py0 + py1)) / 2 > 0.5 * max(py1 - py0, 1e-3) or x0 < px0:
                spans.append((lo, w))
                lo = w
        prev = (x0, y0, 0, y1)
    if n_words:
        spans.append((lo, n_words))
    return spans


def _wordy(words: list[str]) -> bool:
    """Mostly words, not numbers: at least half the tokens carry two letters in a row."""
    return bool(words) and sum(bool(_LETTERS.search(w)) for w in words) * 2 >= len(words)


def candidates(words: list[str], vector_words: np.ndarray, boxes: np.ndarray,
               options: CutOptions) -> dict[str, list[tuple[tuple[int, int], str]]]:
    """Per kind, the (cut span, query text) pairs a page offers (random spans excluded)."""
    lo_n, hi_n = options.min_words, options.max_words
    out: dict[str, list] = {k: [] for k in KINDS[:3]}
    for lo, hi in sentence_spans(words, SENTENCE_ENDS):
        if lo_n <= hi - lo <= 2 * hi_n and _wordy(words[lo:hi]):
            out["sentence"].append(((lo, hi), " ".join(words[lo:hi])))
    for lo, hi in word_lines(len(words), vector_words, boxes):
        piece = words[lo:hi]
        label = [w for w in piece if not _NUMBER.match(w)]
        if len(label) < len(piece) and len(label) >= 2 and _wordy(label):
            # a table row: ask for its label, cut the whole row (numbers too)
            out["row"].append(((lo, hi), " ".join(label)))
        elif 3 <= hi - lo <= hi_n and _wordy(piece):
            out["line"].append(((lo, hi), " ".join(piece)))
    return out


def _normal(text: str) -> str:
    return " ".join(_LETTERS.findall(text.lower()))


def cut_queries(page: int, text: str, vector_words: np.ndarray, boxes: np.ndarray, n: int,
                rng: np.random.Generator, options: CutOptions | None = None) -> list[PseudoQuery]:
    """Up to n distinct pseudo-queries of one page, kinds drawn evenly among those it offers.

    A piece is refused when its words occur again in the rest of the page (the positive would
    still hold the query's text) or when too few vectors would be left for a positive.
    """
    options = options or CutOptions()
    words = text.split(" ")
    if len(words) < 2 * options.min_words:
        return []
    offered = candidates(words, vector_words, boxes, options)
    offered["span"] = []  # drawn fresh each time
    out: list[PseudoQuery] = []
    seen: set[tuple[int, int]] = set()
    for _ in range(6 * n):
        if len(out) == n:
            break
        kinds = [k for k in KINDS if k == "span" or offered[k]]
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "span":
            lo, hi = random_span(len(words), options.min_words, min(options.max_words, len(words) // 2), rng)
            query = " ".join(words[lo:hi])
        else:
            (lo, hi), query = offered[kind][int(rng.integers(len(offered[kind])))]
        if (lo, hi) in seen or not _LETTERS.search(query):
            continue
        kept = int(((vector_words < lo) | (vector_words >= hi)).sum())
        rest = " ".join(words[:lo] + words[hi:])
        if kept < options.min_kept_vectors or _normal(query) in _normal(rest):
            continue
        seen.add((lo, hi))
        out.append(PseudoQuery(query, page, (lo, hi), kind))
    return out


def hard_negatives(queries: list[PseudoQuery], texts: list[str], depth: int = 8,
                   near_duplicate: float = 0.8) -> np.ndarray:
    """(n_queries,) index of each query's hard negative page in `texts`, or -1.

    The best BM25 page for the query that is not its own page, does not contain the query's
    words in a row (it would answer it too) and is not a near-copy of its page (Jaccard of
    the word sets >= near_duplicate: the same boilerplate page of another filing).
    """
    from retriever.bm25 import Bm25Index

    out = np.full(len(queries), -1, np.int64)
    if len(texts) < 2:
        return out
    bm25 = Bm25Index.build(np.arange(len(texts)), texts)
    vocab = [set(_normal(t).split()) for t in texts]
    normal = [None] * len(texts)
    for i, q in enumerate(queries):
        scores = bm25.scores(q.text)
        for j in np.argsort(-scores, kind="stable")[:depth]:
            j = int(j)
            if j == q.page or scores[j] <= 0:
                continue
            if normal[j] is None:
                normal[j] = _normal(texts[j])
            if _normal(q.text) in normal[j]:
                continue
            a, b = vocab[q.page], vocab[j]
            if a and len(a & b) / len(a | b) >= near_duplicate:
                continue
            out[i] = j
            break
    return out
