"""QdrantEdgeStore (Qdrant's engine in-process) against Bf16Store and numpy: same scores, same
page data; removal, reopening, the folder lock, the two-stage query and a whole index on it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_edge")

from brute_force import brute_dense, brute_maxsim, table_of
from conftest import QUESTIONS, TOPICS
from test_store_congruence import DIM, PAGES, make_pages, make_query

import indexer.stores.qdrant_edge as edge
from docpress import Index
from docpress.errors import (
    BackendUnavailableError,
    CorruptIndexError,
    DocpressError,
    IndexMismatchError,
    IndexWriteError,
)
from docpress.types import PageVectors, QueryVectors
from indexer.stores.base import Location, StoredPage, location_of
from indexer.stores.bf16 import Bf16Store
from indexer.stores.qdrant_edge import QdrantEdgeStore, edge_folder

# float16 tokens in the shard, scored in float32: MaxSim sums of ~8 products.
SCORE_ATOL = 2e-3
# Bf16Store keeps bf16 vectors and scores bf16 x bf16.
BF16_ATOL = 1.5e-2


@pytest.fixture
def store(tmp_path):
    s = QdrantEdgeStore(f"qdrant-edge:{tmp_path / 'edge'}", DIM)
    yield s
    s.close()


@pytest.fixture
def filled(store):
    return store, table_of(PAGES, store.add(PAGES))


@pytest.fixture(scope="module")
def bf16(tmp_path_factory):
    s = Bf16Store(tmp_path_factory.mktemp("bf16"), DIM)
    table = table_of(PAGES, s.add(PAGES))
    yield s, table
    s.close()


# -- congruence with Bf16Store and numpy ---------------------------------------------------
def test_maxsim_equals_numpy_and_bf16(filled, bf16):
    store, table = filled
    local, local_table = bf16
    for seed in range(4):
        query, _ = make_query(seed)
        got = store.maxsim(query, table)
        assert got.dtype == np.float32 and got.shape == (len(PAGES),)
        np.testing.assert_allclose(got, brute_maxsim(query, PAGES), rtol=0, atol=SCORE_ATOL)
        np.testing.assert_allclose(got, local.maxsim(query, local_table), rtol=0, atol=BF16_ATOL)
        assert (got[[i for i, p in enumerate(PAGES) if not len(p.vectors)]] == 0).all()


def test_subsets_duplicates_and_order(filled):
    store, table = filled
    query, pooled = make_query(5)
    whole, dense = store.maxsim(query, table), store.dense(pooled, table)
    order = np.random.default_rng(1).permutation(len(PAGES))
    np.testing.assert_allclose(store.maxsim(query, table.subset(order)), whole[order], rtol=1e-6)
    np.testing.assert_array_equal(store.dense(pooled, table.subset(order)), dense[order])
    twice = table.subset(np.r_[np.arange(len(PAGES)), np.arange(len(PAGES))])
    np.testing.assert_array_equal(store.maxsim(query, twice), np.r_[whole, whole])


def test_many_ids_are_split_into_requests(filled, monkeypatch):
    monkeypatch.setattr(edge, "IDS_PER_REQUEST", 5)
    store, table = filled
    query, pooled = make_query(6)
    np.testing.assert_allclose(store.maxsim(query, table), brute_maxsim(query, PAGES), atol=SCORE_ATOL)
    np.testing.assert_allclose(store.dense(pooled, table), brute_dense(pooled, PAGES), atol=1e-5)
    assert len(store.pages_vectors(table)) == len(PAGES)


def test_dense_and_heads_match_bf16(filled, bf16):
    store, table = filled
    local, local_table = bf16
    _, pooled = make_query(2)
    got, ref = store.dense(pooled, table), brute_dense(pooled, PAGES)
    assert got.shape == local.dense(pooled, local_table).shape == ref.shape
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)  # pooled windows stay float32
    np.testing.assert_allclose(store.head_vectors(table, 4), local.head_vectors(local_table, 4),
                               rtol=0, atol=1e-2)


def test_page_vectors_read_back_like_bf16(filled, bf16):
    store, table = filled
    local, local_table = bf16
    for i, page in enumerate(PAGES):
        got = store.page_vectors(page.page_id, location_of(table, i))
        ref = local.page_vectors(page.page_id, location_of(local_table, i))
        for field in ("vectors", "boxes", "words", "weights", "pooled"):
            a, b = getattr(got, field), getattr(ref, field)
            assert a.shape == b.shape and a.dtype == b.dtype, field
        np.testing.assert_allclose(got.vectors, page.vectors.vectors, rtol=0, atol=5e-4)
        np.testing.assert_array_equal(got.words, page.vectors.words)
        np.testing.assert_allclose(got.pooled, page.vectors.pooled, rtol=1e-6)
    with pytest.raises(DocpressError, match="missing"):
        store.page_vectors(99999, Location())


def test_locations_and_capabilities(filled):
    store, table = filled
    assert (table.vec_start == -1).all() and (table.pool_start == -1).all()
    assert table.vec_count.tolist() == [len(p.vectors) for p in PAGES]
    assert store.capabilities.end_to_end and not store.capabilities.float_rows
    assert 0 < store.nbytes() < 20 << 20  # blocks in use, not the sparse files' sizes


# -- writes, reopening, the lock -------------------------------------------------------------
def test_remove(filled):
    store, table = filled
    gone = [int(i) for i in table.page_ids[table.doc_ids == 2]]
    store.remove(gone)
    store.remove([])
    query, pooled = make_query(3)
    scores, dense = store.maxsim(query, table), store.dense(pooled, table)
    dropped = np.isin(table.page_ids, gone)
    assert (scores[dropped] == 0).all() and np.isinf(dense[dropped]).all()
    kept = [p for p, d in zip(PAGES, dropped) if not d]
    np.testing.assert_allclose(scores[~dropped], brute_maxsim(query, kept), atol=SCORE_ATOL)
    assert store.count() == len(PAGES) - len(gone)
    with pytest.raises(DocpressError, match="missing"):
        store.page_vectors(gone[0], Location())


def test_reopen_from_disk(tmp_path):
    location = f"qdrant-edge:{tmp_path / 'edge'}"
    store = QdrantEdgeStore(location, DIM)
    table = table_of(PAGES, store.add(PAGES))
    store.remove([int(table.page_ids[0])])
    query, pooled = make_query(4)
    kept = table.subset(np.arange(1, len(table)))
    before = store.maxsim(query, table), store.dense(pooled, table), store.head_vectors(kept, 4)
    store.close()
    store.close()  # a second close does nothing

    again = QdrantEdgeStore(location, DIM)
    np.testing.assert_array_equal(again.maxsim(query, table), before[0])
    np.testing.assert_array_equal(again.dense(pooled, table), before[1])
    np.testing.assert_array_equal(again.head_vectors(kept, 4), before[2])
    assert again.count() == len(PAGES) - 1
    assert again.optimize() in (True, False)
    np.testing.assert_allclose(again.maxsim(query, table), before[0], atol=1e-6)
    again.close()


def test_relative_folder_is_under_the_root(tmp_path):
    assert edge_folder("qdrant-edge:edge", tmp_path) == tmp_path / "edge"
    assert edge_folder(f"qdrant-edge:{tmp_path}/x", Path("/elsewhere")) == tmp_path / "x"
    store = QdrantEdgeStore("qdrant-edge:shard", DIM, root=tmp_path)
    assert (tmp_path / "shard" / "edge_config.json").is_file()
    store.close()


def test_second_opener_gets_one_line(store):
    with pytest.raises(BackendUnavailableError, match="already open by another process") as err:
        QdrantEdgeStore(store.location, DIM)
    assert "\n" not in str(err.value)


def test_second_process_gets_one_line(filled):
    store, _ = filled
    code = ("import sys\nfrom indexer.stores.qdrant_edge import QdrantEdgeStore\n"
            "from docpress.errors import DocpressError\n"
            f"try:\n    QdrantEdgeStore({store.location!r}, {DIM})\n"
            "except DocpressError as e:\n    print(type(e).__name__, e)\n    sys.exit(3)\n")
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False,
                          timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith("BackendUnavailableError") and "already open" in done.stdout
    assert done.stdout.count("\n") == 1


def test_other_dim_is_refused(tmp_path):
    location = f"qdrant-edge:{tmp_path / 'edge'}"
    QdrantEdgeStore(location, DIM).close()
    with pytest.raises(IndexMismatchError, match="holds other vectors") as err:
        QdrantEdgeStore(location, DIM * 2)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("location", ["qdrant-edge:", "qdrant-edge: ", "qdrant-edge://host/x",
                                      "qdrant://localhost/x"])
def test_bad_locations(location):
    with pytest.raises(DocpressError):
        QdrantEdgeStore(location, DIM)


def test_a_foreign_folder_is_refused(tmp_path):
    (tmp_path / "edge").mkdir()
    (tmp_path / "edge" / "notes.txt").write_text("mine")
    with pytest.raises(DocpressError, match="not a Qdrant Edge shard"):
        QdrantEdgeStore(f"qdrant-edge:{tmp_path / 'edge'}", DIM)


def test_engine_refusal_is_a_write_error(store):
    rng = np.random.default_rng(0)
    bad = StoredPage(1, 1, PageVectors(rng.normal(size=(3, DIM + 1)).astype(np.float32),
                                       np.zeros((3, 4), np.float32), np.zeros(3, np.int32),
                                       np.ones(3, np.float32), np.zeros((0, DIM + 1), np.float32)))
    with pytest.raises(IndexWriteError, match="Qdrant Edge could not write") as err:
        store.add([bad])
    assert "\n" not in str(err.value)


class Counting:
    """The engine's shard with its optimize() calls counted."""

    def __init__(self, shard):
        self.shard, self.optimized = shard, 0

    def optimize(self):
        self.optimized += 1
        return self.shard.optimize()

    def __getattr__(self, name):
        return getattr(self.shard, name)


def test_every_write_flushes_and_optimizes(store):
    counting = store.shard = Counting(store.shard)
    pages = make_pages(seed=1)
    store.add(pages)
    store.remove([p.page_id for p in pages[:5]])
    store.remove([])  # nothing written, nothing to optimize
    assert counting.optimized == 2 and store.count() == len(pages) - 5


def test_a_full_segment_gets_its_graph(tmp_path, monkeypatch):
    """Past the indexing threshold, the write's optimize() seals the segment and indexes it."""
    monkeypatch.setattr(edge, "INDEXING_THRESHOLD_KB", 1)  # ~8 pooled vectors at dim 32
    store = QdrantEdgeStore(f"qdrant-edge:{tmp_path / 'edge'}", DIM)
    pages = [StoredPage(100 + i, 1, p.vectors) for i, p in
             enumerate(p for seed in range(3) for p in make_pages(seed))]
    table = table_of(pages, store.add(pages))
    assert store.shard.info().indexed_vectors_count > 0
    query, pooled = make_query(2)
    np.testing.assert_allclose(store.maxsim(query, table), brute_maxsim(query, pages), atol=SCORE_ATOL)
    np.testing.assert_allclose(store.dense(pooled, table), brute_dense(pooled, pages), atol=1e-5)
    store.close()


# -- two-stage ---------------------------------------------------------------------------------
N_MANY = 150


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    pages = [StoredPage(1000 + i, i // 10, p.vectors)
             for i, p in enumerate(p for seed in range(13) for p in make_pages(seed))][:N_MANY]
    store = QdrantEdgeStore(f"qdrant-edge:{tmp_path_factory.mktemp('many') / 'edge'}", DIM)
    store.add(pages)
    store.optimize()
    yield store, pages
    store.close()


def _numpy_two_stage(query, pooled, pages, k, candidates, allowed=None):
    """Top `candidates` by first pooled window (among `allowed`), then top k of those by MaxSim."""
    first = np.array([p.vectors.pooled[0] @ pooled if len(p.vectors.pooled) else -np.inf
                      for p in pages])
    if allowed is not None:
        first[~np.isin([p.page_id for p in pages], list(allowed))] = -np.inf
    cand = [i for i in np.argsort(-first, kind="stable")[:candidates] if np.isfinite(first[i])]
    cand = [i for i in cand if len(pages[i].vectors)]  # no tokens: no MaxSim score
    scores = brute_maxsim(query, [pages[i] for i in cand])
    best = np.argsort(-scores, kind="stable")[:k]
    return np.array([pages[cand[j]].page_id for j in best]), scores[best]


@pytest.mark.parametrize("seed", range(4))
def test_two_stage_is_numpy_top_k_within_the_candidates(many, seed):
    store, pages = many
    query, pooled = make_query(seed)
    ids, scores = store.two_stage(QueryVectors(query, [], pooled), k=5, candidates=30)
    want_ids, want_scores = _numpy_two_stage(query, pooled, pages, 5, 30)
    assert ids.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=SCORE_ATOL)
    # The same pages score the same by maxsim over the table.
    assert (np.diff(scores) <= 0).all()


def test_two_stage_filter_still_returns_k(many):
    store, pages = many
    query, pooled = make_query(9)
    # The pages the unfiltered prefetch would never reach: the worst by pooled score.
    first = np.array([p.vectors.pooled[0] @ pooled if len(p.vectors.pooled) and len(p.vectors)
                      else np.inf for p in pages])
    allowed = [pages[i].page_id for i in np.argsort(first)[:12]]
    unfiltered, _ = store.two_stage(QueryVectors(query, [], pooled), k=4, candidates=8)
    assert not set(unfiltered.tolist()) & set(allowed)
    ids, scores = store.two_stage(QueryVectors(query, [], pooled), k=4, candidates=8,
                                  page_ids=np.asarray(allowed))
    assert len(ids) == 4 and set(ids.tolist()) <= set(allowed)
    want_ids, want_scores = _numpy_two_stage(query, pooled, pages, 4, 8, set(allowed))
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=SCORE_ATOL)


def test_two_stage_edge_cases(many):
    store, _ = many
    query, pooled = make_query(1)
    q = QueryVectors(query, [], pooled)
    assert store.two_stage(q, k=0, candidates=10)[0].shape == (0,)
    assert store.two_stage(q, k=3, candidates=10, page_ids=[])[0].shape == (0,)
    assert store.two_stage(QueryVectors(query[:0], [], pooled), k=3, candidates=10)[0].shape == (0,)
    ids, _ = store.two_stage(q, k=6, candidates=2)  # candidates below k: k are prefetched
    assert len(ids) == 6


# -- a whole index on it -----------------------------------------------------------------------
def test_index_on_qdrant_edge(tmp_path, topic_dir, topic_index, encoder):
    index = Index.create(tmp_path / "ix", encoder=encoder, store="qdrant-edge:edge")
    assert index.manifest.store == f"qdrant-edge:{(tmp_path / 'ix' / 'edge').resolve()}"
    assert (tmp_path / "ix" / "edge" / "edge_config.json").is_file()
    report = index.add([topic_dir], metadata={"corpus": "topics"})
    assert len(report.added) == len(TOPICS)
    for method in ("maxsim", "dense", "hybrid", "rrf", "bm25"):
        for question in QUESTIONS.values():
            ours = index.search(question, k=3, method=method)
            local = topic_index.search(question, k=3, method=method)
            assert [Path(h.path).name for h in ours] == [Path(h.path).name for h in local], method
            assert ours[0].score == pytest.approx(local[0].score, rel=0.02, abs=0.02)
    assert index.remove("football.pdf")
    assert all(Path(h.path).stem != "football" for h in index.search(QUESTIONS["football"], k=5))
    index.close()

    reopened = Index.open(tmp_path / "ix", store="qdrant-edge:edge")
    assert reopened.info()["documents"] == len(TOPICS) - 1
    assert Path(reopened.search(QUESTIONS["volcanoes"], k=1)[0].path).stem == "volcanoes"
    with pytest.raises(BackendUnavailableError, match="already open"):
        Index.open(tmp_path / "ix")
    reopened.close()

    shutil.rmtree(tmp_path / "ix" / "edge")  # not silently replaced by an empty shard
    with pytest.raises(CorruptIndexError, match="Qdrant Edge shard"):
        Index.open(tmp_path / "ix")
