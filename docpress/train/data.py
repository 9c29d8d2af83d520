"""Training data: (query, page) pairs from a JSONL file or cut from the pages' own text.

A TrainSet holds what one training run samples from, already through the lane's frozen
parts: page inputs, query inputs, each query's page, and (for distillation) per-vector targets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from docpress.errors import DocpressError
from docpress.pdf.ocr import OcrMode, fill_text, resolve_ocr
from docpress.pdf.reader import read_pages
from docpress.types import Page

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")


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
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DocpressError(f"cannot read pairs file {path}: {exc.strerror}") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            doc, page, query = Path(row["doc"]), int(row["page"]), str(row["query"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DocpressError(f"{path}:{n}: not a pair line ({exc}); expected "
                                '{"query": ..., "doc": "file.pdf", "page": 0}') from None
        if not doc.is_absolute() and not doc.exists() and (path.parent / doc).exists():
            doc = path.parent / doc
        if page < 0 or not query.strip():
            raise DocpressError(f"{path}:{n}: the page must be 0-based and the query not empty")
        pairs.append(Pair(query, doc, page))
    if not pairs:
        raise DocpressError(f"{path} holds no pairs")
    return pairs


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


def sentences(text: str, min_words: int = 3) -> list[str]:
    """The text cut at sentence ends (and colons, semicolons); pieces under min_words words go.

    >>> sentences("Revenue rose sharply. Net income fell to 3 million; costs were flat. Ok.")
    ['Revenue rose sharply.', 'Net income fell to 3 million;', 'costs were flat.']
    """
    pieces = _SENTENCE_END.split(" ".join(text.split()))
    return [p for p in pieces if len(p.split()) >= min_words]


def pseudo_queries(texts: list[str], n: int, rng: np.random.Generator, min_words: int = 5,
                   max_words: int = 16) -> list[str]:
    """Up to n query-like spans cut from `texts` (sentences): whole short sentences and
    random spans of min_words..max_words words, without repeats."""
    words_of = [t.split() for t in texts if len(t.split()) >= 3]
    if not words_of:
        return []
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(8 * n):
        if len(out) == n:
            break
        words = words_of[int(rng.integers(len(words_of)))]
        if len(words) <= max_words and rng.random() < 0.5:
            span = words
        else:
            size = int(rng.integers(min(min_words, len(words)), min(max_words, len(words)) + 1))
            start = int(rng.integers(0, len(words) - size + 1))
            span = words[start:start + size]
        text = " ".join(span)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def split_sentences(page: Page, holdout: int, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(training sentences, held-out sentences) of a page; a page keeps at least one for training."""
    found = sentences(page.text)
    if not found and page.words:
        found = [page.text]
    order = rng.permutation(len(found))
    held = min(holdout, max(0, len(found) - 1))
    return [found[i] for i in order[held:]], [found[i] for i in order[:held]]


def words_in_box(page: Page, box) -> list[str]:
    """The page's words whose centre lies in box (x0, y0, x1, y1), PDF points."""
    x0, y0, x1, y1 = box
    return [w.text for w in page.words
            if x0 <= (w.box[0] + w.box[2]) / 2 < x1 and y0 <= (w.box[1] + w.box[3]) / 2 < y1]


@dataclass
class TrainSet:
    """What a run samples from.

    pages:     lane page inputs (frozen work done), one per page.
    queries:   lane query inputs.
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
