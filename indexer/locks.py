"""Who may write an index, and which vector folders readers still use.

- One writer at a time: an OS file lock (filelock) on the index's writer.lock, held for the
  whole of an ingest, compression, tune, compaction or repair. A second writer waits (told who
  holds it) or, asked not to wait, gets IndexBusyError. Readers never take it.
- Folder pins: a process that opened a vector folder holds a shared flock on the folder's pin
  file for as long as it uses it; a writer deletes a folder it replaced only when it can take
  that lock exclusively, so a reader in the middle of a search never loses its files. A folder
  still pinned is left for the next compaction, which removes dead generations.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from docpress.errors import IndexBusyError
from indexer.layout import PIN_FILE, WRITER_INFO, WRITER_LOCK


class WriterLock:
    """The index's writer lock; re-entrant in one process (nested writers share one hold)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._lock = FileLock(self.directory / WRITER_LOCK, thread_local=False)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def holder(self) -> str:
        """Who holds the lock, as far as its info file says ("another process" when unknown)."""
        try:
            info = json.loads((self.directory / WRITER_INFO).read_text())
            return f"pid {info['pid']} ({info['command']})"
        except (OSError, ValueError, KeyError, TypeError):
            return "another process"

    @contextmanager
    def hold(self, wait: bool = True, on_wait: Callable[[str], None] | None = None):
        """Hold the lock for the block. wait=False: IndexBusyError at once if another writer has
        it; otherwise on_wait(holder) is called once before waiting."""
        if not self.held:
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                holder = self.holder()
                if not wait:
                    raise IndexBusyError(f"index at {self.directory} is being written by {holder}; "
                                         "try again when it is done (or run without --no-wait)") from None
                if on_wait:
                    on_wait(holder)
                self._lock.acquire()
            self._write_info()
        else:
            self._lock.acquire()  # nested: count the hold
        try:
            yield
        finally:
            self._lock.release()

    def _write_info(self) -> None:
        info = {"pid": os.getpid(), "command": " ".join(Path(a).name if i == 0 else a
                                                          for i, a in enumerate(sys.argv[:3])),
                "since": time.time()}
        try:
            (self.directory / WRITER_INFO).write_text(json.dumps(info))
        except OSError:
            pass  # the info is a courtesy for the waiting writer's message


class FolderPin:
    """A shared hold on a vector folder while a store reads it (released by close())."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._fh = None
        try:
            self._fh = open(self.folder / PIN_FILE, "a+")
            fcntl.flock(self._fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:  # a folder being deleted or a read-only medium: read without a pin
            self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None


def remove_unpinned(folder: Path) -> bool:
    """Delete a vector folder no reader holds; returns False (and keeps it) when one does."""
    folder = Path(folder)
    if not folder.exists():
        return True
    pin = folder / PIN_FILE
    try:
        fh = open(pin, "a+")
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return not folder.exists()
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()
