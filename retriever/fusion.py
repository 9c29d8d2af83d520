"""Score fusion: put signals on one scale and combine them, page- and document-level."""

from __future__ import annotations

import numpy as np


def standardize(scores: np.ndarray) -> np.ndarray:
    """z-scores over the candidate pages (0 where the signal is flat).

    >>> standardize(np.array([1.0, 2.0, 3.0])).round(3).tolist()
    [-1.225, 0.0, 1.225]
    """
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if finite.sum() < 2:
        return np.zeros_like(scores)
    mean, std = scores[finite].mean(), scores[finite].std()
    out = np.where(finite, (scores - mean) / std if std > 0 else 0.0, -10.0)
    return out


def weighted_sum(signals: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Sum of standardized signals times their weights (signals missing from weights ignored)."""
    total = None
    for name, weight in weights.items():
        if weight == 0 or name not in signals:
            continue
        part = weight * standardize(signals[name])
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no signal to fuse")
    return total


def document_prior(page_scores: np.ndarray, doc_ids: np.ndarray, top: int = 3) -> np.ndarray:
    """Per page: the mean of its document's `top` best page scores.

    A question about one filing tends to match several of that filing's pages; this lifts
    every page of the document that matches best as a whole.
    >>> document_prior(np.array([1.0, 3.0, 2.0, 0.0]), np.array([7, 7, 8, 8]), top=1).tolist()
    [3.0, 3.0, 2.0, 2.0]
    """
    order = np.lexsort((-page_scores, doc_ids))
    sorted_docs = doc_ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_docs[1:] != sorted_docs[:-1]])
    ends = np.r_[starts[1:], len(order)]
    prior = np.empty(len(page_scores), dtype=np.float64)
    for s, e in zip(starts, ends):
        best = page_scores[order[s:min(e, s + top)]]
        prior[order[s:e]] = best.mean()
    return prior


def reciprocal_rank(scores: np.ndarray, k: int = 60) -> np.ndarray:
    """Reciprocal-rank scores 1 / (k + rank) of each page under one signal."""
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(len(scores))
    return 1.0 / (k + 1 + ranks)
