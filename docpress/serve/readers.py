"""A fixed pool of readers of one index: each has its own catalog connection (SQLite
connections are not shared between threads mid-transaction); all share one loaded model."""

from __future__ import annotations

import queue
from contextlib import contextmanager
from pathlib import Path

from docpress.errors import DocpressError
from docpress.index import Index


class BusyError(DocpressError):
    """Every reader stayed busy for longer than the wait allowed."""


class ReaderPool:
    def __init__(self, directory: Path, size: int = 4, wait_seconds: float = 30.0):
        self.directory = Path(directory)
        self.wait_seconds = wait_seconds
        first = Index.open(self.directory)
        encoder = first.encoder  # the model loads once, at start
        lane_encoders = {lane.name: lane.encoder for lane in first.lanes[1:] if lane.owns_rows}
        self._all = [first] + [self._open(encoder, lane_encoders) for _ in range(size - 1)]
        self._free: queue.Queue[Index] = queue.Queue()
        for index in self._all:
            self._free.put(index)

    def _open(self, encoder, lane_encoders) -> Index:
        return Index.open(self.directory, encoder=encoder, lane_encoders=lane_encoders)

    @property
    def size(self) -> int:
        return len(self._all)

    @contextmanager
    def reader(self):
        """A reader for the block; BusyError when none frees up within wait_seconds."""
        try:
            index = self._free.get(timeout=self.wait_seconds)
        except queue.Empty:
            raise BusyError(f"all {self.size} readers are busy; try again") from None
        try:
            yield index
        finally:
            self._free.put(index)

    def close(self) -> None:
        for index in self._all:
            index.close()
