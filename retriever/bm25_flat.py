"""BM25 postings of the terms asked lately, flattened across segments with their weights
computed: hybrid's BM25 signals on large indexes.

Scoring a term from the segments (retriever.bm25_segments.score) walks each segment, masks
its dead texts and computes every weight from the count and the length norm, on every query.
At a million pages that was 33 ms a query for the page index alone (16 segments). A term's
weights are fixed until the next write, so they are kept for the terms queried lately, as
flat rows (the segments' rows end to end) and float32 weights: scoring is then one gather-add
a term. The sums are the same floats in the same order as score() gives, so the results are
identical. Measured at 1M pages on 20 MMLongBench-dev questions, page index: 33.1 -> 15.5 ms
for the scores and the best 1,000 pages; head index 12.3 -> 5.8 ms
(benchmarks/results/scale.md).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from retriever.bm25_segments import Prepared, Segment, _idf, live_postings

# Postings kept (8 bytes each: 128 MB); the least recently asked terms are dropped past it.
CACHED_POSTINGS = 1 << 24


@dataclass
class TermPostings:
    """One term over the live texts: the flat rows holding it (ascending) and its weight in
    each (idf included)."""

    rows: np.ndarray
    weights: np.ndarray


class FlatTerms:
    """The flattened postings of one index's generation (its segments, live masks and
    Prepared), computed when a term is first asked for and kept while there is room."""

    def __init__(self, segments: list[Segment], live: list[np.ndarray], prepared: Prepared):
        self.segments, self.live, self.prepared = segments, live, prepared
        self.offsets = np.concatenate([[0], np.cumsum([len(s.keys) for s in segments])]).astype(np.int64)
        self.n_rows = int(self.offsets[-1])
        self._row_type = np.int32 if self.n_rows < np.iinfo(np.int32).max else np.int64
        self._terms: OrderedDict[int, TermPostings] = OrderedDict()
        self._kept = 0
        self._lock = threading.Lock()  # a server's threads share one index

    def term(self, term: int) -> TermPostings:
        with self._lock:
            got = self._terms.get(term)
            if got is not None:
                self._terms.move_to_end(term)
                return got
        hits = live_postings(self.segments, self.live, term, self.prepared.whole)
        idf = _idf(sum(len(rows) for _, rows, _ in hits), self.prepared.n)
        parts = [(s, rows, tf) for s, rows, tf in hits if len(rows)]
        # the expression score() uses, so that the float32 weights are the same
        weights = [idf * tf / (self.prepared.norms[s][rows] + tf) for s, rows, tf in parts]
        got = TermPostings(
            np.concatenate([(self.offsets[s] + rows).astype(self._row_type) for s, rows, _ in parts])
            if parts else np.zeros(0, self._row_type),
            np.concatenate(weights).astype(np.float32, copy=False) if parts else np.zeros(0, np.float32))
        with self._lock:
            if term not in self._terms:
                self._terms[term] = got
                self._kept += len(got.rows)
            while self._kept > CACHED_POSTINGS and len(self._terms) > 1:
                _, old = self._terms.popitem(last=False)
                self._kept -= len(old.rows)
        return got

    def scores(self, terms: list[int]) -> np.ndarray:
        """(n_rows,) float32: every text's BM25 score for the query terms (a repeated term
        counts again, as in score()); dead texts 0."""
        import torch

        out = torch.zeros(self.n_rows, dtype=torch.float32)
        if self.prepared.n == 0:
            return out.numpy()
        for term in terms:
            postings = self.term(term)
            # a term's rows are distinct: each row gets one float32 add, as numpy's
            # out[rows] += weights gives it, 3.3x faster (1M rows: 1.0 against 3.4 ms a query)
            out.index_add_(0, torch.from_numpy(postings.rows), torch.from_numpy(postings.weights))
        return out.numpy()
