"""Reading PDFs (text layers, OCR) in worker processes, ahead of the encoder.

Ingest spends its time in the encoder (born-digital pages) or in OCR (scans); reading the next
files in other processes lets both run at once. At most `ahead` files are read or waiting at
any time, so memory stays bounded whatever the corpus. Files come back in the order given.

A worker that crashes (a segfault in the PDF library) or runs past its time limit costs that
file only: the pool is replaced, the other files in flight are read again, and the file is
reported as skipped. Workers are started with "spawn": the parent holds torch and ONNX threads
that a forked child must not inherit.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from docpress.errors import PdfError
from docpress.pdf.ocr import OcrMode, fill_text
from docpress.pdf.reader import read_pages
from docpress.types import Page

# Time a worker may spend on one file: a floor, plus a budget per page (OCR of a dense scan
# takes seconds a page on a slow CPU).
BASE_SECONDS = 120.0
SECONDS_PER_PAGE = 30.0


@dataclass
class ReadFile:
    """One PDF read: its pages with text (OCR'd where needed) and the time OCR took."""

    path: Path
    pages: list[Page]
    ocr_seconds: float


def read_file(path: Path, ocr: OcrMode) -> ReadFile:
    """Every page of a PDF with its text: the text layer, or OCR where a page has none."""
    pages, ocr_seconds = [], 0.0
    for page in read_pages(path):
        if page.needs_ocr:
            started = time.perf_counter()
            page = fill_text(path, page, ocr)
            ocr_seconds += time.perf_counter() - started
        pages.append(page)
    return ReadFile(Path(path), pages, ocr_seconds)


def default_workers() -> int:
    """Reader processes beside the encoder: one per core ($DOCPRESS_READERS overrides; 0 reads
    in this process). Measured on 2 cores: scans (OCR-bound) 0.85 pages/s read in order, 0.84
    with one reader, 1.62 with two; born-digital filings (encoder-bound) unchanged."""
    if "DOCPRESS_READERS" in os.environ:
        return max(0, int(os.environ["DOCPRESS_READERS"]))
    return max(1, os.cpu_count() or 2)


def prefetch(files: list[Path], ocr: OcrMode, workers: int | None = None, ahead: int | None = None,
             time_limit=None, reader=None) -> Iterator[tuple[Path, ReadFile | Exception]]:
    """(path, ReadFile) for each file in order, or (path, the exception) for a file that could
    not be read: PdfError from the reader, or one saying the worker crashed or hung.

    time_limit(path) -> seconds a worker may spend on it (default: by its page count).
    reader(path, ocr) -> ReadFile: read_file unless given (a module-level function: the
    workers import it by name).
    """
    read_file_ = reader or read_file
    workers = default_workers() if workers is None else workers
    if workers == 0 or not files:
        for path in files:
            try:
                yield path, read_file_(path, ocr)
            except Exception as exc:  # reported as a skipped file, like the parallel path
                yield path, exc
        return
    ahead = ahead or workers + 1
    limit = time_limit or _time_limit
    pool = _pool(workers)
    pending: list[tuple[Path, object]] = []
    queue = list(files)
    try:
        while queue or pending:
            while queue and len(pending) < ahead:
                path = queue.pop(0)
                pending.append((path, pool.submit(read_file_, path, ocr)))
            path, future = pending.pop(0)
            try:
                yield path, future.result(timeout=limit(path))
                continue
            except PdfError as exc:
                yield path, exc
                continue
            except FutureTimeout:
                failure = PdfError(str(path), f"reading took longer than {limit(path):.0f} s; "
                                                         "the worker was stopped")
            except BrokenProcessPool:
                failure = PdfError(str(path), "the PDF reader crashed on this file")
            except Exception as exc:  # an error the reader let through: this file only
                yield path, exc
                continue
            # The pool is gone or stuck: replace it and read the other files in flight again.
            _stop(pool)
            pool = _pool(workers)
            queue = [p for p, _ in pending] + queue
            pending = []
            if "crashed" in failure.reason:  # this file, or another in flight? read it alone
                yield path, _read_alone(read_file_, path, ocr, limit)
                continue
            yield path, failure
    finally:
        _stop(pool)


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))


def _die_with_parent(parent: int) -> None:
    """A reader must not outlive an ingest that was killed (kill -9 leaves no one to stop it):
    Linux kills it with its parent; elsewhere a thread watches the parent's pid."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _stop(pool: ProcessPoolExecutor) -> None:
    """Shut a pool down now, killing workers that are still busy (a hung reader)."""
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def _read_alone(reader, path: Path, ocr: OcrMode, limit) -> ReadFile | Exception:
    """Read one file in a worker of its own (after a crash broke the shared pool, to tell
    whether this file was the cause); the crash, a hang or the reader's error if it fails."""
    pool = _pool(1)
    try:
        return pool.submit(reader, path, ocr).result(timeout=limit(path))
    except BrokenProcessPool:
        return PdfError(str(path), "the PDF reader crashed on this file")
    except FutureTimeout:
        return PdfError(str(path), f"reading took longer than {limit(path):.0f} s; the worker was stopped")
    except Exception as exc:  # noqa: BLE001 - reported as this file's failure
        return exc
    finally:
        _stop(pool)


def _time_limit(path: Path) -> float:
    from docpress.pdf.reader import page_count

    return BASE_SECONDS + SECONDS_PER_PAGE * page_count(path)
