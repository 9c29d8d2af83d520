"""Search through the first stages on a whole index. maxsim (token IVF): the same pages as the
exact scan, a filter that keeps few pages still gets its own best pages, new pages are found
and deleted ones never return, and a first stage the disk refuses costs only speed. hybrid
(page-vector IVFs, BM25's best, the best documents' pages): exact where its pool holds every
page, and the right pages from a pool of a few."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import QUESTIONS, TOPICS, write_pdf

import indexer.first_stage as first_stage
import indexer.page_first_stage as page_first_stage
import retriever.search as search
from docpress import Index


@pytest.fixture
def index(tmp_path, encoder, monkeypatch):
    monkeypatch.setattr(first_stage, "EXACT_ROWS", 0)  # every search goes through the stages
    monkeypatch.setattr(page_first_stage, "EXACT_PAGES", 0)
    for topic, text in TOPICS.items():
        write_pdf(tmp_path / "docs" / f"{topic}.pdf",
                  [text, f"Notes. {text.upper()}", f"Summary of {topic}: {text[:90]}"])
    with Index.create(tmp_path / "ix", encoder=encoder) as ix:
        ix.add([tmp_path / "docs"], compression="none")
        yield ix


def _both(index: Index, query: str, method: str = "maxsim", **options):
    """(first stage's hits, the exact scan's hits) for one query."""
    staged = index.search(query, method=method, **options)
    index.searcher.first_stages = False
    try:
        exact = index.search(query, method=method, **options)
    finally:
        index.searcher.first_stages = True
    return staged, exact


def _pages(hits):
    return [(h.path, h.page) for h in hits]


def test_maxsim_through_the_first_stage_ranks_as_the_exact_scan(index, monkeypatch):
    asked = []
    real = first_stage.TokenIvf.candidates
    monkeypatch.setattr(first_stage.TokenIvf, "candidates",
                        lambda self, *a: asked.append(1) or real(self, *a))
    for question in QUESTIONS.values():
        staged, exact = _both(index, question, k=5)
        assert _pages(staged) == _pages(exact)
        assert np.allclose([h.score for h in staged], [h.score for h in exact], atol=1e-5)
    assert len(asked) == len(QUESTIONS)  # it was the stage that answered
    stages = index.info()["first_stages"]  # what is on disk, as `docpress info` shows it
    assert stages["tokens"]["items"] == index.store.n_rows() and stages["tokens"]["bytes"] > 0


def test_a_narrow_filter_gets_its_own_best_pages(index):
    # one document of five: its pages, best first, as the exact scan of that document ranks them
    staged, exact = _both(index, QUESTIONS["taxes"], k=3, path="*espresso.pdf")
    assert _pages(staged) == _pages(exact)
    assert len(staged) == 3 and all(h.path.endswith("espresso.pdf") for h in staged)


def test_new_pages_are_found_and_removed_ones_never_return(index, tmp_path):
    index.search(QUESTIONS["football"], method="maxsim")
    before = dict(index.searcher.cache.token_ivf().state)
    write_pdf(tmp_path / "new" / "glaciers.pdf",
              ["Glaciers carve U-shaped valleys as ice grinds the bedrock; moraines mark where the ice stopped."])
    index.add([tmp_path / "new"], compression="none")
    after = index.searcher.cache.token_ivf().state
    assert after["bound"] > before["bound"] and after["files"]["trained"] == before["files"]["trained"]
    hits = index.search("how do glaciers shape valleys and leave moraines", method="maxsim", k=3)
    assert hits[0].path.endswith("glaciers.pdf")
    index.remove("*football.pdf")
    assert index.searcher.cache.token_ivf().state["files"] == after["files"]  # a delete writes nothing
    hits = index.search(QUESTIONS["football"], method="maxsim", k=20)
    assert hits and not any(h.path.endswith("football.pdf") for h in hits)


def test_a_first_stage_the_disk_refuses_falls_back_to_the_exact_scan(index, monkeypatch):
    def refused(build=True):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index.searcher.cache, "token_ivf", refused)
    staged, exact = _both(index, QUESTIONS["volcanoes"], k=5)
    assert _pages(staged) == _pages(exact) and staged


def test_hybrid_through_its_first_stage_ranks_as_the_scan_when_the_pool_holds_every_page(index, monkeypatch):
    asked = []
    real = page_first_stage.PageIvf.nearest
    monkeypatch.setattr(page_first_stage.PageIvf, "nearest", lambda self, *a: asked.append(1) or real(self, *a))
    for question in QUESTIONS.values():
        staged, exact = _both(index, question, method="hybrid", k=5)
        assert _pages(staged) == _pages(exact)
        # the sample's head scores are float32 products, the scan's float16: within 1e-3
        assert np.allclose([h.score for h in staged], [h.score for h in exact], rtol=1e-3, atol=1e-3)
    assert len(asked) == 2 * len(QUESTIONS)  # the head and the first-window IVFs answered


def test_hybrid_from_a_pool_of_a_few_pages_still_finds_the_best_page(index, monkeypatch):
    monkeypatch.setattr(search, "PAGE_POOL", 1)
    monkeypatch.setattr(search, "TOP_DOCUMENTS", 1)
    for question in QUESTIONS.values():
        staged, exact = _both(index, question, method="hybrid", k=3)
        assert _pages(staged)[0] == _pages(exact)[0]
        assert len(staged) == 3  # the pool: BM25's, the IVFs' and the best document's pages


def test_a_search_never_waits_for_a_first_stage_being_written(index, tmp_path):
    """Another process holding the token IVF's lock (a build takes minutes at 100k pages):
    a search after a write scans exactly at once; once the lock is free, the next search
    brings the stage up to date and goes through it."""
    from filelock import FileLock

    index.search(QUESTIONS["football"], method="maxsim")
    stage = index.searcher.cache.token_ivf()
    bound = stage.state["bound"]
    folder = stage.files.folder
    write_pdf(tmp_path / "new" / "glaciers.pdf",
              ["Glaciers carve U-shaped valleys as ice grinds the bedrock; moraines mark where the ice stopped."])
    with index.writing():  # pages added without the ingest's own cache update
        from docpress.ingest import ingest
        ingest([tmp_path / "new"], index.catalog, index.lanes, "off", None, None, None)
    question = "how do glaciers shape valleys and leave moraines"
    with FileLock(folder / "tokens.lock", thread_local=False):
        staged, exact = _both(index, question, k=3)
        assert _pages(staged) == _pages(exact) and staged[0].path.endswith("glaciers.pdf")
        assert stage.state["bound"] == bound  # not extended: the lock was not free
    index.search(question, method="maxsim", k=3)
    assert stage.state["bound"] > bound  # extended by the search, now that nobody writes


def test_a_search_does_not_build_a_missing_first_stage(index, monkeypatch):
    """Files of other vectors (an older release's) are rebuilt by the next ingest or rm, not
    by a search, which scans exactly meanwhile."""
    cache = index.searcher.cache
    monkeypatch.setattr(first_stage.TokenIvf, "__init__", _renamed(first_stage.TokenIvf.__init__))
    cache._cache.clear()
    built = []
    monkeypatch.setattr(first_stage.TokenIvf, "candidates", lambda *a: built.append(1))
    hits = index.search(QUESTIONS["volcanoes"], method="maxsim", k=3)
    assert hits and not built and cache.token_ivf(build=False) is None
    assert cache.token_ivf() is not None  # a writer's call builds it


def _renamed(init):
    def other_identity(self, folder, store, identity):
        init(self, folder, store, identity + "-other")
    return other_identity


def test_compaction_builds_the_first_stages_of_the_new_rows(index, monkeypatch):
    """compact moves every row (other vectors to the first stage); a search builds nothing,
    so compact builds them at its end."""
    index.remove("*football.pdf")
    index.compact()
    cache = index.searcher.cache
    assert cache.token_ivf(build=False) is not None and cache.page_ivf("head", build=False) is not None
    staged, exact = _both(index, QUESTIONS["volcanoes"], k=3)
    assert _pages(staged) == _pages(exact)


def _grow(index, tmp_path, name="glaciers"):
    write_pdf(tmp_path / name / f"{name}.pdf",
              ["Glaciers carve U-shaped valleys as ice grinds the bedrock; moraines mark where the ice stopped.",
               f"Icebergs calve from the glacier's snout into the fjord ({name})."])
    report = index.add([tmp_path / name], compression="none")
    assert report.pages == 2


def test_an_ingest_that_outgrows_the_first_stages_refits_them_in_the_background(index, tmp_path, monkeypatch):
    """Past RETRAIN_GROWTH the ingest extends the old files, which keep serving, and starts
    `docpress refit` in a process of its own; the refit fits new centroids to the index."""
    import json as json_

    from typer.testing import CliRunner

    import docpress.index as facade
    import indexer.ivf_files as ivf_files
    from docpress.cli import app

    cache = index.searcher.cache
    fitted = {name: dict(stage.state) for name, stage in
              (("tokens", cache.token_ivf()), ("head", cache.page_ivf("head")))}
    monkeypatch.setattr(ivf_files, "RETRAIN_GROWTH", 1.01)  # the next pages outgrow the centroids
    monkeypatch.setenv("DOCPRESS_BACKGROUND_REFIT", "1")
    started = []
    monkeypatch.setattr(facade.subprocess, "Popen", lambda args, **kw: started.append(args))
    _grow(index, tmp_path)
    assert started == [[facade.sys.executable, "-m", "docpress", "refit", "--index", str(index.directory)]]
    served = {"tokens": cache.token_ivf(build=False), "head": cache.page_ivf("head", build=False)}
    for name, stage in served.items():  # extended, the same centroids
        assert stage.state["trained_on"] == fitted[name]["trained_on"]
        assert stage.state["bound"] > fitted[name]["bound"] and stage.outgrown
    question = "how do glaciers shape valleys and leave moraines"
    staged, exact = _both(index, question, k=3)
    assert _pages(staged) == _pages(exact) and staged[0].path.endswith("glaciers.pdf")
    # while that refit runs (its lock held), the next writes start no other
    from filelock import FileLock
    with FileLock(served["tokens"].files.folder / "tokens.rebuild.lock"):
        _grow(index, tmp_path, "fjords")
    assert len(started) == 1

    result = CliRunner().invoke(app, ["refit", "--index", str(index.directory), "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(json_.loads(result.output)["refitted"]) == ["dense", "head", "tokens"]
    live = index.catalog.page_table()
    folder = served["tokens"].files.folder
    refitted = json_.loads((folder / "tokens.json").read_text())
    assert refitted["trained_on"] == int(live.vec_count.sum()) and refitted["files"]["delta"] is None
    # this process moves to the new files at its next write (here a removal) and starts no refit
    index.remove("*football.pdf")
    assert cache.token_ivf(build=False).state == refitted and len(started) == 1
    staged, exact = _both(index, question, k=3)
    assert _pages(staged) == _pages(exact) and staged[0].path.endswith("glaciers.pdf")
    result = CliRunner().invoke(app, ["refit", "--index", str(index.directory)])
    assert result.exit_code == 0 and "nothing to refit" in result.output


def test_with_background_refit_off_the_write_refits_before_it_returns(index, tmp_path, monkeypatch):
    import indexer.ivf_files as ivf_files

    monkeypatch.setattr(ivf_files, "RETRAIN_GROWTH", 1.01)
    monkeypatch.setenv("DOCPRESS_BACKGROUND_REFIT", "0")
    _grow(index, tmp_path)
    live = index.catalog.page_table()
    stage = index.searcher.cache.token_ivf(build=False)
    assert stage.state["trained_on"] == int(live.vec_count.sum()) and not stage.outgrown
    assert index.searcher.cache.page_ivf("head", build=False).state["trained_on"] == len(live)
