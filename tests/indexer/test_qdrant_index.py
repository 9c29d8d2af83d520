"""The same index on Qdrant (local mode) answers like the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import QUESTIONS, TOPICS

from docpress import Index

pytest.importorskip("qdrant_client")


@pytest.mark.parametrize("location", ["qdrant+path:qdrant/pages", "qdrant+memory:pages"])
def test_qdrant_backed_index_matches_local(tmp_path, topic_dir, topic_index, encoder, location):
    index = Index.create(tmp_path / "ix", encoder=encoder, store=location)
    report = index.add([topic_dir], metadata={"corpus": "topics"})
    assert len(report.added) == len(TOPICS)
    for method in ("maxsim", "dense", "hybrid"):
        for question in QUESTIONS.values():
            ours = index.search(question, k=3, method=method)
            local = topic_index.search(question, k=3, method=method)
            assert [Path(h.path).name for h in ours] == [Path(h.path).name for h in local]
            assert ours[0].score == pytest.approx(local[0].score, rel=0.02, abs=0.02)
    assert index.remove("football.pdf")
    assert all(Path(h.path).stem != "football" for h in index.search(QUESTIONS["football"], k=5))
    index.close()

    if location.startswith("qdrant+path"):
        reopened = Index.open(tmp_path / "ix")
        assert reopened.info()["documents"] == len(TOPICS) - 1
        hit = reopened.search(QUESTIONS["volcanoes"], k=1)[0]
        assert Path(hit.path).stem == "volcanoes"
        reopened.close()


@pytest.mark.parametrize("location", ["qdrant+memory:pages", "qdrant-edge:edge"])
def test_maxsim_through_the_servers_two_stage_query(tmp_path, topic_dir, encoder, location, monkeypatch):
    """Past SERVER_EXACT_PAGES, maxsim on Qdrant is the server's prefetch-then-MaxSim query;
    with every page prefetched it ranks as the exact scan, filters included."""
    if location.startswith("qdrant-edge"):
        pytest.importorskip("qdrant_edge")
    import retriever.search as search

    monkeypatch.setattr(search, "SERVER_EXACT_PAGES", 0)
    index = Index.create(tmp_path / "ix", encoder=encoder, store=location)
    index.add([topic_dir])
    asked = []
    real = index.store.two_stage
    monkeypatch.setattr(index.store, "two_stage",
                        lambda *a: asked.append(a[3]) or real(*a))  # (query, k, candidates, page_ids)
    for path in (None, "*volcanoes.pdf"):
        for question in QUESTIONS.values():
            staged = index.search(question, k=3, method="maxsim", path=path)
            index.searcher.first_stages = False
            exact = index.search(question, k=3, method="maxsim", path=path)
            index.searcher.first_stages = True
            assert [(h.path, h.page) for h in staged] == [(h.path, h.page) for h in exact]
            assert [h.score for h in staged] == pytest.approx([h.score for h in exact], rel=1e-3, abs=1e-3)
    assert len(asked) == 2 * len(QUESTIONS)
    assert asked[0] is None and len(asked[-1]) == len(index.catalog.page_table("*volcanoes.pdf"))
    index.close()


def test_points_the_catalog_does_not_list_never_cost_a_hit(tmp_path, topic_dir, encoder, monkeypatch):
    """A point of a replaced document can outlive its catalog rows for a moment: the two-stage
    answer drops it and still gives k hits, or falls back to the exact scan."""
    import numpy as np

    import retriever.search as search

    monkeypatch.setattr(search, "SERVER_EXACT_PAGES", 0)
    index = Index.create(tmp_path / "ix", encoder=encoder, store="qdrant+memory:pages")
    index.add([topic_dir])
    real = index.store.two_stage
    stray = {"ids": [10**9]}

    def with_strays(query, k, candidates, page_ids):
        ids, scores = real(query, k, candidates, page_ids)
        n = len(stray["ids"])
        return (np.concatenate([stray["ids"], ids])[:k],
                np.concatenate([np.full(n, 1e6, np.float32), scores])[:k])

    monkeypatch.setattr(index.store, "two_stage", with_strays)
    index.searcher.first_stages = False
    exact = [(h.path, h.page) for h in index.search(QUESTIONS["taxes"], k=3, method="maxsim")]
    index.searcher.first_stages = True
    assert [(h.path, h.page) for h in index.search(QUESTIONS["taxes"], k=3, method="maxsim")] == exact
    stray["ids"] = list(range(10**9, 10**9 + 40))  # nothing but strays: the exact scan answers
    assert [(h.path, h.page) for h in index.search(QUESTIONS["taxes"], k=3, method="maxsim")] == exact
    index.close()
