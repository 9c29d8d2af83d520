"""The store factory: open the vector store an index's manifest and catalog point at."""

from __future__ import annotations

from pathlib import Path

from docpress.errors import IndexMismatchError
from indexer.catalog import Catalog
from indexer.layout import RAW_FOLDER, VECTOR_FOLDER_KEY
from indexer.manifest import Manifest, preset_name
from indexer.stores.base import VectorStore

LOCAL = "local"


def open_store(manifest: Manifest, directory: Path, catalog: Catalog) -> VectorStore:
    """The store the catalog points at; repairs a manifest left stale by a crash (the catalog
    commit that switched folders landed, the manifest write after it did not)."""
    if manifest.store != LOCAL:
        from indexer.stores.qdrant import QdrantStore

        return QdrantStore(manifest.store, manifest.dim)
    folder = catalog.state(VECTOR_FOLDER_KEY, RAW_FOLDER)
    if folder == RAW_FOLDER:
        from indexer.stores.bf16 import Bf16Store

        if preset_name(manifest.compression) != "none":
            raise IndexMismatchError(f"index at {directory} records compression "
                                     f"{preset_name(manifest.compression)!r} but its catalog "
                                     "points at bf16 vectors; re-create the index")
        return Bf16Store(Path(directory) / RAW_FOLDER, manifest.dim)
    from indexer.stores.compressed import CompressedStore

    store = CompressedStore(Path(directory) / folder)
    record = manifest.compression or {}
    fingerprint = store.compressor.fingerprint()
    if record.get("folder") == folder and record.get("fingerprint") != fingerprint:
        raise IndexMismatchError(f"index at {directory}: the codec in {folder} ({fingerprint}) is "
                                 f"not the one the manifest records ({record.get('fingerprint')}); "
                                 "re-compress the index")
    if record.get("folder") != folder:
        manifest.compression = compression_record(store, folder)
        manifest.save(directory)
    return store


def compression_record(store, folder: str, preset: str | None = None) -> dict:
    """The manifest's record of a compressed store: preset, config, fingerprint, folder."""
    from docpress.compress.pipeline import preset_of

    config = store.compressor.config()
    return {"preset": preset or preset_of(config), "config": config,
            "fingerprint": store.compressor.fingerprint(), "folder": folder}
