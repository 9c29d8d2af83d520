"""BM25 terms: Unicode forms, diacritics, CJK and numbers match across query and page; an
empty or stopword-only query is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from docpress import DocpressError
from retriever.lexical import normalize, query_terms

PAGES = {
    # Arabic as PDFs hold it: presentation forms, no vowel marks.
    "arabic": ["<p>تقرير المبيعات السنوي للشركة وقائمة الكتب والمكتبات في المدينة</p>"],
    "japanese": ["<p>東京都の年次報告書と予算の概要について説明します</p>"],
    "french": ["<p>Le café du quartier publie son résumé financier annuel très détaillé</p>"],
    "numbers": ["<p>The warranty covers 3 years and the pump delivers 15 bar at 2.5 litres.</p>"],
}


def write_html_pdf(path: Path, paragraphs: list[str]) -> Path:
    import pymupdf

    doc = pymupdf.open()
    for html in paragraphs:
        doc.new_page().insert_htmlbox(pymupdf.Rect(50, 50, 550, 400), html)  # fonts for any script
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    return path


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory, encoder):
    from docpress import Index

    folder = tmp_path_factory.mktemp("multilingual")
    for name, pages in PAGES.items():
        write_html_pdf(folder / f"{name}.pdf", pages)
    index = Index.create(folder / "ix", encoder=encoder)
    assert len(index.add([folder], ocr="off").added) == len(PAGES)
    yield index
    index.close()


@pytest.mark.parametrize("query, expected", [
    ("تَقْرِيرُ المَبِيعَاتِ", "arabic"),  # with the vowel marks the page lacks
    ("東京", "japanese"),  # a CJK word inside an unbroken run of characters
    ("cafe resume", "french"),  # without the accents the page has
    ("CAFÉ RÉSUMÉ", "french"),
    ("how many years does the warranty cover? 3", "numbers"),
])
def test_bm25_finds_the_page_whatever_the_written_form(multilingual, query, expected):
    hits = multilingual.search(query, k=1, method="bm25")
    assert Path(hits[0].path).stem == expected and hits[0].score > 0


def test_normal_forms_fold_to_the_same_terms():
    assert query_terms("ﻛﺘﺎﺏ") == query_terms("كِتَابٌ") == ["كتاب"]  # presentation forms, marks
    assert query_terms("ﬁnal ＦＹ２０１８") == ["final", "fy", "2018"]  # ligature, full width
    assert query_terms("2.5 litres at 15 bar") == ["2.5", "litres", "15", "bar"]
    assert normalize("한국어") == " 한국 국어 "  # Hangul runs in bigrams too


@pytest.mark.parametrize("query", ["", "   ", "?!", "the of and", "…"])
def test_empty_or_stopword_only_queries_are_refused(topic_index, query):
    with pytest.raises(DocpressError, match="no words to search for"):
        topic_index.search(query)


def test_the_cli_refuses_an_empty_query_in_one_line(topic_index):
    from typer.testing import CliRunner

    from docpress.cli import app

    result = CliRunner().invoke(app, ["search", "  ?  ", "--index", str(topic_index.directory)])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "no words to search for" in result.output
