"""QdrantStore against Bf16Store and brute force: same scores, same order, same page data."""

from __future__ import annotations

import itertools
import socket

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from brute_force import brute_dense, brute_maxsim, table_of

from docpress.errors import BackendUnavailableError, DocpressError, IndexMismatchError  # noqa: E402
from docpress.types import PageVectors  # noqa: E402
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





def make_query(seed: int = 7, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return _unit(rng, n), _unit(rng, 1)[0]


@pytest.fixture(scope="module")
def pages() -> list[StoredPage]:
    return make_pages()


@pytest.fixture(scope="module")
def local(pages, tmp_path_factory):
    store = Bf16Store(tmp_path_factory.mktemp("local"), DIM)
    table = table_of(pages, store.add(pages))
    yield store, table
    store.close()


@pytest.fixture(params=["memory", "path"])
def qdrant(request, pages, tmp_path):
    location = "qdrant+memory:test" if request.param == "memory" else \
        f"qdrant+path:{tmp_path / 'qd'}/pages"
    store = QdrantStore(location, DIM)
    table = table_of(pages, store.add(pages))
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


def test_order_follows_the_table_of(qdrant, pages):
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


def _arg(args: tuple, kwargs: dict, index: int, name: str):
    """A call's argument, whether passed by position (after the collection) or by name."""
    return args[index] if len(args) > index else kwargs[name]


def record_requests(monkeypatch, store: QdrantStore) -> dict[str, list[list[int]]]:
    """Wrap the store's client so each request's page ids are recorded, call by call.

    query_batch_points: one entry per call, the id list of each query request it carries;
    retrieve, upsert, delete: one entry per call, the ids it reads, writes or deletes.
    """
    calls: dict[str, list] = {"query_batch_points": [], "retrieve": [], "upsert": [], "delete": []}
    ids_of = {
        "query_batch_points": lambda a, k: [[int(i) for i in r.filter.must[0].has_id]
                                            for r in _arg(a, k, 1, "requests")],
        "retrieve": lambda a, k: [int(i) for i in _arg(a, k, 1, "ids")],
        "upsert": lambda a, k: [int(p.id) for p in _arg(a, k, 1, "points")],
        "delete": lambda a, k: [int(i) for i in _arg(a, k, 1, "points_selector").points],
    }
    for name, ids in ids_of.items():
        original = getattr(store.client, name)

        def recorder(*args, _original=original, _name=name, _ids=ids, **kwargs):
            calls[_name].append(_ids(args, kwargs))
            return _original(*args, **kwargs)

        monkeypatch.setattr(store.client, name, recorder)
    return calls


def _check_id_requests(requests: list[list[int]], page_ids, per_request: int) -> None:
    """ceil(n / per_request) requests of at most per_request ids, each page asked for once."""
    unique = list(dict.fromkeys(int(i) for i in page_ids))
    assert len(requests) == -(-len(unique) // per_request), [len(r) for r in requests]
    assert all(0 < len(r) <= per_request for r in requests), [len(r) for r in requests]
    assert sorted(i for r in requests for i in r) == sorted(unique)


def test_many_ids_are_batched(qdrant, pages, monkeypatch):
    import indexer.stores.qdrant as module

    per_request = 7
    monkeypatch.setattr(module, "IDS_PER_REQUEST", per_request)
    store, table = qdrant
    calls = record_requests(monkeypatch, store)
    query, pooled = make_query(8)

    np.testing.assert_allclose(store.maxsim(query, table), brute_maxsim(query, pages),
                               rtol=1e-4, atol=1e-4)
    # One round trip carrying ceil(30 / 7) = 5 filtered queries of at most 7 ids each.
    assert len(calls["query_batch_points"]) == 1
    _check_id_requests(calls["query_batch_points"][0], table.page_ids, per_request)

    np.testing.assert_allclose(store.dense(pooled, table), brute_dense(pooled, pages),
                               rtol=1e-5, atol=1e-6)
    _check_id_requests(calls["retrieve"], table.page_ids, per_request)

    calls["retrieve"].clear()
    assert len(store.pages_vectors(table)) == len(pages)
    _check_id_requests(calls["retrieve"], table.page_ids, per_request)

    # A table naming each page twice asks for each once (and scores both rows).
    twice = table.subset(np.r_[np.arange(len(table)), np.arange(len(table))])
    calls["query_batch_points"].clear()
    scores = store.maxsim(query, twice)
    np.testing.assert_array_equal(scores[:len(table)], scores[len(table):])
    _check_id_requests(calls["query_batch_points"][0], table.page_ids, per_request)

    store.remove([int(i) for i in table.page_ids])
    _check_id_requests(calls["delete"], table.page_ids, per_request)
    assert store.client.count(store.collection).count == 0
    assert calls["upsert"] == []  # reads and deletes never write


def test_head_vectors_read_pages_in_batches(qdrant, pages, monkeypatch):
    """head_vectors reads pages IDS_PER_REQUEST at a time (pages_vectors), not one per page."""
    import indexer.stores.qdrant as module

    per_request = 7
    monkeypatch.setattr(module, "IDS_PER_REQUEST", per_request)
    store, table = qdrant
    calls = record_requests(monkeypatch, store)
    heads = store.head_vectors(table, 4)
    _check_id_requests(calls["retrieve"], table.page_ids, per_request)
    assert len(calls["retrieve"]) == 5 < len(pages)
    for i, page in enumerate(pages):
        if len(page.vectors):
            mean = page.vectors.vectors[:4].mean(0)
            np.testing.assert_allclose(heads[i], mean / np.linalg.norm(mean), atol=1e-5)
        else:
            assert (heads[i] == 0).all()


def test_upserts_are_batched(monkeypatch):
    import indexer.stores.qdrant as module

    limit = 50 * DIM
    monkeypatch.setattr(module, "MAX_FLOATS_PER_UPSERT", limit)
    pages = make_pages(seed=3, n=12)
    store = QdrantStore("qdrant+memory:batched", DIM)
    calls = record_requests(monkeypatch, store)
    table = table_of(pages, store.add(pages))
    floats = {p.page_id: (len(p.vectors.vectors) + len(p.vectors.pooled)) * DIM for p in pages}
    batches = calls["upsert"]
    # Every page written once, in order, in as few requests as the bound allows.
    assert [i for b in batches for i in b] == [p.page_id for p in pages]
    assert len(batches) >= -(-sum(floats.values()) // limit) and len(batches) > 1
    for batch in batches:
        assert sum(floats[i] for i in batch) <= limit or len(batch) == 1
    for a, b in itertools.pairwise(batches):  # greedy: the next page did not fit
        assert sum(floats[i] for i in a) + floats[b[0]] > limit
    query, _ = make_query(9)
    np.testing.assert_allclose(store.maxsim(query, table), brute_maxsim(query, pages),
                               rtol=1e-4, atol=1e-4)
    assert store.client.count(store.collection).count == len(pages)

    # A page over the bound on its own still goes, alone, between its neighbours' requests.
    rng = np.random.default_rng(4)
    big = StoredPage(500, 9, PageVectors(_unit(rng, 60), np.zeros((60, 4), np.float32),
                                         np.zeros(60, np.int32), np.ones(60, np.float32), _unit(rng, 1)))
    small = make_pages(seed=5, n=2, first_id=600)
    calls["upsert"].clear()
    store.add([small[0], big, small[1]])
    assert calls["upsert"] == [[600], [500], [601]]
    assert store.client.count(store.collection).count == len(pages) + 3
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
    table = table_of(pages, store.add(pages))
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


def test_unreachable_server_is_unavailable(monkeypatch):
    """One request, under the caller's timeout, then a one-line error and a closed client."""
    import qdrant_client

    made, asked, closed = [], [], []

    class Recording(qdrant_client.QdrantClient):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            super().__init__(*args, **kwargs)

        def collection_exists(self, *args, **kwargs):
            asked.append(args)
            return super().collection_exists(*args, **kwargs)

        def close(self, *args, **kwargs):
            closed.append(True)
            return super().close(*args, **kwargs)

    monkeypatch.setattr(qdrant_client, "QdrantClient", Recording)
    with pytest.raises(BackendUnavailableError, match="cannot reach Qdrant") as err:
        QdrantStore(f"qdrant://127.0.0.1:{_unused_port()}/pages", DIM, timeout=0.4)
    assert [kw.get("timeout") for kw in made] == [1]  # seconds, rounded up; no retry client
    assert len(asked) == 1  # no retry loop
    assert closed == [True]
    assert "\n" not in str(err.value)


def test_cluster_settings_shape_a_new_server_collection(monkeypatch):
    """?shards=&replicas=&write_consistency= reach create_collection; doc_id gets a payload index."""
    import qdrant_client

    from indexer.stores import qdrant as module

    made, indexed = [], []

    class Recording(qdrant_client.QdrantClient):
        def create_collection(self, name, **kwargs):
            made.append({k: v for k, v in kwargs.items() if k != "vectors_config"})
            return super().create_collection(name, vectors_config=kwargs["vectors_config"])

        def create_payload_index(self, name, field_name, **kwargs):
            indexed.append((field_name, str(kwargs.get("field_schema"))))

    monkeypatch.setattr(module, "_connect", lambda target, timeout: Recording(location=":memory:"))
    store = QdrantStore("qdrant://db.example.com:6333/pages?shards=6&replicas=2&write_consistency=2", DIM)
    assert made == [{"shard_number": 6, "replication_factor": 2, "write_consistency_factor": 2}]
    assert indexed and indexed[0][0] == "doc_id" and "integer" in indexed[0][1].lower()
    store.close()
    with pytest.raises(DocpressError, match="unknown setting 'shard'"):
        QdrantStore("qdrant://db.example.com/pages?shard=2", DIM)
