"""Fitting a codec on a sample of an index's pages: which pages, how many vectors, in what order.

The store layer hands in how many vectors each page has and a way to read pages; this module
picks the sample (reproducible for a seed) and fits the Compressor on it.
"""

from __future__ import annotations

import random
from typing import Callable, Iterable

import numpy as np

from docpress.compress.pipeline import Compressor
from docpress.errors import DocpressError
from docpress.types import PageVectors

ReadPages = Callable[[list[int]], list[PageVectors]]  # rows of the page list -> their vectors


def fit_codec(compressor: Compressor, vec_counts: np.ndarray, read: ReadPages,
              words: Callable[[int], list[str] | None], vocabulary: Iterable[list[str]] | None = None,
              sample_vectors: int = 300_000, pooled_pages: int = 4000, seed: int = 0,
              fit_rows: np.ndarray | None = None) -> None:
    """Fit `compressor` on random pages holding about `sample_vectors` vectors (before pruning).

    vec_counts: (n_pages,) vectors of each page; read(rows) gives those pages' vectors and
    words(row) a page's text split on " " (None: no text, e.g. the optical lane). vocabulary:
    every page's words, for IDF counts. The pooled codec is fitted on the pooled vectors of up
    to `pooled_pages` random pages. fit_rows: sample only these rows (default: all of them).
    """
    rows = range(len(vec_counts)) if fit_rows is None else [int(i) for i in fit_rows]
    order = [i for i in rows if vec_counts[i] > 0]
    random.Random(seed).shuffle(order)
    sample, total = [], 0
    for i in order:
        if total >= sample_vectors:
            break
        sample.append(i)
        total += int(vec_counts[i])
    if not sample:
        raise DocpressError("the index has no vectors to fit the compressor on")
    sample.sort()
    pages = read(sample)
    sample_words = [words(i) for i in sample]
    more = sorted(set(order[:pooled_pages]) - set(sample))
    pooled = [p.pooled for p in read(more)] if more else []
    compressor.fit(pages, sample_words, vocabulary=vocabulary, seed=seed,
                   pooled_sample=np.concatenate(pooled) if pooled else None)
