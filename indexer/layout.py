"""Where each part of an index lives inside its folder: every file and folder name, in one place.

    manifest.json         format, encoder records, store, compression and tuned-lane records
    catalog.sqlite        documents, pages, text, row locations, state (which vector folder)
    vectors/              bf16 token rows, boxes, words, pooled windows (the raw store)
    compressed-N/         the same pages coded by a fitted codec (codec/ inside)
    lanes/NAME/           an extra lane's bf16 store (e.g. the optical lane)
    tuned-HASH/           the tuned lane: head/ and the projected token rows
    cache/                BM25 indexes and page head vectors, rebuilt when the catalog changes
    writer.lock           the one-writer lock (writer.json: who holds it)
    catalog.backup        a full copy of the catalog, for `docpress repair`
    catalog.journal       the writes since that copy, replayed onto it by a repair

Vector folders are generations: a compaction writes vectors-N/ (or compressed-N/, lanes/NAME-N/)
and the catalog's state names the live one; dead ones go once no reader pins them (.pin).
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
MANIFEST_BACKUP = "manifest.backup.json"
CATALOG = "catalog.sqlite"
RAW_FOLDER = "vectors"
COMPRESSED_PREFIX = "compressed-"
CODEC_FOLDER = "codec"
CODEC_BACKUP = "codec.backup"
LANES_FOLDER = "lanes"
TUNED_PREFIX = "tuned-"
TUNED_TMP_PREFIX = ".tuned-tmp-"
HEAD_FOLDER = "head"
CACHE_FOLDER = "cache"
FIRST_STAGE_FOLDER = "first-stage"  # inside the cache folder: the FAISS first stages
WRITER_LOCK = "writer.lock"
WRITER_INFO = "writer.json"
PIN_FILE = ".pin"
CATALOG_BACKUP = "catalog.backup"
CATALOG_JOURNAL = "catalog.journal"
CATALOG_JOURNAL_STATE = "catalog.journal.json"
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


def raw_folder(generation: int) -> str:
    """A bf16 folder written by a compaction (the first one is RAW_FOLDER)."""
    return f"{RAW_FOLDER}-{generation}"


def is_raw_folder(name: str) -> bool:
    return name == RAW_FOLDER or name.startswith(RAW_FOLDER + "-")


def lane_state_key(lane: str) -> str:
    """The catalog state key naming an extra lane's live folder (relative to the index)."""
    return f"lane_folder:{lane}"


def default_lane_folder(lane: str) -> str:
    return f"{LANES_FOLDER}/{lane}"


def lane_generation_folder(lane: str, generation: int) -> str:
    return f"{LANES_FOLDER}/{lane}-{generation}"


def tuned_folder(head_hash: str) -> str:
    return f"{TUNED_PREFIX}{head_hash}"


def cache_folder(index: Path) -> Path:
    return Path(index) / CACHE_FOLDER
