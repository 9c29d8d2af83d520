"""maxsim's first stage: a FAISS IVF-PQ over every token row of a store, searched by fast scan.

MaxSim is a sum over query tokens of each token's best row on a page, so the pages that own a
query token's nearest rows are where the large terms of the sum are (ColBERT's end-to-end
retrieval). Each query token asks the IVF for its `neighbours` nearest rows; a page's
approximate score is the sum of its best hit per query token (a token without a hit on the
page counts its last neighbour's score, XTR's imputation); the best `ndocs` pages are then
scored exactly on the store's own codes. One pooled vector a page is not enough for this: an
HNSW over them recalled 0.33-0.68 of exhaustive MaxSim's top 10 (ARCHITECTURE.md).

The IVF's items are store rows, by row number (the store only appends; indexer.ivf_files keeps
the files in step, crash-safe). A deleted page's rows stay in the lists but map to no live
page, so they never come back; a re-coded or compacted store is other vectors, built again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.catalog import PageTable
from indexer.ivf_files import IvfFiles
from indexer.stores.base import VectorStore

# Below this many token rows an exhaustive scan is fast (about 40 ms at 400k binary rows on 2
# cores) and exact, so no first stage is built or used.
EXACT_ROWS = 400_000
ADD_BLOCK = 1 << 17  # rows decoded and added per call
# Past this many rows (about 230k pages) no build starts, on a write nor on a search: 13.0M
# rows took 424 s on these 2 cores (705 s with 8-bit codes), so the 130M rows of 1M pages
# would take over an hour, and its codes 6 GB. Files that exist are still extended; without
# them maxsim scans exactly.
MAX_BUILD_ROWS = 30_000_000


@dataclass(frozen=True)
class Depth:
    """How far the first stage looks: IVF lists probed per query token, nearest rows kept per
    query token, and pages scored exactly. Chosen on 10,273 real pages (FinanceBench and
    MMLongBench-dev in one index), recall@10 against the exact scan over their questions:
    0.9975 / 0.991 here; 512 neighbours and 1,024 pages gave 0.998 / 0.997 in 60 ms a query
    against 46; 512 and 512, 0.990 / 0.978 (benchmarks/results/scale.md)."""

    nprobe: int = 32
    neighbours: int = 1024
    ndocs: int = 512

    def wider(self) -> "Depth":
        return Depth(self.nprobe * 2, self.neighbours * 4, self.ndocs * 2)


def worth_it(rows: int) -> bool:
    """Whether a search over this many token rows goes through the first stage."""
    return rows > EXACT_ROWS


def subquantizers(dim: int) -> int:
    """PQ sub-quantizers of 4 bits: the divisor of dim nearest dim / 4 (48 bytes a row at 384
    dims, a bit a dimension as the store's binary codes)."""
    return min((m for m in range(1, dim + 1) if dim % m == 0), key=lambda m: (abs(m - dim / 4), -m))


class LiveRows:
    """Maps store rows to rows of a page table (a search's live, filtered pages).

    owners=True: also an array of the owner of every store row (4 bytes a row: 52 MB for the
    13M rows of 100k pages), for a table that many searches share (the whole catalog's, kept
    a generation): a lookup is then one gather, 0.14 ms for 21k neighbours against 3.6 ms of
    binary search."""

    def __init__(self, table: PageTable, owners: bool = False):
        # pages without rows own none (one may share its vec_start with the next page)
        self.order = np.flatnonzero(table.vec_count > 0)
        self.order = self.order[np.argsort(table.vec_start[self.order], kind="stable")]
        self.starts = table.vec_start[self.order]
        self.ends = self.starts + table.vec_count[self.order]
        self.owners = self._owners() if owners and len(self.starts) else None

    def _owners(self) -> np.ndarray:
        """Each store row's table row, -1 for rows no page of the table owns: the pages in
        row order with the gaps between them, spelled out by one repeat."""
        gaps = self.starts - np.concatenate([[0], self.ends[:-1]])
        if (gaps < 0).any():  # pages sharing rows: not a catalog's table; binary search then
            return None
        values = np.stack([np.full(len(self.order), -1, np.int64), self.order], axis=1).ravel()
        lengths = np.stack([gaps, self.ends - self.starts], axis=1).ravel()
        return np.repeat(values.astype(np.int32), lengths)

    def pages(self, rows: np.ndarray) -> np.ndarray:
        """The table row owning each store row; -1 where no page of the table owns it (rows
        of other pages, dead rows, FAISS's -1 for a missing neighbour)."""
        if not len(self.starts):
            return np.full(np.shape(rows), -1, np.int64)
        if self.owners is not None:
            inside = (rows >= 0) & (rows < len(self.owners))
            return np.where(inside, self.owners[np.where(inside, rows, 0)], -1).astype(np.int64)
        at = np.clip(np.searchsorted(self.starts, rows, side="right") - 1, 0, None)
        return np.where((rows >= self.starts[at]) & (rows < self.ends[at]), self.order[at], -1)


class TokenIvf:
    """The token first stage of one store, kept in step with its rows."""

    def __init__(self, folder: Path, store: VectorStore, identity: str):
        self.store = store
        self.identity = identity
        # "pq4": files of the 8-bit codes of earlier releases are other vectors, built again
        self.files = IvfFiles(folder, "tokens", f"{identity}/pq4", _ivf_pq, _fast_scan)

    @property
    def state(self) -> dict:
        return self.files.state

    def sync(self, live: PageTable, build: bool = True, defer_drift: bool = False) -> "TokenIvf | None":
        """Cover every row of the store (built, extended or rebuilt as indexer.ivf_files
        says); None below EXACT_ROWS live rows, where the exact scan is the tool, or where
        the files do not cover the rows. build=False (a search): only extend files that
        exist, and only if no one else is writing them. defer_drift: files that have only
        outgrown their centroids are extended and keep serving (`outgrown`; `rebuild`)."""
        rows = int(live.vec_count.sum())
        if not worth_it(rows):
            return None
        covered = self.files.sync(self.store.n_rows(), rows, *self._items(live),
                                  may_build=build and rows <= MAX_BUILD_ROWS, wait=build,
                                  defer_drift=defer_drift)
        return self if covered else None

    @property
    def outgrown(self) -> bool:
        return self.files.outgrown

    def rebuild(self, live: PageTable) -> bool:
        """New files fitted to the rows now, built while the old ones serve (IvfFiles.rebuild)."""
        rows = int(live.vec_count.sum())
        if not worth_it(rows) or rows > MAX_BUILD_ROWS:
            return False
        return self.files.rebuild(self.store.n_rows(), rows, *self._items(live))

    def _items(self, live: PageTable):
        return (lambda n: _sample(self.store, live, n, seed=0),
                lambda index, lo, hi: _add_rows(index, self.store, lo, hi))

    # -- searching ----------------------------------------------------------------------
    def candidates(self, query: np.ndarray, live: LiveRows, depth: Depth) -> tuple[np.ndarray, np.ndarray]:
        """(table rows, approximate scores) of the best `depth.ndocs` pages for one query
        (n_tokens, dim) float32, weighted rows; pages outside `live` never appear."""
        keep = np.flatnonzero(np.abs(query).sum(1) > 0)
        q = np.ascontiguousarray(query[keep], np.float32)
        if not len(q):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        d, i = self.files.search(q, depth.neighbours, depth.nprobe)
        found = i >= 0
        floor = np.where(found.any(1), np.where(found, d, np.inf).min(1), 0.0)  # imputed score
        pages = live.pages(i.ravel()).reshape(i.shape)
        token = np.broadcast_to(np.arange(len(q))[:, None], i.shape)
        hit = pages >= 0
        page, token, sim = pages[hit], token[hit], d[hit]
        if not len(page):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        # each page's best hit per query token
        key = page * len(q) + token
        order = np.lexsort((-sim, key))
        first = np.ones(len(order), bool)
        first[1:] = key[order][1:] != key[order][:-1]
        best = order[first]
        uniq, where = np.unique(page[best], return_inverse=True)
        gain = np.bincount(where, weights=sim[best] - floor[token[best]], minlength=len(uniq))
        scores = (floor.sum() + gain).astype(np.float32)
        top = np.argsort(-scores, kind="stable")[:depth.ndocs]
        return uniq[top], scores[top]

    def nbytes(self) -> int:
        return self.files.nbytes()


def _ivf_pq(dim: int, nlist: int, n_train: int):
    """IVF with 4-bit PQ codes (dim / 8 bytes a row), scored by inner product.

    4 bits a code because FAISS scans those with SIMD over blocks of rows (fast scan). On the
    1.6M token rows of 10k real pages, 2,048 lists, 32 probed, 512 neighbours for 20 query
    tokens: 8-bit codes of 32 bytes 17.3 ms, recall@512 of the exact neighbours 0.60; 4-bit
    codes of 32 bytes 2.9 ms, 0.61; of 48 bytes 4.3 ms, 0.81 (benchmarks/results/scale.md).
    """
    import faiss

    index = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, subquantizers(dim), 4,
                             faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = index.pq.cp.seed = 1
    return index


def _fast_scan(index):
    """The IVF-PQ as FAISS's fast scan searches it (its codes repacked in blocks: 16 ms for
    400k rows). Kept on disk as the plain IVF-PQ: FAISS 1.15's merge of two fast-scan
    indexes corrupts memory."""
    import faiss

    if isinstance(index, faiss.IndexIVFPQ) and index.pq.nbits == 4:
        return faiss.IndexIVFPQFastScan(index)
    return index


def _sample(store: VectorStore, live: PageTable, n: int, seed: int) -> np.ndarray:
    """The decoded rows of whole live pages drawn at random (fixed seed) until about n rows:
    pages, not single rows, so the store is read in runs."""
    pages = np.random.default_rng(seed).permutation(np.flatnonzero(live.vec_count > 0))
    take = pages[:int(np.searchsorted(np.cumsum(live.vec_count[pages]), n)) + 1]
    out = [store.vector_rows(int(live.vec_start[p]), int(live.vec_start[p] + live.vec_count[p]))
           for p in np.sort(take)]
    return np.ascontiguousarray(np.concatenate(out), np.float32)


def _add_rows(index, store: VectorStore, lo: int, hi: int) -> None:
    """Rows [lo, hi) of the store into the IVF, by row number."""
    for start in range(lo, hi, ADD_BLOCK):
        end = min(hi, start + ADD_BLOCK)
        index.add_with_ids(np.ascontiguousarray(store.vector_rows(start, end), np.float32),
                           np.arange(start, end, dtype=np.int64))
