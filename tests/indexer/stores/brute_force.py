"""What the stores must agree with: page tables as the catalog hands them out, and brute-force
MaxSim and pooled scores computed straight from the pages' float vectors."""

from __future__ import annotations

import numpy as np

from indexer.catalog import PageTable
from indexer.stores.base import Location, StoredPage


def table_of(pages: list[StoredPage], locations: list[Location]) -> PageTable:
    """The PageTable the catalog would hand out for these pages (catalog order: vec_start, id)."""
    cols = [[p.page_id for p in pages], [p.doc_id for p in pages], list(range(len(pages))),
            [loc.vec_start for loc in locations], [loc.vec_count for loc in locations],
            [loc.pool_start for loc in locations], [loc.pool_count for loc in locations]]
    return PageTable(*(np.asarray(c, np.int64) for c in cols))


def brute_maxsim(query: np.ndarray, pages: list[StoredPage]) -> np.ndarray:
    return np.asarray([(query @ p.vectors.vectors.T).max(1).sum() if len(p.vectors) else 0.0
                       for p in pages], np.float32)


def brute_dense(pooled: np.ndarray, pages: list[StoredPage]) -> np.ndarray:
    width = max(1, max(len(p.vectors.pooled) for p in pages))
    out = np.full((len(pages), width), -np.inf, np.float32)
    for i, p in enumerate(pages):
        out[i, :len(p.vectors.pooled)] = p.vectors.pooled @ pooled
    return out
