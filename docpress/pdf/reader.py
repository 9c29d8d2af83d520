"""Open PDFs and read their pages: text layer with word boxes, size, images on demand."""

from __future__ import annotations

import hashlib
import logging
import math
import re
from functools import lru_cache
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


# Most pixels a page is rendered to (120 MB as RGB). Encoders ask for a few megapixels and OCR
# for at most 16 (ocr.MAX_OCR_PIXELS a side); a poster-sized page (20,000 points a side is 1.7
# gigapixels at 150 DPI) is rendered at a lower DPI instead of to a multi-GB pixmap.
MAX_RENDER_PIXELS = 40_000_000
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
    try:
        # An empty user password (owner-password-only, "copy-protected") opens without asking.
        locked = doc.needs_pass and not doc.authenticate("")
        # Counting pages reads the page tree, which can still fail (a /Count larger than the
        # file has objects: "Invalid number of pages").
        count = 0 if locked else doc.page_count
        repaired = doc.is_repaired
    except Exception as exc:
        doc.close()
        # MuPDF's message, here without the path: "code=7: Invalid number of pages".
        reason = re.sub(r"^code=\d+: ", "", one_line(exc))[:120] or type(exc).__name__
        raise PdfError(str(path), f"broken PDF ({reason})") from None
    if locked:
        doc.close()
        raise PdfError(str(path), "encrypted PDF (needs a password)")
    if count == 0:
        doc.close()
        if repaired:  # MuPDF rebuilt the file and found no page tree: damaged, not empty
            raise PdfError(str(path), f"broken PDF (no readable pages; {_mupdf_error('repair failed')})")
        raise PdfError(str(path), "PDF has no pages")
    return doc


def page_count(path: Path) -> int:
    """Pages of a PDF, 0 for a file that is not a usable PDF (for progress totals)."""
    try:
        doc = open_pdf(Path(path))
    except PdfError:
        return 0
    try:
        return doc.page_count
    finally:
        doc.close()


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
    """Yield each page's words and boxes; a page that fails to parse yields no words.

    One page at a time: memory does not grow with the number of pages.
    """
    import pymupdf

    doc = open_pdf(Path(path))
    try:
        for number in range(doc.page_count):
            # pymupdf keeps every MuPDF warning until reset: a long damaged file would pile them up
            pymupdf.TOOLS.reset_mupdf_warnings()
            try:
                page = doc.load_page(number)
                raw = page.get_text("words", sort=False)
                words = words_of(raw, page)
                has_images = bool(page.get_images(full=False))
                rect = page.rect
                result = Page(number, rect.width, rect.height, words, "pdf", has_images)
                if result.needs_ocr and not has_images and not any("\ufffd" in w[4] for w in raw):
                    result.text_only = _draws_only_text(page)
            except Exception as exc:  # one damaged page must not lose the rest of the file
                log.warning("%s: page %d unreadable (%s)", path, number + 1, one_line(exc))
                result = Page(number, 0.0, 0.0, [], "none", False)
            yield result
    finally:
        doc.close()


def _draws_only_text(page) -> bool:
    """True when the page draws nothing but text: no image (inline ones included), vector path
    or shading, annotations included.

    Stops at the first thing that is not text. Listing everything drawn instead (get_bboxlog)
    costs memory in proportion to the page, and a small file can draw millions of paths.
    """
    import pymupdf

    mupdf = pymupdf.mupdf
    cookie = mupdf.FzCookie()
    device = _non_text_device()(cookie)
    fz_page = page.this if isinstance(page.this, mupdf.FzPage) else mupdf.FzPage(page.this)
    try:
        mupdf.fz_run_page(fz_page, device, mupdf.FzMatrix(), cookie)
    finally:
        mupdf.fz_close_device(device)
    return not device.seen


@lru_cache(maxsize=1)
def _non_text_device():
    """A MuPDF device that notes the first non-text drawing and aborts the page's run there
    (defined on first use: pymupdf is imported lazily)."""
    import pymupdf

    class NonTextDevice(pymupdf.mupdf.FzDevice2):
        def __init__(self, cookie):
            super().__init__()
            self.cookie, self.seen = cookie, False
            # the calls get_bboxlog lists besides text (clips draw nothing)
            for call in ("fill_path", "stroke_path", "fill_shade", "fill_image", "fill_image_mask"):
                getattr(self, f"use_virtual_{call}")()

        def _drawn(self, *args):
            self.seen = True
            self.cookie.m_internal.abort = 1  # the interpreter checks it before each operator

        fill_path = stroke_path = fill_shade = fill_image = fill_image_mask = _drawn

    return NonTextDevice


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


def render_zoom(width: float, height: float, dpi: float) -> float:
    """Pixels per point to render a width x height page at: dpi / 72, or less where that would
    pass MAX_RENDER_PIXELS (the same shape, fewer pixels)."""
    zoom = dpi / 72.0
    a, b = max(width, 0.0), max(height, 0.0)
    # MuPDF rounds the pixmap outwards, up to a pixel each side: solve (a z + 2)(b z + 2) = cap.
    if a * b > 0 and (a * zoom + 2) * (b * zoom + 2) > MAX_RENDER_PIXELS:
        zoom = (math.sqrt((a + b) ** 2 + a * b * (MAX_RENDER_PIXELS - 4)) - (a + b)) / (a * b)
    return zoom


def _render(page, dpi: float, path: Path, number: int):
    import pymupdf
    from PIL import Image

    rect = page.rect
    zoom = render_zoom(rect.width, rect.height, dpi)
    if zoom < dpi / 72.0 and min(rect.width, rect.height) * zoom < 1:
        # Within the cap it would be under a pixel across (a 9e18 x 842-point page): MuPDF
        # would give an image 0 pixels high.
        raise PdfError(str(path), f"page {number + 1} too large to render "
                                  f"({rect.width:.4g} x {rect.height:.4g} points)")
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), alpha=False)
    if pix.width < 1 or pix.height < 1:
        raise PdfError(str(path), f"page {number + 1} renders to no pixels ({pix.width} x {pix.height})")
    # samples_mv: no bytes copy of the pixmap beside the image's own
    return Image.frombytes("RGB", (pix.width, pix.height), pix.samples_mv)


def render_page(path: Path, number: int, dpi: int = 150):
    """Render one page to a PIL image (RGB) at the given DPI (lower for a page that would pass
    MAX_RENDER_PIXELS); PdfError for a page that cannot be rendered."""
    if not dpi or dpi <= 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    doc = open_pdf(Path(path))
    try:
        count = doc.page_count
        if not 0 <= number < count:
            raise PdfError(str(path), f"page {number} out of range (0..{count - 1})")
        try:
            return _render(doc.load_page(number), dpi, path, number)
        except PdfError:
            raise
        except Exception as exc:  # a damaged page: MuPDF's own error, as a one-line reason
            reason = f"page {number + 1} could not be rendered ({one_line(exc)[:120]})"
            raise PdfError(str(path), reason) from None
    finally:
        doc.close()


def render_pages(path: Path, numbers: Sequence[int], dpi: int | Sequence[int] = 150) -> list:
    """Render several pages with one opening of the document: PIL images (RGB), in order.

    dpi: one DPI for all pages, or one per page (pages of one file can differ in size).
    A page that fails to render gives None (logged), like an unreadable page in read_pages.
    A page that would pass MAX_RENDER_PIXELS is rendered at a lower DPI.
    """
    import pymupdf

    dpis = [dpi] * len(numbers) if isinstance(dpi, (int, float)) else list(dpi)
    if len(dpis) != len(numbers):
        raise ValueError(f"{len(numbers)} pages but {len(dpis)} DPIs")
    if any(not d or d <= 0 for d in dpis):
        raise ValueError(f"dpi must be positive, got {dpi}")
    doc = open_pdf(Path(path))
    try:
        images = []
        count = doc.page_count  # once: a repair while loading a page could change it
        for number, page_dpi in zip(numbers, dpis):
            if not 0 <= number < count:
                raise PdfError(str(path), f"page {number} out of range (0..{count - 1})")
            pymupdf.TOOLS.reset_mupdf_warnings()
            try:
                images.append(_render(doc.load_page(number), page_dpi, path, number))
            except Exception as exc:  # one damaged page must not lose the rest of the file
                reason = exc.reason if isinstance(exc, PdfError) else exc
                log.warning("%s: page %d could not be rendered (%s)", path, number + 1, one_line(reason))
                images.append(None)
        return images
    finally:
        doc.close()
