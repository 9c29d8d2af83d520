"""hybrid's document signal: the pooled evidence of a document's pages, never a second count of
a one-page document's own BM25."""

from __future__ import annotations

import numpy as np
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
