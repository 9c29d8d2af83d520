"""Pages as Qdrant points, shared by the two Qdrant stores (qdrant.py: a server or
qdrant-client's local mode; qdrant_edge.py: Qdrant's engine in this process).

A page is one point (id = page id) with two named vectors: "tokens", its token vectors as a
MAX_SIM multivector, and "pooled", its first pooled window. Boxes, word indices and every
pooled window ride in the payload as base64 little-endian arrays: as JSON float lists they
would be about four times bigger and slow to parse, and nothing filters on them.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from docpress.errors import DocpressError
from docpress.types import PageVectors
from indexer.stores.base import Location, StoredPage

TOKENS = "tokens"
POOLED = "pooled"


# -- writing ---------------------------------------------------------------------------
def point_vectors(page: StoredPage) -> dict[str, Any]:
    """The page's named vectors as float lists. Qdrant rejects empty vectors: a page without
    tokens (or windows) simply lacks that one."""
    v = page.vectors
    vectors: dict[str, Any] = {}
    if len(v.vectors):
        vectors[TOKENS] = np.asarray(v.vectors, np.float32).tolist()
    if len(v.pooled):
        vectors[POOLED] = np.asarray(v.pooled[0], np.float32).tolist()
    return vectors


def point_payload(page: StoredPage) -> dict[str, Any]:
    """Ids, counts, and the page data that is not a vector, as binary strings."""
    v = page.vectors
    return {
        "page_id": int(page.page_id),
        "doc_id": int(page.doc_id),
        "n_vectors": len(v.vectors),
        "n_pooled": len(v.pooled),
        "boxes_f16": encode(np.asarray(v.boxes, np.float16).reshape(-1, 4)),
        "words_i32": encode(np.asarray(v.words, np.int32).reshape(-1)),
        "pooled_f32": encode(np.asarray(v.pooled, np.float32)),
    }


def point_locations(pages: list[StoredPage]) -> list[Location]:
    """Locations of pages kept in Qdrant: no rows here, only the counts the catalog keeps."""
    return [Location(-1, len(p.vectors.vectors), -1, len(p.vectors.pooled)) for p in pages]


def batches(pages: list[StoredPage], dim: int, max_floats: int) -> Iterator[list[StoredPage]]:
    """Consecutive page groups of at most max_floats floats (at least one page)."""
    batch: list[StoredPage] = []
    floats = 0
    for page in pages:
        size = (len(page.vectors.vectors) + len(page.vectors.pooled)) * dim
        if batch and floats + size > max_floats:
            yield batch
            batch, floats = [], 0
        batch.append(page)
        floats += size
    if batch:
        yield batch


# -- reading ---------------------------------------------------------------------------
def page_from_point(tokens: Any, payload: dict[str, Any] | None, dim: int) -> PageVectors:
    """A page's vectors from its stored token multivector (None: it has none) and payload."""
    vectors = np.asarray(tokens, np.float32).reshape(-1, dim) if tokens \
        else np.zeros((0, dim), np.float32)
    payload = payload or {}
    return PageVectors(
        vectors=vectors,
        boxes=decode(payload["boxes_f16"], np.float16, 4).astype(np.float32),
        words=decode(payload["words_i32"], np.int32),
        weights=np.ones(len(vectors), np.float32),
        pooled=pooled_windows(payload, dim),
    )


def pooled_windows(payload: dict[str, Any], dim: int) -> np.ndarray:
    """(n_windows, dim) float32: every pooled window of a page, from its payload."""
    return decode(payload["pooled_f32"], np.float32, dim)


def read_pages(page_ids: list[int], retrieve: Callable[[list[int]], Any], dim: int, size: int,
               where: str) -> list[PageVectors]:
    """The pages' vectors in the order asked, `size` pages a request. retrieve(ids) returns
    those points (.id, .vector: a dict with their tokens, .payload); a missing page is a
    one-line error naming `where`."""
    found: dict[int, PageVectors] = {}
    for chunk in chunks(unique_ids(page_ids), size):
        for r in retrieve(chunk):
            tokens = r.vector.get(TOKENS) if isinstance(r.vector, dict) else None
            found[int(r.id)] = page_from_point(tokens, r.payload, dim)
    missing = [i for i in page_ids if i not in found]
    if missing:
        raise DocpressError(f"page {missing[0]} is missing from {where}; re-ingest its document")
    return [found[i] for i in page_ids]


def read_windows(page_ids, retrieve: Callable[[list[int]], Any], dim: int,
                 size: int) -> dict[int, np.ndarray]:
    """page id -> (n_windows, dim) pooled windows, `size` pages a request. retrieve(ids)
    returns those points with (at least) their pooled_f32 payload."""
    return {int(r.id): pooled_windows(r.payload, dim)
            for chunk in chunks(unique_ids(page_ids), size) for r in retrieve(chunk)}


# -- scoring ---------------------------------------------------------------------------
def scores_in_order(page_ids: np.ndarray, found: dict[int, float]) -> np.ndarray:
    """(n_pages,) float32 scores in the table's order. Pages without token vectors are absent
    from Qdrant's results and keep 0, as in the embedded stores."""
    scores = np.zeros(len(page_ids), np.float32)
    for i, page_id in enumerate(page_ids):
        scores[i] = found.get(int(page_id), 0.0)
    return scores


def window_scores_of(windows: dict[int, np.ndarray], pooled: np.ndarray, page_ids: np.ndarray):
    """VectorStore.window_scores from each page's pooled windows (page id -> (n, dim))."""
    q = np.asarray(pooled, np.float32)
    parts, first, count = [], np.zeros(len(page_ids), np.int64), np.zeros(len(page_ids), np.int64)
    offset = 0
    for i, page_id in enumerate(page_ids):
        w = windows.get(int(page_id))
        if w is not None and len(w):
            parts.append(w @ q)
            first[i], count[i] = offset, len(w)
            offset += len(w)
    return (np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)), first, count


# -- ids and encodings -----------------------------------------------------------------
def unique_ids(page_ids) -> list[int]:
    return list(dict.fromkeys(int(i) for i in page_ids))


def chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def encode(array: np.ndarray) -> str:
    # Explicit little-endian so a collection reads back the same on any host.
    return base64.b64encode(np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()
                            ).decode("ascii")


def decode(text: str, dtype, width: int | None = None) -> np.ndarray:
    array = np.frombuffer(base64.b64decode(text), np.dtype(dtype).newbyteorder("<"))
    array = array.astype(np.dtype(dtype))  # native order, writable copy
    return array.reshape(-1, width) if width else array
