"""The search caches follow writes incrementally and never serve a stale page: head vectors
are computed for new pages only, and recomputed where rows changed (a compaction, a page id
given again)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOPICS, write_pdf

from docpress import Index
from retriever.signals import HEAD_TOKENS


def _expected(index: Index) -> np.ndarray:
    table = index.catalog.page_table()
    store = index.store  # the class's method: the tests count the cache's calls on the instance
    return type(store).head_vectors(store, table, HEAD_TOKENS).astype(np.float16).astype(np.float32)  # kept in f16


def _counting(monkeypatch, store) -> list[int]:
    asked = []
    real = store.head_vectors

    def head_vectors(table, n_tokens):
        asked.append(len(table))
        return real(table, n_tokens)

    monkeypatch.setattr(store, "head_vectors", head_vectors)
    return asked


def test_head_vectors_follow_adds_deletes_and_compaction(tmp_path, encoder, monkeypatch):
    names = list(TOPICS)
    for name in names:
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name], TOPICS[name].upper()])
    first, rest = names[:3], names[3:]
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([tmp_path / "docs" / f"{n}.pdf" for n in first], compression="none")
        cache = index.searcher.cache
        asked = _counting(monkeypatch, index.store)
        table = index.catalog.page_table()
        np.testing.assert_array_equal(cache.head_vectors(table), _expected(index))
        assert asked == []  # the add computed them (Index.warm_caches)

        index.add([tmp_path / "docs" / f"{rest[0]}.pdf"], compression="none")
        table = index.catalog.page_table()
        np.testing.assert_array_equal(cache.head_vectors(table), _expected(index))
        assert asked == [2]  # only the new document's pages

        # the newest document removed, another added: ids are never given twice
        gone = set(index.catalog.page_table().page_ids.tolist())
        last_doc = max(d.id for d in index.catalog.documents())
        index.remove(f"*{rest[0]}.pdf")
        index.add([tmp_path / "docs" / f"{rest[1]}.pdf"], compression="none")
        table = index.catalog.page_table()
        assert min(set(table.page_ids.tolist()) - gone) > max(gone)
        assert max(d.id for d in index.catalog.documents()) == last_doc + 1
        np.testing.assert_array_equal(cache.head_vectors(table), _expected(index))
        assert asked == [2, 2]

        index.compact()  # rows moved to a new folder: every head recomputed from it, at its end
        asked = _counting(monkeypatch, index.store)  # the index reopened its parts on it
        table = index.catalog.page_table()
        np.testing.assert_array_equal(index.searcher.cache.head_vectors(table), _expected(index))
        assert asked == []  # compact brought the caches up (Index.warm_caches)


def test_a_reader_picks_up_the_saved_heads_and_adds_the_new_pages(tmp_path, encoder, monkeypatch):
    for name in TOPICS:
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name]])
    files = sorted((tmp_path / "docs").glob("*.pdf"))
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add(files[:-1], compression="none")  # builds and saves the heads
    with Index.open(tmp_path / "ix") as writer:  # another process adds a page, caches cold
        writer.warm_caches = lambda: None
        writer.add(files[-1:], compression="none")
    with Index.open(tmp_path / "ix") as reader:
        asked = _counting(monkeypatch, reader.store)
        table = reader.catalog.page_table()
        np.testing.assert_array_equal(reader.searcher.cache.head_vectors(table), _expected(reader))
        assert asked[0] == 1  # the saved heads came from disk; only the new page was computed


def test_a_few_new_heads_are_not_saved_again_but_every_reader_gets_them(tmp_path, encoder, monkeypatch):
    import retriever.signals as signals

    monkeypatch.setattr(signals, "SAVE_SHARE", 0.5)
    for name in TOPICS:
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name], TOPICS[name][::-1]])
    files = sorted((tmp_path / "docs").glob("*.pdf"))
    saved = tmp_path / "ix" / "cache" / "heads.npz"
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add(files[:-1], compression="none")  # built from nothing: saved
        first = saved.stat().st_mtime_ns
        index.add(files[-1:], compression="none")  # 2 new of 12 pages: kept in memory only
        assert saved.stat().st_mtime_ns == first
    with Index.open(tmp_path / "ix") as reader:
        asked = _counting(monkeypatch, reader.store)
        table = reader.catalog.page_table()
        np.testing.assert_array_equal(reader.searcher.cache.head_vectors(table), _expected(reader))
        assert asked == [2]


def test_saved_heads_are_carried_over_a_block_at_a_time_after_deletes(tmp_path, encoder, monkeypatch):
    """A reader whose saved heads are of an older state (a document removed, one added) reads
    the kept rows from the file in blocks, never the whole saved array beside the new one; a
    file damaged after its state was read costs a recomputation, not an answer."""
    import retriever.signals as signals

    import docpress.index

    monkeypatch.setattr(signals.SavedHeads, "BLOCK", 2)
    monkeypatch.setattr(docpress.index, "AUTO_COMPACT_SHARE", 1.0)  # rows stay where they are
    names = list(TOPICS)
    for name in names:
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name], TOPICS[name].upper(), TOPICS[name][::-1]])
    files = {n: tmp_path / "docs" / f"{n}.pdf" for n in names}
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([files[n] for n in names[:-1]], compression="none")  # saves the heads
    with Index.open(tmp_path / "ix") as writer:  # another process: a delete and an add, caches cold
        writer.warm_caches = lambda: None
        writer.remove(f"*{names[1]}.pdf")
        writer.add([files[names[-1]]], compression="none")
    blocks = []
    real = signals.SavedHeads.rows_into
    monkeypatch.setattr(signals.SavedHeads, "rows_into", lambda self, *a: blocks.append(1) or real(self, *a))
    with Index.open(tmp_path / "ix") as reader:
        asked = _counting(monkeypatch, reader.store)
        table = reader.catalog.page_table()
        np.testing.assert_array_equal(reader.searcher.cache.head_vectors(table), _expected(reader))
        assert asked == [3] and blocks  # only the new document's pages computed; the rest read in blocks
    saved = tmp_path / "ix" / "cache" / "heads.npz"
    with Index.open(tmp_path / "ix") as writer:  # one more page elsewhere: the saved heads are behind again
        writer.warm_caches = lambda: None
        writer.remove(f"*{names[2]}.pdf")
    with Index.open(tmp_path / "ix") as reader:
        monkeypatch.setattr(signals.SavedHeads, "rows_into", _broken)
        asked = _counting(monkeypatch, reader.store)
        table = reader.catalog.page_table()
        np.testing.assert_array_equal(reader.searcher.cache.head_vectors(table), _expected(reader))
        assert asked == [len(table)] and saved.exists()  # every head computed again


def _broken(*args):
    raise OSError(5, "Input/output error")


def test_saved_heads_replaced_since_their_ids_were_read_are_refused(tmp_path):
    """Another reader may save newer heads between reading the ids and reading the rows:
    the rows of another state are never paired with these ids."""
    from retriever.signals import SavedHeads

    path = tmp_path / "heads.npz"
    np.savez(path, generation=7, page_ids=np.arange(4), heads=np.ones((4, 3), np.float16),
             identity="v", vec_start=np.arange(4))
    SavedHeads(path, "v", 7, 4).rows_into(np.zeros((4, 3), np.float16), np.arange(4), np.arange(4))
    np.savez(path, generation=8, page_ids=np.arange(5), heads=np.ones((5, 3), np.float16),
             identity="v", vec_start=np.arange(5))
    for call in (lambda h: h.whole(), lambda h: h.rows_into(np.zeros((4, 3), np.float16), np.arange(4), np.arange(4))):
        with pytest.raises(ValueError):
            call(SavedHeads(path, "v", 7, 4))


def test_a_page_has_the_same_head_score_with_and_without_a_filter(tmp_path, encoder):
    """A filter's (or a first stage's pool's) few pages are scored by the same float16 product
    as the whole table, so a page's head score does not depend on what else is searched."""
    for name in TOPICS:
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name], TOPICS[name].upper()])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add(sorted((tmp_path / "docs").glob("*.pdf")), compression="none")
        cache, table = index.searcher.cache, index.catalog.page_table()
        assert len(table) >= 8
        pooled = index.encoder.encode_queries(["how do plants make sugar from light"])[0].pooled
        every = cache.head_scores(table, pooled)
        few = np.asarray([1, len(table) - 2])  # few enough to be gathered, not scanned
        np.testing.assert_array_equal(cache.head_scores(table.subset(few), pooled), every[few])


def test_a_writer_extending_the_head_stage_computes_the_kept_values(tmp_path, encoder, monkeypatch):
    """A process without the kept heads computes a few pages' heads alone for the head first
    stage, and they are the kept heads' values (float16), not a nearby approximation."""
    for name in TOPICS:
        write_pdf(tmp_path / "docs" / f"{name}.pdf", [TOPICS[name], TOPICS[name].upper()])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add(sorted((tmp_path / "docs").glob("*.pdf")), compression="none")
        kept = index.searcher.cache.head_vectors(index.catalog.page_table().subset(np.asarray([3])))
    with Index.open(tmp_path / "ix") as fresh:
        cache = fresh.searcher.cache
        asked = _counting(monkeypatch, fresh.store)
        got = cache._heads_for_stage(fresh.catalog.page_table().subset(np.asarray([3])))
        assert asked == [1] and "heads" not in cache._cache  # one page computed, nothing carried
        np.testing.assert_array_equal(got, kept)
