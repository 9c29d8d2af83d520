"""Per-index caches behind the search signals: BM25 indexes and page head vectors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from indexer.catalog import Catalog, PageTable
from indexer.layout import cache_folder
from indexer.stores.base import VectorStore
from retriever.bm25 import Bm25Index

HEAD_TOKENS = 32  # tokens that make a page's head vector (its title or heading)
HEAD_WORDS = 40  # words of a page's head for BM25
PROFILE_WORDS = 100  # words of a document's start, with its file name and title, for BM25


def _page_heads(catalog: Catalog) -> tuple[np.ndarray, list[str]]:
    ids, texts = catalog.page_texts()
    return ids, [" ".join(t.split(" ")[:HEAD_WORDS]) for t in texts]


class SignalCache:
    """Lazily built, generation-stamped caches for one index folder.

    Every cache is rebuilt when the catalog's generation changes (any add or remove).
    """

    def __init__(self, directory: Path, catalog: Catalog, store: VectorStore):
        self.directory = Path(directory)
        self.catalog = catalog
        self.store = store
        self._cache: dict[str, tuple[int, object]] = {}

    def _get(self, name: str, build):
        generation = self.catalog.generation()
        hit = self._cache.get(name)
        if hit is None or hit[0] != generation:
            self._cache[name] = (generation, build(generation))
        return self._cache[name][1]

    def _bm25(self, name: str, corpus) -> Bm25Index:
        return self._get(name, lambda g: Bm25Index.load_or_build(
            cache_folder(self.directory) / name, g, corpus))

    def page_bm25(self) -> Bm25Index:
        """Over each page's whole text."""
        return self._bm25("bm25-pages", self.catalog.page_texts)

    def head_bm25(self) -> Bm25Index:
        """Over each page's first words (titles, headings)."""
        return self._bm25("bm25-heads", lambda: _page_heads(self.catalog))

    def profile_bm25(self) -> Bm25Index:
        """Over each document's file name, title and opening words: which document is meant."""
        return self._bm25("bm25-profiles", lambda: self.catalog.document_texts(PROFILE_WORDS))

    def document_bm25(self) -> Bm25Index:
        """Over each document's whole text."""
        return self._bm25("bm25-documents", self.catalog.document_texts)

    def _heads(self) -> tuple[np.ndarray, np.ndarray]:
        """(page_ids, (n, dim) float32 head vectors) of every live page, in page-table order."""
        def build(generation: int):
            path = cache_folder(self.directory) / "heads.npz"
            try:
                with np.load(path) as saved:
                    if int(saved["generation"]) == generation:
                        return saved["page_ids"], saved["heads"].astype(np.float32)
            except Exception:  # noqa: BLE001 - missing or damaged: derived data, rebuilt
                pass
            everything = self.catalog.page_table()
            heads = self.store.head_vectors(everything, HEAD_TOKENS).astype(np.float16)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"heads.tmp-{os.getpid()}-{threading.get_ident()}.npz")
                np.savez(tmp, generation=generation, page_ids=everything.page_ids, heads=heads)
                os.replace(tmp, path)  # whole or not at all, for the other readers
            except OSError:
                pass
            # float32 in memory: a matrix-vector product per query, no cast of every row
            return everything.page_ids, heads.astype(np.float32)

        return self._get("heads", build)

    @staticmethod
    def _rows(page_ids: np.ndarray, table: PageTable):
        """Where the pages of `table` sit in the cache (a slice when it is every page, the
        common case: no gather)."""
        if len(page_ids) == len(table) and np.array_equal(page_ids, table.page_ids):
            return slice(None)
        order = np.argsort(page_ids)
        return order[np.searchsorted(page_ids[order], table.page_ids)]

    def head_vectors(self, table: PageTable) -> np.ndarray:
        """(n_pages, dim) head vectors aligned with `table` (a subset of the live pages)."""
        page_ids, heads = self._heads()
        return heads[self._rows(page_ids, table)]

    def head_scores(self, table: PageTable, pooled: np.ndarray) -> np.ndarray:
        """Each page's head vector against a query's pooled vector, aligned with `table`."""
        page_ids, heads = self._heads()
        rows, query = self._rows(page_ids, table), pooled.astype(np.float32)
        if isinstance(rows, np.ndarray) and len(rows) * 4 < len(page_ids):
            return heads[rows] @ query  # a narrow filter: score only its pages
        return (heads @ query)[rows]
