"""The vector store interface: where page vectors live and how they are scored."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from docpress.encoders.base import PageVectors
from indexer.catalog import PageTable


@dataclass
class StoredPage:
    """A page handed to a store: its catalog id, document id and vectors.

    words: the page text split on " " (the vectors' word indices point into it); stores that
    prune by word (compressed text lanes) need it, others ignore it.
    """

    page_id: int
    doc_id: int
    vectors: PageVectors
    words: list[str] | None = None


@dataclass
class Location:
    """Where a store put a page's vectors (rows in the embedded store; unused by servers)."""

    vec_start: int = -1
    vec_count: int = 0
    pool_start: int = -1
    pool_count: int = 0


class VectorStore(ABC):
    """Holds page vectors; scores queries by exact MaxSim and by pooled (dense) similarity."""

    name: str
    dim: int

    @abstractmethod
    def add(self, pages: list[StoredPage]) -> list[Location]:
        """Store the pages durably; the catalog commit that follows makes them visible."""

    @abstractmethod
    def remove(self, page_ids: list[int]) -> None:
        """Forget these pages (the catalog no longer lists them)."""

    @abstractmethod
    def maxsim(self, query: np.ndarray, pages: PageTable) -> np.ndarray:
        """Exact late-interaction scores of one query against the given pages.

        query: (n_query_tokens, dim) float32, rows weighted already. Returns (n_pages,) float32:
        sum over query tokens of the max dot product with the page's vectors.
        """

    @abstractmethod
    def dense(self, pooled: np.ndarray, pages: PageTable) -> np.ndarray:
        """(n_pages, n_windows_max) cosine of the query's pooled vector with each page window's
        pooled vector; -inf pads pages with fewer windows. Column 0 is the page's first window."""

    @abstractmethod
    def page_vectors(self, page_id: int, location: Location) -> PageVectors:
        """Read back one page's vectors (for snippets, boxes and re-scoring)."""

    def head_vectors(self, pages: PageTable, n_tokens: int) -> np.ndarray:
        """(n_pages, dim) float32: the normalised mean of each page's first `n_tokens` vectors.

        A page's first tokens hold its title or heading, which says what the page is about.
        Stores override this with a faster path; this one reads page by page.
        """
        out = np.zeros((len(pages), self.dim), np.float32)
        for i, page_id in enumerate(pages.page_ids):
            loc = Location(int(pages.vec_start[i]), int(pages.vec_count[i]),
                           int(pages.pool_start[i]), int(pages.pool_count[i]))
            vectors = self.page_vectors(int(page_id), loc).vectors[:n_tokens]
            if len(vectors):
                out[i] = vectors.mean(0)
        return normalize_rows(out)

    def nbytes(self) -> int:
        """Bytes this store uses on disk (0 where it cannot tell)."""
        return 0

    def close(self) -> None:
        pass


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
