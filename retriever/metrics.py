"""Ranking metrics over (document name, page) pairs: Recall@k, nDCG@k, MRR@k."""

from __future__ import annotations

import math

Item = tuple[str, int]  # (document file name, 0-based page)


def recall_at(ranked: list[Item], relevant: set[Item], k: int) -> float:
    """Fraction of the relevant pages found in the first k.

    >>> recall_at([("a", 1), ("a", 2)], {("a", 2), ("b", 0)}, 2)
    0.5
    """
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & relevant) / len(relevant)


def hit_at(ranked: list[Item], relevant: set[Item], k: int) -> float:
    """1.0 when any relevant page is in the first k (success@k; equals recall@k for one page).

    >>> hit_at([("a", 1), ("a", 2)], {("a", 2), ("b", 0)}, 2)
    1.0
    """
    return 1.0 if set(ranked[:k]) & relevant else 0.0


def ndcg_at(ranked: list[Item], relevant: set[Item], k: int) -> float:
    """Binary-gain nDCG: 1.0 when the relevant pages fill the first ranks.

    >>> round(ndcg_at([("a", 0), ("a", 1)], {("a", 1)}, 5), 3)
    0.631
    """
    dcg = sum(1.0 / math.log2(r + 2) for r, item in enumerate(ranked[:k]) if item in relevant)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
    return dcg / ideal if ideal else 0.0


def mrr_at(ranked: list[Item], relevant: set[Item], k: int) -> float:
    """Reciprocal rank of the first relevant page within the first k (0 if none).

    >>> mrr_at([("a", 0), ("a", 1)], {("a", 1)}, 10)
    0.5
    """
    for r, item in enumerate(ranked[:k]):
        if item in relevant:
            return 1.0 / (r + 1)
    return 0.0


METRICS = {
    "R@1": lambda r, rel: recall_at(r, rel, 1),
    "R@5": lambda r, rel: recall_at(r, rel, 5),
    "R@10": lambda r, rel: recall_at(r, rel, 10),
    "Hit@5": lambda r, rel: hit_at(r, rel, 5),
    "nDCG@5": lambda r, rel: ndcg_at(r, rel, 5),
    "MRR@10": lambda r, rel: mrr_at(r, rel, 10),
}


def score_run(rankings: list[list[Item]], relevants: list[set[Item]]) -> dict[str, float]:
    """Mean of every metric over the queries, in percent."""
    n = max(len(rankings), 1)
    return {name: 100.0 * sum(fn(r, rel) for r, rel in zip(rankings, relevants)) / n
            for name, fn in METRICS.items()}
