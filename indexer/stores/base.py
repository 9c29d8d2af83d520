"""The vector store contract: where page vectors live, how they are scored, what a store can do.

Every store (bf16, compressed, projected, Qdrant) implements the whole surface below with the
same signatures, and declares its capabilities so callers ask the store instead of checking
its type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from docpress.types import PageVectors
from indexer.catalog import PageTable
from indexer.segments import AppendOnlyArray, consecutive_locations, copy_rows, rows_crc

# Pages read per batch where a store reads page vectors back in bulk (head vectors, fitting).
READ_BATCH = 1024


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
    """Where a store put a page's vectors (rows in the embedded stores; unused by servers).

    crc: CRC-32 of the page's rows in every file of the store (None: the store keeps none, or
    the page was written before checksums were recorded); the catalog keeps it with the rows.
    """

    vec_start: int = -1
    vec_count: int = 0
    pool_start: int = -1
    pool_count: int = 0
    crc: int | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a store can do, for the callers that choose a path by it.

    end_to_end:  scores MaxSim where the vectors live (a server), given page ids; otherwise an
                 exact scan over the candidate pages' rows here.
    compression: its pages can be re-coded with a docpress codec (float rows on local disk).
    extra_lanes: an index on it can hold extra lanes (their stores live in the index folder).
    float_rows:  its token rows, addressed by the catalog, read back as the encoder's float
                 vectors row for row (decoded where they are coded): n_rows() and
                 vector_rows(lo, hi); a projected (tuned) store is derived from them, and so
                 are the embedded first stages (indexer/first_stage.py).
    two_stage:   answers MaxSim's best k itself, where the vectors live: two_stage(query, k,
                 candidates, page_ids), a prefetch of candidates by the pooled vector, then
                 exact MaxSim on them (a server's own first stage).
    """

    end_to_end: bool = False
    compression: bool = False
    extra_lanes: bool = False
    float_rows: bool = False
    two_stage: bool = False


def few_of(pages: PageTable, pooled_rows: int) -> bool:
    """Whether the table's windows are few enough beside the store's that scoring only theirs
    beats one pass over all (a first stage's candidates, not a whole index)."""
    return int(pages.pool_count.sum()) * 4 < pooled_rows


def row_index(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The rows [start, start + count) of every page, concatenated, as one index array.

    >>> row_index(np.array([5, 20]), np.array([2, 3])).tolist()
    [5, 6, 20, 21, 22]
    """
    firsts = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return firsts + np.arange(int(counts.sum()))


def window_rows(pages: PageTable) -> tuple[np.ndarray, np.ndarray]:
    """(pooled rows of every page's windows, concatenated; where each page's start in them)."""
    counts = np.maximum(pages.pool_count, 0)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return row_index(pages.pool_start, counts), first


def window_columns(scores: np.ndarray, first: np.ndarray, count: np.ndarray, pages: PageTable) -> np.ndarray:
    """Store.dense's (n_pages, n_windows_max) array from window_scores' flat scores."""
    width = max(int(pages.pool_count.max()) if len(pages) else 1, 1)
    if len(scores) == 0:
        return np.full((len(pages), width), -np.inf, np.float32)
    # The catalog's count rules: columns past it are -inf. Whole-column gathers, not masked
    # assignments into a 2-d array (100k pages: 1.6 against 2.4 ms).
    count = np.minimum(count, pages.pool_count)
    scores = np.asarray(scores, np.float32)
    columns = [np.where(count > w, np.take(scores, first + w, mode="clip"), np.float32(-np.inf))
               for w in range(width)]
    return columns[0][:, None] if width == 1 else np.stack(columns, axis=1)


def location_of(pages: PageTable, i: int) -> Location:
    """The Location of row i of a page table."""
    return Location(int(pages.vec_start[i]), int(pages.vec_count[i]),
                    int(pages.pool_start[i]), int(pages.pool_count[i]))


class VectorStore(ABC):
    """Holds page vectors; scores queries by exact MaxSim and by pooled (dense) similarity."""

    name: str
    dim: int
    capabilities: Capabilities = Capabilities()

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
    def window_scores(self, pooled: np.ndarray, pages: PageTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Dot products of the query's pooled vector with the pages' pooled windows, flat.

        Returns (scores, first, count): scores (n,) float32; for each page, the index in
        `scores` of its first window and how many of its windows are there (0: none).
        """

    def dense(self, pooled: np.ndarray, pages: PageTable) -> np.ndarray:
        """(n_pages, n_windows_max) cosine of the query's pooled vector with each page window's
        pooled vector; -inf pads pages with fewer windows. Column 0 is the page's first window."""
        if len(pages) == 0:
            return window_columns(np.zeros(0, np.float32), pages.pool_start, pages.pool_count, pages)
        return window_columns(*self.window_scores(pooled, pages), pages)

    def window_scores_of(self, pages: PageTable):
        """`window_scores` on a table that many queries score (a fixed sample of the pages), as
        a function of the pooled vector; stores that gather the table's windows override it to
        gather them once."""
        return lambda pooled: self.window_scores(pooled, pages)

    @abstractmethod
    def page_vectors(self, page_id: int, location: Location) -> PageVectors:
        """Read back one page's vectors (for snippets, boxes and re-scoring)."""

    def pages_vectors(self, pages: PageTable) -> list[PageVectors]:
        """Read back the vectors of every page of a table, in order. Stores that can read many
        pages in one request (a server) override this."""
        return [self.page_vectors(int(pid), location_of(pages, i))
                for i, pid in enumerate(pages.page_ids)]

    def first_windows(self, pages: PageTable) -> np.ndarray:
        """(n_pages, dim) float32: each page's first pooled window as dense scores it (decoded
        where coded); zeros for a page without windows. Stores with their own files override
        this; the default reads whole pages back."""
        out = np.zeros((len(pages), self.dim), np.float32)
        for i, vectors in enumerate(self.pages_vectors(pages)):
            if len(vectors.pooled) and pages.pool_count[i] > 0:
                out[i] = vectors.pooled[0]
        return out

    def head_vectors(self, pages: PageTable, n_tokens: int) -> np.ndarray:
        """(n_pages, dim) float32: the normalised mean of each page's first `n_tokens` vectors.

        A page's first tokens hold its title or heading, which says what the page is about.
        """
        out = np.zeros((len(pages), self.dim), np.float32)
        for lo in range(0, len(pages), READ_BATCH):
            batch = pages.subset(slice(lo, lo + READ_BATCH))
            for i, page in enumerate(self.pages_vectors(batch)):
                if len(page.vectors):
                    out[lo + i] = page.vectors[:n_tokens].mean(0)
        return normalize_rows(out)

    def as_stored(self, vectors: PageVectors, words: list[str] | None = None) -> PageVectors:
        """A page's vectors as this store would read them back (coded then decoded by a store
        that compresses); for scoring a page that is not stored against ones that are."""
        return vectors

    def n_rows(self) -> int:
        """Token rows written so far (stores with float_rows)."""
        raise NotImplementedError(f"the {self.name} store has no token rows to read by position")

    def vector_rows(self, lo: int, hi: int) -> np.ndarray:
        """(hi - lo, dim) float32: token rows [lo, hi) as the encoder's vectors (float_rows)."""
        raise NotImplementedError(f"the {self.name} store has no token rows to read by position")

    def nbytes(self) -> int:
        """Bytes this store uses on disk (0 where it cannot tell)."""
        return 0

    # -- integrity (embedded stores: files of rows addressed by the catalog) -------------
    def row_files(self) -> list[AppendOnlyArray]:
        """Files with one row per token vector (indexed by vec_start); [] for a server."""
        return []

    def pool_files(self) -> list[AppendOnlyArray]:
        """Files with one row per pooled window (indexed by pool_start)."""
        return []

    def checksum(self, location: Location) -> int | None:
        """CRC-32 of a page's rows as they are on disk now (None: the store keeps no files)."""
        rows = self.row_files()
        if not rows:
            return None
        crc = rows_crc(rows, location.vec_start, location.vec_count)
        return rows_crc(self.pool_files(), location.pool_start, location.pool_count, crc)

    def _stamp(self, locations: list[Location]) -> list[Location]:
        """Record each new page's checksum in its Location (stores call it at the end of add)."""
        for loc in locations:
            loc.crc = self.checksum(loc)
        return locations

    def rewrite(self, directory, pages: PageTable) -> tuple["VectorStore", dict[int, Location]]:
        """Copy the given pages' rows, and only them, into a new store of the same kind and
        codec at `directory` (compaction); returns it and each page's new Location."""
        raise NotImplementedError(f"the {self.name} store has no rows to compact")

    def _copy_rows_into(self, new: "VectorStore", pages: PageTable,
                        on_batch=None) -> dict[int, Location]:
        """Append the pages' rows of every file, as bytes, to the same files of `new` (so their
        checksums carry over); on_batch(batch, first_row) adds what a store keeps per page."""
        locations: dict[int, Location] = {}
        for lo in range(0, len(pages), READ_BATCH):
            batch = pages.subset(slice(lo, lo + READ_BATCH))
            tok = copy_rows(self.row_files(), new.row_files(), batch.vec_start, batch.vec_count)
            pool = copy_rows(self.pool_files(), new.pool_files(), batch.pool_start, batch.pool_count)
            if on_batch is not None:
                on_batch(batch, tok)
            locs = new._stamp([Location(*loc) for loc in consecutive_locations(
                tok, pool, list(batch.vec_count), list(batch.pool_count))])
            locations.update(zip((int(p) for p in batch.page_ids), locs))
        return locations

    def close(self) -> None:
        pass


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)
