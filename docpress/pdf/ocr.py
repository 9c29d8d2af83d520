"""Page text: keep the PDF's text layer, or OCR the rendered page where it has none."""

from __future__ import annotations

import logging
import shutil
from enum import Enum
from functools import lru_cache
from pathlib import Path

from docpress.errors import BackendUnavailableError, PdfError
from docpress.pdf.reader import open_pdf, render_page, words_of
from docpress.types import Page, Word

log = logging.getLogger(__name__)

OCR_DPI = 150
# Longest side of a rendered page, in pixels: a poster-sized page at OCR_DPI would need
# gigabytes; past this the page is rendered at a lower DPI instead. Its square stays under
# reader.MAX_RENDER_PIXELS, so render_page keeps _ocr_dpi and boxes scale back by 72 / dpi.
MAX_OCR_PIXELS = 4000


class OcrMode(str, Enum):
    auto = "auto"  # rapidocr, else tesseract, else leave the page without text
    rapidocr = "rapidocr"
    tesseract = "tesseract"
    off = "off"


def tesseract_available() -> bool:
    return shutil.which("tesseract") is not None


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
    engine = RapidOCR()
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)
    return engine


def _ocr_dpi(page: Page) -> float:
    side = max(page.width, page.height)
    return min(OCR_DPI, MAX_OCR_PIXELS * 72.0 / side) if side > 0 else OCR_DPI


def _ocr_rapidocr(path: Path, page: Page) -> list[Word]:
    import numpy as np

    dpi = _ocr_dpi(page)
    image = render_page(path, page.number, dpi=dpi)
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


def _ocr_tesseract(path: Path, page: Page) -> list[Word]:
    doc = open_pdf(Path(path))  # same checks and password handling as the text layer
    try:
        pdf_page = doc.load_page(page.number)
        textpage = pdf_page.get_textpage_ocr(dpi=round(_ocr_dpi(page)), full=True)
        return words_of(textpage.extractWORDS(), pdf_page)  # boxes turned like the text layer's
    finally:
        doc.close()


def resolve_ocr(mode: OcrMode | str) -> OcrMode:
    """Pick the OCR engine to use; raise if the one asked for is not installed."""
    mode = OcrMode(mode)
    if mode is OcrMode.auto:
        if rapidocr_available():
            return OcrMode.rapidocr
        if tesseract_available():
            return OcrMode.tesseract
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
