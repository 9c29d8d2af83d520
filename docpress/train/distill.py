"""Build training sets: labelled pairs, or pseudo-queries cut from the pages with a teacher encoder.

Distillation needs no labels: the text encoder (the teacher) reads each page's text layer; queries
are cut from that text and encoded by the student's query tower, so that the right page wins
in-batch; optionally each page vector (an optical grid cell) is pulled toward the teacher's
token vectors of the words under its box.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from docpress.encoders.base import Encoder
from docpress.errors import DocpressError
from docpress.pdf.ocr import OcrMode
from docpress.train.data import Pair, TrainSet, load_pages
from docpress.train.learners import Learner
from docpress.train.pseudo import pseudo_queries, split_sentences
from docpress.types import Page

ProgressFn = Callable[[str, int, int], None]  # (what, done, total)


@dataclass
class DistillOptions:
    """How pseudo-queries are cut.

    queries_per_page: training queries per page.
    holdout: sentences per page kept out of training, one evaluation query cut from each.
    min_words: pages with fewer words are skipped (nothing to cut queries from).
    """

    queries_per_page: int = 8
    holdout: int = 0
    min_words: int = 8
    seed: int = 0


def cell_targets(page: Page, boxes: np.ndarray, teacher_vectors) -> tuple[np.ndarray, np.ndarray]:
    """Per page vector: the mean teacher token vector of the words whose centre is in its box.

    boxes: (n, 4) PDF points of the student's page vectors; teacher_vectors: the teacher's
    PageVectors (token vectors (m, d_t) with word boxes). Returns targets (n, d_t) float32
    L2-normalised (zeros where empty) and mask (n,) bool: the boxes that cover any word.
    """
    tv = teacher_vectors
    if len(tv.vectors) == 0 or len(boxes) == 0:
        return np.zeros((len(boxes), tv.vectors.shape[1]), np.float32), np.zeros(len(boxes), bool)
    cx = (tv.boxes[:, 0] + tv.boxes[:, 2]) / 2
    cy = (tv.boxes[:, 1] + tv.boxes[:, 3]) / 2
    inside = ((cx[None] >= boxes[:, 0:1]) & (cx[None] < boxes[:, 2:3]) &
              (cy[None] >= boxes[:, 1:2]) & (cy[None] < boxes[:, 3:4]))  # (n, m)
    sums = inside.astype(np.float32) @ tv.vectors.astype(np.float32)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    mask = inside.any(1)
    return np.where(mask[:, None], sums / np.maximum(norms, 1e-12), 0).astype(np.float32), mask


def _prepare(learner: Learner, docs: dict[Path, set[int] | None], teacher: Encoder | None, min_words: int,
             ocr: OcrMode | str, progress: ProgressFn | None):
    """Read, render and run the frozen prefix for the documents' pages.

    Returns [(path, page, learner input, targets or None)] for pages with words and vectors.
    """
    out = []
    total = len(docs)
    for n, (path, numbers) in enumerate(docs.items()):
        # named pages (labelled pairs) are all kept; otherwise only pages with text to cut from
        pages = [p for p in load_pages(path, numbers, ocr) if numbers is not None or len(p.words) >= min_words]
        inputs = learner.prepare_pages(path, pages)
        teacher_vectors = teacher.encode_pages(pages) if teacher is not None else [None] * len(pages)
        for page, item, tv in zip(pages, inputs, teacher_vectors):
            if len(item) == 0:
                continue
            target = cell_targets(page, item.boxes, tv) if tv is not None else None
            out.append((Path(path), page, item, target))
        if progress:
            progress(f"pages of {Path(path).name}", n + 1, total)
    return out


def distill_set(pdfs: list[Path], learner: Learner, teacher: Encoder | None,
                options: DistillOptions | None = None, ocr: OcrMode | str = OcrMode.auto,
                progress: ProgressFn | None = None) -> TrainSet:
    """A TrainSet of pseudo-queries from the PDFs' own pages (no labels).

    teacher: the text encoder, for cell targets (None: the in-batch term only). Held-out
    sentences become the set's eval_queries / eval_positives.
    """
    options = options or DistillOptions()
    rng = np.random.default_rng(options.seed)
    prepared = _prepare(learner, {Path(p): None for p in pdfs}, teacher, options.min_words, ocr, progress)
    if len(prepared) < 2:
        raise DocpressError(f"distillation needs at least two pages with {options.min_words}+ words "
                            f"of text; found {len(prepared)}")
    texts, positives, held, held_positives = [], [], [], []
    for index, (_, page, _, _) in enumerate(prepared):
        train_sentences, held_sentences = split_sentences(page, options.holdout, rng)
        queries = pseudo_queries(train_sentences, options.queries_per_page, rng)
        texts.extend(queries)
        positives.extend([index] * len(queries))
        for sentence in held_sentences:  # a span like the training ones, from unseen text
            held.extend(pseudo_queries([sentence], 1, rng))
            held_positives.extend([index] * (len(held) - len(held_positives)))
    if progress:
        progress("queries", 0, 1)
    encoded = learner.prepare_queries(texts + held)
    if progress:
        progress("queries", 1, 1)
    return TrainSet(pages=[item for _, _, item, _ in prepared], queries=encoded[:len(texts)],
                    positives=np.asarray(positives), targets=_targets(prepared),
                    names=[f"{path.name}:{page.number}" for path, page, _, _ in prepared],
                    eval_queries=encoded[len(texts):], eval_positives=np.asarray(held_positives),
                    query_texts=texts, eval_texts=held)


def pairs_set(pairs: list[Pair], learner: Learner, teacher: Encoder | None = None,
              ocr: OcrMode | str = OcrMode.auto, progress: ProgressFn | None = None) -> TrainSet:
    """A TrainSet of labelled (query, page) pairs; only the pages the pairs name are read."""
    docs: dict[Path, set[int]] = defaultdict(set)
    for pair in pairs:
        docs[Path(pair.doc)].add(pair.page)
    prepared = _prepare(learner, dict(docs), teacher, 0, ocr, progress)
    index = {(path.resolve(), page.number): i for i, (path, page, _, _) in enumerate(prepared)}
    positives, texts = [], []
    for pair in pairs:
        key = (Path(pair.doc).resolve(), pair.page)
        if key in index:  # a page that gives no vectors (unreadable) cannot be trained on
            positives.append(index[key])
            texts.append(pair.query)
    if len({*positives}) < 2:
        raise DocpressError("training needs pairs on at least two different readable pages")
    return TrainSet(pages=[item for _, _, item, _ in prepared], queries=learner.prepare_queries(texts),
                    positives=np.asarray(positives), targets=_targets(prepared),
                    names=[f"{path.name}:{page.number}" for path, page, _, _ in prepared], query_texts=texts)


def _targets(prepared: list) -> list | None:
    targets = [target for _, _, _, target in prepared]
    return targets if any(t is not None for t in targets) else None
