"""BM25 in segments: bm25s's scores, kept exact through additions, deletions, merges and a
save and load; after a write only the new texts are tokenised."""

from __future__ import annotations

import bm25s
import numpy as np
import pytest
from conftest import TOPICS, write_pdf

from docpress import Index
from retriever.bm25 import MAX_SEGMENTS, Bm25Index, _stemmer
from retriever.lexical import TOKEN_PATTERN, normalize

TEXTS = [*TOPICS.values(), "", "Revenue grew 12% in fiscal 2022; revenue per share 3.14",
         *(t.upper()[: 80 + 7 * i] for i, t in enumerate(TOPICS.values())),
         "taxes taxes taxes and the volcano", "Kaffee und Espresso: Entkalkung der Maschine"]
QUERIES = ["revenue 2022", "volcano lava eruption", "taxes", "espresso descaling machine",
           "photosynthesis chlorophyll light", "3.14 revenue share", "nothing matches zzzz"]


def _bm25s_scores(texts: list[str], query: str) -> np.ndarray:
    stemmer = _stemmer()
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([normalize(t) for t in texts], stopwords="en", stemmer=stemmer,
                                   token_pattern=TOKEN_PATTERN, show_progress=False), show_progress=False)
    terms = bm25s.tokenize([normalize(query)], stopwords="en", stemmer=stemmer, token_pattern=TOKEN_PATTERN,
                           return_ids=False, show_progress=False)[0]
    terms = [t for t in terms if t in retriever.vocab_dict]
    return retriever.get_scores(terms) if terms else np.zeros(len(texts), np.float32)


@pytest.mark.parametrize("query", QUERIES)
def test_scores_are_bm25s_scores(query):
    index = Bm25Index.build(np.arange(len(TEXTS)) * 10, TEXTS)
    np.testing.assert_allclose(index.scores(query), _bm25s_scores(TEXTS, query), rtol=1e-5, atol=1e-6)


def test_additions_deletions_and_merges_stay_exact(tmp_path):
    keys = np.arange(len(TEXTS), dtype=np.int64) + 100
    text_of = dict(zip(keys.tolist(), TEXTS))
    texts = lambda ids: [text_of[int(i)] for i in ids]  # noqa: E731
    index = Bm25Index.build(keys[:4], texts(keys[:4]))
    live = list(keys[:4])
    # grow one text at a time (segments pile up, then merge), dropping one now and then
    for step, key in enumerate(keys[4:]):
        live.append(int(key))
        if step % 3 == 2:
            live.pop(1)
        index = index.updated(np.asarray(live), texts)
        assert len(index.segments) <= MAX_SEGMENTS
        for query in QUERIES:
            expected = _bm25s_scores(texts(live), query)
            np.testing.assert_allclose(index.scores(query, np.asarray(live)), expected, rtol=1e-5, atol=1e-6)
    assert index.updated(np.asarray(live), texts) is index  # nothing changed: the same index
    # the nonzero entries alone: for the live keys in another order, and for a subset with an
    # unknown key among them
    for asked in (np.asarray(live[::-1]), np.asarray([live[2], 999_999, live[0]])):
        for query in QUERIES:
            dense = index.scores(query, asked)
            positions, values = index.sparse_scores(query, asked)
            assert positions.tolist() == np.flatnonzero(dense).tolist()
            np.testing.assert_array_equal(values, dense[positions])

    index.save(tmp_path / "bm25", {"generation": 7})
    loaded, stamp = Bm25Index.load(tmp_path / "bm25", {"generation": 7})
    assert stamp["generation"] == 7 and Bm25Index.load(tmp_path / "bm25", {"generation": 8}) is None
    for query in QUERIES:
        np.testing.assert_array_equal(loaded.scores(query, np.asarray(live)), index.scores(query, np.asarray(live)))
    assert Bm25Index.load(tmp_path / "missing", {}) is None
    (tmp_path / "bm25" / "bm25.npz").write_bytes(b"garbage")
    assert Bm25Index.load(tmp_path / "bm25", {"generation": 7}) is None  # damaged: rebuilt by the caller


def test_after_a_write_only_the_new_pages_are_tokenised(tmp_path, encoder, monkeypatch):
    names = list(TOPICS)
    for name in names:
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name], TOPICS[name][::-1]])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([tmp_path / "docs" / f"{n}.pdf" for n in names[:-1]], compression="none")
        assert index.search("lava from the volcano", k=1, method="bm25")[0].path.endswith("volcanoes.pdf")
        stamp = tmp_path / "ix" / "cache" / "bm25-pages" / "stamp.json"
        saved = stamp.read_text()
        asked = []
        real = index.catalog.page_texts
        monkeypatch.setattr(index.catalog, "page_texts", lambda ids=None: asked.append(len(ids)) or real(ids))
        index.add([tmp_path / "docs" / f"{names[-1]}.pdf"], compression="none")
        # the add brought the caches up to date: the new document's two pages were read once
        # for the page index and once for the heads' index, and the search reads nothing
        assert asked == [2, 2]
        top = index.search(TOPICS[names[-1]][:60], k=1, method="bm25")[0]
        assert top.path.endswith(f"{names[-1]}.pdf") and asked == [2, 2]
        index.remove(f"*{names[-1]}.pdf")
        hits = index.search(TOPICS[names[-1]][:60], k=3, method="bm25")
        assert all(not h.path.endswith(f"{names[-1]}.pdf") for h in hits) and asked == [2, 2]
        assert stamp.read_text() == saved  # small updates are redone by each reader, not saved
    # another process: the saved index plus the pages added since
    with Index.open(tmp_path / "ix") as reader:
        fresh = Bm25Index.build(*reader.catalog.page_texts())
        for query in QUERIES:
            ids = reader.catalog.page_table().page_ids
            np.testing.assert_allclose(reader.searcher.cache.page_bm25().scores(query, ids),
                                       fresh.scores(query, ids), rtol=1e-5, atol=1e-6)


def test_a_large_build_is_read_in_batches_into_sealed_segments(monkeypatch):
    import retriever.bm25 as bm25

    monkeypatch.setattr(bm25, "SEGMENT_TEXTS", 4)
    monkeypatch.setattr(bm25, "READ_TEXTS", 3)
    keys = np.arange(len(TEXTS), dtype=np.int64)
    reads = []

    def texts(ids):
        reads.append(len(ids))
        return [TEXTS[int(i)] for i in ids]

    index = Bm25Index.built(keys, texts)
    assert max(reads) <= 3 and sum(reads) == len(TEXTS)
    assert [len(s.keys) for s in index.segments] == [4] * (len(TEXTS) // 4) + ([len(TEXTS) % 4] if len(TEXTS) % 4 else [])
    for query in QUERIES:
        np.testing.assert_allclose(index.scores(query), _bm25s_scores(TEXTS, query), rtol=1e-5, atol=1e-6)
    # sealed (full) segments stay as they are; the small ones written since are merged
    grown = index
    for extra in range(6):
        grown = grown.updated(np.concatenate([keys, np.arange(100, 101 + extra)]),
                              lambda ids: [TEXTS[int(i) % len(TEXTS)] for i in ids])
    sealed = sum(1 for s in grown.segments if len(s.keys) == 4)
    assert sealed >= len(TEXTS) // 4 and len(grown.segments) - sealed <= bm25.MAX_SEGMENTS


def test_a_document_under_a_new_file_name_is_searched_by_it(tmp_path, encoder):
    """Removing a file whose identical copy stays moves the document to the copy's path: the
    document-level indexes (their texts start with the file name) follow, in this process and
    in a new one."""
    write_pdf(tmp_path / "docs" / "volcanoes.pdf", [TOPICS["volcanoes"]])
    write_pdf(tmp_path / "docs" / "photosynthesis.pdf", [TOPICS["photosynthesis"]])
    (tmp_path / "docs" / "zanzibar.pdf").write_bytes((tmp_path / "docs" / "volcanoes.pdf").read_bytes())
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([tmp_path / "docs"], compression="none")
        assert index.searcher.cache.profile_bm25().scores("zanzibar").max() == 0
        index.remove(str(tmp_path / "docs" / "volcanoes.pdf"))
        ids, texts = index.catalog.document_texts(100)
        fresh = Bm25Index.build(ids, texts).scores("zanzibar", ids)
        assert fresh.max() > 0
        np.testing.assert_allclose(index.searcher.cache.profile_bm25().scores("zanzibar", ids), fresh, rtol=1e-5)
    with Index.open(tmp_path / "ix") as reader:
        np.testing.assert_allclose(reader.searcher.cache.profile_bm25().scores("zanzibar", ids), fresh, rtol=1e-5)


def test_an_index_from_before_ids_were_recorded_never_gives_them_twice(tmp_path, encoder):
    for name in ("photosynthesis", "volcanoes", "espresso"):
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name]])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([tmp_path / "docs" / "photosynthesis.pdf", tmp_path / "docs" / "volcanoes.pdf"],
                  compression="none")
        index.search("lava", k=1, method="bm25")
        with index.catalog.transaction():  # as an index written by older code has it
            index.catalog.db.execute("DELETE FROM state WHERE key LIKE 'next_id.%'")
        old_pages = set(index.catalog.page_table().page_ids.tolist())
        old_docs = {d.id for d in index.catalog.documents()}
    with Index.open(tmp_path / "ix") as index:
        index.remove("volcanoes.pdf")  # the newest document and page
        index.add([tmp_path / "docs" / "espresso.pdf"], compression="none")
        assert min(set(index.catalog.page_table().page_ids.tolist()) - old_pages) > max(old_pages)
        assert max(d.id for d in index.catalog.documents()) > max(old_docs)
        hits = index.search("lava volcano eruption", k=3, method="bm25")
        assert all(not h.path.endswith("espresso.pdf") or h.score == 0 for h in hits)
        assert index.search("espresso descaling", k=1, method="bm25")[0].path.endswith("espresso.pdf")


@pytest.mark.parametrize("kept", [1 << 23, 3])
def test_the_best_keys_and_the_z_scale_are_those_of_the_whole_scores(monkeypatch, kept):
    """top_scores (hybrid's BM25 on large indexes): the best k and the z-scale of the scores
    of every key, for every live key and for a filter with an unknown key; the same whether
    the flattened postings of every term stay cached or almost none do."""
    import retriever.bm25_flat as bm25_flat
    from retriever.fusion import standardize, top_indices

    monkeypatch.setattr(bm25_flat, "CACHED_POSTINGS", kept)
    keys = np.arange(len(TEXTS), dtype=np.int64) * 5 + 2
    text_of = dict(zip(keys.tolist(), TEXTS))
    index = Bm25Index.build(keys[:6], TEXTS[:6])
    live = np.setdiff1d(keys, keys[[1, 7]])  # two dead texts, the rest in a second segment
    index = index.updated(live, lambda ids: [text_of[int(i)] for i in ids])
    assert len(index.segments) == 2 and not index.live[0].all()
    # every live key in the page table's order and in another; a filter with an unknown key
    for asked in (live, live[::-1].copy(), np.asarray([live[3], 999_999, live[0], live[5]])):
        for query in QUERIES + ["revenue revenue taxes"]:  # a repeated term counts twice
            dense = index.scores(query, asked)
            if len(asked) == len(live):  # every live text: bm25s's scores of them
                expected = _bm25s_scores([text_of[int(k)] for k in asked], query)
                np.testing.assert_allclose(dense, expected, rtol=1e-5, atol=1e-6)
            for k in (1, 3, 50):
                best = index.top_scores(query, asked, k)
                assert best.top.tolist() == top_indices(dense, k).tolist()
                at = np.arange(len(asked))
                np.testing.assert_array_equal(best.values_at(at), dense)
                np.testing.assert_allclose(best.standardized(at), standardize(dense), atol=1e-9)
