"""hybrid's first stage on large indexes: a FAISS IVF over one vector a page (its head vector,
its first window's pooled vector) that returns the pages nearest a query's pooled vector.

hybrid's cheap signals are dense (the first window, or a clearly better later one), the head
vector, BM25 over the head and over the page, and the document signals. BM25 has its inverted index and the document signals
live on documents, so only the two vector signals scan every page; on large indexes each
gives its best pages from an IVF instead, and hybrid scores the union of every signal's best
pages exactly (retriever.search). The dense IVF holds each page's first window only: a page
that a later window matches best comes into the union through BM25 or the head vector. The IVF's items are catalog page ids (never given twice),
kept in step by indexer.ivf_files; a deleted page maps to no live page and never comes back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.catalog import PageTable
from indexer.ivf_files import IvfFiles

# hybrid scans every page below this many; above it, through the first stage. Measured on the
# simulation (benchmarks/results/scale.md), p50 scan against first stage in one process: 20.0
# against 19.1 ms at 50k pages, 26.7 against 20.7 at 100k; the lines cross near 50k.
EXACT_PAGES = 50_000
ADD_BLOCK = 1 << 15  # pages' vectors read and added per call


def worth_it(pages: int) -> bool:
    return pages > EXACT_PAGES


class PageIvf:
    """One per-page vector of the live pages in an IVF with 8-bit scalar codes, by page id."""

    def __init__(self, folder: Path, name: str, identity: str):
        self.identity = identity
        self.files = IvfFiles(folder, name, identity, _ivf_sq8)

    def sync(self, live: PageTable, vectors: Callable[[PageTable], np.ndarray],
             build: bool = True, defer_drift: bool = False) -> "PageIvf | None":
        """Cover every live page (vectors(table): their (n, dim) vectors); None below
        EXACT_PAGES, where the scan is the tool, or where the files do not cover the pages.
        build=False (a search): only extend files that exist, and only if no one else is
        writing them. defer_drift: as TokenIvf.sync."""
        if not worth_it(len(live)):
            return None
        covered = self.files.sync(int(live.page_ids.max()) + 1, len(live), *self._items(live, vectors),
                                  may_build=build, wait=build, defer_drift=defer_drift)
        return self if covered else None

    @property
    def state(self) -> dict:
        return self.files.state

    @property
    def outgrown(self) -> bool:
        return self.files.outgrown

    def rebuild(self, live: PageTable, vectors: Callable[[PageTable], np.ndarray]) -> bool:
        """New files fitted to the pages now, built while the old ones serve (IvfFiles.rebuild)."""
        if not worth_it(len(live)):
            return False
        return self.files.rebuild(int(live.page_ids.max()) + 1, len(live), *self._items(live, vectors))

    @staticmethod
    def _items(live: PageTable, vectors: Callable[[PageTable], np.ndarray]):
        ids = live.page_ids

        def sample(n: int) -> np.ndarray:
            rows = np.sort(np.random.default_rng(0).choice(len(live), min(n, len(live)), replace=False))
            return vectors(live.subset(rows))

        def add(index, lo: int, hi: int) -> None:
            new = np.flatnonzero((ids >= lo) & (ids < hi))
            for start in range(0, len(new), ADD_BLOCK):
                block = new[start:start + ADD_BLOCK]
                index.add_with_ids(np.ascontiguousarray(vectors(live.subset(block)), np.float32),
                                   ids[block].astype(np.int64))

        return sample, add

    def nearest(self, query: np.ndarray, n: int, nprobe: int, table: PageTable) -> np.ndarray:
        """Rows of `table` (any subset of the live pages) of the pages nearest `query`, up to n."""
        _, ids = self.files.search(np.asarray(query, np.float32).reshape(1, -1), n, nprobe)
        return rows_of(table, ids[0][ids[0] >= 0])

    def nbytes(self) -> int:
        return self.files.nbytes()


def rows_of(table: PageTable, page_ids: np.ndarray) -> np.ndarray:
    """The rows of `table` holding these page ids (ids not in the table are dropped)."""
    at = positions(table.page_ids, page_ids, missing=-1)
    return at[at >= 0]


def positions(haystack: np.ndarray, needles: np.ndarray, missing: int | None = None) -> np.ndarray:
    """Where each needle sits in `haystack` (distinct ids; sorted ones, the usual case of a
    catalog's pages, need no sort). missing=None: every needle must be there; else the
    value given to those that are not."""
    order = None if _ascending(haystack) else np.argsort(haystack)
    ordered = haystack if order is None else haystack[order]
    at = np.clip(np.searchsorted(ordered, needles), 0, max(len(haystack) - 1, 0))
    out = at if order is None else order[at]
    if missing is not None:
        found = ordered[at] == needles if len(haystack) else np.zeros(len(needles), bool)
        out = np.where(found, out, missing)
    return out


_last_checked: list = [None, False]  # [the last haystack array, whether it ascends]


def _ascending(ids: np.ndarray) -> bool:
    """Whether ids ascend strictly; remembered for the last array asked about, which is a
    search's page-table column, asked about several times a query (3 ms a query at 1M pages)."""
    last, answer = _last_checked
    if last is ids and not ids.flags.writeable:
        return answer
    answer = len(ids) < 2 or bool((ids[1:] > ids[:-1]).all())
    _last_checked[:] = [ids, answer]
    return answer


def _ivf_sq8(dim: int, nlist: int, n_train: int):
    """IVF with one byte a dimension, scored by inner product."""
    import faiss

    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dim), dim, nlist,
                                          faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = 1
    return index
