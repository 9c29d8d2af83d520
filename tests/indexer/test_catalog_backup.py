"""The catalog's backup: a full copy plus a journal of the writes since, replayed by repair."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

import indexer.catalog_backup as catalog_backup
from indexer.catalog import Catalog, PageRow
from indexer.catalog_backup import BACKUP_TOKEN, CatalogBackup, RecordingConnection


def _dump(path: Path) -> dict:
    """Every row of every table but the copy's own token."""
    db = sqlite3.connect(path)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(map(repr, db.execute(f"SELECT * FROM {t}")))
                for t in tables if t != "sqlite_sequence"} | {
            "state": sorted(map(repr, db.execute("SELECT * FROM state WHERE key != ?", (BACKUP_TOKEN,))))}
    finally:
        db.close()


def _add(catalog: Catalog, name: str, pages: int = 3) -> int:
    with catalog.transaction():
        doc = catalog.insert_document(f"/docs/{name}.pdf", name * 8, name.title(), pages, {"kind": name})
        first = catalog.next_page_id()
        catalog.insert_pages([PageRow(doc, n, 595.2755905511812, 841.8897637795277, f"{name} page {n} é ≠ 😀",
                                      "text", vec_start=10 * n, vec_count=7, id=first + n)
                              for n in range(pages)])
    return doc


def _write(catalog: Catalog, action) -> str:
    """One write as Index.writing() does it: recorded, then backed up."""
    catalog.start_write()
    action()
    return catalog.backup()


@pytest.fixture
def journaled(monkeypatch):
    monkeypatch.setattr(catalog_backup, "JOURNAL_SHARE", 100.0)  # every write fits the journal


def _restore(folder: Path) -> tuple[Path, int]:
    """What repair does: the copy in place of the catalog, then the journal replayed."""
    target = folder / "restored.sqlite"
    shutil.copyfile(folder / "catalog.backup", target)
    restored = Catalog(target)
    replayed = CatalogBackup(folder).replay(restored.db)
    restored.close()
    return target, replayed


def test_replaying_the_journal_rebuilds_the_catalog_exactly(tmp_path, journaled):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    assert _write(catalog, lambda: _add(catalog, "alpha")) == "full"  # no copy yet
    beta = []
    assert _write(catalog, lambda: beta.append(_add(catalog, "beta"))) == "journal"
    assert _write(catalog, lambda: _add(catalog, "gamma", 2)) == "journal"

    def rename_and_delete():
        with catalog.transaction():
            catalog.add_alias("/docs/beta-copy.pdf", beta[0])
            catalog.set_document_path(beta[0], "/docs/beta-copy.pdf")
            catalog.delete_document(1)
    assert _write(catalog, rename_and_delete) == "journal"
    catalog.close()
    restored, replayed = _restore(tmp_path)
    assert replayed == 3
    assert _dump(restored) == _dump(tmp_path / "catalog.sqlite")  # floats and unicode exactly


def test_rolled_back_and_unreplayable_writes(tmp_path):
    db = sqlite3.connect(tmp_path / "x.sqlite", isolation_level=None, factory=RecordingConnection)
    db.execute("CREATE TABLE t(a, b)")
    db.start()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO t VALUES(?, ?)", (1, b"\x00\xff"))
    db.execute("ROLLBACK")
    db.execute("BEGIN IMMEDIATE")
    db.executemany("INSERT INTO t VALUES(?, ?)", iter([(2, "x"), (3, None)]))
    db.execute("SELECT * FROM t").fetchall()
    db.execute("COMMIT")
    db.execute("DELETE FROM t WHERE a=?", (3,))  # outside a transaction: committed at once
    assert db.take() == [("INSERT INTO t VALUES(?, ?)", [[2, "x"], [3, None]]),
                         ("DELETE FROM t WHERE a=?", [[3]])]
    assert db.execute("SELECT count(*) FROM t").fetchone()[0] == 1  # the generator was consumed once
    db.start()
    db.execute("ALTER TABLE t ADD COLUMN c")
    assert db.take() is None  # a schema change is not replayed: a full copy is taken instead
    assert db.take() is None  # and nothing is recorded once taken


def test_a_torn_last_line_stops_the_replay_before_it(tmp_path, journaled):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _write(catalog, lambda: _add(catalog, "alpha"))
    _write(catalog, lambda: _add(catalog, "beta"))
    expected = _dump(tmp_path / "catalog.sqlite")
    _write(catalog, lambda: _add(catalog, "gamma"))
    catalog.close()
    journal = tmp_path / "catalog.journal"
    journal.write_bytes(journal.read_bytes()[:-20])
    restored, replayed = _restore(tmp_path)
    assert replayed == 1 and _dump(restored) == expected


def test_a_damaged_line_is_never_replayed(tmp_path, journaled):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _write(catalog, lambda: _add(catalog, "alpha"))
    expected = _dump(tmp_path / "catalog.sqlite")
    _write(catalog, lambda: _add(catalog, "beta"))
    catalog.close()
    journal = tmp_path / "catalog.journal"
    journal.write_bytes(journal.read_bytes().replace(b"beta page 1", b"beta page 9"))  # the sha no longer holds
    restored, replayed = _restore(tmp_path)
    assert replayed == 0 and _dump(restored) == expected


def test_a_gap_in_the_chain_takes_a_full_copy(tmp_path, journaled):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _write(catalog, lambda: _add(catalog, "alpha"))
    _add(catalog, "beta")  # a writer that committed and died before journaling
    assert _write(catalog, lambda: _add(catalog, "gamma")) == "full"
    assert _write(catalog, lambda: _add(catalog, "delta")) == "journal"
    catalog.close()
    restored, replayed = _restore(tmp_path)
    assert replayed == 1 and _dump(restored) == _dump(tmp_path / "catalog.sqlite")


def test_a_journal_of_another_copy_is_ignored(tmp_path, journaled):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _write(catalog, lambda: _add(catalog, "alpha"))
    _write(catalog, lambda: _add(catalog, "beta"))
    old_journal = (tmp_path / "catalog.journal").read_bytes()
    expected = _dump(tmp_path / "catalog.sqlite")
    # a crash after the next full copy was renamed into place, before its journal was reset
    catalog.start_write()
    _add(catalog, "gamma")
    catalog.backup(full=True)
    (tmp_path / "catalog.journal").write_bytes(old_journal)
    catalog.close()
    restored, replayed = _restore(tmp_path)
    assert replayed == 0 and _dump(restored) != expected and "gamma" in repr(_dump(restored)["documents"])


def test_the_journal_gives_way_to_a_copy_past_its_share(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    kinds = []
    for i in range(25):
        kinds.append(_write(catalog, lambda: _add(catalog, f"d{i:02d}" + "x" * 400, 4)))
        db_bytes = catalog.db.execute("PRAGMA page_count").fetchone()[0] * 4096
        assert (tmp_path / "catalog.journal").stat().st_size <= catalog_backup.JOURNAL_SHARE * db_bytes
    # a copy, then journaled writes until the journal would pass its share, then a copy again
    assert kinds[0] == "full" and "journal" in kinds and kinds.count("full") >= 2, kinds
    catalog.close()
    restored, replayed = _restore(tmp_path)
    assert _dump(restored) == _dump(tmp_path / "catalog.sqlite")


def test_repair_replays_what_the_last_copy_missed(tmp_path, encoder, monkeypatch):
    from conftest import QUESTIONS, TOPICS, write_pdf

    from docpress import Index

    monkeypatch.setattr(catalog_backup, "JOURNAL_SHARE", 100.0)
    docs = tmp_path / "docs"
    for name in ("volcanoes", "espresso", "taxes"):
        write_pdf(docs / f"{name}.pdf", [TOPICS[name]])
    ix = tmp_path / "ix"
    with Index.create(ix, encoder=encoder) as index:
        index.add([docs / "volcanoes.pdf"], compression="none")
        index.add([docs / "espresso.pdf", docs / "taxes.pdf"])
        index.remove(str(docs / "taxes.pdf"))
    assert (ix / "catalog.journal").stat().st_size > 0
    (ix / "catalog.sqlite").write_bytes(b"garbage" * 100)
    for stale in ix.glob("catalog.sqlite-*"):
        stale.unlink()
    report = Index.repair(ix)
    assert any("journaled" in action for action in report.actions), report.actions
    with Index.open(ix, encoder=encoder) as index:
        assert sorted(Path(d.path).stem for d in index.documents()) == ["espresso", "volcanoes"]
        assert Path(index.search(QUESTIONS["espresso"], k=1)[0].path).stem == "espresso"


def test_a_crash_between_the_append_and_its_record(tmp_path, journaled):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _write(catalog, lambda: _add(catalog, "alpha"))
    _write(catalog, lambda: _add(catalog, "beta"))
    state_file = tmp_path / "catalog.journal.json"
    before = state_file.read_text()
    _write(catalog, lambda: _add(catalog, "gamma"))
    state_file.write_text(before)  # the line was synced, the record of it never renamed into place
    restored, replayed = _restore(tmp_path)
    assert replayed == 2 and _dump(restored) == _dump(tmp_path / "catalog.sqlite")  # the line was whole
    # the journal is longer than its record says: the next write starts a new copy
    assert _write(catalog, lambda: _add(catalog, "delta")) == "full"
    catalog.close()
