"""Open PDFs and read their pages: text layer with word boxes, size, images on demand."""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Iterator, Sequence

from docpress.errors import PdfError
from docpress.types import Document, Page, Word

log = logging.getLogger(__name__)

def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_TEXT_KINDS = {"fill-text", "stroke-text", "ignore-text"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str) -> str:
    """Collapse whitespace and control characters (NULs in metadata, newlines in errors)."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


def _mupdf_error(default: str) -> str:
    """The first error MuPDF reported while opening (e.g. 'cannot find startxref'), else default."""
    import pymupdf

    for line in pymupdf.TOOLS.mupdf_warnings().splitlines():
        if "error" in line or "cannot" in line:
            return one_line(line)[:120]
    return default


def open_pdf(path: Path):
    import pymupdf

    path = Path(path)
    if not path.is_file():
        raise PdfError(str(path), "not a file")
    try:
        if path.stat().st_size == 0:
            raise PdfError(str(path), "empty file")
        with open(path, "rb") as fh:
            head = fh.read(1024)
    except OSError as exc:  # permission denied, I/O error
        raise PdfError(str(path), f"cannot read file ({exc.strerror or type(exc).__name__})") from None
    if b"%PDF" not in head:
        raise PdfError(str(path), "not a PDF (no %PDF header)")
    pymupdf.TOOLS.reset_mupdf_warnings()
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as exc:  # pymupdf raises several types for damaged files
        # Its messages repeat the path; MuPDF's own first error says what is wrong.
        raise PdfError(str(path), f"broken PDF ({_mupdf_error(type(exc).__name__)})") from None
    # An empty user password (owner-password-only, "copy-protected") opens without asking.
    if doc.needs_pass and not doc.authenticate(""):
        doc.close()
        raise PdfError(str(path), "encrypted PDF (needs a password)")
    if doc.page_count == 0:
        repaired = doc.is_repaired
        doc.close()
        if repaired:  # MuPDF rebuilt the file and found no page tree: damaged, not empty
            raise PdfError(str(path), f"broken PDF (no readable pages; {_mupdf_error('repair failed')})")
        raise PdfError(str(path), "PDF has no pages")
    return doc


def open_document(path: Path) -> Document:
    """Read a PDF's identity and metadata; raise PdfError with the reason if unusable."""
    path = Path(path)
    doc = open_pdf(path)
    try:
        meta = {k: one_line(v) for k, v in (doc.metadata or {}).items() if v}
        meta = {k: v for k, v in meta.items() if v}
        return Document(
            path=path,
            sha256=file_sha256(path),
            page_count=doc.page_count,
            title=meta.get("title", "") or path.stem,
            metadata=meta,
        )
    finally:
        doc.close()


def read_pages(path: Path) -> Iterator[Page]:
    """Yield each page's words and boxes; a page that fails to parse yields no words."""
    doc = open_pdf(Path(path))
    try:
        for number in range(doc.page_count):
            try:
                page = doc.load_page(number)
                raw = page.get_text("words", sort=False)
                words = words_of(raw, page)
                has_images = bool(page.get_images(full=False))
                rect = page.rect
                result = Page(number, rect.width, rect.height, words, "pdf", has_images)
                if result.needs_ocr and not has_images and not any("\ufffd" in w[4] for w in raw):
                    # bboxlog lists everything drawn, inline images and paths included.
                    result.text_only = {kind for kind, _ in page.get_bboxlog()} <= _TEXT_KINDS
            except Exception as exc:  # one damaged page must not lose the rest of the file
                log.warning("%s: page %d unreadable (%s)", path, number + 1, one_line(exc))
                result = Page(number, 0.0, 0.0, [], "none", False)
            yield result
    finally:
        doc.close()


def words_of(raw, page) -> list[Word]:
    """Words from pymupdf's (x0, y0, x1, y1, text, ...) tuples, boxes in the displayed page.

    MuPDF gives boxes in the unrotated page; page.rect, render_page and OCR use the page as
    displayed, so a rotated page's boxes are turned to match. Characters with no Unicode
    mapping come out as U+FFFD: they are dropped, so a page of only those reads as needing OCR.
    """
    import pymupdf

    matrix = page.rotation_matrix if page.rotation else None
    words = []
    for w in raw:
        text = w[4].replace("\ufffd", "").strip()
        if not text:
            continue
        rect = pymupdf.Rect(w[:4])
        if matrix is not None:
            rect = rect * matrix
        words.append(Word(text, (rect.x0, rect.y0, rect.x1, rect.y1)))
    return words


def render_page(path: Path, number: int, dpi: int = 150):
    """Render one page to a PIL image (RGB) at the given DPI."""
    from PIL import Image

    if not dpi or dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    doc = open_pdf(Path(path))
    try:
        if not 0 <= number < doc.page_count:
            raise PdfError(str(path), f"page {number} out of range (0..{doc.page_count - 1})")
        pix = doc.load_page(number).get_pixmap(dpi=dpi, alpha=False)
        return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)
    finally:
        doc.close()


def render_pages(path: Path, numbers: Sequence[int], dpi: int | Sequence[int] = 150) -> list:
    """Render several pages with one opening of the document: PIL images (RGB), in order.

    dpi: one DPI for all pages, or one per page (pages of one file can differ in size).
    A page that fails to render gives None (logged), like an unreadable page in read_pages.
    """
    from PIL import Image

    dpis = [dpi] * len(numbers) if isinstance(dpi, (int, float)) else list(dpi)
    if len(dpis) != len(numbers):
        raise ValueError(f"{len(numbers)} pages but {len(dpis)} DPIs")
    if any(not d or d <= 0 for d in dpis):
        raise ValueError(f"dpi must be positive, got {dpi}")
    doc = open_pdf(Path(path))
    try:
        images = []
        for number, page_dpi in zip(numbers, dpis):
            if not 0 <= number < doc.page_count:
                raise PdfError(str(path), f"page {number} out of range (0..{doc.page_count - 1})")
            try:
                pix = doc.load_page(number).get_pixmap(dpi=int(page_dpi), alpha=False)
                images.append(Image.frombytes("RGB", (pix.width, pix.height), pix.samples))
            except Exception as exc:  # one damaged page must not lose the rest of the file
                log.warning("%s: page %d could not be rendered (%s)", path, number + 1, one_line(exc))
                images.append(None)
        return images
    finally:
        doc.close()
