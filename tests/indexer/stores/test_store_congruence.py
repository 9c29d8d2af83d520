"""Every vector store against brute-force numpy on the same synthetic pages.

The contract (indexer/stores/base.py) says what maxsim, dense, head_vectors and page_vectors
return; each store must agree with the plain numpy formulas within its own precision:
bf16 rows (Bf16Store, an identity ProjectedStore, bf16 codes), fp16 and int8 codes,
Qdrant's local mode (float32) and Qdrant Edge (float16 tokens).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pytest
from brute_force import brute_dense, brute_maxsim, table_of

from docpress.compress import Compressor
from docpress.types import PageVectors
from indexer.catalog import PageTable
from indexer.stores.base import Capabilities, StoredPage, VectorStore, location_of, window_columns
from indexer.stores.bf16 import Bf16Store
from indexer.stores.compressed import CompressedStore
from indexer.stores.projected import ProjectedStore

DIM = 32
# Tokens and pooled windows per page: page 2 has windows but no tokens, page 6 has nothing,
# page 10 is longer than any head we ask for.
TOKENS = [5, 17, 0, 1, 40, 9, 0, 23, 3, 12, 70, 6]
WINDOWS = [1, 2, 1, 3, 1, 1, 0, 2, 1, 1, 2, 1]
EMPTY_TOKENS = [i for i, n in enumerate(TOKENS) if n == 0]
# Non-contiguous, unordered rows of the table (a within-document or candidate search).
SCATTERED = [9, 0, 6, 4, 2, 11, 7]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32) if n else x.reshape(0, DIM)


def make_pages(seed: int = 0) -> list[StoredPage]:
    rng = np.random.default_rng(seed)
    pages = []
    for i, (n, m) in enumerate(zip(TOKENS, WINDOWS)):
        text = [f"w{i}_{j}" for j in range(n + 5)]
        corners = rng.uniform(0, 500, size=(n, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(1, 40, size=(n, 2))], axis=1)
        words = rng.integers(-1, len(text), size=n).astype(np.int32)
        vectors = PageVectors(_unit(rng, n), boxes.astype(np.float32).reshape(n, 4), words,
                              np.ones(n, np.float32), _unit(rng, m))
        # Page ids are sparse and documents interleave, so ids and rows cannot be confused.
        pages.append(StoredPage(10 + 3 * i, 1 + i % 3, vectors, text))
    return pages


PAGES = make_pages()



# -- brute force ----------------------------------------------------------------------------


def brute_heads(pages: list[StoredPage], n_tokens: int) -> np.ndarray:
    out = np.zeros((len(pages), DIM), np.float32)
    for i, p in enumerate(pages):
        if len(p.vectors):
            mean = p.vectors.vectors[:n_tokens].mean(0)
            out[i] = mean / np.linalg.norm(mean)
    return out


def make_query(seed: int, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Weighted query rows (one weighted out) and a pooled query vector."""
    rng = np.random.default_rng(100 + seed)
    query = _unit(rng, n) * np.linspace(0.0, 1.5, n, dtype=np.float32)[:, None]
    return query.astype(np.float32), _unit(rng, 1)[0]


# -- the stores -----------------------------------------------------------------------------
@dataclass
class Built:
    store: VectorStore
    table: PageTable
    score_tol: float  # absolute, on MaxSim sums of up to ~6 (8 weighted query tokens)
    vector_tol: float  # absolute, per component of read-back (and head) vectors
    pooled_tol: float  # absolute, on pooled dot products
    end_to_end: bool = False


def _compressed(tmp_path, config) -> Built:
    comp = Compressor.from_config(config)
    comp.fit([p.vectors for p in PAGES], [p.words for p in PAGES])
    store = CompressedStore(tmp_path / "compressed", comp)
    return store, table_of(PAGES, store.add(PAGES))


def build(kind: str, tmp_path) -> tuple[Built, list[VectorStore]]:
    """A store of `kind` holding PAGES, and everything to close afterwards."""
    if kind == "bf16":
        store = Bf16Store(tmp_path / "bf16", DIM)
        return Built(store, table_of(PAGES, store.add(PAGES)), 1.5e-2, 5e-3, 5e-3), [store]
    if kind == "projected":
        base = Bf16Store(tmp_path / "base", DIM)
        table = table_of(PAGES, base.add(PAGES))
        store = ProjectedStore(tmp_path / "projected", base, np.eye(DIM, dtype=np.float32))
        return Built(store, table, 1.5e-2, 5e-3, 5e-3), [store, base]
    if kind == "compressed-bf16":
        store, table = _compressed(tmp_path, {"preset": "none"})
        return Built(store, table, 1.5e-2, 5e-3, 5e-3), [store]
    if kind == "compressed-fp16":
        store, table = _compressed(tmp_path, {"quantize": "fp16", "pooled": {"quantize": {"kind": "fp16"}}})
        return Built(store, table, 2e-3, 5e-4, 5e-4), [store]
    if kind == "compressed-int8":
        store, table = _compressed(tmp_path, {"preset": "none", "quantize": {"kind": "int8"}})
        return Built(store, table, 3e-2, 1e-2, 5e-3), [store]
    if kind == "qdrant":
        pytest.importorskip("qdrant_client")
        from indexer.stores.qdrant import QdrantStore

        store = QdrantStore(f"qdrant+memory:congruence-{tmp_path.name}", DIM)
        return Built(store, table_of(PAGES, store.add(PAGES)), 1e-4, 1e-6, 1e-5, end_to_end=True), [store]
    if kind == "qdrant-edge":
        pytest.importorskip("qdrant_edge")
        from indexer.stores.qdrant_edge import QdrantEdgeStore

        # float16 token vectors, float32 pooled windows
        store = QdrantEdgeStore(f"qdrant-edge:{tmp_path / 'edge'}", DIM)
        return Built(store, table_of(PAGES, store.add(PAGES)), 2e-3, 5e-4, 1e-5, end_to_end=True), [store]
    raise ValueError(kind)


KINDS = ["bf16", "projected", "compressed-bf16", "compressed-fp16", "compressed-int8", "qdrant",
         "qdrant-edge"]


@pytest.fixture(params=KINDS)
def built(request, tmp_path):
    b, opened = build(request.param, tmp_path)
    yield b
    for store in opened:
        store.close()


# -- capabilities ---------------------------------------------------------------------------
def test_capabilities_are_declared(built):
    store = built.store
    caps = store.capabilities
    assert isinstance(caps, Capabilities) and dataclasses.is_dataclass(caps)
    # Declared by the concrete store (or a store it derives from), not left at the base default.
    owner = next(c for c in type(store).__mro__ if "capabilities" in vars(c))
    assert owner is not VectorStore, type(store).__name__
    assert caps.end_to_end == built.end_to_end
    if caps.float_rows:  # what a ProjectedStore reads from such a store: rows decoded by position
        assert store.n_rows() >= sum(len(p.vectors) for p in PAGES)
        np.testing.assert_allclose(store.vector_rows(0, TOKENS[0]), PAGES[0].vectors.vectors,
                                   atol=max(5e-3, built.score_tol))
    else:
        with pytest.raises(NotImplementedError):
            store.vector_rows(0, 1)
    assert store.dim == DIM and isinstance(store.nbytes(), int) and store.nbytes() >= 0


# -- maxsim ---------------------------------------------------------------------------------
def test_maxsim_over_all_pages(built):
    for seed in range(3):
        query, _ = make_query(seed)
        got = built.store.maxsim(query, built.table)
        assert got.dtype == np.float32 and got.shape == (len(PAGES),)
        np.testing.assert_allclose(got, brute_maxsim(query, PAGES), rtol=0, atol=built.score_tol)
        assert (got[EMPTY_TOKENS] == 0).all()


def test_maxsim_over_a_scattered_subset(built):
    query, _ = make_query(3)
    sub = built.table.subset(np.asarray(SCATTERED))
    got = built.store.maxsim(query, sub)
    assert got.shape == (len(SCATTERED),)
    np.testing.assert_allclose(got, brute_maxsim(query, [PAGES[i] for i in SCATTERED]),
                               rtol=0, atol=built.score_tol)
    # The same pages score the same whichever table they are scored in.
    whole = built.store.maxsim(query, built.table)
    np.testing.assert_allclose(got, whole[SCATTERED], rtol=1e-5, atol=1e-5)


def test_maxsim_ranks_like_brute_force(built):
    """Ranks agree wherever brute-force scores are further apart than the store's precision."""
    for seed in range(3, 6):
        query, _ = make_query(seed)
        got = built.store.maxsim(query, built.table)
        ref = brute_maxsim(query, PAGES)
        i, j = np.triu_indices(len(PAGES), 1)
        clear = np.abs(ref[i] - ref[j]) > 2 * built.score_tol
        assert clear.sum() > len(PAGES)  # the check has teeth
        assert (np.sign(got[i] - got[j])[clear] == np.sign(ref[i] - ref[j])[clear]).all()
        assert np.argmax(got) == np.argmax(ref)


def test_empty_table_and_empty_query(built):
    query, pooled = make_query(0)
    empty = built.table.subset(np.zeros(len(PAGES), bool))
    assert built.store.maxsim(query, empty).shape == (0,)
    assert built.store.dense(pooled, empty).shape == (0, 1)
    assert built.store.head_vectors(empty, 4).shape == (0, DIM)
    none = built.store.maxsim(np.zeros((0, DIM), np.float32), built.table)
    assert none.shape == (len(PAGES),) and (none == 0).all()


# -- dense ----------------------------------------------------------------------------------
def test_dense_matches_pooled_dot_products(built):
    for seed in range(2):
        _, pooled = make_query(seed)
        got = built.store.dense(pooled, built.table)
        ref = brute_dense(pooled, PAGES)
        assert got.dtype == np.float32 and got.shape == ref.shape == (len(PAGES), max(WINDOWS))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
        np.testing.assert_allclose(got[:, 0], ref[:, 0], rtol=0, atol=built.pooled_tol)
        finite = np.isfinite(ref)
        np.testing.assert_allclose(got[finite], ref[finite], rtol=0, atol=built.pooled_tol)


def test_page_dense_from_flat_scores_equals_it_from_the_window_array(built):
    """Search reads the dense signal from window_scores' flat scores (page_dense_flat); it is
    page_dense of dense's window array on every store, the whole table and a scattered subset."""
    from retriever.signals import page_dense, page_dense_flat

    for pages in (built.table, built.table.subset(np.asarray(SCATTERED))):
        for seed in range(3):
            _, pooled = make_query(seed)
            flat = page_dense_flat(*built.store.window_scores(pooled, pages), pages.pool_count)
            np.testing.assert_array_equal(flat, page_dense(built.store.dense(pooled, pages)))


def test_dense_over_a_scattered_subset(built):
    _, pooled = make_query(4)
    got = built.store.dense(pooled, built.table.subset(np.asarray(SCATTERED)))
    ref = brute_dense(pooled, [PAGES[i] for i in SCATTERED])
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    np.testing.assert_allclose(got[:, 0], ref[:, 0], rtol=0, atol=built.pooled_tol)


def test_window_scores_of_a_kept_table_equal_dense(built):
    """window_scores_of(pages) (a fixed sample scored by every query) answers as dense does,
    query after query, on the whole table and on a scattered subset (to the last bits of a
    float product over another number of rows)."""
    for pages in (built.table, built.table.subset(np.asarray(SCATTERED))):
        of_pages = built.store.window_scores_of(pages)
        for seed in range(3):
            _, pooled = make_query(seed)
            got, ref = window_columns(*of_pages(pooled), pages), built.store.dense(pooled, pages)
            np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)  # a product's blocking


# -- head vectors ---------------------------------------------------------------------------
@pytest.mark.parametrize("n_tokens", [1, 4, 100])
def test_head_vectors_are_normalised_means_of_the_first_tokens(built, n_tokens):
    got = built.store.head_vectors(built.table, n_tokens)
    ref = brute_heads(PAGES, n_tokens)
    assert got.dtype == np.float32 and got.shape == (len(PAGES), DIM)
    np.testing.assert_allclose(got, ref, rtol=0, atol=built.vector_tol)
    assert (got[EMPTY_TOKENS] == 0).all()
    norms = np.linalg.norm(np.delete(got, EMPTY_TOKENS, axis=0), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-4)
    sub = built.store.head_vectors(built.table.subset(np.asarray(SCATTERED)), n_tokens)
    np.testing.assert_allclose(sub, got[SCATTERED], rtol=0, atol=1e-6)


# -- reading back ---------------------------------------------------------------------------
def _check_page(got: PageVectors, want: PageVectors, vector_tol: float, pooled_tol: float) -> None:
    n = len(want)
    assert got.vectors.shape == (n, DIM) and got.vectors.dtype == np.float32
    assert got.boxes.shape == (n, 4) and got.boxes.dtype == np.float32
    assert got.words.shape == (n,) and got.words.dtype == np.int32
    assert got.weights.shape == (n,)
    assert got.pooled.shape == want.pooled.shape and got.pooled.dtype == np.float32
    np.testing.assert_allclose(got.vectors, want.vectors, rtol=0, atol=vector_tol)
    np.testing.assert_allclose(got.boxes, want.boxes.astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(got.words, want.words)
    np.testing.assert_allclose(got.pooled, want.pooled, rtol=0, atol=pooled_tol)


def test_page_vectors_round_trip(built):
    for i, page in enumerate(PAGES):
        got = built.store.page_vectors(page.page_id, location_of(built.table, i))
        _check_page(got, page.vectors, built.vector_tol, built.pooled_tol)


def test_pages_vectors_follow_the_table_order(built):
    sub = built.table.subset(np.asarray(SCATTERED))
    got = built.store.pages_vectors(sub)
    assert len(got) == len(SCATTERED)
    for page, i in zip(got, SCATTERED):
        _check_page(page, PAGES[i].vectors, built.vector_tol, built.pooled_tol)
    assert built.store.pages_vectors(built.table.subset(np.zeros(len(PAGES), bool))) == []


# -- the stores against each other ------------------------------------------------------------
def test_identity_projection_scores_like_its_base(tmp_path):
    base = Bf16Store(tmp_path / "base", DIM)
    table = table_of(PAGES, base.add(PAGES))
    projected = ProjectedStore(tmp_path / "projected", base, np.eye(DIM, dtype=np.float32))
    query, pooled = make_query(7)
    # Projected rows are normalize(bf16 row): the same bf16 values up to one rounding step.
    np.testing.assert_allclose(projected.maxsim(query, table), base.maxsim(query, table), atol=1e-2)
    np.testing.assert_array_equal(projected.dense(pooled, table), base.dense(pooled, table))
    np.testing.assert_allclose(projected.head_vectors(table, 4), base.head_vectors(table, 4), atol=8e-3)
    assert len(projected.tokens) == len(base.tokens) == sum(TOKENS)


def test_scattered_pages_without_vectors_score_zero(tmp_path):
    """hybrid's candidates (scattered runs) may all be blank scans: zeros, not a crash."""
    rng = np.random.default_rng(0)

    def unit(n):
        x = rng.normal(size=(n, DIM)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True) if n else x.reshape(0, DIM)

    pages = []
    for i in range(24):
        n = 0 if i % 2 else 6  # every other page a blank scan
        boxes = np.tile(np.array([[1, 1, 5, 5]], np.float32), (n, 1))
        pages.append(StoredPage(i + 1, 1, PageVectors(unit(n), boxes, np.zeros(n, np.int32),
                                                      np.ones(n, np.float32), unit(1)),
                                [f"w{i}_{j}" for j in range(n + 2)]))
    codec = Compressor.from_config({"preset": "none"})
    codec.fit([p.vectors for p in pages], [p.words for p in pages])
    store = CompressedStore(tmp_path / "c", codec)
    table = table_of(pages, store.add(pages))
    query = unit(4)
    assert (store.maxsim(query, table.subset(np.arange(1, 24, 2))) == 0).all()
    mixed = store.maxsim(query, table.subset(np.arange(24)))
    assert (mixed[1::2] == 0).all() and (mixed[0::2] != 0).all()
