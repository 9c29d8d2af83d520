"""Append-only, memory-mapped arrays of fixed-width rows: the embedded store's vector files."""

from __future__ import annotations

import os
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
        return self.path.stat().st_size // self.row_bytes if self.path.exists() else 0

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
        """All complete rows as a read-only memmap (re-mapped when the file has grown)."""
        n = len(self)
        if n == 0:
            return np.zeros((0, *self.row_shape), self.dtype)
        if self._map is None or self._mapped_rows != n:
            self._map = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(n, *self.row_shape))
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
    out, t, p = [], start, pool_start
    for n, m in zip(counts, pool_counts):
        out.append((t, n, p, m))
        t += n
        p += m
    return out
