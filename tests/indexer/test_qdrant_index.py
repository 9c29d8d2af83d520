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
