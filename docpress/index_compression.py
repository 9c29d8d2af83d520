"""Which vector folder an embedded index searches, and re-coding it with a compression preset.

The catalog's state table names the folder ("vectors" for bf16, "compressed-N" for a codec):
switching folders and pointing every page at its new rows happen in one catalog commit, so a
crash leaves the index either as it was or fully compressed. The manifest's `compression`
records the codec (preset, config, fingerprint, folder) and is refreshed after that commit.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from docpress.errors import DocpressError, IndexMismatchError

if TYPE_CHECKING:  # the indexer modules import docpress: only types from them here
    from indexer.catalog import Catalog
    from indexer.manifest import Manifest
    from indexer.store import VectorStore

RAW_FOLDER = "vectors"
FOLDER_KEY = "vectors_folder"
UNCOMPRESSED = {"quantize": "bf16"}
NONE = "none"
# The default: bf16 while an index is small, then the preset measured best (README, Compression)
# once it holds enough pages to fit a codec on (PCA of the window vectors, binary centres).
AUTO = "auto"
DEFAULT_PRESET = "balanced"
AUTO_MIN_PAGES = 1000


def preset_name(compression: dict | None) -> str:
    """The preset a manifest's compression record names ("none" for plain bf16)."""
    if not compression or "fingerprint" not in compression:
        return NONE
    return compression.get("preset") or "custom"


def open_vector_store(manifest: "Manifest", directory: Path, catalog: "Catalog") -> "VectorStore":
    """The store the catalog points at; repairs a manifest left stale by a crash."""
    if manifest.store != "local":
        from indexer.qdrant import QdrantStore

        return QdrantStore(manifest.store, manifest.dim)
    folder = catalog.state(FOLDER_KEY, RAW_FOLDER)
    if folder == RAW_FOLDER:
        from indexer.local import LocalStore

        if preset_name(manifest.compression) != NONE:
            raise IndexMismatchError(f"index at {directory} records compression "
                                     f"{preset_name(manifest.compression)!r} but its catalog "
                                     "points at bf16 vectors; re-create the index")
        return LocalStore(directory / RAW_FOLDER, manifest.dim)
    from indexer.compressed import CompressedStore

    store = CompressedStore(directory / folder)
    record = manifest.compression or {}
    fingerprint = store.compressor.fingerprint()
    if record.get("folder") == folder and record.get("fingerprint") != fingerprint:
        raise IndexMismatchError(f"index at {directory}: the codec in {folder} ({fingerprint}) is "
                                 f"not the one the manifest records ({record.get('fingerprint')}); "
                                 "re-compress the index")
    if record.get("folder") != folder:  # the compress commit landed, the manifest write did not
        manifest.compression = _record(_preset_of(store.compressor.config()), store, folder)
        manifest.save(directory)
    return store


def _preset_of(config: dict) -> str:
    """The name of the preset that normalizes to `config`, else "custom"."""
    from docpress.compress.pipeline import PRESETS, normalize_config

    return next((name for name in PRESETS if normalize_config(name) == config), "custom")


def _record(preset: str, store, folder: str) -> dict:
    return {"preset": preset, "config": store.compressor.config(),
            "fingerprint": store.compressor.fingerprint(), "folder": folder}


def wanted_now(manifest: "Manifest", wanted: str | dict | None, pages: int) -> str | dict | None:
    """What an ingest run should compress with once its files are in (None: nothing).

    "auto" compresses an embedded bf16 index with DEFAULT_PRESET once it holds AUTO_MIN_PAGES
    pages, unless the user chose "none" for it; an explicit preset applies at any size.
    """
    if wanted is None or manifest.store != "local" or preset_name(manifest.compression) != NONE:
        return None
    if wanted == NONE:
        return None
    if wanted == AUTO:
        chose_none = (manifest.compression or {}).get("preset") == NONE
        # a tuned lane is projected from the bf16 rows: never drop it unasked
        keep = chose_none or bool(manifest.tuned)
        return DEFAULT_PRESET if pages >= AUTO_MIN_PAGES and not keep else None
    return wanted if pages else None


def check_compression(manifest: "Manifest", wanted: str | dict | None, directory: Path) -> None:
    """Refuse a compression request that differs from what the index already uses."""
    if wanted is None or wanted == AUTO:
        return
    from docpress.compress.pipeline import normalize_config

    have = preset_name(manifest.compression)
    if have == NONE:
        if wanted == NONE:  # remembered, so that "auto" never compresses this index
            manifest.compression = {**UNCOMPRESSED, "preset": NONE}
            manifest.save(directory)
        return  # an uncompressed index can still be compressed
    config = manifest.compression["config"]
    if normalize_config(wanted) != normalize_config(config):
        name = wanted if isinstance(wanted, str) else "the given settings"
        raise IndexMismatchError(f"index at {directory} is compressed with {have!r}, not {name!r}; "
                                 f"re-compress it with `docpress compress {name} --index {directory}`")


def compress_index(index, config: str | dict, sample_vectors: int = 300_000, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None,
                   fit_page_ids: np.ndarray | None = None) -> dict:
    """Re-code every page of an embedded index with a compression preset or config.

    Fits the codec on a sample of the index's own pages (only of `fit_page_ids` when given),
    writes a new vector folder, then in one catalog commit points every page at it; the old
    folder is deleted afterwards. "none" on a compressed index is refused (the float vectors
    are gone). A tuned lane (`docpress tune`) is dropped: it reads the bf16 rows. Returns the
    new record.
    """
    from docpress.compress import Compressor
    from docpress.compress.pipeline import normalize_config
    from indexer.compressed import build_compressed_store

    if index.manifest.store != "local":
        raise DocpressError("compression presets apply to the embedded store; a Qdrant collection "
                            "compresses with Qdrant's own quantization settings")
    name = config if isinstance(config, str) else _preset_of(normalize_config(config))
    if name == NONE:
        if preset_name(index.manifest.compression) != NONE:
            raise DocpressError("a compressed index cannot be decompressed (its float vectors are "
                                "gone); ingest the PDFs into a new --index")
        return dict(UNCOMPRESSED)
    catalog, directory = index.catalog, index.directory
    table = catalog.page_table()
    if int(table.vec_count.sum()) == 0:
        raise DocpressError(f"index at {directory} has no vectors to fit a codec on; ingest PDFs first")
    ids, texts = catalog.page_texts(table.page_ids)
    page_words = {int(i): t.split(" ") for i, t in zip(ids, texts)}
    old_folder = catalog.state(FOLDER_KEY, RAW_FOLDER)
    folder = f"compressed-{catalog.generation() + 1}"
    target = directory / folder
    if target.exists():  # left by a crash before its commit: never referenced
        shutil.rmtree(target)
    store, locations = build_compressed_store(index.store, table, page_words,
                                              Compressor.from_config(config), target,
                                              sample_vectors=sample_vectors, seed=seed,
                                              progress=progress, fit_rows=None if fit_page_ids is None
                                              else np.flatnonzero(np.isin(table.page_ids, fit_page_ids)))
    with catalog.transaction():
        catalog.move_pages(locations)
        catalog.set_state(FOLDER_KEY, folder)
    catalog.checkpoint()  # every page row was rewritten: do not leave a WAL the catalog's size
    index.manifest.compression = _record(name, store, folder)
    tuned = index.manifest.tuned.get("folder")
    index.manifest.tuned = {}  # its rows were projected from the bf16 rows, which are gone
    index.manifest.save(directory)
    if tuned:
        shutil.rmtree(directory / tuned, ignore_errors=True)
    index.store.close()
    index.store = store
    shutil.rmtree(directory / old_folder, ignore_errors=True)
    return index.manifest.compression
