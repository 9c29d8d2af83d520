"""PDF reading: documents and pages with word boxes (reader), page images, and OCR (ocr)."""

from docpress.pdf.ocr import OcrMode, fill_text, resolve_ocr
from docpress.pdf.reader import open_document, read_pages, render_page, render_pages

__all__ = ["OcrMode", "fill_text", "resolve_ocr", "open_document", "read_pages", "render_page",
           "render_pages"]
