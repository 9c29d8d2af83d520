"""Training data: (query, page) pairs from a JSONL file, the pages of a PDF, and the TrainSet.

A TrainSet holds what one training run samples from, already through the learner's frozen
parts: page inputs, query inputs, each query's page, and (for distillation) per-vector targets.
Pseudo-queries cut from the pages' own text are in docpress.train.pseudo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from docpress.errors import DocpressError
from docpress.jsonl import read_jsonl
from docpress.pdf.ocr import OcrMode, fill_text, resolve_ocr
from docpress.pdf.reader import read_pages
from docpress.types import Page


@dataclass(frozen=True)
class Pair:
    """A labelled example: a query and the page (0-based) of the PDF that answers it."""

    query: str
    doc: Path
    page: int


def load_pairs(path: str | Path) -> list[Pair]:
    """Read JSONL lines {"query": ..., "doc": PDF path, "page": 0-based}.

    A relative `doc` is looked up as given, then next to the JSONL file.
    """
    path = Path(path)

    def parse(row: dict, n: int) -> Pair:
        doc, page, query = Path(row["doc"]), int(row["page"]), str(row["query"])
        if not doc.is_absolute() and not doc.exists() and (path.parent / doc).exists():
            doc = path.parent / doc
        if page < 0 or not query.strip():
            raise DocpressError(f"{path}:{n}: the page must be 0-based and the query not empty")
        return Pair(query, doc, page)

    return read_jsonl(path, parse, "pair", '{"query": ..., "doc": "file.pdf", "page": 0}')


def load_pages(path: Path, numbers: set[int] | None = None,
               ocr: OcrMode | str = OcrMode.auto) -> list[Page]:
    """The pages of one PDF (all, or those in `numbers`) with text, OCR'd where they have none."""
    mode = resolve_ocr(ocr)
    pages = []
    for page in read_pages(path):
        if numbers is not None and page.number not in numbers:
            continue
        if page.needs_ocr and page.width:
            page = fill_text(path, page, mode)
        pages.append(page)
    if numbers is not None:
        missing = sorted(numbers - {p.number for p in pages})
        if missing:
            raise DocpressError(f"{path} has no page {missing[0]} (pages are 0-based)")
    return pages


@dataclass
class TrainSet:
    """What a run samples from.

    pages:     learner page inputs (frozen work done), one per page.
    queries:   learner query inputs.
    positives: (n_queries,) int, the page index of each query.
    targets:   per page, None or ((n_i, d_t) float32 teacher vectors, (n_i,) bool mask) aligned
               with the page's vectors (cell regression).
    names:     per page, "file.pdf:page" (reports).
    eval_queries, eval_positives: held-out queries (never trained on) and their pages.
    query_texts, eval_texts: the queries' texts (reports, debugging).
    groups:    optional (n_pages,) int, the source page of each page input: pages of one group
               (a page and its copies with a query cut out) never meet in a batch and are
               never each other's negatives. Default: every page its own group.
    negatives: optional (n_queries,) int, a hard negative page input of each query (-1: none),
               scored against the whole batch besides the in-batch pages.
    """

    pages: list
    queries: list
    positives: np.ndarray
    targets: list | None = None
    names: list[str] = field(default_factory=list)
    eval_queries: list = field(default_factory=list)
    eval_positives: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    query_texts: list[str] = field(default_factory=list)
    eval_texts: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None
    negatives: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.positives = np.asarray(self.positives, dtype=np.int64)
        self.eval_positives = np.asarray(self.eval_positives, dtype=np.int64)
        if self.groups is not None:
            self.groups = np.asarray(self.groups, dtype=np.int64)
            if len(self.groups) != len(self.pages):
                raise ValueError("one group per page")
        if self.negatives is not None:
            self.negatives = np.asarray(self.negatives, dtype=np.int64)
            if len(self.negatives) != len(self.queries) or self.negatives.max(initial=-1) >= len(self.pages):
                raise ValueError("one negative page (or -1) per query")
        if len(self.positives) != len(self.queries):
            raise ValueError("one positive page per query")
        if len(self.positives) and (self.positives.min() < 0 or self.positives.max() >= len(self.pages)):
            raise ValueError("positives must index pages")

    def batches(self, batch_size: int, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Endless (page indices, query indices): distinct groups, one random query of each.

        Distinct pages (groups) keep the in-batch negatives true negatives. Groups are visited
        in a fresh random order every pass; query i of a batch belongs to page i.
        """
        group_of = self.groups if self.groups is not None else np.arange(len(self.pages))
        by_group: dict[int, list[int]] = {}
        for q, p in enumerate(self.positives):
            by_group.setdefault(int(group_of[p]), []).append(q)
        with_queries = np.array(sorted(by_group), dtype=np.int64)
        if len(with_queries) < 2:
            raise DocpressError("training needs queries for at least two pages (in-batch negatives)")
        size = min(batch_size, len(with_queries))
        while True:
            order = rng.permutation(with_queries)
            for b in range(0, len(order) - size + 1, size):
                queries = np.array([by_group[int(g)][int(rng.integers(len(by_group[int(g)])))]
                                    for g in order[b:b + size]], dtype=np.int64)
                yield self.positives[queries], queries
