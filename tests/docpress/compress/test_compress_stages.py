"""Compression stages, the Compressor codec and the compressed store, on synthetic vectors."""

from __future__ import annotations

import numpy as np
import pytest

from docpress.compress import (
    BinaryQuantizer,
    Compressor,
    GridMerger,
    HalfQuantizer,
    Int8Quantizer,
    LexicalPruner,
    PcaReducer,
    PqQuantizer,
    SignalPruner,
    WardMerger,
)
from docpress.compress.quantize import hamming
from docpress.errors import DocpressError, IndexMismatchError
from docpress.types import PageVectors
from indexer.catalog import PageTable
from indexer.stores.base import StoredPage
from indexer.stores.bf16 import Bf16Store
from indexer.stores.compressed import CompressedStore, build_compressed_store

DIM = 64
STOP = ["the", "of", "and", "to", "in", ",", ".", "(", ")", "$"]
TOPIC_WORDS = {
    "revenue": ["revenue", "sales", "growth", "customers", "segment", "quarter"],
    "capex": ["capital", "expenditure", "property", "plant", "equipment", "purchases"],
    "debt": ["debt", "notes", "interest", "maturity", "borrowings", "credit"],
    "tax": ["tax", "income", "deferred", "rate", "provision", "jurisdiction"],
    "cash": ["cash", "equivalents", "operating", "flows", "liquidity", "activities"],
}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def vocab() -> dict[str, np.ndarray]:
    """A direction per word; stopwords and punctuation share a common direction (they match all)."""
    rng = np.random.default_rng(1)
    common = rng.standard_normal(DIM)
    out = {w: _unit(common + 0.3 * rng.standard_normal(DIM)) for w in STOP}
    for words in TOPIC_WORDS.values():
        for w in words:
            out[w] = _unit(rng.standard_normal(DIM))
    return out


def make_page(vocab, topic: str, rng, n_words: int = 60) -> tuple[PageVectors, list[str]]:
    """A page of one topic: its words mixed with stopwords; one vector per word (with noise)."""
    words = [str(rng.choice(TOPIC_WORDS[topic])) if rng.random() < 0.5 else str(rng.choice(STOP))
             for _ in range(n_words)]
    vectors = _unit(np.stack([vocab[w] for w in words]) + 0.15 * rng.standard_normal((n_words, DIM)))
    x0 = 72 + 40 * (np.arange(n_words) % 10)
    y0 = 72 + 14 * (np.arange(n_words) // 10)
    boxes = np.stack([x0, y0, x0 + 35, y0 + 12], 1).astype(np.float32)
    pooled = _unit(vectors.mean(0, keepdims=True))
    return PageVectors(vectors, boxes, np.arange(n_words, dtype=np.int32),
                       np.ones(n_words, np.float32), pooled), words


@pytest.fixture(scope="module")
def corpus(vocab):
    """40 pages, 8 per topic, in topic order."""
    rng = np.random.default_rng(2)
    pages, words, topics = [], [], []
    for topic in TOPIC_WORDS:
        for _ in range(8):
            page, w = make_page(vocab, topic, rng)
            pages.append(page)
            words.append(w)
            topics.append(topic)
    return pages, words, topics


def table_for(locations, doc_ids=None) -> PageTable:
    n = len(locations)
    return PageTable(np.arange(1, n + 1), np.zeros(n, np.int64) if doc_ids is None else np.asarray(doc_ids),
                     np.arange(n), np.array([l.vec_start for l in locations]),
                     np.array([l.vec_count for l in locations]),
                     np.array([l.pool_start for l in locations]),
                     np.array([l.pool_count for l in locations]))


def small(preset: str, **overrides) -> dict:
    """A preset scaled to the 64-dim synthetic vectors."""
    pooled = dict(Compressor.from_config(preset).config()["pooled"])
    if pooled["reduce"]:
        pooled["reduce"] = {**pooled["reduce"], "dims": 16}
    config = {"preset": preset, "pooled": pooled}
    if Compressor.from_config(preset).config()["reduce"]:
        config["reduce"] = {"method": "pca", "dims": 32, "rotate": True}
    config.update(overrides)
    return config


# -- prune ------------------------------------------------------------------------------------
def test_prune_drops_stopwords_and_punctuation(vocab):
    page, words = make_page(vocab, "debt", np.random.default_rng(3))
    pruner = LexicalPruner()
    pruner.fit([words])
    kept = pruner.prune(page, words)
    kept_words = {words[i] for i in kept.keep}
    assert kept_words and kept_words <= set(TOPIC_WORDS["debt"])
    assert kept.n_in == len(page)
    assert len(kept.apply(page)) == len(kept.keep)


def test_prune_keeps_what_it_must(vocab):
    words = ["the", ",", "of", "."]
    page = PageVectors(np.stack([vocab[w] for w in words]), np.zeros((4, 4), np.float32),
                       np.arange(4, dtype=np.int32), np.ones(4, np.float32), np.zeros((0, DIM), np.float32))
    assert len(LexicalPruner(min_keep=2).prune(page, words).keep) == 2
    empty = PageVectors(np.zeros((0, DIM), np.float32), np.zeros((0, 4), np.float32),
                        np.zeros(0, np.int32), np.zeros(0, np.float32), np.zeros((0, DIM), np.float32))
    assert len(LexicalPruner().prune(empty, []).keep) == 0


def test_prune_keep_fraction_by_idf_and_by_weight(vocab):
    rare, common = "jurisdiction", "revenue"
    pruner = LexicalPruner(keep=0.5)
    pruner.fit([[common]] * 9 + [[common, rare]])
    words = [common, rare, common, rare]
    page = PageVectors(np.stack([vocab[w] for w in words]), np.zeros((4, 4), np.float32),
                       np.arange(4, dtype=np.int32), np.ones(4, np.float32), np.zeros((0, DIM), np.float32))
    assert pruner.prune(page, words).keep.tolist() == [1, 3]  # the rarer word survives
    page.weights = np.array([0.1, 0.9, 0.5, 0.2], np.float32)
    assert SignalPruner("weight", keep=0.5).prune(page).keep.tolist() == [1, 2]
    assert SignalPruner("weight", adaptive=0.5).prune(page).keep.tolist() == [1]


# -- merge ------------------------------------------------------------------------------------
def test_ward_merge_pools_and_covers_members(corpus):
    page = corpus[0][0]
    result = WardMerger(pool_factor=3).merge(page)
    merged = result.page
    assert len(merged) == int(np.ceil(len(page) / 3))
    np.testing.assert_allclose(np.linalg.norm(merged.vectors, axis=1), 1.0, atol=1e-5)
    for g in range(len(merged)):
        members = np.flatnonzero(result.groups == g)
        assert len(members)
        box, member_boxes = merged.boxes[g], page.boxes[members]
        assert (box[:2] <= member_boxes[:, :2].min(0)).all() and (box[2:] >= member_boxes[:, 2:].max(0)).all()
        assert merged.words[g] in page.words[members]
        mean = page.vectors[members].mean(0)
        np.testing.assert_allclose(merged.vectors[g], mean / np.linalg.norm(mean), atol=1e-5)
    # Reading order: group ids follow their first member.
    firsts = [np.flatnonzero(result.groups == g)[0] for g in range(len(merged))]
    assert firsts == sorted(firsts)


def test_grid_merge_pools_neighbouring_cells():
    rng = np.random.default_rng(4)
    rows, cols, cell = 4, 6, 10.0
    r, c = np.divmod(np.arange(rows * cols), cols)
    boxes = np.stack([c * cell, r * cell, (c + 1) * cell, (r + 1) * cell], 1).astype(np.float32)
    page = PageVectors(_unit(rng.standard_normal((rows * cols, DIM))), boxes,
                       np.full(rows * cols, -1, np.int32), np.ones(rows * cols, np.float32),
                       np.zeros((0, DIM), np.float32))
    result = GridMerger(pool=2).merge(page)
    assert len(result.page) == (rows // 2) * (cols // 2)
    np.testing.assert_allclose(result.page.boxes[0], [0, 0, 20, 20])
    assert sorted(np.flatnonzero(result.groups == 0)) == [0, 1, cols, cols + 1]


# -- reduce -----------------------------------------------------------------------------------
def test_pca_reconstructs_fitted_data_and_keeps_norms():
    rng = np.random.default_rng(5)
    basis = rng.standard_normal((8, DIM))
    x = _unit(rng.standard_normal((2000, 8)) @ basis + 0.01 * rng.standard_normal((2000, DIM)))
    pca = PcaReducer(dims=8)
    pca.fit(x)
    assert pca.explained > 0.99
    y = pca.transform(x)
    assert y.shape == (2000, 8)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    back = pca.inverse(y)
    assert np.einsum("ij,ij->i", back, x).min() > 0.99
    weighted = pca.transform(x[:3] * np.array([[0.0], [1.0], [2.0]], np.float32))
    np.testing.assert_allclose(np.linalg.norm(weighted, axis=1), [0.0, 1.0, 2.0], atol=1e-5)
    with pytest.raises(DocpressError):
        pca.transform(np.zeros((2, DIM + 1), np.float32))


# -- quantize ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(6)
    centers = _unit(rng.standard_normal((50, DIM)))
    x = _unit(centers[rng.integers(0, 50, 3000)] + 0.02 * rng.standard_normal((3000, DIM)))
    q = _unit(rng.standard_normal((7, DIM))) * np.linspace(0.0, 1.0, 7)[:, None].astype(np.float32)
    return x, q


@pytest.mark.parametrize("quantizer, tolerance", [
    (HalfQuantizer("fp16"), 1e-3), (HalfQuantizer("bf16"), 1e-2), (Int8Quantizer(), 1e-2),
    (PqQuantizer(m=16), 0.15)])
def test_codes_decode_near_the_originals(clustered, quantizer, tolerance):
    x, _ = clustered
    quantizer.fit(x)
    codes = quantizer.encode(x)
    assert codes.dtype == np.uint8 and codes.shape == (len(x), quantizer.code_bytes)
    err = np.linalg.norm(quantizer.decode(codes) - x, axis=1)
    assert err.mean() < tolerance


@pytest.mark.parametrize("quantizer, tolerance", [
    (HalfQuantizer("fp16"), 1e-5), (HalfQuantizer("bf16"), 2e-2), (Int8Quantizer(), 2e-2),
    (PqQuantizer(m=16), 1e-5), (BinaryQuantizer(asymmetric=True), 1e-5),
    (BinaryQuantizer(asymmetric=True, scaled=True), 1e-5)])
def test_scores_on_codes_equal_scores_on_decoded(clustered, quantizer, tolerance):
    x, q = clustered
    quantizer.fit(x)
    codes = quantizer.encode(x)
    on_codes = quantizer.score(quantizer.prepare(q), codes)
    on_decoded = quantizer.decode(codes) @ q.T
    assert on_codes.shape == (len(x), len(q))
    np.testing.assert_allclose(on_codes, on_decoded, atol=tolerance)
    assert quantizer.exact


def test_binary_hamming_scores_follow_the_formula(clustered):
    x, q = clustered
    quantizer = BinaryQuantizer()
    quantizer.fit(x)
    codes = quantizer.encode(x)
    assert codes.shape == (len(x), DIM // 8) and not quantizer.exact
    np.testing.assert_array_equal(np.unpackbits(codes, axis=1).astype(bool), x - quantizer.mean > 0)
    weights = np.linalg.norm(q, axis=1)
    unit = q / np.maximum(weights, 1e-12)[:, None]
    h = hamming(quantizer.bits(unit), codes)  # (n_query, n_vectors)
    expected = weights[:, None] * (DIM - 2 * h) / DIM
    np.testing.assert_allclose(quantizer.score(quantizer.prepare(q), codes), expected.T, atol=1e-5)


def test_binary_handles_dims_that_are_not_whole_bytes():
    rng = np.random.default_rng(7)
    x = _unit(rng.standard_normal((300, 20)))
    for asymmetric in (False, True):
        quantizer = BinaryQuantizer(asymmetric=asymmetric)
        quantizer.fit(x)
        codes = quantizer.encode(x)
        assert codes.shape == (300, 3)
        scores = quantizer.score(quantizer.prepare(x[:2]), codes)
        if asymmetric:
            np.testing.assert_allclose(scores, quantizer.decode(codes) @ x[:2].T, atol=1e-5)
        else:
            h = hamming(quantizer.bits(x[:2]), codes)
            np.testing.assert_allclose(scores, ((20 - 2 * h) / 20).T, atol=1e-5)


# -- the codec --------------------------------------------------------------------------------
def test_config_round_trip_and_presets():
    for preset in ("none", "balanced", "compact", "tiny"):
        config = Compressor.from_config(preset).config()
        assert Compressor.from_config(config).config() == config
    # The manifest's current default is the "none" preset.
    assert Compressor.from_config({"quantize": "bf16"}).config() == Compressor.from_config("none").config()
    custom = Compressor.from_config({"preset": "compact", "quantize": {"kind": "pq", "m": 8}}).config()
    assert custom["quantize"] == {"kind": "pq", "m": 8}
    assert custom["merge"] == Compressor.from_config("compact").config()["merge"]
    for bad in ("huge", {"quantize": {"kind": "zip"}}, {"prune": {"keep": 2.0}},
                {"merge": {"method": "ward", "pool": 3}}, {"colour": "red"},
                {"meta": {"boxes": "u4"}}):
        with pytest.raises(DocpressError):
            Compressor.from_config(bad)


def test_save_load_and_mismatch(tmp_path, corpus):
    pages, words, _ = corpus
    comp = Compressor.from_config(small("compact", quantize={"kind": "pq", "m": 8}))
    report = comp.fit(pages, words)
    assert report.vectors_kept < report.vectors_in
    comp.save(tmp_path / "codec")
    loaded = Compressor.load(tmp_path / "codec", expected=comp.config())
    assert loaded.fingerprint() == comp.fingerprint()
    a, b = comp.compress_page(pages[3], words[3]), loaded.compress_page(pages[3], words[3])
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.pooled, b.pooled)
    q = pages[3].vectors[:4]
    np.testing.assert_allclose(comp.transform_query(q), loaded.transform_query(q))
    with pytest.raises(IndexMismatchError):
        Compressor.load(tmp_path / "codec", expected="tiny")
    with pytest.raises(DocpressError):
        comp.transform_query(np.zeros((2, DIM + 3), np.float32))
    with pytest.raises(DocpressError):
        Compressor.from_config("compact").compress_page(pages[0], words[0])  # not fitted


# -- the store --------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [
    small("compact", quantize={"kind": "pq", "m": 8}),
    small("balanced"),
    small("compact", quantize={"kind": "int8"}),
    small("tiny"),
    small("tiny", quantize={"kind": "binary"}, rerank=10),
])
def test_compressed_store_ranks_the_right_page_first(tmp_path, vocab, corpus, config):
    pages, words, topics = corpus
    comp = Compressor.from_config(config)
    comp.fit(pages, words)
    store = CompressedStore(tmp_path / "store", comp)
    locations = store.add([StoredPage(i + 1, 0, p, w) for i, (p, w) in enumerate(zip(pages, words))])
    table = table_for(locations, doc_ids=[i // 8 for i in range(len(pages))])
    assert store.nbytes() > 0
    for topic in TOPIC_WORDS:
        query = np.stack([vocab[w] for w in TOPIC_WORDS[topic][:3]] + [vocab[","]])
        query[-1] *= 0.0  # a punctuation token weighted out
        scores = store.maxsim(query, table)
        assert scores.shape == (len(pages),)
        assert topics[int(np.argmax(scores))] == topic
        # Scores stay aligned with any subset of the table (a within-document search).
        sub = np.flatnonzero(table.doc_ids == list(TOPIC_WORDS).index(topic))
        np.testing.assert_allclose(store.maxsim(query, table.subset(sub)).argmax(), scores[sub].argmax())
    # Reopening reads the same codec and codes.
    again = CompressedStore(tmp_path / "store", expected=comp.config())
    np.testing.assert_allclose(again.maxsim(query, table), scores, rtol=1e-5)
    # Read back: vectors in the encoder's space, boxes covering the merged words.
    back = again.page_vectors(5, locations[4])
    assert back.vectors.shape[1] == DIM and len(back) == locations[4].vec_count
    assert (back.words >= 0).all() and (back.words < len(words[4])).all()
    original = pages[4].boxes
    for box, w in zip(back.boxes, back.words):
        assert box[0] <= original[w, 0] + 1e-3 and box[3] >= original[w, 3] - 1e-3
    dense = again.dense(pages[0].pooled[0], table)
    assert dense.shape == (len(pages), 1) and int(dense[:, 0].argmax()) < 8


@pytest.mark.parametrize("quantize", [{"kind": "pq", "m": 8}, {"kind": "binary", "scaled": True},
                                      {"kind": "int8"}])
def test_code_scores_equal_decoded_scores_in_the_store(tmp_path, corpus, quantize):
    pages, words, _ = corpus
    comp = Compressor.from_config(small("compact", quantize=quantize, rerank=5))
    comp.fit(pages, words)
    store = CompressedStore(tmp_path / "store", comp)
    locations = store.add([StoredPage(i + 1, 0, p, w) for i, (p, w) in enumerate(zip(pages, words))])
    table = table_for(locations)
    query = pages[9].vectors[:5]
    q = comp.transform_query(query)
    decoded = np.array([(comp.decode(store.compressed_page(loc).codes) @ q.T).max(0).sum()
                        for loc in locations])
    np.testing.assert_allclose(store.decoded_maxsim(q, table), decoded, rtol=2e-2, atol=2e-2)
    scores = store.maxsim(query, table)
    if comp.quantizer.exact:  # scored on the codes, equal to scores on decoded vectors
        np.testing.assert_allclose(scores, decoded, rtol=2e-2, atol=2e-2)
    else:  # Hamming first, then the best 5 pages rescored in float, ranked above the rest
        top = np.argsort(-scores)[:5]
        np.testing.assert_allclose(scores[top], decoded[top], rtol=1e-4, atol=1e-5)
        assert scores[top].min() > np.delete(scores, top).max()


def test_store_refuses_another_codec(tmp_path, corpus):
    pages, words, _ = corpus
    a = Compressor.from_config(small("balanced"))
    a.fit(pages, words)
    CompressedStore(tmp_path / "store", a)
    b = Compressor.from_config(small("balanced", reduce={"method": "pca", "dims": 16}))
    b.fit(pages, words)
    with pytest.raises(IndexMismatchError):
        CompressedStore(tmp_path / "store", b)
    with pytest.raises(IndexMismatchError):
        CompressedStore(tmp_path / "store", expected="tiny")
    with pytest.raises(DocpressError):
        CompressedStore(tmp_path / "nothing")


def test_build_from_a_bf16_store_matches_it_without_compression(tmp_path, vocab, corpus):
    pages, words, _ = corpus
    src = Bf16Store(tmp_path / "src", DIM)
    src_table = table_for(src.add([StoredPage(i + 1, 0, p) for i, p in enumerate(pages)]))
    page_words = {i + 1: w for i, w in enumerate(words)}
    store, locations = build_compressed_store(src, src_table, page_words, Compressor.from_config("none"),
                                              tmp_path / "none", chunk_pages=7)
    table = table_for([locations[int(i)] for i in src_table.page_ids])
    query = np.stack([vocab[w] for w in TOPIC_WORDS["tax"][:3]])
    np.testing.assert_allclose(store.maxsim(query, table), src.maxsim(query, src_table), atol=1e-6)
    compact, locations = build_compressed_store(
        src, src_table, page_words, Compressor.from_config(small("compact", quantize={"kind": "pq", "m": 8})),
        tmp_path / "compact")
    table = table_for([locations[int(i)] for i in src_table.page_ids])
    assert table.vec_count.sum() < src_table.vec_count.sum()
    assert int(np.argmax(compact.maxsim(query, table))) // 8 == list(TOPIC_WORDS).index("tax")
    with pytest.raises(DocpressError):
        build_compressed_store(src, src_table, page_words, compact.compressor, tmp_path / "compact")
