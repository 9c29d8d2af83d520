"""The Qdrant vector store: page vectors in a Qdrant collection, scored by its exact MaxSim.

Locations (the manifest's `store` string):

    qdrant://host:port/collection       a Qdrant server over http (qdrants:// for https);
                                        the API key comes from $QDRANT_API_KEY
    qdrant+path:///abs/dir/collection   qdrant-client's embedded on-disk mode
    qdrant+path:relative/dir/collection (relative to the working directory)
    qdrant+memory:collection            qdrant-client in memory (tests; gone on close)

Each page is one point (qdrant_points.py): "tokens", the page's token vectors as a MAX_SIM
multivector with no HNSW graph (it is only ever scanned exactly over a given id set), and
"pooled", the page's first pooled window (HNSW on), which two_stage() prefetches by.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import urlsplit

import numpy as np

from docpress.errors import BackendUnavailableError, DocpressError, IndexMismatchError
from docpress.types import PageVectors
from indexer.catalog import PageTable
from indexer.stores.base import Capabilities, Location, StoredPage, VectorStore
from indexer.stores.qdrant_points import (
    POOLED,
    TOKENS,
    batches,
    chunks,
    point_locations,
    point_payload,
    point_vectors,
    read_pages,
    read_windows,
    scores_in_order,
    unique_ids,
    window_scores_of,
)

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

API_KEY_ENV = "QDRANT_API_KEY"
DEFAULT_PORT = 6333
# Upsert batches are cut at this many floats (~8k tokens at dim 128): a JSON request stays
# well under the server's default 32 MB body limit.
MAX_FLOATS_PER_UPSERT = 1 << 20
# Page ids per filtered query / retrieve / delete request.
IDS_PER_REQUEST = 1024
_COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_USAGE = ("use qdrant://host:port/collection, qdrants://host:port/collection, "
          "qdrant+path:DIR/collection or qdrant+memory:collection")


@dataclass
class QdrantTarget:
    """A parsed location: how to reach Qdrant and which collection to use."""

    collection: str
    url: str | None = None  # server
    prefix: str | None = None  # server path prefix (behind a reverse proxy)
    path: Path | None = None  # embedded on-disk mode
    memory: bool = False  # embedded in-memory mode
    # a new collection's cluster layout (qdrant://host/c?shards=6&replicas=2&write_consistency=2);
    # None: the server's defaults. Only read when docpress creates the collection.
    cluster: dict[str, int] = field(default_factory=dict)


def parse_location(location: str) -> QdrantTarget:
    """Split a Qdrant location string into a target; a malformed one raises DocpressError."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme in ("qdrant", "qdrants"):
        return _server_target(location, parts, "https" if scheme == "qdrants" else "http")
    if scheme == "qdrant+path":
        if parts.netloc:
            raise DocpressError(f"bad Qdrant location {location!r}: a path location has no host; "
                                "write qdrant+path:///abs/dir/collection")
        folder, _, name = parts.path.rstrip("/").rpartition("/")
        if not folder:
            raise DocpressError(f"bad Qdrant location {location!r}: no folder before the "
                                f"collection name; {_USAGE}")
        return QdrantTarget(_collection(name, location), path=Path(folder).expanduser())
    if scheme == "qdrant+memory":
        return QdrantTarget(_collection(parts.path or parts.netloc, location), memory=True)
    raise DocpressError(f"bad Qdrant location {location!r}; {_USAGE}")


def _server_target(location: str, parts, http: str) -> QdrantTarget:
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORT
    except ValueError:  # a non-numeric or out-of-range port
        raise DocpressError(f"bad Qdrant location {location!r}: bad port; {_USAGE}") from None
    segments = [s for s in parts.path.split("/") if s]
    if not host or not segments:
        raise DocpressError(f"bad Qdrant location {location!r}: needs a host and a collection; "
                            f"{_USAGE}")
    prefix = "/".join(segments[:-1]) or None
    host = f"[{host}]" if ":" in host else host  # IPv6 literal
    return QdrantTarget(_collection(segments[-1], location), url=f"{http}://{host}:{port}",
                        prefix=prefix, cluster=_cluster(location, parts.query))


# query parameter -> create_collection argument
CLUSTER_SETTINGS = {"shards": "shard_number", "replicas": "replication_factor",
                    "write_consistency": "write_consistency_factor"}


def _cluster(location: str, query: str) -> dict[str, int]:
    """The cluster settings a server location asks for: positive integers, known names.

    >>> _cluster("x", "shards=6&replicas=2")
    {'shard_number': 6, 'replication_factor': 2}
    """
    from urllib.parse import parse_qsl

    out = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in CLUSTER_SETTINGS:
            raise DocpressError(f"bad Qdrant location {location!r}: unknown setting {key!r}; "
                                f"use {', '.join(CLUSTER_SETTINGS)}")
        if not value.isdigit() or int(value) < 1:
            raise DocpressError(f"bad Qdrant location {location!r}: {key} must be a positive integer")
        out[CLUSTER_SETTINGS[key]] = int(value)
    return out


def _collection(name: str, location: str) -> str:
    if not _COLLECTION_NAME.match(name or ""):
        raise DocpressError(f"bad Qdrant location {location!r}: collection name {name!r} must be "
                            "letters, digits, '_', '-' or '.'")
    return name


def _connect(target: QdrantTarget, timeout: float) -> "QdrantClient":
    """Open the client (lazily importing qdrant-client: docpress must import without it)."""
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise BackendUnavailableError("qdrant-client is not installed; `pip install qdrant-client` "
                                      "or create the index with the local store") from None
    if target.memory:
        return QdrantClient(location=":memory:")
    if target.path is not None:
        try:
            return QdrantClient(path=str(target.path))
        except RuntimeError as e:  # the folder is locked by another client
            raise BackendUnavailableError(
                f"Qdrant folder {target.path} is in use by another process; close it, or use a "
                f"Qdrant server for shared access ({e})") from None
    # The compatibility check would make its own request (and warn) before ours can fail cleanly.
    return QdrantClient(url=target.url, prefix=target.prefix, api_key=os.environ.get(API_KEY_ENV),
                        timeout=max(1, int(np.ceil(timeout))), check_compatibility=False)


def _connection_errors() -> tuple[type[BaseException], ...]:
    from qdrant_client.http.exceptions import ResponseHandlingException

    errors: list[type[BaseException]] = [ResponseHandlingException, ConnectionError, TimeoutError]
    try:
        import httpx

        errors.append(httpx.TransportError)
    except ImportError:
        pass
    return tuple(errors)


class QdrantStore(VectorStore):
    """Page vectors in one Qdrant collection; MaxSim scoring runs inside Qdrant, exactly."""

    name = "qdrant"
    capabilities = Capabilities(end_to_end=True, two_stage=True)

    def __init__(self, location: str, dim: int, *, timeout: float = 10.0):
        self.location = location
        self.dim = int(dim)
        self.target = parse_location(location)
        self.collection = self.target.collection
        self.remote = self.target.url is not None
        self._connection_errors: tuple[type[BaseException], ...] = ()
        self.client = _connect(self.target, timeout)
        self._connection_errors = _connection_errors()
        try:
            with self._calls("open"):
                self._ensure_collection()
        except BaseException:
            self.client.close()
            raise

    # -- setup --------------------------------------------------------------------------
    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """Turn transport failures and server refusals into one-line docpress errors."""
        from qdrant_client.http.exceptions import UnexpectedResponse

        try:
            yield
        except self._connection_errors as e:
            raise BackendUnavailableError(
                f"cannot reach Qdrant at {self.target.url} to {what} collection "
                f"{self.collection!r} ({_reason(e)}); start the server or fix the location"
            ) from None
        except UnexpectedResponse as e:
            hint = (f"set ${API_KEY_ENV}" if e.status_code in (401, 403)
                    else "check the server log")
            raise BackendUnavailableError(
                f"Qdrant refused to {what} collection {self.collection!r}: HTTP "
                f"{e.status_code} {e.reason_phrase}; {hint}") from None

    def _ensure_collection(self) -> None:
        if self.client.collection_exists(self.collection):
            self._check_collection()
            return
        from qdrant_client import models

        self.client.create_collection(self.collection, vectors_config={
            TOKENS: models.VectorParams(
                size=self.dim, distance=models.Distance.DOT,
                # Halves server memory; the bf16 store keeps bf16, so no accuracy is lost relative
                # to it. (Embedded mode ignores the datatype.)
                datatype=models.Datatype.FLOAT16,
                multivector_config=models.MultiVectorConfig(
                    comparator=models.MultiVectorComparator.MAX_SIM),
                # Scored only by exact scans over given ids: a graph would cost build time, RAM.
                hnsw_config=models.HnswConfigDiff(m=0)),
            POOLED: models.VectorParams(size=self.dim, distance=models.Distance.DOT),
        }, **self.target.cluster)
        if self.remote:  # filters by document use the server's index of doc_id, not a scan
            self.client.create_payload_index(self.collection, "doc_id",
                                             field_schema=models.PayloadSchemaType.INTEGER)

    def _check_collection(self) -> None:
        """Refuse a collection laid out for another encoder (wrong size, no multivector)."""
        vectors = self.client.get_collection(self.collection).config.params.vectors
        tokens = vectors.get(TOKENS) if isinstance(vectors, dict) else None
        if tokens is None or tokens.multivector_config is None or tokens.size != self.dim:
            have = f"size {tokens.size}" if tokens is not None else "no 'tokens' multivector"
            raise IndexMismatchError(
                f"Qdrant collection {self.collection!r} has {have}, this index needs a "
                f"{self.dim}-dim 'tokens' multivector; use another collection name")

    # -- writing ------------------------------------------------------------------------
    def add(self, pages: list[StoredPage]) -> list[Location]:
        for batch in batches(pages, self.dim, MAX_FLOATS_PER_UPSERT):
            with self._calls("write to"):
                # wait=True: the points are durable before the catalog commit makes them visible.
                self.client.upsert(self.collection, [_point(p) for p in batch], wait=True)
        return point_locations(pages)

    def remove(self, page_ids: list[int]) -> None:
        from qdrant_client import models

        ids = [int(i) for i in page_ids]
        for chunk in chunks(ids, IDS_PER_REQUEST):
            with self._calls("delete from"):
                self.client.delete(self.collection, models.PointIdsList(points=chunk), wait=True)

    # -- scoring ------------------------------------------------------------------------
    def maxsim(self, query: np.ndarray, pages: PageTable) -> np.ndarray:
        if len(pages) == 0 or len(query) == 0:
            return np.zeros(len(pages), np.float32)
        from qdrant_client import models

        q = np.asarray(query, np.float32).tolist()
        ids = unique_ids(pages.page_ids)
        # Local mode is always exact and warns about search params; the server needs the hint.
        params = models.SearchParams(exact=True) if self.remote else None
        requests = [models.QueryRequest(
            query=q, using=TOKENS, limit=len(chunk), params=params, with_payload=False,
            filter=models.Filter(must=[models.HasIdCondition(has_id=chunk)]))
            for chunk in chunks(ids, IDS_PER_REQUEST)]
        with self._calls("search"):
            responses = self.client.query_batch_points(self.collection, requests)
        return scores_in_order(pages.page_ids, {int(p.id): p.score for r in responses for p in r.points})

    def two_stage(self, query: Any, k: int, candidates: int,
                  page_ids: np.ndarray | list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Qdrant's two-stage query: prefetch `candidates` pages by the pooled vector (its HNSW
        on a server), then rank them by exact MaxSim on the server.

        query: anything with .vectors (n_tokens, dim), rows weighted already, and .pooled
        (dim,), as QueryVectors. page_ids: only these pages (None: all); the filter applies
        in the prefetch too, so k hits come back whenever k pages match. Returns (page ids
        int64, MaxSim scores float32), best first.
        """
        tokens = np.asarray(query.vectors, np.float32)
        if k <= 0 or len(tokens) == 0 or (page_ids is not None and len(page_ids) == 0):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        from qdrant_client import models

        where = None if page_ids is None else \
            models.Filter(must=[models.HasIdCondition(has_id=unique_ids(page_ids))])
        prefetch = models.Prefetch(query=np.asarray(query.pooled, np.float32).tolist(), using=POOLED,
                                   limit=max(int(candidates), int(k)), filter=where)
        with self._calls("search"):
            hits = self.client.query_points(self.collection, query=tokens.tolist(), using=TOKENS,
                                            prefetch=prefetch, limit=int(k), query_filter=where,
                                            with_payload=False).points
        return (np.asarray([int(p.id) for p in hits], np.int64),
                np.asarray([p.score for p in hits], np.float32))

    def window_scores(self, pooled: np.ndarray, pages: PageTable):
        windows = read_windows(pages.page_ids, self._retrieve_windows, self.dim, IDS_PER_REQUEST)
        return window_scores_of(windows, pooled, pages.page_ids)

    # -- reading ------------------------------------------------------------------------
    def page_vectors(self, page_id: int, location: Location) -> PageVectors:
        return self._read([int(page_id)])[0]

    def pages_vectors(self, pages: PageTable) -> list[PageVectors]:
        return self._read([int(i) for i in pages.page_ids])

    def _read(self, page_ids: list[int]) -> list[PageVectors]:
        """The pages' vectors, IDS_PER_REQUEST pages a request, in the order asked."""
        return read_pages(page_ids, self._retrieve_pages, self.dim, IDS_PER_REQUEST,
                          f"Qdrant collection {self.collection!r}")

    def _retrieve_pages(self, ids: list[int]) -> list:
        with self._calls("read from"):
            return self.client.retrieve(self.collection, ids, with_payload=True, with_vectors=[TOKENS])

    def _retrieve_windows(self, ids: list[int]) -> list:
        with self._calls("read from"):
            return self.client.retrieve(self.collection, ids, with_payload=["pooled_f32"],
                                        with_vectors=False)

    def nbytes(self) -> int:
        if self.target.path is None:
            return 0  # a server's disk use is not ours to see; memory is no disk
        folder = self.target.path / "collection" / self.collection
        return sum(f.stat().st_size for f in (folder if folder.exists() else self.target.path)
                   .rglob("*") if f.is_file())

    def close(self) -> None:
        self.client.close()


# -- points ---------------------------------------------------------------------------
def _point(page: StoredPage) -> Any:
    """One page as a qdrant-client point (qdrant_points.py: its vectors and payload)."""
    from qdrant_client import models

    return models.PointStruct(id=int(page.page_id), vector=point_vectors(page),
                              payload=point_payload(page))


def _reason(error: BaseException) -> str:
    """The innermost cause's message, on one line."""
    while getattr(error, "source", None) is not None:  # ResponseHandlingException wraps it
        error = error.source
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:200]
