"""Readers that misbehave on purpose, importable by the prefetch workers (they import by name)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from docpress.pdf.prefetch import read_file


def faulty_reader(path, ocr):
    """Crashes the worker on crash*.pdf, hangs on hang*.pdf, reads the rest; records its pid."""
    name = Path(path).name
    marker = os.environ.get("DOCPRESS_TEST_PIDS")
    if marker:
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")
    if name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if name.startswith("hang"):
        time.sleep(3600)
    return read_file(path, ocr)
