"""Many readers and one writer at a time: nothing dropped, nothing half seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from conftest import QUESTIONS, TOPICS, write_pdf
from typer.testing import CliRunner

from docpress import Index
from docpress.cli import app

runner = CliRunner()
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}

HOLDER = textwrap.dedent("""
    import sys, time
    from docpress import Index
    index = Index.open(sys.argv[1])
    with index.writing():
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def _folder(root: Path, names: list[str], tag: str) -> Path:
    for name in names:
        write_pdf(root / f"{tag}-{name}.pdf", [f"{TOPICS[name]} Edition {tag}."])
    return root


def test_a_second_writer_refuses_with_no_wait_and_otherwise_waits(tmp_path, encoder):
    ix = tmp_path / "ix"
    Index.create(ix, encoder=encoder).close()
    docs = _folder(tmp_path / "docs", ["espresso", "taxes"], "a")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(ix), "3"], stdout=subprocess.PIPE,
                              text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = runner.invoke(app, ["ingest", str(docs), "--index", str(ix), "--no-wait"])
        assert refused.exit_code == 1 and f"pid {holder.pid}" in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
        waited = runner.invoke(app, ["ingest", str(docs), "--index", str(ix), "--json"])
        assert waited.exit_code == 0, waited.output
        assert "waiting:" in waited.stderr and len(json.loads(waited.stdout)["added"]) == 2
    finally:
        holder.wait(timeout=60)


def test_two_ingests_at_once_both_land(tmp_path, encoder):
    ix = tmp_path / "ix"
    Index.create(ix, encoder=encoder).close()
    first = _folder(tmp_path / "one", ["espresso", "taxes", "volcanoes"], "one")
    second = _folder(tmp_path / "two", ["football", "photosynthesis"], "two")
    runs = [subprocess.Popen([sys.executable, "-m", "docpress", "ingest", str(folder), "--index", str(ix),
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            for folder in (first, second)]
    outputs = [run.communicate(timeout=300) for run in runs]
    for run, (stdout, stderr) in zip(runs, outputs):
        assert run.returncode == 0, stderr
        assert json.loads(stdout)["skipped"] == []
    with Index.open(ix, encoder=encoder) as index:
        assert len(index.documents()) == 5 and index.info()["pages"] == 5
        assert Path(index.search(QUESTIONS["football"], k=1)[0].path).name == "two-football.pdf"


def test_readers_never_see_a_half_document_during_ingest_and_compaction(tmp_path, encoder):
    ix = tmp_path / "ix"
    with Index.create(ix, encoder=encoder) as writer:
        writer.add([_folder(tmp_path / "base", ["espresso"], "base")], compression="none")
    batches = [_folder(tmp_path / f"b{i}", list(TOPICS), f"b{i}") for i in range(3)]
    for folder in batches:  # documents of several pages, so a half one would show
        for pdf in folder.glob("*.pdf"):
            write_pdf(pdf, [pdf.stem + " " + TOPICS[pdf.stem.split("-")[1]]] * 3)
    stop, seen, errors = threading.Event(), [], []

    def read() -> None:
        reader = Index.open(ix, encoder=encoder)
        try:
            while not stop.is_set():
                with reader.reading():
                    docs = {d.id: d.page_count for d in reader.catalog.documents()}
                    counts = dict(reader.catalog.db.execute("SELECT doc_id, COUNT(*) FROM pages GROUP BY doc_id"))
                    assert counts == {i: n for i, n in docs.items() if n}, (counts, docs)
                with reader.reading():  # the hits and the check on one snapshot: a page
                    hits = reader.search(QUESTIONS["volcanoes"], k=5)  # removed after the
                    for hit in hits:  # search is no half document
                        assert reader.catalog.page(hit.page_id) is not None and hit.snippet
                seen.append(len(docs))
        except Exception as exc:  # reported to the main thread
            errors.append(exc)
        finally:
            reader.close()

    thread = threading.Thread(target=read)
    thread.start()
    try:
        with Index.open(ix, encoder=encoder) as writer:
            for folder in batches:
                writer.add([folder], compression="none")
                writer.remove(f"{folder.name}-football.pdf")
                writer.compact()
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, errors[0]
    assert len(seen) >= 3 and max(seen) > 1  # the reader ran through the writes and saw them
