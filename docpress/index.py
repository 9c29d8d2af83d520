"""The public facade: create or open an index, add PDFs, search, list and remove documents.

It wires the parts together (catalog, store, lanes, searcher) and holds no logic of its own:
ingest lives in docpress.ingest, re-coding in docpress.recode, search in retriever.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Callable, Iterable

from docpress.encoders import Encoder, check_encoder, encoder_from_record, load_encoder
from docpress.errors import DocpressError, IndexMismatchError, IndexNotFoundError
from docpress.ingest import IngestReport, ProgressFn, Skipped, ingest
from docpress.pdf.ocr import OcrMode
from docpress.recode import AUTO, UNCOMPRESSED, check_compression, compress_store, wanted_now
from indexer.catalog import Catalog, DocumentRow
from indexer.factory import LOCAL, open_store
from indexer.layout import catalog_files, catalog_path, manifest_path
from indexer.manifest import Manifest, preset_name
from retriever.lanes import TUNED, Lane, new_lane_records, open_lanes

DEFAULT_INDEX = ".docpress"
INDEX_ENV = "DOCPRESS_INDEX"


def default_index_path() -> Path:
    return Path(os.environ.get(INDEX_ENV, DEFAULT_INDEX))


def _normalize_store(store: str, directory: Path) -> str:
    """Pin a relative on-disk Qdrant path to the index folder, so the index can be opened anywhere."""
    prefix = "qdrant+path:"
    if store.startswith(prefix) and not store[len(prefix):].startswith("/"):
        return prefix + str((directory / store[len(prefix):]).resolve())
    return store


class Index:
    """A docpress index folder: manifest, catalog, vectors (or a Qdrant collection).

    >>> index = Index.create("my-index")          # doctest: +SKIP
    >>> index.add(["reports/"])                   # doctest: +SKIP
    >>> for hit in index.search("net revenue 2022", k=5):   # doctest: +SKIP
    ...     print(hit.path, hit.page, hit.score)
    """

    def __init__(self, directory: Path, manifest: Manifest, encoder: Encoder | None = None,
                 lane_encoders: dict[str, Encoder] | None = None):
        self.directory = Path(directory)
        self.manifest = manifest
        self.catalog = Catalog(catalog_path(self.directory))
        self._encoder = encoder
        self._lane_encoders = dict(lane_encoders or {})
        self._open_parts()

    def _open_parts(self) -> None:
        """Open the store and lanes the manifest and catalog name; search is rebuilt on demand."""
        self.store = open_store(self.manifest, self.directory, self.catalog)
        self.lanes: list[Lane] = open_lanes(self.directory, self.manifest, self.store,
                                            lambda: self.encoder, self._lane_encoders)
        self._searcher = None

    def _reopen_parts(self) -> None:
        """After a writer changed what the manifest names (compress, tune)."""
        for lane in self.lanes:
            lane.close()
        self._open_parts()

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
        index = cls(directory, manifest, enc, lane_encoders)
        manifest.save(directory)  # last: a folder without a manifest is no index yet
        return index

    @classmethod
    def open(cls, directory: str | Path | None = None, encoder: str | Encoder | None = None,
             store: str | None = None) -> "Index":
        """Open an existing index; refuses one built with another encoder or format."""
        directory = Path(directory or default_index_path())
        if not manifest_path(directory).exists():
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
        return cls(directory, manifest, enc)

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
        check_compression(self.manifest, compression, self.directory)
        _ = self.encoder  # load (and check) the model before the first file is read
        report = ingest(paths, self.catalog, self.lanes, OcrMode(ocr), metadata, progress, on_skip)
        now = wanted_now(self.manifest, self.store, compression, self.catalog.counts()["pages"])
        if now is not None:
            self.compress(now)
        return report

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
        new = compress_store(self.directory, self.manifest, self.catalog, self.store, config,
                             seed=seed, progress=progress, fit_page_ids=fit_page_ids)
        if new is self.store:
            return dict(UNCOMPRESSED)
        self._reopen_parts()
        if self.tuned is not None:  # project its rows from the new codes now, not on a first search
            self.tuned.store.catch_up()
        return self.manifest.compression

    def set_tuned(self, record: dict) -> None:
        """Make the tuned lane `record` names the index's (written whole by `docpress tune`
        first); the manifest write is the switch."""
        self.manifest.tuned = record
        self.manifest.save(self.directory)
        self._reopen_parts()

    def set_fusion(self, record: dict) -> None:
        """Search with hybrid weights `record` names (written by `docpress calibrate`); {} goes
        back to the defaults."""
        self.manifest.fusion = record
        self.manifest.save(self.directory)
        self._reopen_parts()

    def remove(self, pattern: str) -> list[str]:
        """Delete documents whose path (or file name) matches a path or glob; return their paths."""
        full = str(Path(pattern).resolve()) if not any(c in pattern for c in "*?[") else pattern
        gone = []
        for doc in self.catalog.documents():
            if doc.path == full or fnmatch.fnmatch(doc.path, pattern) or \
                    fnmatch.fnmatch(Path(doc.path).name, pattern):
                with self.catalog.transaction():
                    pages = self.catalog.delete_document(doc.id)
                for lane in self.lanes:
                    lane.store.remove(pages)
                gone.append(doc.path)
        return gone

    # -- reading ------------------------------------------------------------------------
    def documents(self) -> list[DocumentRow]:
        return self.catalog.documents()

    def info(self) -> dict:
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
        }

    def search(self, query: str, k: int = 10, method: str = "hybrid", path: str | None = None,
               metadata: dict | None = None):
        """Best pages for a question: list of Hit (path, page, score, snippet, image())."""
        return self.search_many([query], k, method, path, metadata)[0]

    def search_many(self, queries: list[str], k: int = 10, method: str = "hybrid",
                    path: str | None = None, metadata: dict | None = None):
        return self.searcher.search(queries, k=k, method=method, path_glob=path, metadata=metadata)

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
