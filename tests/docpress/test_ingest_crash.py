"""A process killed mid-ingest keeps every committed document and shows no half document."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import TOPICS, write_pdf

from docpress import Index

# Runs in a child process: ingests the folder and SIGKILLs itself right after the vectors of
# the third file reach the store, before the catalog commit that would make them visible.
KILLER = textwrap.dedent("""
    import os, signal, sys
    from docpress import Index
    from indexer.stores.bf16 import Bf16Store

    calls = {"n": 0}
    original = Bf16Store.add

    def add_then_die(self, pages):
        locations = original(self, pages)
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return locations

    Bf16Store.add = add_then_die
    Index.create(sys.argv[1]).add([sys.argv[2]])
""")


@pytest.mark.slow
def test_kill_mid_ingest_then_resume(tmp_path, encoder):
    docs = tmp_path / "docs"
    names = sorted(TOPICS)
    for name in names:
        write_pdf(docs / f"{name}.pdf", [TOPICS[name], TOPICS[name].upper()])
    index_dir = tmp_path / "ix"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.run([sys.executable, "-c", KILLER, str(index_dir), str(docs)],
                           env=env, capture_output=True, timeout=300)
    assert child.returncode == -9, child.stderr.decode()[-2000:]

    index = Index.open(index_dir, encoder=encoder)
    committed = sorted(Path(d.path).stem for d in index.documents())
    assert committed == names[:2]  # the files sorted before the one being written
    assert index.info()["pages"] == 4
    # The third file's vectors reached the disk, but no page points at them.
    hits = index.search(TOPICS[names[2]], k=10)
    assert {Path(h.path).stem for h in hits} == set(names[:2])

    report = index.add([docs])
    assert sorted(Path(p).stem for p in report.added) == names[2:]
    assert len(report.unchanged) == 2
    assert index.info()["pages"] == 2 * len(names)
    for name in names:
        assert Path(index.search(TOPICS[name], k=1)[0].path).stem == name
    index.close()


def test_exception_mid_file_leaves_index_as_before(tmp_path, encoder, monkeypatch):
    docs = tmp_path / "docs"
    write_pdf(docs / "a.pdf", [TOPICS["volcanoes"]])
    index = Index.create(tmp_path / "ix", encoder=encoder)
    index.add([docs])
    write_pdf(docs / "a.pdf", [TOPICS["espresso"]])  # changed: would replace the old page

    def boom(pages):
        raise KeyboardInterrupt

    monkeypatch.setattr(index.catalog, "insert_pages", boom)
    try:
        index.add([docs])
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert index.info()["pages"] == 1
    assert "lava" in index.search("volcano", k=1)[0].snippet.lower()  # old version intact
    index.close()
