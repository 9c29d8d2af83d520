"""Small files share the encoder's batches: same pages and vectors as file by file, fewer model
calls, and a file that breaks a shared batch costs that file only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import TOPICS, write_pdf

from docpress import Index
from docpress.ingest import PAGES_PER_BATCH, IngestReport, ingest, ingest_file
from docpress.pdf.ocr import OcrMode
from indexer.stores.base import location_of


def _corpus(folder: Path) -> list[Path]:
    files = [write_pdf(folder / f"{name}.pdf", [text]) for name, text in TOPICS.items()]
    files.append(write_pdf(folder / "two.pdf", [TOPICS["taxes"][::-1], TOPICS["espresso"].upper()]))
    long = [f"Chapter {i}. " + list(TOPICS.values())[i % len(TOPICS)] for i in range(PAGES_PER_BATCH + 3)]
    files.append(write_pdf(folder / "long.pdf", long))
    return sorted(files)


def _contents(index: Index) -> dict:
    table = index.catalog.page_table()
    out = {}
    for i, page_id in enumerate(table.page_ids):
        row = index.catalog.page(int(page_id))
        name = Path(index.catalog.document(row.doc_id).path).name
        out[(name, row.number)] = (row.text, index.store.page_vectors(int(page_id), location_of(table, i)).vectors)
    return out


def _count_calls(monkeypatch, encoder) -> list[int]:
    calls = []
    real = encoder.encode_pages

    def counting(pages):
        calls.append(len(pages))
        return real(pages)

    monkeypatch.setattr(encoder, "encode_pages", counting)
    return calls


def test_batches_across_files_index_what_file_by_file_does(tmp_path, encoder, monkeypatch):
    files = _corpus(tmp_path / "docs")
    with Index.create(tmp_path / "alone", encoder=encoder) as index, index.writing():
        for path in files:
            ingest_file(path, index.catalog, index.lanes, OcrMode.off, {}, IngestReport())
        alone = _contents(index)
    calls = _count_calls(monkeypatch, encoder)
    with Index.create(tmp_path / "shared", encoder=encoder) as index, index.writing():
        report = ingest([tmp_path / "docs"], index.catalog, index.lanes, OcrMode.off, workers=0)
        shared = _contents(index)
    assert len(report.added) == len(files) and report.skipped == []
    assert report.pages == len(TOPICS) + 2 + PAGES_PER_BATCH + 3
    assert alone.keys() == shared.keys()
    for key, (text, vectors) in alone.items():
        assert shared[key][0] == text
        assert shared[key][1].shape == vectors.shape and np.allclose(shared[key][1], vectors, atol=1e-2)
    # the one-page files fill shared batches; the long file runs in batches of its own
    small_pages = len(TOPICS) + 2
    assert sum(calls) == report.pages
    assert len(calls) <= -(-small_pages // PAGES_PER_BATCH) + 1 + 2


def test_a_file_that_breaks_a_shared_batch_costs_that_file_only(tmp_path, encoder, monkeypatch):
    folder = tmp_path / "docs"
    for name in ("a", "b", "poison", "c"):
        write_pdf(folder / f"{name}.pdf", [TOPICS["volcanoes"] + f" {name}"])
    real = encoder.encode_pages

    def fragile(pages):
        if any(page.text.endswith("poison") for page in pages):
            raise RuntimeError("the model choked")
        return real(pages)

    monkeypatch.setattr(encoder, "encode_pages", fragile)
    skipped, progress = [], []
    with Index.create(tmp_path / "ix", encoder=encoder) as index, index.writing():
        report = ingest([folder], index.catalog, index.lanes, OcrMode.off, workers=0,
                        on_skip=skipped.append, progress=lambda *event: progress.append(event))
    assert sorted(Path(p).name for p in report.added) == ["a.pdf", "b.pdf", "c.pdf"]
    # each committed file is reported once, the retries alone did not report it again
    assert sorted(Path(path).name for path, _, _ in progress) == ["a.pdf", "b.pdf", "c.pdf"]
    assert [Path(s.path).name for s in skipped] == ["poison.pdf"]
    assert "the model choked" in skipped[0].reason and report.skipped == skipped


def test_a_copy_inside_one_batch_is_recorded_as_a_copy(tmp_path, encoder):
    folder = tmp_path / "docs"
    write_pdf(folder / "a.pdf", [TOPICS["football"]])
    (folder / "b.pdf").write_bytes((folder / "a.pdf").read_bytes())
    write_pdf(folder / "c.pdf", [TOPICS["espresso"]])
    with Index.create(tmp_path / "ix", encoder=encoder) as index, index.writing():
        report = ingest([folder], index.catalog, index.lanes, OcrMode.off, workers=0)
        assert [Path(p).name for p in report.added] == ["a.pdf", "c.pdf"]
        assert [Path(p).name for p in report.duplicates] == ["b.pdf"]
        assert len(index.catalog.page_table().page_ids) == 2
