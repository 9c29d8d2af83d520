"""The Qdrant Edge vector store: page vectors in a Qdrant shard run by Qdrant's own engine in
this process (PyPI `qdrant-edge-py`, module `qdrant_edge`, pinned to 0.9.0: its API is pre-1.0).

Location (the manifest's `store` string):

    qdrant-edge:DIR     one shard in folder DIR; Index.create pins a relative DIR to the index
                        folder (docpress/index.py), so the manifest holds an absolute path

The shard is laid out as a collection on a cluster would be: each page is one point
(qdrant_points.py) with "tokens", its token vectors as a MAX_SIM multivector (float16, no HNSW
graph: m=0, it is only scanned over given ids or a prefetched candidate list), and "pooled",
its first pooled window, with an HNSW graph for the two-stage query's first stage. doc_id
(integer) and path (keyword) have payload indexes. The write-ahead log stays on, and it locks
the folder: one process at a time (a second opener gets BackendUnavailableError).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from docpress.errors import (
    BackendUnavailableError,
    DocpressError,
    IndexMismatchError,
    IndexWriteError,
)
from docpress.types import PageVectors
from indexer.catalog import PageTable
from indexer.stores import qdrant_points as points
from indexer.stores.base import Capabilities, Location, StoredPage, VectorStore
from indexer.stores.qdrant_points import POOLED, TOKENS

PREFIX = "qdrant-edge:"
PACKAGE = "qdrant-edge-py==0.9.0"
# Floats converted to Python lists per update (16 MB of float32): bounds the memory an add of
# many pages takes on top of the pages themselves.
MAX_FLOATS_PER_UPSERT = 1 << 22
# Page ids per filtered query / retrieve / delete.
IDS_PER_REQUEST = 1024
# Segment size cap (KB per vector storage): an optimize() rewrites a few segments of at most
# this size, so its cost does not grow with the shard.
MAX_SEGMENT_KB = 256 * 1024
# An appendable segment whose pooled vectors exceed this (KB; ~650 pages at dim 384) is sealed
# and gets its HNSW graph on the next optimize().
INDEXING_THRESHOLD_KB = 1000
_CONFIG_FILE = "edge_config.json"  # written by the engine in every shard folder


def is_edge_location(location: str) -> bool:
    return location.startswith(PREFIX)


def edge_folder(location: str, root: Path | None = None) -> Path:
    """The shard folder of a `qdrant-edge:DIR` location; a relative DIR is taken relative to
    root (the index folder), else to the working directory."""
    if not is_edge_location(location):
        raise DocpressError(f"bad Qdrant Edge location {location!r}; use qdrant-edge:DIR")
    text = location[len(PREFIX):]
    if not text.strip() or text.startswith("//"):
        raise DocpressError(f"bad Qdrant Edge location {location!r}: needs a folder, "
                            "qdrant-edge:DIR (relative to the index folder) or qdrant-edge:/abs/dir")
    folder = Path(text).expanduser()
    return folder if folder.is_absolute() or root is None else Path(root) / folder


def _engine() -> Any:
    """The qdrant_edge module, imported lazily: docpress must import without it."""
    try:
        import qdrant_edge
    except ImportError:
        raise BackendUnavailableError(f"qdrant-edge-py is not installed; `pip install '{PACKAGE}'` "
                                      "or create the index with the local store") from None
    return qdrant_edge


def _config(qe: Any, dim: int) -> Any:
    """The shard layout (fixed at create; checked against the folder on every load)."""
    return qe.EdgeConfig(
        vectors={
            TOKENS: qe.EdgeVectorParams(
                size=dim, distance=qe.Distance.Dot,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                # Half the disk and page cache of float32; the engine scores in float32 over
                # them, as precise as the bf16 store (float16 keeps more mantissa than bf16).
                datatype=qe.VectorStorageDatatype.Float16,
                # Only ever scanned over given ids or prefetched candidates: a graph would cost
                # build time and memory for nothing.
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000)),
            POOLED: qe.EdgeVectorParams(size=dim, distance=qe.Distance.Dot),
        },
        # The global graph settings: they apply to "pooled". full_scan_threshold (KB) is low so
        # the graph serves the two-stage query's prefetch once a segment has one.
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=100),
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=INDEXING_THRESHOLD_KB,
                                           max_segment_size=MAX_SEGMENT_KB),
        wal_enabled=True,  # updates are durable when update() returns, before any flush
    )


def _allocated(path: Path) -> int:
    stat = path.stat()
    return stat.st_blocks * 512 if hasattr(stat, "st_blocks") else stat.st_size


def _reason(error: BaseException) -> str:
    """The engine's message on one line, without its generic prefix."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text.removeprefix("Service runtime error: ")[:200]


class QdrantEdgeStore(VectorStore):
    """Page vectors in one Qdrant Edge shard; MaxSim runs inside Qdrant's engine, exactly."""

    name = "qdrant-edge"
    capabilities = Capabilities(end_to_end=True, two_stage=True)

    def __init__(self, location: str, dim: int, *, root: Path | None = None):
        self.location = location
        self.dim = int(dim)
        self.path = edge_folder(location, root)
        self._qe = _engine()
        self.shard = self._open()

    # -- setup --------------------------------------------------------------------------
    @contextmanager
    def _calls(self, what: str, error: type[DocpressError] = BackendUnavailableError) -> Iterator[None]:
        """Turn the engine's errors into one-line docpress errors.

        qdrant_edge raises plain Exception for everything it refuses; anything more specific
        (a TypeError from a wrong call, a DocpressError) is not the engine's and passes through.
        """
        try:
            yield
        except Exception as e:
            if type(e) is not Exception:
                raise
            reason = _reason(e)
            if "WouldBlock" in reason or "failed to open WAL" in reason:  # the WAL's file lock
                raise BackendUnavailableError(
                    f"Qdrant Edge shard {self.path} is already open by another process; close it, "
                    "or use a Qdrant server for shared access") from None
            if "incompatible" in reason.lower():
                raise IndexMismatchError(
                    f"Qdrant Edge shard {self.path} holds other vectors ({reason}); this index "
                    f"needs {self.dim}-dim 'tokens' multivectors; use another folder") from None
            raise error(f"Qdrant Edge could not {what} shard {self.path} ({reason})") from None

    def _open(self) -> Any:
        qe = self._qe
        config = _config(qe, self.dim)
        if (self.path / _CONFIG_FILE).is_file() or (self.path / "segments").is_dir():
            with self._calls("open"):
                # With the config, the engine checks the folder's vectors against it.
                return qe.EdgeShard.load(str(self.path), config)
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise DocpressError(f"{self.path} is not a Qdrant Edge shard and not an empty folder; "
                                "name a new folder for qdrant-edge:DIR")
        with self._calls("create"):
            shard = qe.EdgeShard.create(str(self.path), config)
        try:
            with self._calls("create"):
                shard.update(qe.UpdateOperation.create_field_index("doc_id", qe.PayloadSchemaType.Integer))
                shard.update(qe.UpdateOperation.create_field_index("path", qe.PayloadSchemaType.Keyword))
        except BaseException:
            shard.close()
            raise
        return shard

    # -- writing ------------------------------------------------------------------------
    def add(self, pages: list[StoredPage]) -> list[Location]:
        qe = self._qe
        for batch in points.batches(pages, self.dim, MAX_FLOATS_PER_UPSERT):
            upserts = [qe.Point(int(p.page_id), points.point_vectors(p), points.point_payload(p))
                       for p in batch]
            with self._calls("write to", IndexWriteError):
                self.shard.update(qe.UpdateOperation.upsert_points(upserts))
        self._written()
        return points.point_locations(pages)

    def remove(self, page_ids: list[int]) -> None:
        ids = [int(i) for i in page_ids]
        for chunk in points.chunks(ids, IDS_PER_REQUEST):
            with self._calls("delete from", IndexWriteError):
                self.shard.update(self._qe.UpdateOperation.delete_points(chunk))
        if ids:
            self._written()

    def _written(self) -> None:
        """After a write: flush, then let the engine optimize what its thresholds call for.

        The WAL already holds the update; flush() writes it into the segments as well, as the
        embedded stores fsync their rows before the catalog commit makes pages visible.
        optimize() does what a server's background optimizers do, here blocking: it seals the
        appendable segment once its pooled vectors pass INDEXING_THRESHOLD_KB and builds their
        HNSW graph (until then new pages are scanned, exactly), merges small segments and
        vacuums ones with many deleted points. It is called after every write because the
        engine plans work only when a threshold is crossed (a no-op call takes ~0.1 ms), which
        holds across processes (a per-process page count would never trigger for many small
        `ingest` runs); each run rewrites segments of at most MAX_SEGMENT_KB, so its cost is
        bounded, and it runs while the writer lock is held, before the catalog commit.
        """
        with self._calls("write to", IndexWriteError):
            self.shard.flush()
            self.shard.optimize()

    def optimize(self) -> bool:
        """Run the engine's optimizers now (blocking); True if any segment changed."""
        with self._calls("optimize", IndexWriteError):
            return bool(self.shard.optimize())

    # -- scoring ------------------------------------------------------------------------
    def maxsim(self, query: np.ndarray, pages: PageTable) -> np.ndarray:
        if len(pages) == 0 or len(query) == 0:
            return np.zeros(len(pages), np.float32)
        q = np.asarray(query, np.float32).tolist()
        requests = [self._maxsim_request(q, set(chunk))
                    for chunk in points.chunks(points.unique_ids(pages.page_ids), IDS_PER_REQUEST)]
        with self._calls("search"):
            results = self.shard.query_batch(self._qe.QueryBatchRequest(requests))
        return points.scores_in_order(pages.page_ids, {int(p.id): p.score for r in results for p in r})

    def two_stage(self, query: Any, k: int, candidates: int,
                  page_ids: np.ndarray | list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The engine's two-stage search: prefetch `candidates` pages by the pooled vector (HNSW
        where a segment has its graph, a scan otherwise), then rank them by exact MaxSim.

        query: anything with .vectors (n_tokens, dim), rows weighted already, and .pooled
        (dim,), as QueryVectors. page_ids: only these pages (None: all); the filter applies in
        the prefetch too, so k hits come back whenever k pages match. Returns (page ids int64,
        MaxSim scores float32), best first; pages without token vectors never appear.
        """
        tokens = np.asarray(query.vectors, np.float32)
        if k <= 0 or len(tokens) == 0 or (page_ids is not None and len(page_ids) == 0):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        qe = self._qe
        where = self._has_ids(None if page_ids is None else set(points.unique_ids(page_ids)))
        prefetch = qe.Prefetch(limit=max(int(candidates), int(k)), filter=where,
                               query=qe.Query.Nearest(np.asarray(query.pooled, np.float32).tolist(),
                                                      using=POOLED))
        request = qe.QueryRequest(limit=int(k), prefetches=[prefetch], filter=where,
                                  query=qe.Query.Nearest(tokens.tolist(), using=TOKENS),
                                  with_payload=False)
        with self._calls("search"):
            hits = self.shard.query(request)
        return (np.asarray([int(p.id) for p in hits], np.int64),
                np.asarray([p.score for p in hits], np.float32))

    def _maxsim_request(self, query: list, ids: set[int]) -> Any:
        """Exact MaxSim of a query over the given page ids."""
        qe = self._qe
        # exact=True: a filtered scan, never a graph walk (m=0 scans anyway; the flag says so).
        return qe.QueryRequest(limit=len(ids), query=qe.Query.Nearest(query, using=TOKENS),
                               filter=self._has_ids(ids), params=qe.SearchParams(exact=True),
                               with_payload=False)

    def _has_ids(self, ids: set[int] | None) -> Any:
        """A filter to these point ids (None: no filter). HasIdCondition takes a set only."""
        qe = self._qe
        return None if ids is None else qe.Filter(must=[qe.HasIdCondition(point_ids=ids)])

    def window_scores(self, pooled: np.ndarray, pages: PageTable):
        windows = points.read_windows(pages.page_ids, self._retrieve_windows, self.dim, IDS_PER_REQUEST)
        return points.window_scores_of(windows, pooled, pages.page_ids)

    # -- reading ------------------------------------------------------------------------
    def page_vectors(self, page_id: int, location: Location) -> PageVectors:
        return self._read([int(page_id)])[0]

    def pages_vectors(self, pages: PageTable) -> list[PageVectors]:
        return self._read([int(i) for i in pages.page_ids])

    def _read(self, page_ids: list[int]) -> list[PageVectors]:
        """The pages' vectors, IDS_PER_REQUEST pages a request, in the order asked."""
        return points.read_pages(page_ids, self._retrieve_pages, self.dim, IDS_PER_REQUEST,
                                 f"Qdrant Edge shard {self.path}")

    # retrieve() takes both flags, always.
    def _retrieve_pages(self, ids: list[int]) -> list:
        with self._calls("read from"):
            return self.shard.retrieve(ids, with_payload=True, with_vector=[TOKENS])

    def _retrieve_windows(self, ids: list[int]) -> list:
        with self._calls("read from"):
            return self.shard.retrieve(ids, with_payload=["pooled_f32"], with_vector=False)

    def count(self) -> int:
        """Pages in the shard."""
        with self._calls("count in"):
            return int(self.shard.count(self._qe.CountRequest(exact=True)))

    def nbytes(self) -> int:
        # Blocks in use, not apparent sizes: the engine's WAL and storage files are sparse,
        # preallocated to 32 MB each.
        return sum(_allocated(f) for f in self.path.rglob("*") if f.is_file())

    def close(self) -> None:
        shard, self.shard = self.shard, None
        if shard is not None:
            with self._calls("close"):
                shard.flush()
                shard.close()
