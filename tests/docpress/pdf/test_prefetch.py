"""Reading ahead in worker processes: same pages as reading in order; a bad worker costs one file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
from conftest import TOPICS, write_image_only_pdf, write_pdf
from worker_faults import faulty_reader

from docpress import Index
from docpress.errors import PdfError
from docpress.ingest import ingest
from docpress.pdf.ocr import OcrMode
from docpress.pdf.prefetch import ReadFile, prefetch
from indexer.stores.base import location_of


def _corpus(folder: Path) -> Path:
    for name, text in TOPICS.items():
        write_pdf(folder / f"{name}.pdf", [text, text.upper(), f"{name} notes. {text[::-1]}"])
    write_image_only_pdf(folder / "scan.pdf", "Quarterly revenue rose to 412 million dollars")
    return folder


def _contents(index: Index) -> list[tuple]:
    """(file name, page, text, text source, token vectors) of every page, in file order."""
    table = index.catalog.page_table()
    out = []
    for i, page_id in enumerate(table.page_ids):
        row = index.catalog.page(int(page_id))
        doc = index.catalog.document(row.doc_id)
        vectors = index.store.page_vectors(int(page_id), location_of(table, i))
        out.append((Path(doc.path).name, row.number, row.text, row.text_source, vectors.vectors))
    return sorted(out, key=lambda r: (r[0], r[1]))


def test_reading_ahead_indexes_what_reading_in_order_does(tmp_path, encoder):
    docs = _corpus(tmp_path / "docs")
    results = {}
    for workers in (0, 2):
        with Index.create(tmp_path / f"ix{workers}", encoder=encoder) as index, index.writing():
            report = ingest([docs], index.catalog, index.lanes, OcrMode.auto, workers=workers)
            assert len(report.added) == len(TOPICS) + 1 and report.skipped == []
            results[workers] = _contents(index)
    assert [r[:4] for r in results[0]] == [r[:4] for r in results[2]]
    for a, b in zip(results[0], results[2]):
        assert a[4].shape == b[4].shape and np.allclose(a[4], b[4], atol=1e-2)


def test_a_worker_that_crashes_or_hangs_costs_that_file_only(tmp_path):
    folder = tmp_path / "docs"
    for name in ("a", "crash", "b", "hang", "c"):
        write_pdf(folder / f"{name}.pdf", [TOPICS["taxes"] + " " + name])
    files = sorted(folder.glob("*.pdf"), key=lambda p: "a crash b hang c".split().index(p.stem))
    out = list(prefetch(files, OcrMode.off, workers=2, reader=faulty_reader, time_limit=lambda p: 8.0))
    assert [p.stem for p, _ in out] == ["a", "crash", "b", "hang", "c"]  # in order, every file
    by_name = {p.stem: r for p, r in out}
    for name in ("a", "b", "c"):
        assert isinstance(by_name[name], ReadFile) and by_name[name].pages[0].text.endswith(name)
    assert isinstance(by_name["crash"], PdfError) and "crashed" in by_name["crash"].reason
    assert isinstance(by_name["hang"], PdfError) and "longer than" in by_name["hang"].reason


PARENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from worker_faults import faulty_reader
    from docpress.pdf.ocr import OcrMode
    from docpress.pdf.prefetch import prefetch
    if __name__ == "__main__":
        for item in prefetch([Path(sys.argv[1])], OcrMode.off, workers=1, reader=faulty_reader):
            pass
""")


def test_readers_die_with_a_killed_ingest(tmp_path):
    write_pdf(tmp_path / "hang.pdf", [TOPICS["espresso"]])
    pids = tmp_path / "pids.txt"
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    env = {**os.environ, "DOCPRESS_TEST_PIDS": str(pids),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    parent = subprocess.Popen([sys.executable, str(script), str(tmp_path / "hang.pdf")], env=env)
    for _ in range(300):
        if pids.exists() and pids.read_text().strip():
            break
        time.sleep(0.1)
    worker = int(pids.read_text().split()[0])
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the reader outlived its killed parent")
