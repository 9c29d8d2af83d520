"""Integrity checks of an index's catalog and vector files.

Every page's rows carry a CRC-32 in the catalog (pages.crc, lane_pages.crc), written in the
commit that makes the page visible. Opening an index runs the cheap checks (each file holds
at least the rows the catalog addresses); search verifies the rows of the pages it returns;
`docpress check --deep` verifies every page and the catalog itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.catalog import Catalog
from indexer.stores.base import Location, VectorStore

# Pages whose checksums are read and verified per batch in a deep check.
VERIFY_BATCH = 2048


@dataclass
class Problem:
    """One thing wrong with an index: the file (relative to the index) and what."""

    file: str
    what: str
    pages: list[int] = field(default_factory=list)  # page ids whose rows it damages

    def line(self) -> str:
        return f"{self.file}: {self.what}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    pages_checked: int = 0
    pages_without_checksum: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def damaged_pages(self) -> set[int]:
        return {p for problem in self.problems for p in problem.pages}


def relative(path: Path, directory: Path) -> str:
    return os.path.relpath(path, directory)


def check_lengths(directory: Path, catalog: Catalog, stores: dict[str | None, VectorStore]) -> list[Problem]:
    """Each store's files hold at least the rows the catalog points at (cheap: one query and
    one stat a file). stores: {None: the main store, lane name: its store}."""
    problems = []
    for lane, store in stores.items():
        rows, pooled = catalog.row_extent(lane)
        for files, needed, is_pool in ((store.row_files(), rows, False), (store.pool_files(), pooled, True)):
            for arr in files:
                have = len(arr)
                if have < needed:
                    problems.append(Problem(
                        relative(arr.path, directory),
                        f"{'missing' if not arr.path.exists() else 'truncated'}: holds {have:,} rows, "
                        f"the catalog addresses {needed:,}", _pages_past(catalog, lane, have, is_pool)))
    return problems


def _pages_past(catalog: Catalog, lane: str | None, rows: int, is_pool: bool) -> list[int]:
    """Pages whose rows run past the end of a file that holds `rows` rows."""
    start, count = ("pool_start", "pool_count") if is_pool else ("vec_start", "vec_count")
    if lane is None:
        query, args = f"SELECT id FROM pages WHERE {start} + {count} > ?", (rows,)
    else:
        query, args = (f"SELECT page_id FROM lane_pages WHERE lane=? AND {start} + {count} > ?",
                       (lane, rows))
    return [int(r[0]) for r in catalog.db.execute(query, args)]


def verify_pages(catalog: Catalog, store: VectorStore, lane: str | None, page_ids) -> list[int]:
    """The given pages whose rows no longer match their recorded checksum (pages without one,
    written before checksums, pass)."""
    bad = []
    for page_id, (vs, vc, ps, pc, crc) in catalog.row_locations(page_ids, lane).items():
        if crc is not None and store.checksum(Location(vs, vc, ps, pc)) != crc:
            bad.append(page_id)
    return bad


def deep_check(directory: Path, catalog: Catalog, stores: dict[str | None, VectorStore]) -> CheckReport:
    """Everything: SQLite's own integrity check, file lengths, every page's checksum."""
    report = CheckReport()
    result = [r[0] for r in catalog.db.execute("PRAGMA integrity_check")]
    if result != ["ok"]:
        report.problems.append(Problem(relative(catalog.path, directory), "; ".join(result[:3])))
        return report
    report.problems += check_lengths(directory, catalog, stores)
    short = report.damaged_pages()
    for lane, store in stores.items():
        if not store.row_files():
            continue
        if lane is None:
            ids = np.asarray([r[0] for r in catalog.db.execute("SELECT id FROM pages ORDER BY id")])
        else:
            ids = np.asarray([r[0] for r in catalog.db.execute(
                "SELECT page_id FROM lane_pages WHERE lane=? ORDER BY page_id", (lane,))])
        bad: list[int] = []
        for lo in range(0, len(ids), VERIFY_BATCH):
            located = catalog.row_locations(ids[lo:lo + VERIFY_BATCH], lane)
            for page_id, (vs, vc, ps, pc, crc) in located.items():
                report.pages_checked += 1
                if crc is None:
                    report.pages_without_checksum += 1
                elif page_id not in short and store.checksum(Location(vs, vc, ps, pc)) != crc:
                    bad.append(page_id)
        if bad:
            folder = relative(store.dir, directory)
            report.problems.append(Problem(folder, f"the rows of {len(bad):,} pages do not match "
                                                   "their checksums (damaged files)", bad))
    return report
