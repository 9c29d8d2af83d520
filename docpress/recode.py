"""Re-coding an embedded index with a compression preset: the compression lifecycle.

The catalog's state table names the vector folder ("vectors" for bf16, "compressed-N" for a
codec): switching folders and pointing every page at its new rows happen in one catalog
commit, so a crash leaves the index either as it was or fully compressed. The manifest's
`compression` records the codec (preset, config, fingerprint, folder) and is refreshed after
that commit (indexer.factory repairs it on open if a crash came between).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from docpress.errors import DocpressError, IndexMismatchError
from indexer.catalog import Catalog
from indexer.factory import compression_record
from indexer.layout import RAW_FOLDER, VECTOR_FOLDER_KEY, compressed_folder
from indexer.locks import remove_unpinned
from indexer.manifest import NONE, Manifest, preset_name
from indexer.stores.base import VectorStore

UNCOMPRESSED = {"quantize": "bf16"}
# The default: bf16 while an index is small, then the preset measured best (README, Compression)
# once it holds enough pages to fit a codec on (PCA of the window vectors, binary centres).
AUTO = "auto"
DEFAULT_PRESET = "balanced"
AUTO_MIN_PAGES = 1000


def wanted_now(manifest: Manifest, store: VectorStore, wanted: str | dict | None,
               pages: int) -> str | dict | None:
    """What an ingest run should compress with once its files are in (None: nothing).

    "auto" compresses a bf16 index with DEFAULT_PRESET once it holds AUTO_MIN_PAGES pages,
    unless the user chose "none" for it; an explicit preset applies at any size.
    """
    if wanted is None or not store.capabilities.compression or preset_name(manifest.compression) != NONE:
        return None
    if wanted == NONE:
        return None
    if wanted == AUTO:
        chose_none = (manifest.compression or {}).get("preset") == NONE
        return DEFAULT_PRESET if pages >= AUTO_MIN_PAGES and not chose_none else None
    return wanted if pages else None


def check_compression(manifest: Manifest, wanted: str | dict | None, directory: Path) -> None:
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
    if isinstance(wanted, str) and wanted == have:
        return  # the preset as it stood when this index was compressed (presets change)
    if normalize_config(wanted) != normalize_config(config):
        name = wanted if isinstance(wanted, str) else "the given settings"
        raise IndexMismatchError(f"index at {directory} is compressed with {have!r}, not {name!r}; "
                                 f"re-compress it with `docpress compress {name} --index {directory}`")


def compress_store(directory: Path, manifest: Manifest, catalog: Catalog, store: VectorStore,
                   config: str | dict, sample_vectors: int = 300_000, seed: int = 0,
                   progress: Callable[[int, int], None] | None = None,
                   fit_page_ids: np.ndarray | None = None) -> VectorStore:
    """Re-code every page of an embedded index with a compression preset or config; returns
    the new store, having closed `store` (the caller searches the new one).

    Fits the codec on a sample of the index's own pages (only of `fit_page_ids` when given),
    writes a new vector folder, then in one catalog commit points every page at it; the old
    folder is deleted afterwards. "none" on a compressed index is refused (the float vectors
    are gone). A tuned lane (`docpress tune`) is kept: its rows are projected again from the
    new store's decoded rows (indexer.stores.projected). The manifest records the new codec.
    "none" on a bf16 index returns `store` unchanged.
    """
    from docpress.compress import Compressor
    from docpress.compress.pipeline import normalize_config, preset_of
    from indexer.stores.compressed import build_compressed_store

    if not store.capabilities.compression:
        raise DocpressError("compression presets apply to the embedded store; a Qdrant collection "
                            "compresses with Qdrant's own quantization settings")
    name = config if isinstance(config, str) else preset_of(normalize_config(config))
    if name == NONE:
        if preset_name(manifest.compression) != NONE:
            raise DocpressError("a compressed index cannot be decompressed (its float vectors are "
                                "gone); ingest the PDFs into a new --index")
        return store
    table = catalog.page_table()
    if int(table.vec_count.sum()) == 0:
        raise DocpressError(f"index at {directory} has no vectors to fit a codec on; ingest PDFs first")
    ids, texts = catalog.page_texts(table.page_ids)
    page_words = {int(i): t.split(" ") for i, t in zip(ids, texts)}
    old_folder = catalog.state(VECTOR_FOLDER_KEY, RAW_FOLDER)
    folder = compressed_folder(catalog.generation() + 1)
    target = Path(directory) / folder
    if target.exists():  # left by a crash before its commit: never referenced
        shutil.rmtree(target)
    fit_rows = None if fit_page_ids is None else np.flatnonzero(np.isin(table.page_ids, fit_page_ids))
    new, locations = build_compressed_store(store, table, page_words, Compressor.from_config(config),
                                            target, sample_vectors=sample_vectors, seed=seed,
                                            progress=progress, fit_rows=fit_rows)
    with catalog.transaction():
        catalog.move_pages(locations)
        catalog.set_state(VECTOR_FOLDER_KEY, folder)
    catalog.checkpoint()  # every page row was rewritten: do not leave a WAL the catalog's size
    catalog.backup(full=True)  # before the old folder goes: repair's fallback
    manifest.compression = compression_record(new, folder, name)
    manifest.save(directory)
    store.close()
    remove_unpinned(Path(directory) / old_folder)  # a reader still on it: the next compaction
    return new
