"""The page table's columns on disk: a second reader maps what the first one read from SQL, a
write names a new state, and a file that is not whole, or not this catalog's, is never used."""

from __future__ import annotations

import shutil

import numpy as np

import indexer.page_table_file as page_table_file
from indexer.catalog import Catalog, PageRow


def _add(catalog: Catalog, name: str, pages: int, first_row: int) -> None:
    with catalog.transaction():
        doc = catalog.insert_document(f"/docs/{name}.pdf", name * 8, name.title(), pages, {})
        first = catalog.next_page_id()
        catalog.insert_pages([PageRow(doc, n, 600.0, 800.0, f"{name} {n}", "text",
                                      vec_start=first_row + 5 * n, vec_count=5, id=first + n)
                              for n in range(pages)])


def _columns(table) -> list[list[int]]:
    return [getattr(table, f).tolist() for f in table.__dataclass_fields__]


def _files(folder):
    return sorted(p.name for p in (folder / "cache").glob("page-table-*.npy"))


def test_a_second_reader_maps_the_first_readers_columns(tmp_path, monkeypatch):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _add(catalog, "alpha", 3, 0)
    _add(catalog, "beta", 2, 15)
    first = _columns(catalog.page_table())
    assert len(_files(tmp_path)) == 1
    other = Catalog(tmp_path / "catalog.sqlite")  # another process's reader
    read_sql = []
    monkeypatch.setattr(other, "db", _Spy(other.db, read_sql))
    table = other.page_table()
    assert _columns(table) == first and not any("ORDER BY vec_start" in q for q in read_sql)
    assert not table.page_ids.flags.writeable


def test_a_write_names_a_new_state_and_the_old_file_goes(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _add(catalog, "alpha", 3, 0)
    catalog.page_table()
    before = _files(tmp_path)
    _add(catalog, "beta", 2, 15)
    reader = Catalog(tmp_path / "catalog.sqlite")
    assert len(reader.page_table()) == 5
    after = _files(tmp_path)
    assert len(after) == 1 and after != before
    with catalog.transaction():  # a delete: fewer pages, a new state again
        catalog.db.execute("DELETE FROM pages WHERE doc_id = (SELECT id FROM documents WHERE path = '/docs/alpha.pdf')")
        catalog.db.execute("DELETE FROM documents WHERE path = '/docs/alpha.pdf'")
    assert len(Catalog(tmp_path / "catalog.sqlite").page_table()) == 2


def test_a_torn_file_or_another_catalogs_file_is_not_used(tmp_path):
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _add(catalog, "alpha", 3, 0)
    expected = _columns(catalog.page_table())
    (path,) = (tmp_path / "cache").glob("page-table-*.npy")
    path.write_bytes(path.read_bytes()[:100])  # torn
    assert _columns(Catalog(tmp_path / "catalog.sqlite").page_table()) == expected
    # a copy of the catalog put in its place (a restore) is another file: its own state
    (path,) = (tmp_path / "cache").glob("page-table-*.npy")
    np.save(path, np.zeros((page_table_file.COLUMNS, 1), np.int64))  # wrong columns for the name
    shutil.copyfile(tmp_path / "catalog.sqlite", tmp_path / "copy.sqlite")
    (tmp_path / "catalog.sqlite").unlink()
    shutil.move(tmp_path / "copy.sqlite", tmp_path / "catalog.sqlite")
    assert _columns(Catalog(tmp_path / "catalog.sqlite").page_table()) == expected


def test_a_refused_disk_costs_the_sql_read_only(tmp_path, monkeypatch):
    def refused(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(page_table_file, "save", refused)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _add(catalog, "alpha", 3, 0)
    assert len(catalog.page_table()) == 3 and not _files(tmp_path)


class _Spy:
    """A connection that notes the SQL it runs."""

    def __init__(self, db, seen):
        self._db, self._seen = db, seen

    def execute(self, sql, *args):
        self._seen.append(sql)
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def test_a_file_whose_pages_are_not_its_names_is_not_used(tmp_path):
    """The largest page id and row offset in the file must be the stamp's (a zeroed or
    foreign file under the right name)."""
    catalog = Catalog(tmp_path / "catalog.sqlite")
    _add(catalog, "alpha", 3, 0)
    expected = _columns(catalog.page_table())
    (path,) = (tmp_path / "cache").glob("page-table-*.npy")
    np.save(path, np.zeros((page_table_file.COLUMNS, 3), np.int64))
    assert _columns(Catalog(tmp_path / "catalog.sqlite").page_table()) == expected
