"""docpress.render on PDFs built here with pymupdf: words and boxes, pages needing OCR,
unusable files (each with its one-line reason) and page rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pymupdf = pytest.importorskip("pymupdf")

from docpress.errors import PdfError  # noqa: E402
from docpress.pdf import ocr as text_mod  # noqa: E402
from docpress.pdf.ocr import OcrMode, fill_text  # noqa: E402
from docpress.pdf.reader import open_document, read_pages, render_page  # noqa: E402

A4 = (595, 842)
SENTENCE = "The quick brown fox jumps over the lazy dog"


def _save(doc, path: Path, **kwargs) -> Path:
    doc.save(path, **kwargs)
    doc.close()
    return path


def _text_pdf(path: Path, pages: int = 1) -> Path:
    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=A4[0], height=A4[1])
        page.insert_text((72, 100), f"{SENTENCE} {i}", fontsize=12)
    return _save(doc, path)


def _image_pdf(path: Path) -> Path:
    doc = pymupdf.open()
    page = doc.new_page(width=A4[0], height=A4[1])
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
    pix.clear_with(90)
    page.insert_image(pymupdf.Rect(100, 100, 300, 300), pixmap=pix)
    return _save(doc, path)


def _reason(path: Path) -> str:
    with pytest.raises(PdfError) as info:
        open_document(path)
    reason = info.value.reason
    assert reason and "\n" not in reason
    with pytest.raises(PdfError):  # read_pages opens the same way
        next(read_pages(path))
    return reason


# -- reading pages ------------------------------------------------------------------------

def test_text_page_gives_words_with_boxes(tmp_path):
    path = _text_pdf(tmp_path / "text.pdf", pages=2)
    doc = open_document(path)
    assert doc.page_count == 2 and len(doc.sha256) == 64 and doc.title == "text"
    pages = list(read_pages(path))
    assert [p.number for p in pages] == [0, 1]
    page = pages[0]
    assert (page.width, page.height) == A4
    assert page.text == f"{SENTENCE} 0"
    assert page.text_source == "pdf" and not page.needs_ocr and not page.has_images
    for w in page.words:
        x0, y0, x1, y1 = w.box
        assert 72 <= x0 < x1 < A4[0] and 80 < y0 < y1 < 110, w
    xs = [w.box[0] for w in page.words]
    assert xs == sorted(xs)  # one line, left to right


def test_image_only_page_needs_ocr(tmp_path):
    page = next(read_pages(_image_pdf(tmp_path / "scan.pdf")))
    assert page.words == [] and page.has_images
    assert page.needs_ocr and not page.text_only


def test_blank_and_short_text_pages_have_nothing_to_ocr(tmp_path):
    doc = pymupdf.open()
    doc.new_page()
    doc.new_page().insert_text((72, 72), "Page 5")
    doc.new_page().draw_rect(pymupdf.Rect(50, 50, 200, 200), color=(0, 0, 0))  # vector art
    blank, short, drawing = read_pages(_save(doc, tmp_path / "sparse.pdf"))
    assert blank.needs_ocr and blank.text_only
    assert short.needs_ocr and short.text_only and short.text == "Page 5"
    assert drawing.needs_ocr and not drawing.text_only


def test_rotated_page_boxes_match_the_rendered_page(tmp_path):
    doc = pymupdf.open()
    page = doc.new_page(width=600, height=300)
    page.insert_text((50, 50), "Rotated", fontsize=30)
    page.set_rotation(90)
    path = _save(doc, tmp_path / "rotated.pdf")
    (page,) = read_pages(path)
    assert (page.width, page.height) == (300, 600)
    (word,) = page.words
    image = np.asarray(render_page(path, 0, dpi=72).convert("L"))
    assert image.shape == (600, 300)
    ys, xs = np.nonzero(image < 128)
    x0, y0, x1, y1 = word.box
    # The ink lies inside the word's box, as displayed (not in the unrotated page).
    assert x0 - 2 <= xs.min() and xs.max() <= x1 + 2 and y0 - 2 <= ys.min() and ys.max() <= y1 + 2


def test_metadata_is_cleaned(tmp_path):
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), SENTENCE)
    doc.set_metadata({"title": "x", "author": "y"})
    info = int(doc.xref_get_key(-1, "Info")[1].split()[0])
    # UTF-16 with a trailing NUL, as ImageMagick writes titles; a newline in the author.
    doc.xref_set_key(info, "Title", "<FEFF005200650070006F007200740000>")
    doc.xref_set_key(info, "Author", "(A\\nB)")
    meta_doc = open_document(_save(doc, tmp_path / "meta.pdf"))
    assert meta_doc.title == "Report"
    assert meta_doc.metadata["author"] == "A B"


# -- unusable files -----------------------------------------------------------------------

def test_empty_file(tmp_path):
    path = tmp_path / "empty.pdf"
    path.write_bytes(b"")
    assert _reason(path) == "empty file"


def test_text_file_renamed_pdf(tmp_path):
    path = tmp_path / "notes.pdf"
    path.write_text("just some notes, not a PDF\n" * 20)
    assert _reason(path).startswith("not a PDF")


def test_folder_and_missing_file(tmp_path):
    (tmp_path / "folder.pdf").mkdir()
    assert _reason(tmp_path / "folder.pdf") == "not a file"
    assert _reason(tmp_path / "missing.pdf") == "not a file"


@pytest.mark.parametrize("objstms, keep", [(0, 0.1), (1, 0.5), (1, 0.9)])
def test_truncated_pdf(tmp_path, objstms, keep):
    doc = pymupdf.open()
    for i in range(3):
        doc.new_page().insert_text((72, 72), f"{SENTENCE} {i}")
    data = doc.tobytes(garbage=4, deflate=bool(objstms), use_objstms=objstms)
    path = tmp_path / "truncated.pdf"
    path.write_bytes(data[: int(len(data) * keep)])
    reason = _reason(path)
    assert reason.startswith("broken PDF (") and str(path) not in reason


def test_encrypted_pdf(tmp_path):
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), SENTENCE)
    path = _save(doc, tmp_path / "secret.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256,
                 user_pw="user", owner_pw="owner")
    assert _reason(path) == "encrypted PDF (needs a password)"


def test_owner_password_only_opens(tmp_path):
    """Copy-protected files (empty user password) open like any other."""
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), SENTENCE)
    path = _save(doc, tmp_path / "protected.pdf", encryption=pymupdf.PDF_ENCRYPT_AES_256,
                 owner_pw="owner", permissions=pymupdf.PDF_PERM_PRINT)
    assert open_document(path).page_count == 1
    assert next(read_pages(path)).text == SENTENCE


# -- rendering ----------------------------------------------------------------------------

@pytest.mark.parametrize("dpi", [72, 100, 150])
def test_render_page_size(tmp_path, dpi):
    path = _text_pdf(tmp_path / "text.pdf")
    image = render_page(path, 0, dpi=dpi)
    assert image.mode == "RGB"
    assert abs(image.width - A4[0] * dpi / 72) <= 1 and abs(image.height - A4[1] * dpi / 72) <= 1


def test_render_page_bad_arguments(tmp_path):
    path = _text_pdf(tmp_path / "text.pdf")
    with pytest.raises(PdfError, match="out of range"):
        render_page(path, 1)
    with pytest.raises(ValueError):
        render_page(path, 0, dpi=0)


# -- fill_text's guards (no OCR engine runs here) -----------------------------------------

def _fail(*args):
    raise AssertionError("OCR should not run")


def test_fill_text_skips_pages_with_nothing_to_ocr(tmp_path, monkeypatch):
    monkeypatch.setattr(text_mod, "_ocr_rapidocr", _fail)
    doc = pymupdf.open()
    doc.new_page()
    doc.new_page().insert_text((72, 72), "Hi")
    blank, short = read_pages(_save(doc, tmp_path / "sparse.pdf"))
    assert fill_text(tmp_path / "sparse.pdf", blank, OcrMode.rapidocr).text_source == "none"
    assert fill_text(tmp_path / "sparse.pdf", short, OcrMode.rapidocr).text == "Hi"


def test_fill_text_survives_an_ocr_failure(tmp_path, monkeypatch):
    def boom(path, page):
        raise RuntimeError("engine crashed\nwith details")

    monkeypatch.setattr(text_mod, "_ocr_rapidocr", boom)
    path = _image_pdf(tmp_path / "scan.pdf")
    page = fill_text(path, next(read_pages(path)), OcrMode.rapidocr)
    assert page.words == [] and page.text_source == "none"


def test_fill_text_keeps_a_longer_text_layer(tmp_path, monkeypatch):
    from docpress.types import Word

    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Figure 12")
    page.insert_image(pymupdf.Rect(100, 100, 300, 300),
                      pixmap=pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 8, 8), False))
    path = _save(doc, tmp_path / "figure.pdf")
    monkeypatch.setattr(text_mod, "_ocr_rapidocr", lambda p, pg: [Word("F", (0, 0, 1, 1))])
    page = fill_text(path, next(read_pages(path)), OcrMode.rapidocr)
    assert page.text == "Figure 12" and page.text_source == "pdf"
    monkeypatch.setattr(text_mod, "_ocr_rapidocr",
                        lambda p, pg: [Word(t, (0, 0, 1, 1)) for t in "Figure 12 a chart of sales".split()])
    page = fill_text(path, next(read_pages(path)), OcrMode.rapidocr)
    assert page.text == "Figure 12 a chart of sales" and page.text_source == "ocr:rapidocr"
