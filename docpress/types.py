"""The vocabulary every layer shares: pages and words as read, page and query vectors as encoded.

Plain dataclasses over numpy arrays; this module imports nothing else of docpress, so any
layer can use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# A page whose text layer has fewer characters than this is treated as having none.
MIN_TEXT_CHARS = 16


@dataclass
class Word:
    text: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in PDF points


@dataclass
class Page:
    """One page of a document, as read from the PDF (text may later come from OCR).

    image: the rendered page (a PIL image) while an encoder that reads images works on it;
    None otherwise (a batch of page images is megabytes, so ingest frees them at once).
    """

    number: int  # 0-based
    width: float
    height: float
    words: list[Word]
    text_source: str = "pdf"  # "pdf", "ocr:rapidocr", "ocr:tesseract" or "none"
    has_images: bool = False
    # Nothing on the page but its readable text layer (or nothing at all): no image, vector
    # path or unmapped glyph, so OCR could add nothing. Only worked out for needs_ocr pages.
    text_only: bool = False
    image: object | None = field(default=None, repr=False, compare=False)
    render_failed: bool = False  # ingest tried to render the page for an encoder and could not

    @property
    def text(self) -> str:
        return " ".join(w.text for w in self.words)

    @property
    def needs_ocr(self) -> bool:
        return sum(len(w.text) for w in self.words) < MIN_TEXT_CHARS


@dataclass
class Document:
    path: Path
    sha256: str
    page_count: int
    title: str
    metadata: dict = field(default_factory=dict)


@dataclass
class PageVectors:
    """A page's multi-vector embedding.

    vectors: (n_vectors, dim) float32, L2-normalised.
    boxes:   (n_vectors, 4) float32, the page region (PDF points) each vector stands for.
    words:   (n_vectors,) int32, index of the page word each vector came from (-1: none).
    weights: (n_vectors,) float32, importance of each vector (1.0 by default).
    pooled:  (n_pooled, dim) float32, L2-normalised single-vector summaries (one per window).
    """

    vectors: np.ndarray
    boxes: np.ndarray
    words: np.ndarray
    weights: np.ndarray
    pooled: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def empty(cls, dim: int) -> "PageVectors":
        """A page with no vectors (no text, or an unreadable page)."""
        none = np.zeros((0, dim), np.float32)
        return cls(none, np.zeros((0, 4), np.float32), np.zeros(0, np.int32),
                   np.zeros(0, np.float32), none.copy())


@dataclass
class QueryVectors:
    """A query's embedding: (n_tokens, dim) vectors, their tokens, and one pooled (dim,) vector."""

    vectors: np.ndarray
    tokens: list[str]
    pooled: np.ndarray
