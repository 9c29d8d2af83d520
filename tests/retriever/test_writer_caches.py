"""A process that writes and exits (`docpress ingest`, `docpress rm`) brings up only the caches
other processes read from disk: the first stages, and the BM25 indexes and head vectors where
its update saves them. Readers catch up as before and find the same pages."""

from __future__ import annotations

import numpy as np
from conftest import TOPICS, write_pdf

from docpress import Index
from retriever.bm25 import follow, update_saves


def _texts(keys: np.ndarray) -> list[str]:
    words = list(TOPICS.values())
    return [words[int(k) % len(words)] for k in keys]


def test_update_saves_says_what_follow_does(tmp_path):
    """update_saves (keys and live masks read alone) agrees with follow() in a process without
    the index in memory: a missing index is built and saved, a few new or deleted texts are
    not, many deleted ones or many small segments merge and save."""
    cache = tmp_path / "bm25"
    assert update_saves(cache, np.arange(20))  # nothing saved
    follow(cache, 1, None, lambda: np.arange(20), _texts)
    assert (cache / "stamp.json").exists()

    def saved_by_follow(keys: np.ndarray, generation: int) -> bool:
        before = (cache / "stamp.json").read_text()
        follow(cache, generation, None, lambda: keys, _texts)
        return (cache / "stamp.json").read_text() != before

    cases = [np.arange(20), np.arange(22), np.arange(3, 22), np.arange(10, 22)]  # same, new, few gone, many gone
    said = []
    for generation, keys in enumerate(cases, start=2):
        said.append(update_saves(cache, keys))
        assert saved_by_follow(keys, generation) == said[-1], keys
    assert said == [False, False, False, True]
    assert [update_saves(cache, k) for k in (np.arange(10, 22), np.arange(10, 23))] == [False, False]


def test_a_writer_that_exits_skips_the_caches_only_it_would_hold(tmp_path, encoder, monkeypatch):
    docs = tmp_path / "docs"
    names = list(TOPICS)
    for name in names:
        write_pdf(docs / f"{name}.pdf", [TOPICS[name], TOPICS[name].upper()])
    write_pdf(tmp_path / "later.pdf", ["Minutes of the council: the public library opens on Sundays from May."])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([docs], compression="none")
    heads = tmp_path / "ix" / "cache" / "heads.npz"
    saved = heads.read_bytes()
    with Index.open(tmp_path / "ix") as writer:  # as `docpress ingest` opens it
        writer.searches_after_writes = False
        asked = []
        real = writer.catalog.page_texts
        monkeypatch.setattr(writer.catalog, "page_texts", lambda ids=None: asked.append(ids) or real(ids))
        computed = []
        real_heads = writer.store.head_vectors
        monkeypatch.setattr(writer.store, "head_vectors", lambda t, n: computed.append(len(t)) or real_heads(t, n))
        writer.add([tmp_path / "later.pdf"], compression="none")
        # 1 new page of 13: no BM25 index read its text, no head computed, nothing saved
        assert asked == [] and computed == []
        assert heads.read_bytes() == saved
    with Index.open(tmp_path / "ix") as reader, Index.open(tmp_path / "ix") as warm:
        warm.warm_caches()  # the same index with every cache brought up, for reference
        for method in ("hybrid", "bm25"):
            for query, wanted in [(TOPICS[t][:50], f"{t}.pdf") for t in names] + [("library on Sundays", "later.pdf")]:
                got = [(h.path, h.page) for h in reader.search(query, k=3, method=method)]
                assert got == [(h.path, h.page) for h in warm.search(query, k=3, method=method)]
                assert got[0][0].endswith(wanted), (method, query, got)


def test_a_writer_that_exits_still_saves_heads_when_most_pages_are_new(tmp_path, encoder):
    docs = tmp_path / "docs"
    names = list(TOPICS)
    for name in names:
        write_pdf(docs / f"{name}.pdf", [TOPICS[name]])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([docs / f"{names[0]}.pdf"], compression="none")
    heads = tmp_path / "ix" / "cache" / "heads.npz"
    before = heads.read_bytes()
    with Index.open(tmp_path / "ix") as writer:
        writer.searches_after_writes = False
        writer.add([docs / f"{n}.pdf" for n in names[1:]], compression="none")
    assert heads.read_bytes() != before  # most pages new: saved for the readers
    with np.load(heads) as saved, Index.open(tmp_path / "ix") as reader:
        assert len(saved["page_ids"]) == len(reader.catalog.page_table())
