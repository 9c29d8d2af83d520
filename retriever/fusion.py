"""Score fusion: put signals on one scale (z-scores) and combine them with weights."""

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
