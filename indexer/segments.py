"""Append-only, memory-mapped arrays of fixed-width rows: the embedded store's vector files."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np


class AppendOnlyArray:
    """Rows of shape `row_shape` and dtype `dtype` appended to one file, read by memmap.

    A row becomes meaningful only once the catalog records its offset, so a crash after an
    append and before the catalog commit leaves unreachable bytes, never a half-visible page.
    """

    def __init__(self, path: Path, row_shape: tuple[int, ...], dtype: str):
        self.path = Path(path)
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize
        self._map: np.ndarray | None = None
        self._mapped_rows = -1

    def __len__(self) -> int:
        try:  # one stat, not an exists and a stat: every read asks (80 times for a search's hits)
            return os.stat(self.path).st_size // self.row_bytes
        except FileNotFoundError:
            return 0

    def append(self, rows: np.ndarray) -> int:
        """Write rows at the end (flushed and fsynced); return the index of the first one."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype).reshape((-1, *self.row_shape))
        with open(self.path, "ab") as fh:
            size = fh.tell()
            if size % self.row_bytes:  # a torn write from a crash: skip to a row boundary
                fh.write(b"\0" * (self.row_bytes - size % self.row_bytes))
                size = fh.tell()
            fh.write(rows.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        return size // self.row_bytes

    def view(self) -> np.ndarray:
        """All complete rows, read-only, mapped from the file (re-mapped when it has grown)."""
        n = len(self)
        if n == 0:
            return np.zeros((0, *self.row_shape), self.dtype)
        if self._map is None or self._mapped_rows != n:
            # a plain array over the map: indexing the memmap subclass costs ~20 us a call in
            # Python (a search's hits read 40 slices), the array's ~1
            self._map = np.asarray(np.memmap(self.path, dtype=self.dtype, mode="r", shape=(n, *self.row_shape)))
            self._mapped_rows = n
        return self._map

    def rows(self, start: int, count: int) -> np.ndarray:
        return np.asarray(self.view()[start:start + count])

    def nbytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


def align_lengths(arrays: list[AppendOnlyArray]) -> int:
    """Pad row files that are appended together to one length; return that length.

    A crash between their appends can leave them uneven; zero rows keep them in step and
    are never referenced by the catalog.
    """
    n = max(len(a) for a in arrays)
    for arr in arrays:
        missing = n - len(arr)
        if missing:
            arr.append(np.zeros((missing, *arr.row_shape), arr.dtype))
    return n


def consecutive_locations(start: int, pool_start: int, counts: list[int],
                          pool_counts: list[int]) -> list[tuple[int, int, int, int]]:
    """(vec_start, vec_count, pool_start, pool_count) of pages appended one after another."""
    out, t, p = [], int(start), int(pool_start)
    for n, m in zip(map(int, counts), map(int, pool_counts)):
        out.append((t, n, p, m))
        t += n
        p += m
    return out


def rows_crc(arrays: list[AppendOnlyArray], start: int, count: int, crc: int = 0) -> int:
    """CRC-32 of rows [start, start + count) of each array in turn (a torn or short file
    gives fewer bytes, hence another value)."""
    for arr in arrays:
        if count > 0:
            crc = zlib.crc32(np.ascontiguousarray(arr.view()[start:start + count]).tobytes(), crc)
    return crc


def copy_rows(src: list[AppendOnlyArray], dst: list[AppendOnlyArray], starts: np.ndarray,
              counts: np.ndarray) -> int:
    """Append rows [start, start + count) of each source file, for every (start, count) in
    turn, to the matching destination file (one write per file); returns the first new row."""
    starts, counts = np.asarray(starts, np.int64), np.asarray(counts, np.int64)
    first = align_lengths(dst) if dst else 0
    total = int(counts.sum())
    if total:
        # row indices of every range, concatenated: repeat each start, add 0..count-1
        offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        index = np.repeat(starts, counts) + offsets
    else:
        index = np.zeros(0, np.int64)
    for s, d in zip(src, dst):
        d.append(np.asarray(s.view()[index]) if total else np.zeros((0, *d.row_shape), d.dtype))
    return first
