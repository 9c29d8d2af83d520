"""Where each part of an index lives inside its folder: every file and folder name, in one place.

    manifest.json         format, encoder records, store, compression and tuned-lane records
    catalog.sqlite        documents, pages, text, row locations, state (which vector folder)
    vectors/              bf16 token rows, boxes, words, pooled windows (the raw store)
    compressed-N/         the same pages coded by a fitted codec (codec/ inside)
    lanes/NAME/           an extra lane's bf16 store (e.g. the optical lane)
    tuned-HASH/           the tuned lane: head/ and the projected token rows
    cache/                BM25 indexes and page head vectors, rebuilt when the catalog changes
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
CATALOG = "catalog.sqlite"
RAW_FOLDER = "vectors"
COMPRESSED_PREFIX = "compressed-"
CODEC_FOLDER = "codec"
LANES_FOLDER = "lanes"
TUNED_PREFIX = "tuned-"
TUNED_TMP_PREFIX = ".tuned-tmp-"
HEAD_FOLDER = "head"
CACHE_FOLDER = "cache"
# The catalog state key naming the vector folder search reads (RAW_FOLDER or compressed-N).
VECTOR_FOLDER_KEY = "vectors_folder"


def manifest_path(index: Path) -> Path:
    return Path(index) / MANIFEST


def catalog_path(index: Path) -> Path:
    return Path(index) / CATALOG


def catalog_files(index: Path) -> list[Path]:
    """The catalog and its write-ahead log files."""
    return sorted(Path(index).glob(CATALOG + "*"))


def compressed_folder(generation: int) -> str:
    return f"{COMPRESSED_PREFIX}{generation}"


def lane_folder(index: Path, lane: str) -> Path:
    return Path(index) / LANES_FOLDER / lane


def tuned_folder(head_hash: str) -> str:
    return f"{TUNED_PREFIX}{head_hash}"


def cache_folder(index: Path) -> Path:
    return Path(index) / CACHE_FOLDER
