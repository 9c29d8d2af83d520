"""Merging: pool similar vectors of a page into fewer (Ward clustering, or grid neighbours).

Every merged vector is the renormalised mean of its members; it keeps the union of their boxes,
the word index of its most central member (highest cosine with the mean) and their mean weight.
Merged vectors come out in the order of their first member, so reading order survives.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from docpress.compress.stages import build_stage
from docpress.errors import DocpressError
from docpress.types import PageVectors


@dataclass
class MergeResult:
    """A merged page.

    page:   PageVectors with (n_groups, dim) vectors, (n_groups, 4) boxes, words and weights.
    groups: (n_in,) int64, the merged row each input vector went into.
    """

    page: PageVectors
    groups: np.ndarray


class Merger(ABC):
    """Base of the mergers: `merge` validates, asks `_groups` for labels and pools the members."""

    method: str

    def merge(self, page: PageVectors) -> MergeResult:
        n = len(page)
        if page.vectors.ndim != 2 or len(page.boxes) != n or len(page.words) != n:
            raise DocpressError("merge: page vectors, boxes and words must have one row per vector")
        if n <= 1:
            return MergeResult(page, np.zeros(n, np.int64))
        labels = np.asarray(self._groups(page), dtype=np.int64)
        # Relabel by first appearance: group 0 holds the first vector, and so on.
        _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        rank = np.empty(len(first), np.int64)
        rank[np.argsort(first, kind="stable")] = np.arange(len(first))
        groups = rank[inverse.reshape(-1)]
        return MergeResult(pool(page, groups), groups)

    @abstractmethod
    def _groups(self, page: PageVectors) -> np.ndarray:
        """(n_vectors,) integer label of each vector's group (any labels; relabelled after)."""

    @abstractmethod
    def config(self) -> dict:
        """The merger's settings, JSON-able."""


def pool(page: PageVectors, groups: np.ndarray) -> PageVectors:
    """Pool vectors by group (every label 0..n_groups-1 used): renormalised means, box unions,
    most central member's word, mean weight."""
    if len(groups) == 0:
        return page
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    vectors = np.asarray(page.vectors, np.float32)[order]
    sums = np.add.reduceat(vectors.astype(np.float64), starts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    means = (sums / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    # Most central member: the highest cosine with its group's mean.
    cos = np.einsum("ij,ij->i", vectors, means[sorted_groups])
    best = np.maximum.reduceat(cos, starts)
    is_best = cos >= best[sorted_groups]
    first_best = np.flatnonzero(is_best)[np.searchsorted(sorted_groups[is_best], np.arange(len(starts)))]
    boxes = np.asarray(page.boxes, np.float32)[order]
    union = np.concatenate([np.minimum.reduceat(boxes[:, :2], starts, axis=0),
                            np.maximum.reduceat(boxes[:, 2:], starts, axis=0)], axis=1)
    counts = np.diff(np.r_[starts, len(order)])
    weights = np.add.reduceat(np.asarray(page.weights, np.float64)[order], starts) / counts
    return PageVectors(means, union.astype(np.float32), page.words[order][first_best].astype(np.int32),
                       weights.astype(np.float32), page.pooled)


class WardMerger(Merger):
    """Ward hierarchical clustering of a page's vectors into ceil(n / pool_factor) groups."""

    method = "ward"

    def __init__(self, pool_factor: float = 2.0):
        if not pool_factor >= 1.0:
            raise DocpressError(f"merge pool_factor must be at least 1, not {pool_factor}")
        self.pool_factor = float(pool_factor)

    def _groups(self, page: PageVectors) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster, linkage

        n = len(page)
        target = max(1, math.ceil(n / self.pool_factor))
        if target >= n:
            return np.arange(n)
        tree = linkage(np.asarray(page.vectors, np.float64), method="ward")
        return fcluster(tree, target, criterion="maxclust")

    def config(self) -> dict:
        return {"method": self.method, "pool_factor": self.pool_factor}


class GridMerger(Merger):
    """Neighbouring cells of a patch grid: `pool` x `pool` cells become one vector.

    The grid is read from the boxes: distinct box centres along x give the columns, along y the
    rows (the optical lane's patches sit on such a grid; other vectors are binned the same way).
    """

    method = "grid"

    def __init__(self, pool: int = 2):
        if int(pool) < 1:
            raise DocpressError(f"merge pool must be at least 1, not {pool}")
        self.pool = int(pool)

    def _groups(self, page: PageVectors) -> np.ndarray:
        cx = np.round((page.boxes[:, 0] + page.boxes[:, 2]) / 2, 3)
        cy = np.round((page.boxes[:, 1] + page.boxes[:, 3]) / 2, 3)
        col = np.unique(cx, return_inverse=True)[1].reshape(-1) // self.pool
        row = np.unique(cy, return_inverse=True)[1].reshape(-1) // self.pool
        return row * (int(col.max()) + 1) + col

    def config(self) -> dict:
        return {"method": self.method, "pool": self.pool}


MERGERS = {cls.method: cls for cls in (WardMerger, GridMerger)}


def merger_from_config(config: dict) -> Merger:
    """Build a merger from its config dict ({"method": "ward" | "grid", ...})."""
    return build_stage("merge", MERGERS, config, "ward")
