"""The store factory: open the vector store an index's manifest and catalog point at."""

from __future__ import annotations

import os
from pathlib import Path

from docpress.errors import CorruptIndexError, DocpressError, IndexMismatchError
from indexer.catalog import Catalog
from indexer.layout import CODEC_BACKUP, CODEC_FOLDER, RAW_FOLDER, VECTOR_FOLDER_KEY, is_raw_folder
from indexer.manifest import Manifest, preset_name
from indexer.stores.base import VectorStore

LOCAL = "local"


def open_store(manifest: Manifest, directory: Path, catalog: Catalog) -> VectorStore:
    """The store the catalog points at. A manifest left stale by a crash (the catalog commit
    that switched folders landed, the manifest write after it did not) is corrected in memory;
    the next writer saves it (readers never write the manifest)."""
    if manifest.store != LOCAL:
        from indexer.stores.qdrant_edge import QdrantEdgeStore, edge_folder, is_edge_location

        if is_edge_location(manifest.store):
            # The store would make a new, empty shard where its folder went missing.
            shard = edge_folder(manifest.store, Path(directory))
            if not shard.is_dir() and catalog.counts()["pages"]:
                raise CorruptIndexError(f"{shard} is missing (the Qdrant Edge shard of the catalog's "
                                        "pages); ingest the PDFs into a new index")
            return QdrantEdgeStore(manifest.store, manifest.dim, root=Path(directory))
        from indexer.stores.qdrant import QdrantStore

        return QdrantStore(manifest.store, manifest.dim)
    folder = catalog.state(VECTOR_FOLDER_KEY, RAW_FOLDER)
    if not (Path(directory) / folder).is_dir() and (folder != RAW_FOLDER or catalog.counts()["pages"]):
        raise CorruptIndexError(f"{Path(directory) / folder} is missing (the catalog's vectors); "
                                f"run `docpress repair --index {directory}`")
    if is_raw_folder(folder):
        from indexer.stores.bf16 import Bf16Store

        if preset_name(manifest.compression) != "none":
            raise IndexMismatchError(f"index at {directory} records compression "
                                     f"{preset_name(manifest.compression)!r} but its catalog "
                                     "points at bf16 vectors; re-create the index")
        return Bf16Store(Path(directory) / folder, manifest.dim)
    store = open_compressed(Path(directory) / folder)
    record = manifest.compression or {}
    fingerprint = store.compressor.fingerprint()
    if record.get("folder") == folder and record.get("fingerprint") != fingerprint:
        raise IndexMismatchError(f"index at {directory}: the codec in {folder} ({fingerprint}) is "
                                 f"not the one the manifest records ({record.get('fingerprint')}); "
                                 "re-compress the index")
    if record.get("folder") != folder:
        manifest.compression = compression_record(store, folder)
    return store


def open_compressed(folder: Path):
    """A compressed store; a damaged codec is one line naming it (`docpress repair` restores it
    from the copy written beside it)."""
    from indexer.stores.compressed import CompressedStore

    fix = ("run `docpress repair --index " + str(folder.parent) + "`"
           if (folder / CODEC_BACKUP / "codec.json").exists()
           else "it has no copy; ingest the PDFs into a new index")
    if not (folder / CODEC_FOLDER / "codec.json").is_file():
        raise CorruptIndexError(f"{folder / CODEC_FOLDER} is missing its codec.json; {fix}")
    try:
        return CompressedStore(folder)
    except DocpressError:
        raise
    except Exception as exc:  # a torn or overwritten codec.json / codec.npz
        raise CorruptIndexError(f"{folder / CODEC_FOLDER} is damaged ({type(exc).__name__}); {fix}") from None


def restore_codec(folder: Path) -> bool:
    """Put the codec's copy back in place (repair, under the writer lock); False: no copy."""
    import shutil

    backup = folder / CODEC_BACKUP
    if not (backup / "codec.json").exists():
        return False
    tmp = folder / (CODEC_FOLDER + ".restoring")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(backup, tmp)
    shutil.rmtree(folder / CODEC_FOLDER, ignore_errors=True)
    os.replace(tmp, folder / CODEC_FOLDER)
    return True


def compression_record(store, folder: str, preset: str | None = None) -> dict:
    """The manifest's record of a compressed store: preset, config, fingerprint, folder."""
    from docpress.compress.pipeline import preset_of

    config = store.compressor.config()
    return {"preset": preset or preset_of(config), "config": config,
            "fingerprint": store.compressor.fingerprint(), "folder": folder}
