"""Compaction: rewrite only the live rows of every lane into new folders, then drop the old.

Removing or replacing a document leaves its rows in the append-only files (the catalog stops
pointing at them). Compaction copies the rows of live pages, byte for byte, into a new
generation of each folder (vectors-N/, compressed-N/ with its codec, lanes/NAME-N/), points
every page at them in one catalog commit, backs the catalog up, and only then deletes the old
folders and any dead generation no reader still pins. A crash before the commit leaves the
index as it was (the half-written folders are swept next time); after it, fully compacted.
The tuned lane's projected rows follow the new base folder (projected again).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from indexer.catalog import Catalog
from indexer.layout import (
    COMPRESSED_PREFIX,
    LANES_FOLDER,
    RAW_FOLDER,
    TUNED_PREFIX,
    TUNED_TMP_PREFIX,
    VECTOR_FOLDER_KEY,
    compressed_folder,
    default_lane_folder,
    is_raw_folder,
    lane_generation_folder,
    lane_state_key,
    raw_folder,
)
from indexer.locks import remove_unpinned
from indexer.manifest import Manifest
from indexer.stores.projected import ROWS_PREFIX
from retriever.lanes import Lane

# Ingest compacts on its own once this share of the stored token rows is dead.
AUTO_COMPACT_SHARE = 0.30


@dataclass
class CompactReport:
    bytes_before: int = 0
    bytes_after: int = 0
    rows_before: int = 0
    rows_after: int = 0
    removed: list[str] = field(default_factory=list)  # folders deleted (relative to the index)
    kept: list[str] = field(default_factory=list)  # dead folders a reader still pins

    def as_dict(self) -> dict:
        return {"bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
                "bytes_reclaimed": self.bytes_before - self.bytes_after,
                "rows_before": self.rows_before, "rows_after": self.rows_after,
                "removed": self.removed, "kept_pinned": self.kept}


def stored_and_live_rows(catalog: Catalog, lanes: list[Lane]) -> tuple[int, int]:
    """(token rows in the files, token rows live pages use) over the lanes that own rows."""
    stored = live = 0
    for lane in lanes:
        files = lane.store.row_files() if lane.owns_rows else []
        if not files:
            continue
        stored += len(files[0])
        live += catalog.lane_rows(lane.name) if lane.own_locations else catalog.counts()["vectors"]
    return stored, live


def dead_share(catalog: Catalog, lanes: list[Lane]) -> float:
    stored, live = stored_and_live_rows(catalog, lanes)
    return (stored - live) / stored if stored else 0.0


def folder_bytes(directory: Path) -> int:
    """Bytes of every file under the index folder (what a user sees in `du`); files a reader
    swaps out meanwhile (caches) are skipped."""
    total = 0
    for root, _, names in os.walk(directory):  # os.walk skips folders that vanish mid-walk
        for name in names:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def compact_index(directory: Path, manifest: Manifest, catalog: Catalog, lanes: list[Lane]) -> CompactReport:
    """Rewrite the live rows of the lanes that own rows; the caller holds the writer lock and
    reopens its parts afterwards (the old stores are closed here)."""
    directory = Path(directory)
    report = CompactReport(bytes_before=folder_bytes(directory))
    report.rows_before, _ = stored_and_live_rows(catalog, lanes)
    owners = [lane for lane in lanes if lane.owns_rows and lane.store.row_files()]
    if not owners:  # a server store deletes for real: nothing to compact here
        report.bytes_after, report.rows_after = report.bytes_before, report.rows_before
        return report
    generation = catalog.generation() + 1
    table = catalog.page_table()
    rewritten: dict[str, tuple] = {}  # lane name -> (new folder, locations)
    for lane in owners:
        if lane.own_locations:
            present = catalog.row_locations(table.page_ids, lane.name)
            pages = lane.locate(catalog, table.subset([int(p) in present for p in table.page_ids]))
            folder = lane_generation_folder(lane.name, generation)
        else:
            pages = table
            current = catalog.state(VECTOR_FOLDER_KEY, RAW_FOLDER)
            folder = raw_folder(generation) if is_raw_folder(current) else compressed_folder(generation)
        new, locations = lane.store.rewrite(directory / folder, pages)
        new.close()
        rewritten[lane.name] = (folder, locations)
    with catalog.transaction():
        for lane in owners:
            folder, locations = rewritten[lane.name]
            if lane.own_locations:
                catalog.insert_lane_pages(lane.name, locations)
                catalog.set_state(lane_state_key(lane.name), folder)
            else:
                catalog.move_pages(locations)
                catalog.set_state(VECTOR_FOLDER_KEY, folder)
    catalog.checkpoint()
    catalog.backup(full=True)  # before any old folder goes: repair's fallback
    if manifest.compression.get("folder"):
        manifest.compression = {**manifest.compression, "folder": rewritten[owners[0].name][0]}
    manifest.save(directory)
    for lane in lanes:
        lane.close()
    removed, kept = sweep_dead_folders(directory, catalog, manifest)
    report.removed, report.kept = removed, kept
    report.bytes_after = folder_bytes(directory)
    report.rows_after = sum(loc.vec_count for _, locs in rewritten.values() for loc in locs.values())
    return report


def live_folders(catalog: Catalog, manifest: Manifest) -> set[str]:
    """The folders (relative to the index) the catalog and manifest point at now."""
    live = {catalog.state(VECTOR_FOLDER_KEY, RAW_FOLDER)}
    live |= {catalog.state(lane_state_key(name), default_lane_folder(name)) for name in manifest.lanes}
    if manifest.tuned.get("folder"):
        live.add(manifest.tuned["folder"])
    return live


def sweep_dead_folders(directory: Path, catalog: Catalog, manifest: Manifest) -> tuple[list[str], list[str]]:
    """Delete vector folders of older generations (and half-written ones a crash left) that
    no reader pins; returns (removed, kept because pinned)."""
    directory = Path(directory)
    live = live_folders(catalog, manifest)
    candidates = [p for p in directory.iterdir() if p.is_dir() and (
        is_raw_folder(p.name) or p.name.startswith((COMPRESSED_PREFIX, TUNED_PREFIX, TUNED_TMP_PREFIX)))]
    if (directory / LANES_FOLDER).is_dir():
        candidates += [p for p in (directory / LANES_FOLDER).iterdir() if p.is_dir()]
    removed, kept = [], []
    main = catalog.state(VECTOR_FOLDER_KEY, RAW_FOLDER)
    for path in candidates:
        name = str(path.relative_to(directory))
        if name in live:
            if name == manifest.tuned.get("folder"):  # projected rows of dead base folders
                for rows in path.glob(ROWS_PREFIX + "*"):
                    if rows.name != ROWS_PREFIX + Path(main).name:
                        (removed if remove_unpinned(rows) else kept).append(str(rows.relative_to(directory)))
            continue
        (removed if remove_unpinned(path) else kept).append(name)
    return removed, kept
