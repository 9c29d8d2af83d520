"""Training objectives: ColPali's in-batch contrastive loss over MaxSim scores, cell regression.

ColPali (Faysse et al., 2024; colpali_engine's ColbertLoss): each query is scored against every
page of the batch by MaxSim (each query token takes its best page vector; the maxima are
summed, here averaged over the query's tokens so the temperature does not depend on query
length), and a softmax cross-entropy over the pages makes the query's own page win.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

DEFAULT_TEMPERATURE = 0.02  # colpali_engine's default, for length-normalised scores


def pad(vectors: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack (n_i, d) tensors into (B, max n_i, d) zeros-padded, and the (B, max n_i) bool mask."""
    width = max(1, max(len(v) for v in vectors))
    out = vectors[0].new_zeros((len(vectors), width, vectors[0].shape[-1]))
    mask = torch.zeros((len(vectors), width), dtype=torch.bool, device=vectors[0].device)
    for i, v in enumerate(vectors):
        out[i, :len(v)] = v
        mask[i, :len(v)] = True
    return out, mask


def colpali_loss(scores: torch.Tensor, temperature: float = DEFAULT_TEMPERATURE,
                 positives: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax cross-entropy of each query's positive page against the batch's other pages.

    scores: (Bq, Bp) query-page scores; positives: (Bq,) index of each query's page (default:
    the diagonal, query i belongs to page i). A scalar; ~0 when every query's page wins by far.

    >>> s = torch.eye(3)
    >>> round(float(colpali_loss(s, 0.02)), 6), round(float(colpali_loss(s[[1, 2, 0]], 0.02)), 1)
    (0.0, 50.0)
    """
    if positives is None:
        positives = torch.arange(len(scores), device=scores.device)
    return F.cross_entropy(scores.float() / temperature, positives)


def cell_regression_loss(vectors: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean (1 - cosine) between page vectors and their targets where `mask` holds.

    vectors, targets: (B, n, d); mask: (B, n) bool (cells with a target). 0 when none has one.
    """
    if not bool(mask.any()):
        return vectors.new_zeros(())
    cos = F.cosine_similarity(vectors[mask].float(), targets[mask].float(), dim=-1)
    return (1.0 - cos).mean()
