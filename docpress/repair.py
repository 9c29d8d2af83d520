"""Repair: bring a damaged index back to its last consistent state, and say what was lost.

In order, under the writer lock:
1. manifest.json unreadable: restored from manifest.backup.json (written with every save).
2. catalog.sqlite missing, empty or failing SQLite's integrity check: restored from
   catalog.backup and the writes journaled after it (catalog.journal, appended at the end of
   every write); without a backup, a new empty catalog.
3. a damaged codec: restored from its copy (codec.backup/); the live vector folder gone (or a
   codec with no copy): every document is dropped and the index starts again on bf16.
4. a tuned head that does not match its hash: the tuned lane is dropped.
5. every page's rows verified; documents with any missing or torn row are dropped (whole
   documents, so the next `ingest` of their files adds them back complete).
6. derived caches deleted, then a compaction writes the live rows into fresh files and
   deletes the rest. Index.repair then rebuilds the caches (a search builds no first stage).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from docpress.compact import compact_index
from docpress.errors import CorruptIndexError, DocpressError, IndexNotFoundError
from indexer.catalog import Catalog
from indexer.catalog_backup import CatalogBackup
from indexer.factory import open_compressed, open_store, restore_codec
from indexer.integrity import deep_check
from indexer.layout import (
    CACHE_FOLDER,
    CATALOG_BACKUP,
    MANIFEST,
    MANIFEST_BACKUP,
    RAW_FOLDER,
    VECTOR_FOLDER_KEY,
    catalog_files,
    catalog_path,
    is_raw_folder,
    lane_state_key,
)
from indexer.locks import WriterLock
from indexer.manifest import Manifest, schema_problem
from retriever.lanes import open_lanes

UNCOMPRESSED = {"quantize": "bf16"}


@dataclass
class RepairReport:
    actions: list[str] = field(default_factory=list)  # what was restored or rebuilt
    dropped: list[str] = field(default_factory=list)  # paths of documents dropped
    pages_dropped: int = 0
    bytes_reclaimed: int = 0

    def as_dict(self) -> dict:
        return {"actions": self.actions, "dropped": self.dropped,
                "pages_dropped": self.pages_dropped, "bytes_reclaimed": self.bytes_reclaimed}


def repair_index(directory: Path, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None) -> RepairReport:
    directory = Path(directory)
    if not (directory / MANIFEST).exists() and not (directory / MANIFEST_BACKUP).exists():
        raise IndexNotFoundError(f"no docpress index at {directory}")
    report = RepairReport()
    with WriterLock(directory).hold(wait, on_wait):
        manifest = _manifest(directory, report)
        catalog = _catalog(directory, manifest, report)
        try:
            _repair_contents(directory, manifest, catalog, report)
        finally:
            catalog.close()
    return report


def _manifest(directory: Path, report: RepairReport) -> Manifest:
    try:
        return Manifest.load(directory)
    except CorruptIndexError:
        pass
    try:
        data = json.loads((directory / MANIFEST_BACKUP).read_text())
    except (OSError, ValueError):
        data = None
    if data is None or schema_problem(data):
        raise CorruptIndexError(f"{directory / MANIFEST} is damaged and has no good copy; the index's "
                                "encoder is unknown: ingest the PDFs into a new index")
    shutil.copyfile(directory / MANIFEST_BACKUP, directory / MANIFEST)
    report.actions.append(f"restored {MANIFEST} from {MANIFEST_BACKUP}")
    return Manifest.load(directory)


def _sound(path: Path) -> bool:
    """The SQLite file opens and passes its integrity check."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        db = sqlite3.connect(path)
        try:
            return [r[0] for r in db.execute("PRAGMA integrity_check")] == ["ok"] and \
                {"documents", "pages"} <= {r[0] for r in db.execute(
                    "SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False


def _catalog(directory: Path, manifest: Manifest, report: RepairReport) -> Catalog:
    path = catalog_path(directory)
    if _sound(path):
        return Catalog(path)
    for stale in catalog_files(directory):
        stale.unlink()
    backup = directory / CATALOG_BACKUP
    if _sound(backup):
        shutil.copyfile(backup, path)
        catalog = Catalog(path)
        copies = CatalogBackup(directory)
        replayed = copies.replay(catalog.db)
        stamp = (copies.journal if replayed else backup).stat().st_mtime
        taken = time.strftime("%Y-%m-%d %H:%M", time.localtime(stamp))
        since = f" and the {replayed} writes journaled after it" if replayed else ""
        report.actions.append(f"restored the catalog from its backup{since}, as of {taken}; documents "
                              "added after that are re-added by the next ingest of their files")
        return catalog
    catalog = Catalog(path)
    folder = (manifest.compression or {}).get("folder")
    if folder and (directory / folder).is_dir():
        catalog.set_state(VECTOR_FOLDER_KEY, folder)  # keep coding new pages with the same codec
    report.actions.append("the catalog was lost and had no backup: started an empty one; every "
                          "document is re-added by the next ingest of its files")
    return catalog


def _drop_documents(catalog: Catalog, doc_ids: set[int], report: RepairReport) -> None:
    if not doc_ids:
        return
    with catalog.transaction():
        for doc_id in sorted(doc_ids):
            doc = catalog.document(doc_id)
            if doc is None:
                continue
            report.pages_dropped += len(catalog.delete_document(doc_id))
            report.dropped.append(doc.path)


def _all_documents(catalog: Catalog) -> set[int]:
    return {d.id for d in catalog.documents()}


def _repair_contents(directory: Path, manifest: Manifest, catalog: Catalog, report: RepairReport) -> None:
    folder = catalog.state(VECTOR_FOLDER_KEY, RAW_FOLDER)
    if manifest.store == "local":
        if (directory / folder).is_dir() and not is_raw_folder(folder):
            try:
                open_compressed(directory / folder).close()
            except CorruptIndexError:
                if restore_codec(directory / folder):
                    report.actions.append(f"restored {folder}/codec from its copy")
        usable = (directory / folder).is_dir()
        if usable and not is_raw_folder(folder):
            try:
                open_compressed(directory / folder).close()
            except DocpressError:
                usable = False
        if not usable:  # the rows of every page are gone: start again on bf16
            _drop_documents(catalog, _all_documents(catalog), report)
            with catalog.transaction():
                catalog.set_state(VECTOR_FOLDER_KEY, RAW_FOLDER)
            manifest.compression = dict(UNCOMPRESSED)
            report.actions.append(f"{folder} was missing or unreadable: every document was dropped")
        for name in manifest.lanes:
            lane_dir = catalog.state(lane_state_key(name))
            if lane_dir and not (directory / lane_dir).is_dir():
                with catalog.transaction():
                    catalog.db.execute("DELETE FROM state WHERE key=?", (lane_state_key(name),))
                _drop_documents(catalog, _all_documents(catalog), report)
                report.actions.append(f"{lane_dir} was missing: every document was dropped")
    store = open_store(manifest, directory, catalog)
    try:
        lanes = open_lanes(directory, manifest, store, lambda: None, None,
                           {n: catalog.state(lane_state_key(n)) for n in manifest.lanes})
    except DocpressError:  # the tuned head does not match the manifest
        report.actions.append("dropped the tuned lane (its head is damaged); run `docpress tune` again")
        manifest.tuned = {}
        lanes = open_lanes(directory, manifest, store, lambda: None, None,
                           {n: catalog.state(lane_state_key(n)) for n in manifest.lanes})
    stores = {None: store, **{lane.name: lane.store for lane in lanes if lane.own_locations}}
    check = deep_check(directory, catalog, stores)
    damaged = check.damaged_pages()
    if damaged:
        ids = sorted(damaged)
        docs = set()
        for i in range(0, len(ids), 900):
            chunk = ids[i:i + 900]
            docs |= {int(r[0]) for r in catalog.db.execute(
                f"SELECT DISTINCT doc_id FROM pages WHERE id IN ({','.join('?' * len(chunk))})", chunk)}
        _drop_documents(catalog, docs, report)
        report.actions += [f"{p.line()}: dropped their documents" for p in check.problems]
    shutil.rmtree(directory / CACHE_FOLDER, ignore_errors=True)
    manifest.save(directory)
    compacted = compact_index(directory, manifest, catalog, lanes)
    report.bytes_reclaimed = compacted.bytes_before - compacted.bytes_after
    if not report.actions:
        report.actions.append("nothing was damaged; rewrote the live rows")
