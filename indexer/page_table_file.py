"""The page table's columns on disk, one file per catalog state, memory-mapped by its readers.

Reading the table from SQLite makes a Python tuple a page: 1.7 s at a million pages, paid by
every process on its first search and by every reader after each write. The first process
to read a state writes its columns (7 rows of int64, 56 MB at a million pages) into the
cache folder; the next ones map that file in milliseconds and share its memory through the
page cache. The file is named by a stamp of the catalog's state: its generation (which every
committed write changes), the catalog file's identity (a restored copy is another file),
and its largest page id and row offset. Repair deletes the cache folder too. Derived data:
a file that cannot be read or written costs the SQL read, never an answer.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np

PREFIX = "page-table-"
COLUMNS = 7  # id, doc_id, number, vec_start, vec_count, pool_start, pool_count
ORPHAN_AGE = 600  # seconds after which a temporary file is a dead writer's


def _path(folder: Path, stamp: tuple) -> Path:
    return Path(folder) / f"{PREFIX}{'-'.join(str(int(s)) for s in stamp)}.npy"


def load(folder: Path, stamp: tuple) -> np.ndarray | None:
    """The (COLUMNS, n) columns written for this state, mapped read-only; None when there are
    none, they are not whole, or their largest page id and row offset are not the stamp's
    (the stamp's last two parts)."""
    try:
        columns = np.load(_path(folder, stamp), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if columns.ndim != 2 or columns.shape[0] != COLUMNS or columns.dtype != np.int64:
        return None
    top_id, top_row = stamp[-2:]
    if columns.shape[1] == 0:
        return np.asarray(columns) if top_id == -1 else None
    if int(columns[0].max()) != top_id or int(columns[3].max()) != top_row:
        return None
    return np.asarray(columns)  # a plain read-only view: slicing a memmap subclass costs more


def save(folder: Path, stamp: tuple, columns: np.ndarray) -> None:
    """Write the columns for this state whole (a rename) and delete other states' files
    (readers that mapped them keep their pages). OSError when the disk refuses."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = _path(folder, stamp)
    tmp = folder / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(columns, np.int64), allow_pickle=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    for old in folder.glob(f"{PREFIX}*.npy"):
        if old != target:
            old.unlink(missing_ok=True)
    for torn in folder.glob(f".{PREFIX}*.tmp-*"):  # a writer that died half way
        if time.time() - torn.stat().st_mtime > ORPHAN_AGE:
            torn.unlink(missing_ok=True)
