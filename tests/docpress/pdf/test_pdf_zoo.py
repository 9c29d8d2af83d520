"""Robustness sweep over the shared PDF zoo: every real-world file is either indexed or skipped
with a clear one-line reason, and nothing crashes. OCR is off here (it is tested elsewhere)
and the encoder is a cheap hashed bag of words, so this tests reading PDFs, not models.

Findings behind the expectations are in /work/runs/pdf-zoo-survey.md.
"""

from __future__ import annotations

import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED

from docpress.encoders.base import Encoder
from docpress.ingest import ingest
from docpress.pdf.reader import open_document, read_pages
from docpress.types import Page, PageVectors, QueryVectors
from indexer.catalog import Catalog
from indexer.stores.bf16 import Bf16Store
from retriever.lanes import Lane

pytestmark = pytest.mark.slow  # sweeps every file of the zoo

ZOO = SHARED / "corpora" / "pdf-zoo"

# Files that must be skipped, and a word their reason must contain.
KNOWN_BAD = {
    "SOURCE.md": "not a PDF",
    "py-pdf-sample-files/LICENSE": "not a PDF",
    "py-pdf-sample-files/files.json": "not a PDF",
    "py-pdf-sample-files/005-libreoffice-writer-password/libreoffice-writer-password.pdf": "encrypted",
    "unstructured/password.pdf": "encrypted",
    # Last xref section has no /Root and the page tree object is lost; MuPDF's repair finds no pages.
    "py-pdf-sample-files/017-unreadable-meta-data/unreadablemetadata.pdf": "broken PDF",
}

# Files that must be added, with their page counts (one of each kind the zoo has).
KNOWN_GOOD = {
    "py-pdf-sample-files/001-trivial/minimal-document.pdf": 1,
    "py-pdf-sample-files/004-pdflatex-4-pages/pdflatex-4-pages.pdf": 4,
    "py-pdf-sample-files/007-imagemagick-images/imagemagick-images.pdf": 6,  # image-only
    "py-pdf-sample-files/008-reportlab-inline-image/inline-image.pdf": 1,
    "py-pdf-sample-files/009-pdflatex-geotopo/GeoTopo-komprimiert.pdf": 117,
    "py-pdf-sample-files/015-arabic/habibi-rotated.pdf": 4,  # pages rotated 90/180/270
    "py-pdf-sample-files/025-attachment/with-attachment.pdf": 1,
    "unstructured/copy-protected.pdf": 2,  # owner password only: opens with the empty one
    "unstructured/DA-619p.pdf": 619,
    "unstructured/pdf2image-memory-error-test-400p.pdf": 400,
    "unstructured/failure-after-repair.pdf": 76,
    "unstructured/invalid-pdf-structure-pdfminer-one-page.pdf": 2,
    "unstructured/korean-text-with-tables.pdf": 1,
    "unstructured/fr_olap.pdf": 12,
    "unstructured/layout-parser-paper-with-empty-pages.pdf": 4,
    "unstructured/loremipsum-flat.pdf": 1,  # scanned, no text layer
    "unstructured/negative-coords.pdf": 1,
    "unstructured/pdf-bad-color-space.pdf": 1,
    "unstructured/rotated-page-90.pdf": 1,
}

# Image-only pages: no text layer, so with OCR off they stay without text.
SCANNED = {
    "py-pdf-sample-files/007-imagemagick-images/imagemagick-images.pdf",
    "unstructured/loremipsum-flat.pdf",
    "unstructured/single_table.pdf",
}

MAX_VECTORS_PER_PAGE = 32


class HashEncoder(Encoder):
    """One hashed vector per word (at most MAX_VECTORS_PER_PAGE), pooled = their mean."""

    id = "test-hash"
    dim = 16

    def config(self) -> dict:
        return {"dim": self.dim}

    def _vec(self, token: str) -> np.ndarray:
        rng = np.random.default_rng(zlib.crc32(token.lower().encode("utf-8", "replace")))
        v = rng.standard_normal(self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def encode_pages(self, pages: list[Page]) -> list[PageVectors]:
        out = []
        for page in pages:
            words = page.words[:MAX_VECTORS_PER_PAGE]
            if not words:
                empty = np.zeros((0, self.dim), np.float32)
                out.append(PageVectors(empty, np.zeros((0, 4), np.float32), np.zeros(0, np.int32),
                                       np.zeros(0, np.float32), empty))
                continue
            vectors = np.stack([self._vec(w.text) for w in words])
            pooled = vectors.mean(axis=0, keepdims=True)
            pooled /= max(float(np.linalg.norm(pooled)), 1e-6)
            out.append(PageVectors(vectors, np.asarray([w.box for w in words], np.float32),
                                   np.arange(len(words), dtype=np.int32),
                                   np.ones(len(words), np.float32), pooled.astype(np.float32)))
        return out

    def encode_queries(self, texts: list[str]) -> list[QueryVectors]:
        out = []
        for text in texts:
            tokens = text.split() or [""]
            vectors = np.stack([self._vec(t) for t in tokens])
            pooled = vectors.mean(axis=0)
            out.append(QueryVectors(vectors, tokens, pooled / max(float(np.linalg.norm(pooled)), 1e-6)))
        return out


def _rel(path: str | Path) -> str:
    return Path(path).resolve().relative_to(ZOO.resolve()).as_posix()


@pytest.fixture(scope="module")
def zoo_files() -> list[Path]:
    if not ZOO.is_dir():
        pytest.skip(f"shared PDF zoo not present at {ZOO}")
    return sorted(p for p in ZOO.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def swept(zoo_files, tmp_path_factory):
    """Ingest every file of the zoo (any extension), once for the module."""
    root = tmp_path_factory.mktemp("zoo-index")
    catalog = Catalog(root / "catalog.sqlite")
    store = Bf16Store(root / "vectors", HashEncoder.dim)
    encoder = HashEncoder()
    lane = Lane("main", {}, store, lambda: encoder)
    report = ingest(zoo_files, catalog, [lane], ocr="off")  # must not raise
    yield report, catalog
    catalog.close()


def test_every_file_added_or_skipped_with_a_reason(zoo_files, swept):
    report, _ = swept
    added = {_rel(p) for p in report.added}
    skipped = {_rel(s.path): s.reason for s in report.skipped}
    assert not report.replaced and not report.unchanged
    assert not added & set(skipped)
    assert added | set(skipped) == {_rel(p) for p in zoo_files}
    for name, reason in skipped.items():
        assert reason.strip(), f"{name}: empty reason"
        assert "\n" not in reason and len(reason) < 200, f"{name}: reason not one short line: {reason!r}"
        assert str(ZOO) not in reason, f"{name}: reason repeats the path: {reason!r}"


def test_known_bad_files_are_skipped_with_the_right_reason(swept):
    report, _ = swept
    skipped = {_rel(s.path): s.reason for s in report.skipped}
    for name, word in KNOWN_BAD.items():
        assert name in skipped, f"{name} should be skipped ({word})"
        assert word in skipped[name], f"{name}: {skipped[name]!r} should say {word!r}"
    unexpected = {n: r for n, r in skipped.items() if n not in KNOWN_BAD}
    assert not unexpected, f"PDFs skipped that the survey found readable: {unexpected}"


def test_known_good_files_are_added_with_their_page_counts(swept):
    report, catalog = swept
    docs = {_rel(d.path): d for d in catalog.documents()}
    assert set(docs) == {_rel(p) for p in report.added}
    for name, pages in KNOWN_GOOD.items():
        assert name in docs, f"{name} should be added"
        assert docs[name].page_count == pages, name


def test_catalog_pages_match_added_documents(swept):
    report, catalog = swept
    docs = catalog.documents()
    expected = sum(d.page_count for d in docs)
    counts = catalog.counts()
    assert counts["documents"] == len(report.added)
    assert counts["pages"] == expected == report.pages
    per_doc = Counter(catalog.page_table().doc_ids.tolist())
    for d in docs:
        assert per_doc[d.id] == d.page_count, d.path
    assert report.ocr_pages == 0  # OCR off


def test_page_text_is_clean(swept):
    """No U+FFFD runs (unmapped glyphs) or control characters reach the catalog."""
    _, catalog = swept
    _, texts = catalog.page_texts()
    assert texts
    for text in texts:
        assert "\ufffd" not in text
        assert not any(ord(c) < 32 for c in text)
    titles = [d.title for d in catalog.documents()]
    assert all(t and t.isprintable() for t in titles), [t for t in titles if not t.isprintable()]


def test_scanned_pages_are_flagged_and_short_text_pages_not_ocred(zoo_files):
    by_name = {_rel(p): p for p in zoo_files}
    for name in SCANNED:
        pages = list(read_pages(by_name[name]))
        assert pages and all(p.needs_ocr and not p.text_only for p in pages), name
    # A real but short text layer and a truly empty page: nothing for OCR to find.
    xmp = list(read_pages(by_name["py-pdf-sample-files/020-xmp/output_with_metadata_pymupdf.pdf"]))
    assert xmp[0].text == "Hello, World!" and xmp[0].needs_ocr and xmp[0].text_only
    empty = list(read_pages(by_name["unstructured/layout-parser-paper-with-empty-pages.pdf"]))
    assert [p.number for p in empty if p.needs_ocr] == [1] and empty[1].text_only
    # An inline image (not listed by get_images) still counts as something to OCR.
    inline = list(read_pages(by_name["py-pdf-sample-files/008-reportlab-inline-image/inline-image.pdf"]))
    assert inline[0].needs_ocr and not inline[0].text_only


def test_rotated_pages_have_boxes_inside_the_displayed_page(zoo_files):
    by_name = {_rel(p): p for p in zoo_files}
    for name in ("py-pdf-sample-files/015-arabic/habibi-rotated.pdf", "unstructured/rotated-page-90.pdf"):
        for page in read_pages(by_name[name]):
            assert page.words, name
            for w in page.words:
                x0, y0, x1, y1 = w.box
                assert -1 <= x0 <= x1 <= page.width + 1 and -1 <= y0 <= y1 <= page.height + 1, (name, w)


def test_metadata_is_one_line(zoo_files):
    by_name = {_rel(p): p for p in zoo_files}
    doc = open_document(by_name["py-pdf-sample-files/007-imagemagick-images/imagemagick-lzw.pdf"])
    assert doc.title == "imagemagick-lzw"  # stored with a trailing NUL
