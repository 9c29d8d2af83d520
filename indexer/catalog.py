"""The catalog (SQLite): documents, pages, page text and where each page's vectors live."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from docpress.errors import CorruptIndexError
from indexer import page_table_file
from indexer.catalog_backup import CatalogBackup, RecordingConnection
from indexer.layout import CACHE_FOLDER

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    sha256 TEXT NOT NULL,
    title TEXT NOT NULL,
    page_count INTEGER NOT NULL,
    metadata TEXT NOT NULL,
    added_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pages (
    id INTEGER PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    width REAL NOT NULL,
    height REAL NOT NULL,
    text TEXT NOT NULL,
    text_source TEXT NOT NULL,
    vec_start INTEGER NOT NULL,
    vec_count INTEGER NOT NULL,
    pool_start INTEGER NOT NULL,
    pool_count INTEGER NOT NULL,
    crc INTEGER
);
CREATE INDEX IF NOT EXISTS pages_doc ON pages(doc_id);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lane_pages (
    lane TEXT NOT NULL,
    page_id INTEGER NOT NULL REFERENCES pages(id) ON DELETE CASCADE,
    vec_start INTEGER NOT NULL,
    vec_count INTEGER NOT NULL,
    pool_start INTEGER NOT NULL,
    pool_count INTEGER NOT NULL,
    crc INTEGER,
    PRIMARY KEY (lane, page_id)
);
CREATE TABLE IF NOT EXISTS aliases (
    path TEXT PRIMARY KEY,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS aliases_doc ON aliases(doc_id);
CREATE INDEX IF NOT EXISTS documents_sha ON documents(sha256);
"""
TABLES = {"documents", "pages", "state", "lane_pages"}
# Columns added since the first format: (table, column, declaration), added on open.
ADDED_COLUMNS = (("pages", "crc", "INTEGER"), ("lane_pages", "crc", "INTEGER"))
# The page table's columns in its order, in an index of their own: reading them no longer
# walks every page's text (1M pages: the SQL read 2.5 s, a full scan of a 2.6 GB file).
# Made on open where missing (once; skipped where the file cannot be written).
PAGE_TABLE_INDEX = ("CREATE INDEX IF NOT EXISTS pages_table ON pages"
                    "(vec_start, id, doc_id, number, vec_count, pool_start, pool_count)")


@dataclass
class DocumentRow:
    id: int
    path: str
    sha256: str
    title: str
    page_count: int
    metadata: dict
    added_at: float


RENAMED = "documents.renamed"  # state key: how many times a document took another path


SQL_VARIABLES = 900  # ids bound in one IN (...): under SQLite's oldest limit, 999
FILTERS_KEPT = 16  # filters whose pages a catalog keeps for the current generation (at most)


@dataclass
class PageRow:
    """A page as the catalog stores it; vectors are rows [vec_start, vec_start + vec_count)."""

    doc_id: int
    number: int
    width: float
    height: float
    text: str
    text_source: str
    vec_start: int = -1
    vec_count: int = 0
    pool_start: int = -1
    pool_count: int = 0
    id: int | None = None


@dataclass
class PageTable:
    """Columns of the live pages selected for a search, in catalog order.

    page_ids, doc_ids, numbers, vec_start, vec_count, pool_start, pool_count: (n_pages,) int64.
    """

    page_ids: np.ndarray
    doc_ids: np.ndarray
    numbers: np.ndarray
    vec_start: np.ndarray
    vec_count: np.ndarray
    pool_start: np.ndarray
    pool_count: np.ndarray

    def __len__(self) -> int:
        return len(self.page_ids)

    def subset(self, mask_or_index) -> "PageTable":
        return PageTable(*(getattr(self, f)[mask_or_index] for f in self.__dataclass_fields__))


class Catalog:
    """SQLite catalog in WAL mode; each document is written in one transaction.

    create=False opens an existing index's catalog: a missing, empty or unreadable file is
    CorruptIndexError (never a fresh empty catalog that would hide the index's vectors).
    """

    def __init__(self, path: Path, create: bool = True):
        self.path = Path(path)
        self._pages_cache: tuple | None = None  # (generation, PageTable)
        self._filtered: dict[tuple, tuple] = {}  # {filter: (whole table, its pages)}, FILTERS_KEPT
        self._filtered_lock = threading.Lock()
        self._write_start: int | None = None  # the generation a recorded write began at
        self._documents_cache: tuple | None = None  # (generation, documents)
        self._writing = False
        if not create and (not self.path.exists() or self.path.stat().st_size == 0):
            raise CorruptIndexError(f"{self.path} is {'empty' if self.path.exists() else 'missing'}: "
                                    f"the index lost its catalog; run `docpress repair --index "
                                    f"{self.path.parent}`")
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                      timeout=60, factory=RecordingConnection)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            if not create:
                found = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
                if not TABLES <= found:
                    raise sqlite3.DatabaseError(f"tables {sorted(TABLES - found)} are missing")
            self.db.executescript(SCHEMA)
            self._add_columns()
            try:
                self.db.execute(PAGE_TABLE_INDEX)
            except sqlite3.OperationalError:  # read-only, or busy: the table reads without it
                pass
        except sqlite3.DatabaseError as exc:
            raise damaged(self.path, exc) from None

    def _add_columns(self) -> None:
        for table, column, declaration in ADDED_COLUMNS:
            have = {r[1] for r in self.db.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    @contextmanager
    def snapshot(self):
        """Reads in the block see one committed state, whatever writers commit meanwhile."""
        if self.db.in_transaction:
            yield self
            return
        self.db.execute("BEGIN")
        try:
            yield self
        finally:
            if self.db.in_transaction:
                self.db.execute("COMMIT")

    def start_write(self) -> None:
        """A write begins: its committed statements are recorded for the backup's journal."""
        self._write_start = self.generation()
        self.db.start()

    def abandon_write(self) -> None:
        self.db.take()
        self._write_start = None

    def backup(self, full: bool = False) -> str:
        """Bring the backup beside the catalog up to date (indexer.catalog_backup): the writes
        since start_write() appended to its journal, or a full copy (`full`, or when the
        journal cannot take them). Returns "journal" or "full"."""
        backup = CatalogBackup(self.path.parent)
        recording = self.db.recording
        writes = self.db.take()
        if full or self._write_start is None:
            backup.full(self.db)
            done = "full"
        else:
            done = backup.save(self.db, writes, self._write_start)
        self._write_start = None
        if recording and full:  # a copy within a write (compaction): the rest goes on record
            self.start_write()
        return done

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        self._writing = True  # uncommitted pages: the cached page table is not theirs
        try:
            yield self
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self._bump_generation()
            self.db.execute("COMMIT")
        finally:
            self._writing = False

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (after a bulk rewrite)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- state --------------------------------------------------------------------------
    def _bump_generation(self) -> None:
        self.db.execute("INSERT INTO state(key, value) VALUES('generation', '1') "
                        "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    def state(self, key: str, default: str | None = None) -> str | None:
        """A value of the state table (settings that must change in the same commit as pages)."""
        row = self.db.execute("SELECT value FROM state WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_state(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO state(key, value) VALUES(?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def generation(self) -> int:
        """A counter that changes with every committed write (for caches built on the catalog)."""
        row = self.db.execute("SELECT value FROM state WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    # -- documents ----------------------------------------------------------------------
    def document_by_path(self, path: str) -> DocumentRow | None:
        row = self.db.execute("SELECT * FROM documents WHERE path=?", (path,)).fetchone()
        return _doc(row) if row else None

    def document(self, doc_id: int) -> DocumentRow | None:
        row = self.db.execute("SELECT * FROM documents WHERE id=?", (doc_id,)).fetchone()
        return _doc(row) if row else None

    def documents(self) -> list[DocumentRow]:
        """Every document, by path; parsed once a generation (1 s at 100k documents), so
        callers must not change the rows."""
        generation = self.generation()
        cached = self._documents_cache
        if cached is not None and cached[0] == generation and not self._writing:
            return list(cached[1])
        documents = [_doc(r) for r in self.db.execute("SELECT * FROM documents ORDER BY path")]
        if not self._writing:
            self._documents_cache = (generation, documents)
        return list(documents)

    def insert_document(self, path: str, sha256: str, title: str, page_count: int,
                        metadata: dict) -> int:
        doc_id = self._next_id("documents")
        self.db.execute(
            "INSERT INTO documents(id, path, sha256, title, page_count, metadata, added_at) "
            "VALUES(?,?,?,?,?,?,?)", (doc_id, path, sha256, title, page_count, json.dumps(metadata), time.time()))
        self._used_ids("documents", doc_id)
        return doc_id

    def delete_document(self, doc_id: int) -> list[int]:
        """Delete a document and its pages; return the deleted page ids."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM pages WHERE doc_id=?", (doc_id,))]
        # the ids stay given (an index made before ids were recorded learns them here)
        self._used_ids("documents", doc_id)
        if ids:
            self._used_ids("pages", max(ids))
        self.db.execute("DELETE FROM pages WHERE doc_id=?", (doc_id,))
        self.db.execute("DELETE FROM documents WHERE id=?", (doc_id,))
        return ids

    # -- other paths of the same file ---------------------------------------------------
    def document_by_sha(self, sha256: str, metadata: dict) -> DocumentRow | None:
        """A document with this content and these metadata (identical copies index once)."""
        for row in self.db.execute("SELECT * FROM documents WHERE sha256=?", (sha256,)):
            doc = _doc(row)
            if doc.metadata == metadata:
                return doc
        return None

    def alias_owner(self, path: str) -> int | None:
        row = self.db.execute("SELECT doc_id FROM aliases WHERE path=?", (path,)).fetchone()
        return int(row[0]) if row else None

    def aliases(self, doc_id: int | None = None) -> dict[int, list[str]]:
        """{document id: its other paths, sorted}, for one document or all."""
        query, args = "SELECT doc_id, path FROM aliases", ()
        if doc_id is not None:
            query, args = query + " WHERE doc_id=?", (doc_id,)
        out: dict[int, list[str]] = {}
        for owner, path in self.db.execute(query + " ORDER BY path", args):
            out.setdefault(int(owner), []).append(path)
        return out

    def add_alias(self, path: str, doc_id: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO aliases(path, doc_id) VALUES(?, ?)", (path, doc_id))

    def remove_alias(self, path: str) -> None:
        self.db.execute("DELETE FROM aliases WHERE path=?", (path,))

    def set_document_path(self, doc_id: int, path: str) -> None:
        """Make `path` (one of its aliases) the document's path; the alias goes. The count of
        such moves is kept: a document's searchable text starts with its file name, so the
        document-level caches are rebuilt when it changes."""
        self.db.execute("DELETE FROM aliases WHERE path=?", (path,))
        self.db.execute("UPDATE documents SET path=? WHERE id=?", (path, doc_id))
        self.set_state(RENAMED, str(int(self.state(RENAMED, "0")) + 1))

    # -- pages --------------------------------------------------------------------------
    def next_page_id(self) -> int:
        return self._next_id("pages")

    def _next_id(self, table: str) -> int:
        """An id never given before in `table`, even to a row since deleted: the search caches
        follow writes by id, so an id must always mean the same text."""
        row = self.db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
        return max(int(row[0]) + 1, int(self.state(f"next_id.{table}", "1")))

    def _used_ids(self, table: str, highest: int) -> None:
        if highest + 1 > int(self.state(f"next_id.{table}", "1")):
            self.set_state(f"next_id.{table}", str(highest + 1))

    def insert_pages(self, rows: list[PageRow]) -> None:
        ids = [int(r.id) for r in rows if r.id is not None]
        if ids:
            self._used_ids("pages", max(ids))
        self.db.executemany(
            "INSERT INTO pages(id, doc_id, number, width, height, text, text_source, vec_start, "
            "vec_count, pool_start, pool_count) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            [(r.id, r.doc_id, r.number, r.width, r.height, r.text, r.text_source, r.vec_start,
              r.vec_count, r.pool_start, r.pool_count) for r in rows])

    def move_pages(self, locations: dict) -> None:
        """Point pages at new vector rows: {page id: Location} (a re-coded store)."""
        self.db.executemany(
            "UPDATE pages SET vec_start=?, vec_count=?, pool_start=?, pool_count=?, crc=? WHERE id=?",
            [(loc.vec_start, loc.vec_count, loc.pool_start, loc.pool_count, loc.crc, int(page_id))
             for page_id, loc in locations.items()])

    def insert_lane_pages(self, lane: str, locations: dict) -> None:
        """Record where an extra lane's store put pages: {page id: Location}."""
        self.db.executemany(
            "INSERT OR REPLACE INTO lane_pages(lane, page_id, vec_start, vec_count, pool_start, "
            "pool_count, crc) VALUES(?,?,?,?,?,?,?)",
            [(lane, int(pid), loc.vec_start, loc.vec_count, loc.pool_start, loc.pool_count, loc.crc)
             for pid, loc in locations.items()])

    def row_locations(self, page_ids, lane: str | None = None) -> dict[int, tuple]:
        """{page id: (vec_start, vec_count, pool_start, pool_count, crc)} of the given pages in
        the main store (lane None) or an extra lane's (pages it lacks are left out)."""
        if lane is None:
            rows = self._rows_in("SELECT id, vec_start, vec_count, pool_start, pool_count, crc "
                                 "FROM pages WHERE id IN ({ids})", page_ids)
        else:
            rows = self._rows_in("SELECT page_id, vec_start, vec_count, pool_start, pool_count, crc "
                                 "FROM lane_pages WHERE lane=? AND page_id IN ({ids})", page_ids, lane)
        return {r[0]: tuple(r[1:]) for r in rows}

    def _rows_in(self, sql: str, ids, *before) -> Iterator[tuple]:
        """The rows of `sql`, whose `IN ({ids})` takes every id, read SQL_VARIABLES ids at a
        time; `before`: the parameters ahead of the ids."""
        ids = [int(i) for i in ids]
        for i in range(0, len(ids), SQL_VARIABLES):
            chunk = ids[i:i + SQL_VARIABLES]
            yield from self.db.execute(sql.format(ids=",".join("?" * len(chunk))), (*before, *chunk))

    def row_extent(self, lane: str | None = None) -> tuple[int, int]:
        """(token rows, pooled rows) the catalog addresses in the main store or a lane's: the
        least the store's files must hold."""
        if lane is None:
            row = self.db.execute("SELECT COALESCE(MAX(vec_start + vec_count), 0), "
                                  "COALESCE(MAX(pool_start + pool_count), 0) FROM pages").fetchone()
        else:
            row = self.db.execute("SELECT COALESCE(MAX(vec_start + vec_count), 0), "
                                  "COALESCE(MAX(pool_start + pool_count), 0) FROM lane_pages "
                                  "WHERE lane=?", (lane,)).fetchone()
        return int(row[0]), int(row[1])

    def lane_rows(self, lane: str) -> int:
        """Token rows of live pages in an extra lane's store."""
        return int(self.db.execute("SELECT COALESCE(SUM(vec_count), 0) FROM lane_pages WHERE lane=?",
                                   (lane,)).fetchone()[0])

    def lane_table(self, lane: str, table: PageTable) -> PageTable:
        """`table`'s pages (same order) located in an extra lane's store; pages the lane has
        no vectors for get vec_count 0."""
        # only the pages asked for: hybrid asks for ~256
        rows = {r[0]: r[1:] for r in self._rows_in(
            "SELECT page_id, vec_start, vec_count, pool_start, pool_count FROM lane_pages "
            "WHERE lane=? AND page_id IN ({ids})", table.page_ids, lane)}
        located = np.asarray([rows.get(int(p), (-1, 0, -1, 0)) for p in table.page_ids],
                             dtype=np.int64).reshape(-1, 4)
        return PageTable(table.page_ids, table.doc_ids, table.numbers, *(located[:, i].copy()
                                                                         for i in range(4)))

    def page(self, page_id: int) -> PageRow | None:
        return self.pages([page_id]).get(int(page_id))

    def pages(self, page_ids) -> dict[int, PageRow]:
        """{page id: row} of the given pages that exist, in one read (a search's hits)."""
        return {r[-1]: PageRow(*r) for r in self._rows_in(
            "SELECT doc_id, number, width, height, text, text_source, vec_start, vec_count, "
            "pool_start, pool_count, id FROM pages WHERE id IN ({ids})", page_ids)}

    def page_texts(self, page_ids: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        """(page ids, texts) for the given pages, or for all pages in id order."""
        if page_ids is None:
            rows = self.db.execute("SELECT id, text FROM pages ORDER BY id").fetchall()
        else:
            rows = list(self._rows_in("SELECT id, text FROM pages WHERE id IN ({ids})", page_ids))
        return np.asarray([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def document_texts(self, first_words: int | None = None,
                       doc_ids: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
        """(document ids, text) where text is the file name, title and the pages' text in order
        (only the first `first_words` words of it when given); of `doc_ids` (in that order, the
        unknown ones left out) or of every document (by id)."""
        if doc_ids is None:
            docs = {d.id: d for d in self.documents()}
        else:  # only these documents' rows: a caller reads a large index a few documents at a time
            docs = {r[0]: _doc(r) for r in self._rows_in("SELECT * FROM documents WHERE id IN ({ids})", doc_ids)}
        ids = sorted(docs) if doc_ids is None else [int(i) for i in doc_ids if int(i) in docs]
        parts: dict[int, list[str]] = {i: [] for i in ids}
        counts = dict.fromkeys(ids, 0)
        for i in range(0, len(ids), SQL_VARIABLES):
            chunk = ids[i:i + SQL_VARIABLES] if doc_ids is not None else None
            query = "SELECT doc_id, text FROM pages " + \
                (f"WHERE doc_id IN ({','.join('?' * len(chunk))}) " if chunk else "") + "ORDER BY doc_id, number"
            for doc_id, text in self.db.execute(query, chunk or ()):
                if first_words is not None and counts[doc_id] >= first_words:
                    continue
                parts[doc_id].append(text)
                counts[doc_id] += text.count(" ") + 1
            if chunk is None:
                break
        texts = []
        for i in ids:
            body = " ".join(parts[i])
            if first_words is not None:
                body = " ".join(body.split(" ")[:first_words])
            texts.append(f"{Path(docs[i].path).stem} {docs[i].title} {body}")
        return np.asarray(ids, dtype=np.int64), texts

    def page_table(self, path_glob: str | None = None, metadata: dict | None = None) -> PageTable:
        """Live pages, optionally only those of documents matching a path glob and metadata.

        The whole table is read once per catalog generation and kept (read-only columns): a
        search no longer reads every page row from SQLite (36 ms a query at 10k pages)."""
        table = self._live_pages()
        if not (path_glob or metadata):
            return table
        # A filter's pages are kept with the whole table they came from (one a generation): a
        # RAG pipeline asks many questions of one filter, and matching every document's path
        # took 75 ms a query at 1M pages (18k documents).
        key = (path_glob, json.dumps(metadata, sort_keys=True, default=str) if metadata else None)
        kept = self._filtered.get(key)
        if kept is not None and kept[0] is table:
            return kept[1]
        match = _matcher(path_glob, metadata)
        keep = np.asarray([d.id for d in self.documents() if match(d)], dtype=np.int64)
        filtered = table.subset(np.isin(table.doc_ids, keep))
        with self._filtered_lock:
            for old in [k for k, (whole, _) in self._filtered.items() if whole is not table or k == key]:
                del self._filtered[old]  # an older generation's: it would hold its whole table
            self._filtered[key] = (table, filtered)
            # the oldest dropped past FILTERS_KEPT filters, or past one whole table's pages
            # kept in all (56 bytes a page: 56 MB at 1M pages)
            while len(self._filtered) > 1 and (
                    len(self._filtered) > FILTERS_KEPT
                    or sum(len(f) for _, f in self._filtered.values()) > len(table)):
                del self._filtered[next(iter(self._filtered))]
        return filtered

    def _live_pages(self) -> PageTable:
        # one committed state for the generation, the stamp and the rows: a file saved under a
        # stamp must hold that stamp's pages
        with self.snapshot():
            generation = self.generation()
            cached = self._pages_cache
            if cached is not None and cached[0] == generation and not self._writing:
                return cached[1]
            # Committed states are read from the columns file another reader wrote, if any
            # (indexer.page_table_file); inside a write, always from SQL (uncommitted rows).
            stamp = None if self._writing else self._table_stamp(generation)
            columns = page_table_file.load(self._table_folder, stamp) if stamp else None
            if columns is None:
                rows = self.db.execute(
                    "SELECT id, doc_id, number, vec_start, vec_count, pool_start, pool_count FROM pages "
                    "ORDER BY vec_start, id").fetchall()
                columns = np.ascontiguousarray(np.asarray(rows, dtype=np.int64).reshape(-1, 7).T)
                columns.setflags(write=False)  # shared by every search of this generation
                if stamp:
                    try:
                        page_table_file.save(self._table_folder, stamp, columns)
                    except OSError:  # a full or read-only disk: the next reader reads SQL too
                        pass
        table = PageTable(*columns)
        if not self._writing:
            self._pages_cache = (generation, table)
        return table

    @property
    def _table_folder(self) -> Path:
        return self.path.parent / CACHE_FOLDER

    def _table_stamp(self, generation: int) -> tuple:
        """What names a committed state of the pages: the generation, this file's identity
        and its largest page id and row offset (both read from indexes, not a scan)."""
        top_id, top_row = self.db.execute("SELECT MAX(id), MAX(vec_start) FROM pages").fetchone()
        return generation, self.path.stat().st_ino, top_id if top_id is not None else -1, \
            top_row if top_row is not None else -1

    def counts(self) -> dict:
        docs, pages = self.db.execute(
            "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM pages)").fetchone()
        sources = dict(self.db.execute("SELECT text_source, COUNT(*) FROM pages GROUP BY text_source"))
        vectors = self.db.execute("SELECT COALESCE(SUM(vec_count), 0) FROM pages").fetchone()[0]
        return {"documents": docs, "pages": pages, "vectors": int(vectors), "text_sources": sources}


def damaged(path: Path, exc: Exception) -> CorruptIndexError:
    """The one-line error for an unreadable catalog."""
    return CorruptIndexError(f"{path} is damaged ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                             f"run `docpress repair --index {Path(path).parent}`")


def _doc(row) -> DocumentRow:
    return DocumentRow(row[0], row[1], row[2], row[3], row[4], json.loads(row[5]), row[6])


def _matcher(path_glob: str | None, metadata: dict | None):
    """Whether a document is in a filter: its path or file name matches the glob (as
    fnmatch, compiled once), and its metadata has every value asked for (compared as text)."""
    pattern = re.compile(fnmatch.translate(path_glob)).match if path_glob else None
    wanted = {key: str(value) for key, value in (metadata or {}).items()}

    def matches(doc: DocumentRow) -> bool:
        if pattern and not (pattern(doc.path) or pattern(os.path.basename(doc.path))):
            return False
        return all(str(doc.metadata.get(key)) == value for key, value in wanted.items())
    return matches
