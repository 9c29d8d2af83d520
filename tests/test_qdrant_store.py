"""QdrantStore against Bf16Store and brute force: same scores, same order, same page data."""

from __future__ import annotations

import socket
import time

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from docpress.errors import BackendUnavailableError, DocpressError, IndexMismatchError  # noqa: E402
from docpress.types import PageVectors  # noqa: E402
from indexer.catalog import PageTable  # noqa: E402
from indexer.stores.base import Location, StoredPage  # noqa: E402
from indexer.stores.bf16 import Bf16Store  # noqa: E402
from indexer.stores.qdrant import QdrantStore, parse_location  # noqa: E402

DIM = 24
N_PAGES = 30
# Bf16Store keeps bf16 vectors and scores bf16 x bf16: ~3 significant digits per product.
BF16_RTOL, BF16_ATOL = 2e-2, 5e-2


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True) if n else x.reshape(0, DIM)


def make_pages(seed: int = 0, n: int = N_PAGES, first_id: int = 1) -> list[StoredPage]:
    """Synthetic pages: 0-40 tokens each (page 3 has none), 1-3 pooled windows, 3 documents."""
    rng = np.random.default_rng(seed)
    pages = []
    for i in range(n):
        count = 0 if i == 3 else int(rng.integers(1, 41))
        corners = rng.uniform(0, 500, size=(count, 2)).astype(np.float32)
        boxes = np.concatenate([corners, corners + rng.uniform(1, 50, size=(count, 2))], axis=1)
        vectors = PageVectors(
            vectors=_unit(rng, count),
            boxes=boxes.astype(np.float32).reshape(count, 4),
            words=rng.integers(-1, 300, size=count).astype(np.int32),
            weights=np.ones(count, np.float32),
            pooled=_unit(rng, int(rng.integers(1, 4))),
        )
        pages.append(StoredPage(first_id + i, 100 + i % 3, vectors))
    return pages


def page_table(pages: list[StoredPage], locations: list[Location]) -> PageTable:
    """The PageTable the catalog would hand out for these pages (catalog order: vec_start, id)."""
    cols = [[p.page_id for p in pages], [p.doc_id for p in pages], list(range(len(pages))),
            [loc.vec_start for loc in locations], [loc.vec_count for loc in locations],
            [loc.pool_start for loc in locations], [loc.pool_count for loc in locations]]
    return PageTable(*(np.asarray(c, np.int64) for c in cols))


def brute_maxsim(query: np.ndarray, pages: list[StoredPage]) -> np.ndarray:
    return np.asarray([(query @ p.vectors.vectors.T).max(1).sum() if len(p.vectors) else 0.0
                       for p in pages], np.float32)


def brute_dense(pooled: np.ndarray, pages: list[StoredPage]) -> np.ndarray:
    width = max(len(p.vectors.pooled) for p in pages)
    out = np.full((len(pages), width), -np.inf, np.float32)
    for i, p in enumerate(pages):
        out[i, :len(p.vectors.pooled)] = p.vectors.pooled @ pooled
    return out


def make_query(seed: int = 7, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return _unit(rng, n), _unit(rng, 1)[0]


@pytest.fixture(scope="module")
def pages() -> list[StoredPage]:
    return make_pages()


@pytest.fixture(scope="module")
def local(pages, tmp_path_factory):
    store = Bf16Store(tmp_path_factory.mktemp("local"), DIM)
    table = page_table(pages, store.add(pages))
    yield store, table
    store.close()


@pytest.fixture(params=["memory", "path"])
def qdrant(request, pages, tmp_path):
    location = "qdrant+memory:test" if request.param == "memory" else \
        f"qdrant+path:{tmp_path / 'qd'}/pages"
    store = QdrantStore(location, DIM)
    table = page_table(pages, store.add(pages))
    yield store, table
    store.close()


# -- congruence with Bf16Store and brute force --------------------------------------------
def test_locations_carry_counts(qdrant, pages):
    _, table = qdrant
    assert (table.vec_start == -1).all() and (table.pool_start == -1).all()
    assert table.vec_count.tolist() == [len(p.vectors.vectors) for p in pages]
    assert table.pool_count.tolist() == [len(p.vectors.pooled) for p in pages]


def test_maxsim_matches_local_and_brute_force(qdrant, local, pages):
    store, table = qdrant
    local_store, local_table = local
    for seed in range(3):
        query, _ = make_query(seed)
        got = store.maxsim(query, table)
        assert got.dtype == np.float32 and got.shape == (len(pages),)
        np.testing.assert_allclose(got, brute_maxsim(query, pages), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got, local_store.maxsim(query, local_table),
                                   rtol=BF16_RTOL, atol=BF16_ATOL)
        assert got[3] == 0.0  # the page without vectors


def test_ranking_agrees_with_local(qdrant, local):
    store, table = qdrant
    local_store, local_table = local
    query, _ = make_query(11)
    got = store.maxsim(query, table)
    ref = local_store.maxsim(query, local_table)
    # bf16 can swap near-ties; the ranks must agree wherever the gap exceeds the tolerance.
    top = np.argsort(-got, kind="stable")
    gaps = np.diff(got[top]) < -2 * BF16_ATOL
    assert (ref[top][:-1][gaps] > ref[top][1:][gaps]).all()
    assert top[0] == np.argmax(ref)


def test_weighted_query_rows(qdrant, pages):
    """Weights are folded into query rows; scores stay sums of weighted maxima."""
    store, table = qdrant
    query, _ = make_query(5)
    query = query * np.linspace(0.2, 2.0, len(query), dtype=np.float32)[:, None]
    np.testing.assert_allclose(store.maxsim(query, table), brute_maxsim(query, pages),
                               rtol=1e-4, atol=1e-4)


def test_dense_matches_local_and_brute_force(qdrant, local, pages):
    store, table = qdrant
    local_store, local_table = local
    _, pooled = make_query(3)
    got = store.dense(pooled, table)
    ref = local_store.dense(pooled, local_table)
    assert got.shape == ref.shape == (len(pages), 3)
    assert (np.isinf(got) == np.isinf(ref)).all()
    finite = np.isfinite(got)
    np.testing.assert_allclose(got[finite], ref[finite], rtol=BF16_RTOL, atol=1e-2)
    np.testing.assert_allclose(got, brute_dense(pooled, pages), rtol=1e-5, atol=1e-6)


def test_order_follows_the_page_table(qdrant, pages):
    store, table = qdrant
    query, pooled = make_query(2)
    order = np.random.default_rng(1).permutation(len(pages))
    shuffled = table.subset(order)
    np.testing.assert_allclose(store.maxsim(query, shuffled), store.maxsim(query, table)[order],
                               rtol=1e-6)
    np.testing.assert_array_equal(store.dense(pooled, shuffled), store.dense(pooled, table)[order])


def test_subset_scores_only_those_pages(qdrant, local, pages):
    store, table = qdrant
    local_store, local_table = local
    query, pooled = make_query(4)
    mask = table.doc_ids == 101
    sub = table.subset(mask)
    got = store.maxsim(query, sub)
    assert got.shape == (int(mask.sum()),)
    chosen = [p for p, m in zip(pages, mask) if m]
    np.testing.assert_allclose(got, brute_maxsim(query, chosen), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got, local_store.maxsim(query, local_table.subset(mask)),
                               rtol=BF16_RTOL, atol=BF16_ATOL)
    np.testing.assert_allclose(store.dense(pooled, sub), brute_dense(pooled, chosen),
                               rtol=1e-5, atol=1e-6)


def test_empty_table_and_empty_query(qdrant):
    store, table = qdrant
    query, pooled = make_query()
    empty = table.subset(np.zeros(len(table), bool))
    assert store.maxsim(query, empty).shape == (0,)
    assert store.dense(pooled, empty).shape == (0, 1)
    assert (store.maxsim(np.zeros((0, DIM), np.float32), table) == 0).all()


def test_many_ids_are_batched(qdrant, pages, monkeypatch):
    import indexer.stores.qdrant as module

    monkeypatch.setattr(module, "IDS_PER_REQUEST", 7)
    store, table = qdrant
    query, pooled = make_query(8)
    np.testing.assert_allclose(store.maxsim(query, table), brute_maxsim(query, pages),
                               rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(store.dense(pooled, table), brute_dense(pooled, pages),
                               rtol=1e-5, atol=1e-6)


def test_upserts_are_batched(tmp_path, monkeypatch):
    import indexer.stores.qdrant as module

    monkeypatch.setattr(module, "MAX_FLOATS_PER_UPSERT", 10 * DIM)
    pages = make_pages(seed=3, n=8)
    store = QdrantStore("qdrant+memory:batched", DIM)
    table = page_table(pages, store.add(pages))
    query, _ = make_query(9)
    np.testing.assert_allclose(store.maxsim(query, table), brute_maxsim(query, pages),
                               rtol=1e-4, atol=1e-4)
    assert store.client.count(store.collection).count == len(pages)
    store.close()


# -- writes and reads ----------------------------------------------------------------------
def test_remove_drops_pages(qdrant, pages):
    store, table = qdrant
    gone = [int(i) for i in table.page_ids[table.doc_ids == 100]]
    store.remove(gone)
    query, pooled = make_query(6)
    scores = store.maxsim(query, table)
    dense = store.dense(pooled, table)
    dropped = np.isin(table.page_ids, gone)
    assert (scores[dropped] == 0).all() and np.isinf(dense[dropped]).all()
    kept = [p for p, d in zip(pages, dropped) if not d]
    np.testing.assert_allclose(scores[~dropped], brute_maxsim(query, kept), rtol=1e-4, atol=1e-4)
    assert store.client.count(store.collection).count == len(pages) - len(gone)
    store.remove([])  # nothing to do, no error


def test_page_vectors_round_trip(qdrant, local, pages):
    store, table = qdrant
    local_store, local_table = local
    for i in (0, 3, 17):  # page 3 has no token vectors
        loc = Location(int(table.vec_start[i]), int(table.vec_count[i]),
                       int(table.pool_start[i]), int(table.pool_count[i]))
        got = store.page_vectors(int(table.page_ids[i]), loc)
        want = pages[i].vectors
        assert got.vectors.shape == want.vectors.shape and got.vectors.dtype == np.float32
        # float32 in embedded mode; a server keeps float16 tokens
        np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-3)
        np.testing.assert_allclose(got.boxes, want.boxes.astype(np.float16).astype(np.float32))
        np.testing.assert_array_equal(got.words, want.words)
        assert got.words.dtype == np.int32 and got.boxes.dtype == np.float32
        np.testing.assert_array_equal(got.weights, np.ones(len(want), np.float32))
        np.testing.assert_allclose(got.pooled, want.pooled, rtol=1e-6)
        # Same shapes and dtypes as Bf16Store hands back.
        local_loc = Location(int(local_table.vec_start[i]), int(local_table.vec_count[i]),
                             int(local_table.pool_start[i]), int(local_table.pool_count[i]))
        ref = local_store.page_vectors(int(local_table.page_ids[i]), local_loc)
        for field in ("vectors", "boxes", "words", "weights", "pooled"):
            a, b = getattr(got, field), getattr(ref, field)
            assert a.shape == b.shape and a.dtype == b.dtype, field


def test_missing_page_vectors_raise(qdrant):
    store, _ = qdrant
    with pytest.raises(DocpressError, match="missing"):
        store.page_vectors(99999, Location())


def test_on_disk_collection_survives_reopen(tmp_path, pages):
    location = f"qdrant+path:{tmp_path}/qd/pages"
    store = QdrantStore(location, DIM)
    table = page_table(pages, store.add(pages))
    store.remove([int(table.page_ids[0])])
    query, pooled = make_query(10)
    before = store.maxsim(query, table), store.dense(pooled, table)
    assert store.nbytes() > 0
    store.close()

    again = QdrantStore(location, DIM)
    np.testing.assert_array_equal(again.maxsim(query, table), before[0])
    np.testing.assert_array_equal(again.dense(pooled, table), before[1])
    assert again.maxsim(query, table)[0] == 0
    assert again.client.count(again.collection).count == len(pages) - 1
    again.close()


def test_on_disk_collection_of_another_dim_is_refused(tmp_path):
    location = f"qdrant+path:{tmp_path}/qd/pages"
    QdrantStore(location, DIM).close()
    with pytest.raises(IndexMismatchError):
        QdrantStore(location, DIM * 2)


def test_locked_folder_is_unavailable(tmp_path):
    location = f"qdrant+path:{tmp_path}/qd/pages"
    first = QdrantStore(location, DIM)
    try:
        with pytest.raises(BackendUnavailableError, match="in use"):
            QdrantStore(location, DIM)
    finally:
        first.close()


def test_memory_store_size_is_zero():
    store = QdrantStore("qdrant+memory:sized", DIM)
    assert store.nbytes() == 0
    store.close()


# -- locations -----------------------------------------------------------------------------
@pytest.mark.parametrize("location, url, prefix, collection", [
    ("qdrant://localhost:6333/pages", "http://localhost:6333", None, "pages"),
    ("qdrant://db.example.com/pages", "http://db.example.com:6333", None, "pages"),
    ("qdrants://db.example.com:443/pages", "https://db.example.com:443", None, "pages"),
    ("qdrant://h:7000/proxy/qdrant/pages", "http://h:7000", "proxy/qdrant", "pages"),
    ("qdrant://[::1]:6333/pages", "http://[::1]:6333", None, "pages"),
])
def test_parse_server_locations(location, url, prefix, collection):
    target = parse_location(location)
    assert (target.url, target.prefix, target.collection) == (url, prefix, collection)


def test_parse_embedded_locations():
    target = parse_location("qdrant+path:///abs/dir/pages")
    assert (str(target.path), target.collection) == ("/abs/dir", "pages")
    target = parse_location("qdrant+path:rel/dir/pages")
    assert (str(target.path), target.collection) == ("rel/dir", "pages")
    target = parse_location("qdrant+memory:pages")
    assert target.memory and target.collection == "pages" and target.url is None


@pytest.mark.parametrize("location", [
    "local", "faiss://x", "qdrant://", "qdrant://localhost:6333", "qdrant://localhost:6333/",
    "qdrant://localhost:notaport/pages", "qdrant+path:pages", "qdrant+path://host/dir/pages",
    "qdrant+memory:", "qdrant+memory:bad name", "qdrant://localhost/pa$ges",
])
def test_bad_locations_raise(location):
    with pytest.raises(DocpressError):
        QdrantStore(location, DIM)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_unavailable():
    started = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="cannot reach Qdrant") as err:
        QdrantStore(f"qdrant://127.0.0.1:{_unused_port()}/pages", DIM, timeout=1)
    assert time.monotonic() - started < 10
    assert "\n" not in str(err.value)
