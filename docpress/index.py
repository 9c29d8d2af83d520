"""The public facade: create or open an index, add PDFs, search, list and remove documents.

It wires the parts together (catalog, store, lanes, searcher) and holds no logic of its own:
ingest lives in docpress.ingest, re-coding in docpress.recode, search in retriever.
"""

from __future__ import annotations

import fnmatch
import os
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from docpress.compact import AUTO_COMPACT_SHARE, CompactReport, compact_index, dead_share
from docpress.encoders import Encoder, check_encoder, encoder_from_record, load_encoder
from docpress.errors import CorruptIndexError, DocpressError, IndexMismatchError, IndexNotFoundError
from docpress.ingest import IngestReport, ProgressFn, Skipped, ingest
from docpress.pdf.ocr import OcrMode
from docpress.recode import AUTO, UNCOMPRESSED, check_compression, compress_store, wanted_now
from docpress.repair import RepairReport, repair_index
from indexer.catalog import Catalog, DocumentRow, damaged
from indexer.factory import LOCAL, open_store
from indexer.integrity import CheckReport, Problem, check_lengths, deep_check, verify_pages
from indexer.ivf_files import describe as describe_first_stages
from indexer.ivf_files import refitting
from indexer.layout import (
    FIRST_STAGE_FOLDER,
    MANIFEST_BACKUP,
    VECTOR_FOLDER_KEY,
    cache_folder,
    catalog_files,
    catalog_path,
    lane_state_key,
    manifest_path,
)
from indexer.locks import WriterLock
from indexer.manifest import Manifest, preset_name
from retriever.lanes import TUNED, Lane, new_lane_records, open_lanes
from retriever.signals import BM25_INDEXES, FIRST_STAGES

DEFAULT_INDEX = ".docpress"
INDEX_ENV = "DOCPRESS_INDEX"
# "0": a first stage that outgrew its centroids is refitted before the write returns, not in
# a process of its own (Index._start_refit)
BACKGROUND_REFIT = "DOCPRESS_BACKGROUND_REFIT"


def default_index_path() -> Path:
    return Path(os.environ.get(INDEX_ENV, DEFAULT_INDEX))


def _normalize_store(store: str, directory: Path) -> str:
    """Pin a relative on-disk Qdrant path (qdrant+path:, qdrant-edge:) to the index folder, so
    the index can be opened anywhere. An empty path stays as it is: the store refuses it."""
    for prefix in ("qdrant+path:", "qdrant-edge:"):
        rest = store[len(prefix):]
        if store.startswith(prefix) and rest and not rest.startswith("/"):
            return prefix + str((directory / rest).resolve())
    return store


def _refuse_lost_manifest(directory: Path) -> None:
    """A folder that was an index (its manifest's copy is there) is not a new one."""
    if (directory / MANIFEST_BACKUP).exists():
        raise CorruptIndexError(f"{manifest_path(directory)} is missing; run `docpress repair "
                                f"--index {directory}`")


class Index:
    """A docpress index folder: manifest, catalog, vectors (or a Qdrant collection).

    >>> index = Index.create("my-index")          # doctest: +SKIP
    >>> index.add(["reports/"])                   # doctest: +SKIP
    >>> for hit in index.search("net revenue 2022", k=5):   # doctest: +SKIP
    ...     print(hit.path, hit.page, hit.score)
    """

    # Writers wait for another writer of the same index (False: IndexBusyError at once);
    # on_wait(holder) is told once before waiting.
    wait_for_writer: bool = True
    on_wait: Callable[[str], None] | None = None
    # Whether this process searches after its writes (False: a command that writes and exits,
    # like `docpress ingest`): the end of a write then brings up only what other processes
    # read from disk, not the in-memory caches it would throw away.
    searches_after_writes: bool = True

    def __init__(self, directory: Path, manifest: Manifest, encoder: Encoder | None = None,
                 lane_encoders: dict[str, Encoder] | None = None, create: bool = False):
        self.directory = Path(directory)
        self.manifest = manifest
        self.catalog = Catalog(catalog_path(self.directory), create=create)
        self.writer = WriterLock(self.directory)
        self._encoder = encoder
        self._lane_encoders = dict(lane_encoders or {})
        self._verified: set[tuple] = set()  # (folder, lane, page id) whose rows were verified
        self.lanes: list[Lane] = []
        self._stamp = self._manifest_stamp() if manifest_path(self.directory).exists() else None
        with self._translated():
            self._open_parts()
            self._check_lengths()

    def _open_parts(self) -> None:
        """Open the store and lanes the manifest and catalog name; search is rebuilt on demand."""
        self.store = open_store(self.manifest, self.directory, self.catalog)
        self.lanes = open_lanes(self.directory, self.manifest, self.store, lambda: self.encoder,
                                self._lane_encoders, self._lane_folders())
        self._layout = self._current_layout()
        self._searcher = None

    def _reopen_parts(self) -> None:
        """After a writer changed what the manifest or the catalog's state names."""
        for lane in self.lanes:
            lane.close()
        self._open_parts()

    def _lane_folders(self) -> dict[str, str]:
        return {name: folder for name in self.manifest.lanes
                if (folder := self.catalog.state(lane_state_key(name)))}

    def _current_layout(self) -> tuple:
        """What the open parts depend on: the live folders and the manifest's records."""
        return (self.catalog.state(VECTOR_FOLDER_KEY), tuple(sorted(self._lane_folders().items())),
                repr(self.manifest.tuned), repr(self.manifest.fusion), repr(self.manifest.compression))

    def _manifest_stamp(self) -> tuple:
        st = manifest_path(self.directory).stat()
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _refresh(self) -> None:
        """Follow what another process committed (a compaction, compression or tune): reread
        the manifest when its file changed, and reopen the parts when the folders or records
        they use changed."""
        stamp = self._manifest_stamp()
        if stamp != self._stamp:
            self.manifest, self._stamp = Manifest.load(self.directory), stamp
        if self._current_layout() != self._layout:
            self._reopen_parts()

    def _check_lengths(self) -> None:
        """The cheap checks on open: every file holds the rows the catalog addresses."""
        problems = check_lengths(self.directory, self.catalog, self._stores())
        if problems:
            raise CorruptIndexError(f"{self.directory / problems[0].file} is damaged ({problems[0].what}); "
                                    f"run `docpress repair --index {self.directory}`")

    def _stores(self) -> dict:
        """{None: the main store, lane name: its store} for the lanes that own their rows."""
        return {None: self.store, **{lane.name: lane.store for lane in self.lanes if lane.own_locations}}

    @contextmanager
    def _translated(self):
        """SQLite errors from a damaged catalog become one CorruptIndexError line."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise damaged(catalog_path(self.directory), exc) from None

    @contextmanager
    def writing(self):
        """Hold the index's writer lock for the block (re-entrant), on a fresh view of what the
        last writer left; the catalog is backed up when the outermost writer is done."""
        outermost = not self.writer.held
        with self.writer.hold(self.wait_for_writer, self.on_wait), self._translated():
            if outermost:
                self._refresh()
                self._verified.clear()
                if manifest_path(self.directory).exists() and Manifest.load(self.directory) != self.manifest:
                    self.manifest.save(self.directory)  # corrected on open (a crash's stale record)
                    self._stamp = self._manifest_stamp()
                self.catalog.start_write()
            try:
                yield self
            except BaseException:
                if outermost:  # what it committed is not journaled: the next backup is a full copy
                    self.catalog.abandon_write()
                raise
            if outermost:
                self.catalog.backup()

    @contextmanager
    def reading(self):
        """One consistent snapshot for the block: the catalog as of its start, the folders it
        names (reopened if a writer replaced them), whatever writers commit meanwhile."""
        with self._translated(), self.catalog.snapshot():
            self._refresh()
            yield self

    # -- lifecycle ----------------------------------------------------------------------
    @classmethod
    def create(cls, directory: str | Path | None = None, encoder: str | Encoder = "text",
               store: str | None = None, exist_ok: bool = True,
               lanes: dict[str, str | Encoder] | None = None, **encoder_options) -> "Index":
        """Create an index folder (or open it when it exists and matches the encoder).

        store: "local" (the embedded default) or a Qdrant location; None keeps an existing
        index's store and means "local" for a new one.
        lanes: extra lanes for a new index, {name: encoder or encoder name}, e.g.
        {"optical": load_encoder("optical", weights=DIR)}: every page is also encoded by them
        and hybrid search fuses their MaxSim (embedded store only).
        """
        directory = Path(directory or default_index_path())
        if not manifest_path(directory).exists():
            _refuse_lost_manifest(directory)
        enc = encoder if isinstance(encoder, Encoder) else load_encoder(encoder, **encoder_options)
        if manifest_path(directory).exists():
            if not exist_ok:
                raise DocpressError(f"an index already exists at {directory}")
            index = cls.open(directory, encoder=enc, store=store)
            if lanes and set(lanes) != set(index.manifest.lanes):
                index.close()
                raise IndexMismatchError(f"index at {directory} has lanes "
                                         f"{sorted(index.manifest.lanes) or 'none'}; lanes are "
                                         "chosen when an index is created")
            return index
        store = _normalize_store(store or LOCAL, directory)
        if lanes and store != LOCAL:
            raise DocpressError("extra lanes need the embedded store (--store local)")
        records, lane_encoders = new_lane_records(lanes or {}, enc)
        directory.mkdir(parents=True, exist_ok=True)
        record = enc.record()
        manifest = Manifest(encoder_id=enc.id, encoder_config=record["encoder_config"],
                            encoder_hash=record["encoder_hash"], dim=enc.dim, store=store,
                            encoder_options=record["encoder_options"], lanes=records)
        index = cls(directory, manifest, enc, lane_encoders, create=True)
        manifest.save(directory)  # last: a folder without a manifest is no index yet
        return index

    @classmethod
    def open(cls, directory: str | Path | None = None, encoder: str | Encoder | None = None,
             store: str | None = None, lane_encoders: dict[str, Encoder] | None = None) -> "Index":
        """Open an existing index; refuses one built with another encoder or format.
        lane_encoders: extra lanes' encoders already loaded (a server shares them)."""
        directory = Path(directory or default_index_path())
        if not manifest_path(directory).exists():
            _refuse_lost_manifest(directory)
            raise IndexNotFoundError(f"no docpress index at {directory}; create one with "
                                     "`docpress ingest PDFS --index DIR`")
        manifest = Manifest.load(directory)
        if store is not None and _normalize_store(store, directory) != manifest.store:
            raise IndexMismatchError(f"index at {directory} uses store {manifest.store!r}, "
                                     f"not {store!r}")
        enc = None
        if encoder is not None:
            record = manifest.encoder_record()
            if isinstance(encoder, Encoder):
                enc = encoder
            elif encoder == manifest.encoder_id:
                enc = encoder_from_record(record)
            else:
                enc = load_encoder(encoder)
            check_encoder(record, enc, f"index at {directory}")
        return cls(directory, manifest, enc, lane_encoders)

    def close(self) -> None:
        self.catalog.close()
        for lane in self.lanes:
            lane.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def encoder(self) -> Encoder:
        """The index's encoder, loaded on first use (listing and removing need no model)."""
        if self._encoder is None:
            self._encoder = encoder_from_record(self.manifest.encoder_record())
        return self._encoder

    def lane(self, name: str) -> Lane | None:
        """The lane called `name` (retriever.lanes: MAIN, TUNED or an extra lane), or None."""
        return next((lane for lane in self.lanes if lane.name == name), None)

    @property
    def tuned(self) -> Lane | None:
        """The tuned lane (`docpress tune`), or None when not tuned or when the vectors are no
        longer the bf16 rows it was projected from."""
        return self.lane(TUNED)

    # -- writing ------------------------------------------------------------------------
    def add(self, paths: Iterable[str | Path] | str | Path, metadata: dict | None = None,
            ocr: OcrMode | str = OcrMode.auto, progress: ProgressFn | None = None,
            on_skip: Callable[[Skipped], None] | None = None,
            compression: str | dict | None = AUTO) -> IngestReport:
        """Index PDFs and folders of PDFs; unchanged files are skipped, changed ones replaced.

        compression: "auto" (bf16 until the index holds 1,000 pages, then "balanced"), "none",
        or a preset name / config applied after the files are added. A compressed index codes
        new pages with its codec as they arrive and refuses another preset.
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        _ = self.encoder  # load (and check) the model before the first file is read
        with self.writing():
            check_compression(self.manifest, compression, self.directory)
            report = ingest(paths, self.catalog, self.lanes, OcrMode(ocr), metadata, progress, on_skip)
            now = wanted_now(self.manifest, self.store, compression, self.catalog.counts()["pages"])
            if now is not None:
                self.compress(now)
            if dead_share(self.catalog, self.lanes) > AUTO_COMPACT_SHARE:
                report.compacted = self.compact().as_dict()
        if report.pages:
            self.warm_caches()
        return report

    def warm_caches(self) -> None:
        """Bring the search caches (the BM25 indexes, the head vectors, maxsim's first stage)
        up to the catalog now, so the first search after a write does not pay for it. They
        follow writes incrementally (retriever.signals), so this costs what the new pages
        cost; they are derived data, so a disk that refuses them only costs the next search
        that time. A process that does not search after its writes (searches_after_writes)
        brings up the first stages, whose files every process reads, and the BM25 indexes
        and head vectors only where that saves them (a merge, most pages new): a fresh
        `docpress ingest` of 100 pages at 1M spent 10 s loading and updating caches that only
        it would have held."""
        try:
            with self.reading():
                cache = self.searcher.cache
                everything = self.searches_after_writes
                for which in BM25_INDEXES:
                    if everything or cache.bm25_saves(which):
                        getattr(cache, which)()
                if everything or cache.heads_save():
                    cache.warm_heads()
                # a first stage that only outgrew its centroids is extended and serves on; it
                # is refitted after, in the background (minutes at 100k pages)
                for name in FIRST_STAGES:
                    cache.first_stage(name, defer_drift=True)
                outgrown = cache.outgrown_first_stages()
        except OSError:
            return
        folder = cache_folder(self.directory) / FIRST_STAGE_FOLDER
        # one refit at a time: writes that follow each other while one runs start no other
        # (each would load the index only to find the refit's lock taken)
        if outgrown and not any(refitting(folder, name) for name in outgrown):
            self._start_refit()

    def refit_first_stages(self) -> list[str]:
        """Rebuild the first stages (FAISS IVFs) fitted to a much smaller index than this one
        (indexer.ivf_files.RETRAIN_GROWTH), while the old ones serve; returns their names.
        Ingest and rm start it in the background (`docpress refit`)."""
        with self._translated(), self.reading():
            try:
                return self.searcher.cache.refit_first_stages()
            except OSError as exc:
                raise DocpressError(f"the first stages of {self.directory} could not be refitted "
                                    f"(the old ones serve on): {exc}") from None

    def _start_refit(self) -> None:
        """`docpress refit` in a process of its own that outlives this one, or here and now
        where DOCPRESS_BACKGROUND_REFIT=0 (tests, scripts that want it done on return)."""
        if os.environ.get(BACKGROUND_REFIT, "1") == "0":
            try:
                self.refit_first_stages()
            except DocpressError:
                pass  # derived data: the next write asks again
            return
        log = cache_folder(self.directory) / FIRST_STAGE_FOLDER / "refit.log"
        try:
            with open(log, "ab") as sink:
                subprocess.Popen([sys.executable, "-m", "docpress", "refit", "--index", str(self.directory)],
                                 stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                 start_new_session=True, close_fds=True)
        except OSError:
            pass  # no process to be had: the old first stages serve, the next write asks again

    @property
    def compression(self) -> str:
        """The compression preset the index's vectors are coded with ("none": bf16)."""
        return preset_name(self.manifest.compression)

    def compress(self, config: str | dict, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None,
                 fit_page_ids=None) -> dict:
        """Re-code every page with a compression preset ("balanced", "compact", "tiny") or an
        explicit config, fitted on this index's pages (only on `fit_page_ids` when given);
        returns the manifest's new record."""
        with self._rewriting():
            new = compress_store(self.directory, self.manifest, self.catalog, self.store, config,
                                 seed=seed, progress=progress, fit_page_ids=fit_page_ids)
            if new is self.store:
                return dict(UNCOMPRESSED)
            self._reopen_parts()
            if self.tuned is not None:  # project its rows from the new codes now, not on a first search
                self.tuned.store.catch_up()
            return self.manifest.compression

    def compact(self) -> CompactReport:
        """Rewrite the live rows of every lane into new files and delete the dead ones (rows of
        removed or replaced documents, older generations); crash-safe like compress."""
        with self._rewriting():
            report = compact_index(self.directory, self.manifest, self.catalog, self.lanes)
            self._reopen_parts()
            if self.tuned is not None:
                self.tuned.store.catch_up()
            return report

    @contextmanager
    def _rewriting(self):
        """writing(), for a write that gives the rows other vectors (compress, compact): the
        caches are brought up at its end, first stages included (a search builds none),
        unless it runs inside another write, whose own end does that."""
        outermost = not self.writer.held
        with self.writing():
            yield self
        if outermost:
            self.warm_caches()

    def check(self, deep: bool = False) -> CheckReport:
        """Integrity of the index: file lengths against the catalog (and with deep, SQLite's
        own check and every page's checksum). Damage found on open raises instead."""
        with self.reading():
            if deep:
                return deep_check(self.directory, self.catalog, self._stores())
            return CheckReport(problems=check_lengths(self.directory, self.catalog, self._stores()))

    def sync(self, paths: Iterable[str | Path]) -> list[str]:
        """Forget the paths, under the given folders (or equal to given files), whose files are
        gone from disk; a document goes once none of its paths is left. Returns those paths."""
        roots = [str(Path(p).resolve()) for p in paths]

        def under(path: str) -> bool:
            return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)

        with self.writing():
            gone = [p for paths in self._paths().values() for p in paths
                    if under(p) and not os.path.exists(p)]
            self._forget_paths(set(gone))
        return gone

    def set_tuned(self, record: dict) -> None:
        """Make the tuned lane `record` names the index's (written whole by `docpress tune`
        first); the manifest write is the switch."""
        with self.writing():
            self.manifest.tuned = record
            self.manifest.save(self.directory)
            self._reopen_parts()

    def set_fusion(self, record: dict) -> None:
        """Search with hybrid weights `record` names (written by `docpress calibrate`); {} goes
        back to the defaults."""
        with self.writing():
            self.manifest.fusion = record
            self.manifest.save(self.directory)
            self._reopen_parts()

    def remove(self, pattern: str) -> list[str]:
        """Forget the paths (a document's, or an identical copy's) that match a path, a file
        name or a glob; a document goes once none of its paths is left. Returns the paths."""
        full = str(Path(pattern).resolve()) if not any(c in pattern for c in "*?[") else pattern

        def matches(path: str) -> bool:
            return path == full or fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(Path(path).name, pattern)

        with self.writing():
            gone = [p for paths in self._paths().values() for p in paths if matches(p)]
            self._forget_paths(set(gone))
        if gone:
            self.warm_caches()
        return gone

    def _paths(self) -> dict[int, list[str]]:
        """{document id: its path, then its copies' paths}, from two reads of the catalog (one
        read a document took 1.7 s at 90k documents)."""
        copies = self.catalog.aliases()
        return {doc.id: [doc.path, *copies.get(doc.id, [])] for doc in self.catalog.documents()}

    def _forget_paths(self, paths: set[str]) -> None:
        """Drop paths; a document keeps living under a copy's path while it has one."""
        documents = {doc.id: doc for doc in self.catalog.documents()}
        for doc_id, mine in self._paths().items():
            if not paths & set(mine):
                continue
            doc = documents[doc_id]
            left = [p for p in mine if p not in paths]
            with self.catalog.transaction():
                if not left:
                    pages = self.catalog.delete_document(doc.id)
                else:
                    pages = []
                    for path in set(mine) & paths:
                        self.catalog.remove_alias(path)
                    if doc.path in paths:
                        self.catalog.set_document_path(doc.id, left[0])
            for lane in self.lanes:
                lane.store.remove(pages)

    # -- reading ------------------------------------------------------------------------
    def documents(self) -> list[DocumentRow]:
        with self.reading():
            return self.catalog.documents()

    def aliases(self) -> dict[int, list[str]]:
        """{document id: the paths of its identical copies}."""
        with self.reading():
            return self.catalog.aliases()

    def info(self) -> dict:
        with self.reading():
            return self._info()

    def _info(self) -> dict:
        counts = self.catalog.counts()
        store_bytes = sum(lane.nbytes() for lane in self.lanes)
        catalog_bytes = sum(p.stat().st_size for p in catalog_files(self.directory))
        return {
            "path": str(self.directory), "format_version": self.manifest.format_version,
            "encoder": self.manifest.encoder_id, "encoder_config": self.manifest.encoder_config,
            "encoder_hash": self.manifest.encoder_hash, "store": self.manifest.store,
            "compression": self.compression, "lanes": sorted(self.manifest.lanes), **counts,
            "vector_bytes": store_bytes, "catalog_bytes": catalog_bytes,
            "bytes_per_page": round((store_bytes + catalog_bytes) / counts["pages"], 1)
            if counts["pages"] else 0,
            "dead_rows_share": round(dead_share(self.catalog, self.lanes), 3),
            # the FAISS first stages on disk (indexer/ivf_files.py): tokens (maxsim), head and
            # dense (hybrid); none below their sizes
            "first_stages": describe_first_stages(cache_folder(self.directory) / FIRST_STAGE_FOLDER),
        }

    def search(self, query: str, k: int = 10, method: str = "hybrid", path: str | None = None,
               metadata: dict | None = None):
        """Best pages for a question: list of Hit (path, page, score, snippet, image())."""
        return self.search_many([query], k, method, path, metadata)[0]

    def search_many(self, queries: list[str], k: int = 10, method: str = "hybrid",
                    path: str | None = None, metadata: dict | None = None):
        # damaged rows may overflow; they are caught below by their checksums, not by warnings
        with self.reading(), np.errstate(all="ignore"):
            results = self.searcher.search(queries, k=k, method=method, path_glob=path, metadata=metadata)
            self._verify({hit.page_id for hits in results for hit in hits} | self.searcher.suspects)
        return results

    def page_hit(self, page_id: int, query: str):
        """The page `page_id` as a Hit for `query` (to draw where the query matched on it), or
        None when the index has no such page or the query no words."""
        with self.reading(), np.errstate(all="ignore"):
            hit = self.searcher.page_hit(int(page_id), query)
            if hit is not None:
                self._verify({hit.page_id})
        return hit

    def page_file(self, page_id: int) -> tuple[str, int] | None:
        """(the document's path, page number) of an indexed page, or None."""
        with self.reading():
            row = self.catalog.page(int(page_id))
            doc = self.catalog.document(row.doc_id) if row else None
        return (doc.path, row.number) if doc else None

    def _verify(self, page_ids: set[int]) -> None:
        """The returned pages' rows still match their checksums (a damaged file never gives a
        silently wrong answer); each page is verified once per process and generation."""
        for lane, store in self._stores().items():
            if not store.row_files():
                continue
            todo = [p for p in page_ids if (store.dir, lane, p) not in self._verified]
            bad = verify_pages(self.catalog, store, lane, todo)
            if bad:
                problem = Problem(os.path.relpath(store.dir, self.directory),
                                  f"the rows of {len(bad)} returned pages do not match their checksums")
                raise CorruptIndexError(f"{self.directory / problem.file} is damaged ({problem.what}); "
                                        f"run `docpress repair --index {self.directory}`")
            self._verified |= {(store.dir, lane, p) for p in todo}

    @classmethod
    def repair(cls, directory: str | Path | None = None, wait: bool = True,
               on_wait: Callable[[str], None] | None = None) -> RepairReport:
        """Bring a damaged index back to its last consistent state (docpress.repair), then
        rebuild its search caches: repair deletes them, and a search builds no first stage."""
        directory = Path(directory or default_index_path())
        report = repair_index(directory, wait, on_wait)
        try:
            with cls.open(directory) as index:
                index.warm_caches()
        except (DocpressError, OSError):
            pass  # derived data: the next ingest or rm builds them
        return report

    @property
    def searcher(self):
        """The retriever.search.Searcher over this index's parts, built on first use."""
        if self._searcher is None:
            from retriever.search import Searcher
            from retriever.signals import SignalCache

            self._searcher = Searcher(self.catalog, self.lanes,
                                      SignalCache(self.directory, self.catalog, self.store),
                                      self.manifest.fusion)
        return self._searcher
