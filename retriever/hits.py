"""Search results: one Hit per page, with its document, score, snippet and image on demand."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Hit:
    """One page that answers a query."""

    path: str  # the document's absolute path
    page: int  # 0-based page number
    score: float
    snippet: str
    title: str = ""
    text_source: str = "pdf"  # where the page's text came from: pdf, ocr:rapidocr, ...
    metadata: dict = field(default_factory=dict)
    boxes: list = field(default_factory=list)  # page regions (PDF points) that matched
    doc_id: int = -1
    page_id: int = -1
    method: str = ""
    # Other paths of identical files (indexed once), and whether no copy is on disk any more.
    other_paths: list = field(default_factory=list)
    missing: bool = False
    text: str = ""  # the page's whole text (for a RAG prompt); snippet is the part that matched
    # where the query matched: the strongest regions (box, score, query words) ...
    regions: list = field(default_factory=list)
    # ... and what highlight() paints: every page vector's box and heat, the page size in points
    heat: object = field(default=None, repr=False)
    page_size: tuple = (0.0, 0.0)

    def image(self, dpi: int = 150):
        """The page rendered as a PIL image."""
        from docpress.errors import PdfError
        from docpress.pdf.reader import render_page

        if self.missing:
            raise PdfError(self.path, "the file is gone from disk; `docpress ingest --sync FOLDER` "
                                      "removes documents whose files are gone")
        return render_page(self.path, self.page, dpi=dpi)

    def highlight(self, dpi: int = 110):
        """The page as a PIL image with the regions that matched painted over it (a heat
        overlay from the late-interaction scores, the strongest regions outlined and labelled
        with the query words they matched)."""
        from retriever.highlight import paint

        image = self.image(dpi=dpi)
        if self.heat is None:
            return image
        return paint(image, self.heat, self.regions, self.page_size)

    def as_dict(self) -> dict:
        return {"path": self.path, "page": self.page, "page_label": self.page + 1,
                "score": round(float(self.score), 6), "snippet": self.snippet, "text": self.text,
                "doc_id": self.doc_id, "page_id": self.page_id, "title": self.title, "text_source": self.text_source,
                "metadata": self.metadata, "boxes": self.boxes, "method": self.method,
                "regions": [r.as_dict() for r in self.regions],
                "other_paths": self.other_paths, "missing": self.missing}
