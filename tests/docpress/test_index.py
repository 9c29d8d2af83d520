"""End to end on PDFs the tests make: every method ranks the right page first."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import QUESTIONS, TOPICS, write_image_only_pdf, write_pdf

from docpress import Index, IndexMismatchError, IndexNotFoundError
from docpress.errors import DocpressError


@pytest.mark.parametrize("method", ["hybrid", "maxsim", "dense", "bm25"])
def test_each_method_ranks_the_topic_page_first(topic_index, method):
    if method == "bm25":
        # BM25 needs shared words; paraphrases are the other methods' job.
        questions = {"photosynthesis": "chlorophyll in chloroplasts", "volcanoes": "basaltic lava",
                     "football": "penalty shootout goalkeeper", "espresso": "descaling solution",
                     "taxes": "net income revenue"}
    else:
        questions = QUESTIONS
    for topic, question in questions.items():
        hits = topic_index.search(question, k=3, method=method)
        assert Path(hits[0].path).stem == topic, (method, question, [h.path for h in hits])
        # k pages, each once (every topic PDF has one page), best first, the winner untied.
        assert len(hits) == 3 and len({(h.path, h.page) for h in hits}) == 3
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True), scores
        assert hits[0].score > hits[1].score, (method, question, scores)


def test_hits_carry_snippet_boxes_and_image(topic_index):
    hit = topic_index.search("descaling solution for the espresso machine", k=1)[0]
    assert "descal" in hit.snippet.lower()
    assert hit.boxes and all(len(b) == 4 for b in hit.boxes)
    assert hit.title == "Espresso"
    assert hit.metadata == {"corpus": "topics"}
    image = hit.image(dpi=72)
    assert image.size == (595, 842)


def test_filters_by_path_glob_and_metadata(topic_index):
    hits = topic_index.search("lava and ash", k=5, path="foot*")
    assert [Path(h.path).stem for h in hits] == ["football"]
    assert topic_index.search("lava", k=5, metadata={"corpus": "other"}) == []
    assert len(topic_index.search("lava", k=5, metadata={"corpus": "topics"})) == len(TOPICS)


def test_a_kept_filter_follows_the_writes(tmp_path, encoder):
    """A filter's pages are kept between searches (a pipeline asks many questions of one
    filter), never past a write: a document added, renamed or removed changes what it holds."""
    docs = tmp_path / "docs"
    write_pdf(docs / "report-a.pdf", [TOPICS["volcanoes"]])
    write_pdf(docs / "notes.pdf", [TOPICS["espresso"]])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([docs], compression="none")
        catalog = index.catalog
        first = catalog.page_table("report-*")
        assert catalog.page_table("report-*") is first and len(first) == 1
        assert catalog.page_table("*/report-a.pdf") is not first  # another filter, its own pages
        write_pdf(docs / "report-b.pdf", [TOPICS["football"]])
        index.add([docs / "report-b.pdf"], compression="none")
        assert len(catalog.page_table("report-*")) == 2
        assert [Path(h.path).name for h in index.search("penalty shootout", k=5, path="report-*")][0] == "report-b.pdf"
        (docs / "report-b.pdf").rename(docs / "memo.pdf")
        index.add([docs], compression="none")  # the same file under another name: a copy
        index.remove("*report-b.pdf")  # the document lives on under the copy's name
        assert len(catalog.page_table("report-*")) == 1 and len(catalog.page_table("memo*")) == 1
        index.remove("*report-a.pdf")
        assert len(catalog.page_table("report-*")) == 0
        assert index.search("lava", k=5, path="report-*") == []


def test_reingest_is_idempotent_replace_and_delete(tmp_path, encoder):
    docs = tmp_path / "docs"
    write_pdf(docs / "a.pdf", [TOPICS["volcanoes"], TOPICS["football"]])
    write_pdf(docs / "b.pdf", [TOPICS["espresso"]])
    index = Index.create(tmp_path / "ix", encoder=encoder)
    first = index.add([docs])
    assert (len(first.added), first.pages) == (2, 3)
    # Page numbers inside a two-page document: football is a.pdf's second page.
    for method in ("hybrid", "bm25"):
        top = index.search("penalty shootout", k=3, method=method)[0]
        assert (Path(top.path).name, top.page) == ("a.pdf", 1), method
    top = index.search("basaltic lava and volcanic ash", k=1)[0]
    assert (Path(top.path).name, top.page) == ("a.pdf", 0)

    again = index.add([docs])
    assert again.added == [] and len(again.unchanged) == 2 and again.pages == 0
    assert index.info()["pages"] == 3

    write_pdf(docs / "a.pdf", [TOPICS["photosynthesis"]])  # a.pdf changes: one page now
    changed = index.add([docs])
    assert len(changed.replaced) == 1 and changed.pages == 1
    assert index.info()["pages"] == 2
    # The old pages are gone: two live pages, neither holds the football words.
    hits = index.search("penalty shootout", k=5, method="bm25")
    assert sorted((Path(h.path).name, h.page) for h in hits) == [("a.pdf", 0), ("b.pdf", 0)]
    assert all(h.score == 0 for h in hits), [h.score for h in hits]
    assert not any("penalty" in h.snippet.lower() for h in hits)
    assert Path(index.search("chlorophyll and sunlight", k=1)[0].path).name == "a.pdf"

    assert index.remove("b.pdf") == [str((docs / "b.pdf").resolve())]
    assert [Path(d.path).name for d in index.documents()] == ["a.pdf"]
    assert all(Path(h.path).name == "a.pdf" for h in index.search("espresso", k=5))
    index.close()


def test_open_refuses_other_encoder_and_missing_index(tmp_path, encoder, topic_index):
    with pytest.raises(IndexNotFoundError):
        Index.open(tmp_path / "nothing-here")

    class OtherEncoder(type(encoder)):
        def config(self):
            return {**super().config(), "max_length": 128}

    other = OtherEncoder.__new__(OtherEncoder)
    other.__dict__.update(encoder.__dict__)
    with pytest.raises(IndexMismatchError, match="built with encoder"):
        Index.open(topic_index.directory, encoder=other)


def test_bad_files_are_reported_and_the_rest_indexed(tmp_path, encoder):
    docs = tmp_path / "docs"
    write_pdf(docs / "good.pdf", [TOPICS["taxes"]])
    (docs / "notes.pdf").write_text("this is not a pdf")
    (docs / "empty.pdf").write_bytes(b"")
    good = (docs / "good.pdf").read_bytes()
    (docs / "truncated.pdf").write_bytes(good[: len(good) // 3])
    index = Index.create(tmp_path / "ix", encoder=encoder)
    report = index.add([docs, tmp_path / "missing.pdf"])
    assert [Path(p).name for p in report.added] == ["good.pdf"]
    reasons = {Path(s.path).name: s.reason for s in report.skipped}
    assert set(reasons) == {"notes.pdf", "empty.pdf", "truncated.pdf", "missing.pdf"}
    assert all(reason and "\n" not in reason for reason in reasons.values())
    index.close()


def test_unknown_method_is_a_clear_error(topic_index):
    with pytest.raises(DocpressError, match="unknown search method"):
        topic_index.search("x", method="magic")


@pytest.mark.slow
def test_ocr_reads_an_image_only_page(tmp_path, encoder):
    pytest.importorskip("rapidocr")
    pdf = write_image_only_pdf(tmp_path / "scan.pdf",
                               "Glaciers carve U-shaped valleys as the ice grinds the bedrock.")
    write_pdf(tmp_path / "other.pdf", [TOPICS["football"]])
    index = Index.create(tmp_path / "ix", encoder=encoder)
    report = index.add([pdf, tmp_path / "other.pdf"], ocr="rapidocr")
    assert report.ocr_pages == 1
    hit = index.search("how do glaciers shape valleys", k=1)[0]
    assert Path(hit.path).name == "scan.pdf"
    assert hit.text_source == "ocr:rapidocr"
    assert "valleys" in hit.snippet.lower()

    plain = Index.create(tmp_path / "ix-off", encoder=encoder)
    report = plain.add([pdf], ocr="off")
    assert report.ocr_pages == 0 and report.empty_pages == 1


@pytest.mark.slow
def test_tesseract_ocr_when_installed(tmp_path, encoder):
    import shutil

    if not shutil.which("tesseract"):
        pytest.skip("tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-eng)")
    pdf = write_image_only_pdf(tmp_path / "scan.pdf",
                               "Glaciers carve U-shaped valleys as the ice grinds the bedrock.")
    index = Index.create(tmp_path / "ix", encoder=encoder)
    report = index.add([pdf], ocr="tesseract")
    assert report.ocr_pages == 1
    hit = index.search("glaciers valleys", k=1)[0]
    assert hit.text_source == "ocr:tesseract" and "valleys" in hit.snippet.lower()


def test_older_index_format_is_refused(tmp_path, encoder):
    import json

    from indexer.manifest import MANIFEST

    index = Index.create(tmp_path / "ix", encoder=encoder)
    index.close()
    manifest = tmp_path / "ix" / MANIFEST
    data = json.loads(manifest.read_text())
    data["format_version"] = 0
    manifest.write_text(json.dumps(data))
    with pytest.raises(IndexMismatchError, match="format version 0"):
        Index.open(tmp_path / "ix")
