"""Page text: keep the PDF's text layer, or OCR the rendered page where it has none."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from enum import Enum
from functools import lru_cache
from pathlib import Path

from docpress.errors import BackendUnavailableError, PdfError
from docpress.pdf.reader import render_page
from docpress.types import Page, Word

log = logging.getLogger(__name__)

# Chosen by benchmarks/ocr_study.py (tables in benchmarks/results/ocr.md): scans of 18 pages of
# known text, 2 shared cores. Rule: the fastest setting whose CER (mean and pooled, on clean
# 150 dpi and noisy skewed 300 dpi scans) is no worse than the old default (rapidocr with its
# angle classifier: mean 0.048 / 0.053). That is the tesseract program, oem 1 psm 3, one
# thread, 150 dpi: 6.2x the old default's pages/s, CER 0.033 / 0.033. psm 6 was faster but
# lost ruled tables and columns (0.092); 200 dpi was 0.005 better for 20% less speed; 300 dpi
# and MuPDF's built-in Tesseract were slower and worse. rapidocr stays the most accurate
# (0.010 without the classifier) at a sixth of the speed: `--ocr rapidocr`, and auto's
# fallback when tesseract is not installed. tesseract misses text in shaded table cells.
OCR_DPI = 150
TESSERACT_DPI = 150
TESSERACT_PSM = 3  # fully automatic page segmentation: columns and tables in reading order
TESSERACT_TIMEOUT_S = 300
# A rendered page with fewer pixels than this share away from its background colour has
# nothing to read (a blank scan, a duplex back side): no OCR. 16 characters of 10 pt text, the
# least fill_text keeps (types.MIN_TEXT_CHARS), ink ~4x this at 150 dpi.
BLANK_INK_FRACTION = 1e-4
# Longest side of a rendered page, in pixels: a poster-sized page at OCR_DPI would need
# gigabytes; past this the page is rendered at a lower DPI instead. Its square stays under
# reader.MAX_RENDER_PIXELS, so render_page keeps _ocr_dpi and boxes scale back by 72 / dpi.
MAX_OCR_PIXELS = 4000


class OcrMode(str, Enum):
    auto = "auto"  # tesseract when installed (6x faster, CER no worse), else rapidocr, else none
    rapidocr = "rapidocr"
    tesseract = "tesseract"
    off = "off"


def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


@lru_cache(maxsize=1)
def _tesseract_has_english() -> bool:
    """The program runs and has eng.traineddata (auto needs both to prefer it)."""
    try:
        done = subprocess.run(["tesseract", "--list-langs"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return "eng" in (done.stdout + done.stderr).decode("utf-8", "replace").split()


def rapidocr_available() -> bool:
    try:
        import rapidocr  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=1)
def _rapidocr_engine():
    from rapidocr import RapidOCR

    # rapidocr logs every model file it opens at INFO, and warns on every page with no text;
    # it resets its logger's level on import and again while building the engine, so quieten
    # it after both.
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    engine = RapidOCR(params=RAPIDOCR_PARAMS)
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return engine


# The angle classifier turns lines it takes for upside down: on the study's upright scans it
# turned good ones (CER 0.048 with it, 0.010 without) for no gain in speed.
RAPIDOCR_PARAMS = {"Global.use_cls": False}


def _ocr_dpi(page: Page, dpi: float = OCR_DPI) -> float:
    side = max(page.width, page.height)
    return min(dpi, MAX_OCR_PIXELS * 72.0 / side) if side > 0 else dpi


def _blank(image) -> bool:
    """True when almost no pixel of the image differs from its background (median) grey."""
    import numpy as np

    grey = np.asarray(image if image.mode == "L" else image.convert("L"))
    hist = np.bincount(grey.ravel(), minlength=256)
    background = int(np.searchsorted(np.cumsum(hist), (grey.size + 1) // 2))
    ink = hist[:max(background - 32, 0)].sum() + hist[background + 33:].sum()
    return ink < BLANK_INK_FRACTION * grey.size


def _ocr_rapidocr(path: Path, page: Page) -> list[Word]:
    import numpy as np

    dpi = _ocr_dpi(page)
    image = render_page(path, page.number, dpi=dpi)
    if _blank(image):
        return []
    result = _rapidocr_engine()(np.asarray(image))
    if result.txts is None:
        return []
    scale = 72.0 / dpi  # pixels back to PDF points
    words: list[Word] = []
    for text, quad in zip(result.txts, result.boxes):
        xs, ys = [pt[0] * scale for pt in quad], [pt[1] * scale for pt in quad]
        box = (min(xs), min(ys), max(xs), max(ys))
        # rapidocr returns text lines; split into words sharing the line's box.
        words.extend(Word(token, box) for token in text.split())
    return words


def _tesseract_command() -> list[str]:
    # PGM in on stdin, TSV (one row per word, with its box) out on stdout
    return ["tesseract", "stdin", "stdout", "-l", "eng", "--oem", "1", "--psm", str(TESSERACT_PSM), "tsv"]


def _ocr_tesseract(path: Path, page: Page) -> list[Word]:
    """The tesseract program on the rendered page (grey). One thread: OpenMP threads made it
    slower on 2 shared cores (and spin when the machine is busy); MuPDF's built-in Tesseract
    (get_textpage_ocr) took twice the time for the same words."""
    dpi = _ocr_dpi(page, TESSERACT_DPI)
    image = render_page(path, page.number, dpi=dpi).convert("L")
    if _blank(image):
        return []
    pgm = io.BytesIO()
    image.save(pgm, "PPM")  # binary PGM: nothing to compress or decompress
    done = subprocess.run(_tesseract_command(), input=pgm.getvalue(), capture_output=True, check=False,
                          timeout=TESSERACT_TIMEOUT_S, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"tesseract exited {done.returncode}: {detail[-1] if detail else ''}")
    scale = 72.0 / dpi  # pixels back to PDF points (the page as displayed, like rapidocr's)
    words: list[Word] = []
    for row in done.stdout.decode("utf-8", "replace").splitlines()[1:]:
        cells = row.split("\t")
        # level 5 is a word: level page block par line word left top width height conf text
        if len(cells) == 12 and cells[0] == "5" and cells[11].strip():
            left, top, width, height = (int(v) for v in cells[6:10])
            box = (left * scale, top * scale, (left + width) * scale, (top + height) * scale)
            words.extend(Word(token, box) for token in cells[11].split())
    return words


def resolve_ocr(mode: OcrMode | str) -> OcrMode:
    """Pick the OCR engine to use; raise if the one asked for is not installed."""
    mode = OcrMode(mode)
    if mode is OcrMode.auto:
        # tesseract first: 6x rapidocr's pages/s, CER below the old default (see the top)
        if tesseract_available() and _tesseract_has_english():
            return OcrMode.tesseract
        if rapidocr_available():
            return OcrMode.rapidocr
        return OcrMode.off
    if mode is OcrMode.rapidocr and not rapidocr_available():
        raise BackendUnavailableError("rapidocr is not installed: pip install rapidocr onnxruntime")
    if mode is OcrMode.tesseract and not tesseract_available():
        raise BackendUnavailableError("tesseract is not installed: apt-get install tesseract-ocr tesseract-ocr-eng")
    return mode


def fill_text(path: Path, page: Page, mode: OcrMode) -> Page:
    """Return the page with text: its own layer, or OCR when it has none and mode allows."""
    if not page.needs_ocr:
        return page
    mode = OcrMode(mode)
    if mode is OcrMode.auto:
        mode = resolve_ocr(mode)
    if mode is OcrMode.off or page.width == 0 or page.text_only:
        page.text_source = "none" if not page.words else page.text_source
        return page
    try:
        words = _ocr_rapidocr(path, page) if mode is OcrMode.rapidocr else _ocr_tesseract(path, page)
    except Exception as exc:  # an OCR failure on one page must not lose the whole file
        detail = exc.reason if isinstance(exc, PdfError) else str(exc)  # without the path again
        log.warning("%s: OCR failed on page %d (%s: %s)", path, page.number + 1,
                    type(exc).__name__, " ".join(detail.split())[:200])
        words = []
    # A short but real text layer ("Hello, World!") stays unless OCR finds more.
    if words and sum(len(w.text) for w in words) > sum(len(w.text) for w in page.words):
        page.words = words
        page.text_source = f"ocr:{mode.value}"
    else:
        page.text_source = "none" if not page.words else page.text_source
    return page
