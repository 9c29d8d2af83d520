"""hybrid's document signal: the pooled evidence of a document's pages, never a second count of
a one-page document's own BM25."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOPICS, write_pdf


def test_only_documents_of_several_pages_carry_a_document_signal(tmp_path, encoder):
    from docpress import Index

    for topic, text in TOPICS.items():
        write_pdf(tmp_path / "docs" / f"{topic}.pdf", [text])
    write_pdf(tmp_path / "docs" / "minutes.pdf", [f"Item {i}: the council discussed the volcano "
                                                  "evacuation plan and its budget." for i in range(4)])
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([tmp_path / "docs"])
        table = index.catalog.page_table()
        signal = index.searcher.documents("volcano evacuation budget", table)
        names = {d.id: d.path for d in index.documents()}
        multi = np.asarray([names[int(d)].endswith("minutes.pdf") for d in table.doc_ids])
        assert not signal[~multi].any()  # one-page documents: their page signals say it all
        assert (signal[multi] > 0).all() and len(set(signal[multi].tolist())) == 1  # one value a document
        one = index.searcher.documents("volcano", table.subset(multi))
        assert not one.any()  # one document searched: no document signal at all


def test_dense_reads_a_later_window_that_answers_clearly_better(tmp_path, encoder):
    """A page's dense signal is its first window, or a later one that beats it by more than
    LATER_WINDOW_MARGIN: an answer below a long opening still counts, in bf16 and compressed."""
    from docpress import Index
    from retriever.signals import LATER_WINDOW_MARGIN, page_dense

    opening = " ".join(f"Item {i}: the council reviewed the road resurfacing schedule for district {i}."
                       for i in range(22))
    answer = "Library hours: the public library will open on Sundays from 1 p.m. to 5 p.m."
    write_pdf(tmp_path / "docs" / "minutes.pdf", [f"{opening} {answer}"])
    for topic, text in TOPICS.items():
        write_pdf(tmp_path / "docs" / f"{topic}.pdf", [text])
    question = "Will the public library be open on Sundays?"
    with Index.create(tmp_path / "ix", encoder=encoder) as index:
        index.add([tmp_path / "docs"])
        table = index.catalog.page_table()
        names = {d.id: d.path for d in index.documents()}
        row = next(i for i, d in enumerate(table.doc_ids) if names[int(d)].endswith("minutes.pdf"))
        qv = encoder.encode_queries([question])[0]
        windows = index.searcher.main.store.dense(qv.pooled, table)
        assert windows.shape[1] >= 2 and windows[row, 1:].max() > windows[row, 0] + LATER_WINDOW_MARGIN
        dense = index.searcher.dense(qv, table)
        assert dense[row] == pytest.approx(windows[row, 1:].max() - LATER_WINDOW_MARGIN, abs=1e-6)
        np.testing.assert_array_equal(dense, page_dense(windows))
        assert index.search(question, k=1, method="dense")[0].path.endswith("minutes.pdf")
    # the presets keep every window: a compressed index reads the same later window
    with Index.open(tmp_path / "ix") as index:
        index.compress("balanced")
        table = index.catalog.page_table()
        windows = index.searcher.main.store.dense(qv.pooled, table)
        assert windows.shape[1] >= 2 and np.isfinite(windows[row, 1])
        assert index.search(question, k=1, method="dense")[0].path.endswith("minutes.pdf")
