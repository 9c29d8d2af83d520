"""The public facade: create or open an index, add PDFs, search, list and remove documents."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

from docpress.encoders import Encoder, load_encoder
from docpress.errors import DocpressError, IndexMismatchError, IndexNotFoundError
from docpress.index_compression import (AUTO, check_compression, compress_index, open_vector_store,
                                        preset_name, wanted_now)
from docpress.ingest import IngestReport, ProgressFn, Skipped, ingest
from docpress.lanes import new_lane_records, open_lanes
from docpress.text import OcrMode
from indexer.catalog import Catalog, DocumentRow
from indexer.manifest import MANIFEST, Manifest

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
        self.catalog = Catalog(self.directory / "catalog.sqlite")
        self.store = open_vector_store(manifest, self.directory, self.catalog)
        self.lanes = open_lanes(manifest, self.directory, lane_encoders)
        self._encoder = encoder
        self._searcher = None
        self._tuned: tuple | None = None  # (the store it was opened on, TunedLane or None)

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
        if (directory / MANIFEST).exists():
            if not exist_ok:
                raise DocpressError(f"an index already exists at {directory}")
            index = cls.open(directory, encoder=enc, store=store)
            if lanes and set(lanes) != set(index.manifest.lanes):
                index.close()
                raise IndexMismatchError(f"index at {directory} has lanes "
                                         f"{sorted(index.manifest.lanes) or 'none'}; lanes are "
                                         "chosen when an index is created")
            return index
        store = _normalize_store(store or "local", directory)
        if lanes and store != "local":
            raise DocpressError("extra lanes need the embedded store (--store local)")
        records, lane_encoders = new_lane_records(lanes or {}, enc)
        directory.mkdir(parents=True, exist_ok=True)
        options = enc.options() if callable(getattr(enc, "options", None)) else {}
        manifest = Manifest(encoder_id=enc.id, encoder_config=enc.config(),
                            encoder_hash=enc.config_hash(), dim=enc.dim, store=store,
                            encoder_options=options, lanes=records)
        index = cls(directory, manifest, enc, lane_encoders)
        manifest.save(directory)  # last: a folder without a manifest is no index yet
        return index

    @classmethod
    def open(cls, directory: str | Path | None = None, encoder: str | Encoder | None = None,
             store: str | None = None) -> "Index":
        """Open an existing index; refuses one built with another encoder or format."""
        directory = Path(directory or default_index_path())
        if not (directory / MANIFEST).exists():
            raise IndexNotFoundError(f"no docpress index at {directory}; create one with "
                                     "`docpress ingest PDFS --index DIR`")
        manifest = Manifest.load(directory)
        if store is not None and _normalize_store(store, directory) != manifest.store:
            raise IndexMismatchError(f"index at {directory} uses store {manifest.store!r}, "
                                     f"not {store!r}")
        enc = None
        if encoder is not None:
            enc = encoder if isinstance(encoder, Encoder) else _encoder_for(manifest, encoder)
            manifest.check_encoder(enc.id, enc.config_hash(), directory)
        return cls(directory, manifest, enc)

    def close(self) -> None:
        self.catalog.close()
        self.store.close()
        for lane in self.lanes:
            lane.store.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def encoder(self) -> Encoder:
        """The index's encoder, loaded on first use (listing and removing need no model)."""
        if self._encoder is None:
            enc = _encoder_for(self.manifest, self.manifest.encoder_id)
            self.manifest.check_encoder(enc.id, enc.config_hash(), self.directory)
            self._encoder = enc
        return self._encoder

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
        report = ingest(paths, self.catalog, self.store, self.encoder, OcrMode(ocr), metadata,
                        progress, on_skip, self.lanes)
        now = wanted_now(self.manifest, compression, self.catalog.counts()["pages"])
        if now is not None:
            self.compress(now)
        return report

    @property
    def compression(self) -> str:
        """The compression preset the index's vectors are coded with ("none": bf16)."""
        return preset_name(self.manifest.compression)

    def compress(self, config: str | dict, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> dict:
        """Re-code every page with a compression preset ("balanced", "compact", "tiny") or an
        explicit config, fitted on this index's pages; returns the manifest's new record."""
        record = compress_index(self, config, seed=seed, progress=progress)
        self._searcher = None  # its caches hold the old store
        return record

    def remove(self, pattern: str) -> list[str]:
        """Delete documents whose path (or file name) matches a path or glob; return their paths."""
        import fnmatch

        full = str(Path(pattern).resolve()) if not any(c in pattern for c in "*?[") else pattern
        gone = []
        for doc in self.catalog.documents():
            if doc.path == full or fnmatch.fnmatch(doc.path, pattern) or \
                    fnmatch.fnmatch(Path(doc.path).name, pattern):
                with self.catalog.transaction():
                    pages = self.catalog.delete_document(doc.id)
                self.store.remove(pages)
                for lane in self.lanes:
                    lane.store.remove(pages)
                gone.append(doc.path)
        return gone

    # -- reading ------------------------------------------------------------------------
    def documents(self) -> list[DocumentRow]:
        return self.catalog.documents()

    def info(self) -> dict:
        counts = self.catalog.counts()
        store_bytes = self.store.nbytes() + sum(lane.store.nbytes() for lane in self.lanes)
        if self.tuned is not None:
            store_bytes += self.tuned.nbytes()
        catalog_bytes = sum(p.stat().st_size for p in self.directory.glob("catalog.sqlite*"))
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
        if self._searcher is None:
            from retriever.search import Searcher

            self._searcher = Searcher(self)
        return self._searcher.search(queries, k=k, method=method, path_glob=path, metadata=metadata)

    # -- tuned lane (docpress tune) ----------------------------------------------------------
    def tune(self, options=None, progress=None):
        """Train a token head on this index's own pages (no labels) and search with it where
        the manifest says; options: docpress.tune.TuneOptions. Returns a TuneReport."""
        from docpress.tune.run import tune_index

        return tune_index(self, options, progress)

    @property
    def tuned(self):
        """The tuned lane (docpress.tune.TunedLane), opened on first use; None when not tuned or
        when the vectors are no longer the bf16 rows it was projected from."""
        if self._tuned is None or self._tuned[0] is not self.store:  # compress swaps the store
            from docpress.tune.tuned import TunedLane

            self._tuned = (self.store, TunedLane.open(self.directory, self.manifest.tuned, self.store))
        return self._tuned[1]

    def reset_tuned(self) -> None:
        """Forget the opened tuned lane (tune installs a new one)."""
        self._tuned = None


def _encoder_for(manifest: Manifest, name: str) -> Encoder:
    """Rebuild the encoder the manifest describes (its recorded options), or the named one."""
    if name != manifest.encoder_id:
        return load_encoder(name)
    if name == "optical":
        # the weights path and mode live in the options; the config records only their hash
        if not manifest.encoder_options:
            raise DocpressError("this optical index records no encoder options (weights path); open "
                                "it with Index.open(DIR, encoder=load_encoder('optical', weights=...))")
        return load_encoder(name, **manifest.encoder_options)
    options = {k: v for k, v in manifest.encoder_config.items() if k in ("max_length", "overlap")}
    model = manifest.encoder_config.get("model")
    if model and model != "all-MiniLM-L6-v2":
        options["model"] = model
    return load_encoder(name, **options)
