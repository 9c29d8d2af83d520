"""tune_index: train a TokenHead on an index's own pages (no labels) and install it in the index.

Steps: sample pages (training and held-out ones apart), read their text and stored token
vectors, cut pseudo-queries and mine a BM25 hard negative for each, start the head from the
PCA of the pages' token vectors, train it with the shared loop (docpress.train.fit), measure
held-out pseudo-queries before and after, then project every stored token row into a new
folder and switch the manifest to it. The folder is complete and fsynced before the manifest
names it, so a crash leaves the index as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from docpress.errors import DocpressError
from docpress.train.data import TrainSet
from docpress.train.loop import TrainConfig, fit, retrieval_metrics, score_matrix
from docpress.tune.head import TokenHead
from docpress.tune.learner import TextHeadLearner, TextPage, page_input
from docpress.tune.pseudo import PseudoQuery, cut_queries, hard_negatives
from indexer.layout import HEAD_FOLDER, TUNED_TMP_PREFIX, tuned_folder
from indexer.stores.base import Location
from indexer.stores.projected import ProjectedStore

ProgressFn = Callable[[str, int, int], None]  # (what, done, total)

# Where the tuned lane replaces the raw MaxSim, decided on the FinanceBench dev set (README,
# "Tuning"): a general rule per method, never per question.
DEFAULT_METHODS = ("maxsim",)
MIN_PAGE_VECTORS = 32  # pages with fewer token vectors give no pseudo-query with a positive left


@dataclass
class TuneOptions:
    """What `tune` trains and on how much.

    dims: the head's output size. pages / eval_pages: pages sampled for training and for the
    held-out measurement (disjoint). queries_per_page / eval_queries_per_page: pseudo-queries
    cut from each training / held-out page. pca_vectors: token vectors the PCA start is
    computed from. max_page_vectors: vectors of a page drawn per training step (None: all;
    256 made steps ~7x faster on filings and FinanceBench slightly worse). max_seconds: time
    budget of the training steps. reg_weight: weight of the head's orthogonality term.
    methods: search methods that will use the tuned lane.

    The defaults were chosen on the FinanceBench dev set (README, "Tuning"): a short run (80
    steps of 32 pseudo-queries) from the PCA start; longer runs fit the pseudo-queries better
    and real questions worse.
    """

    dims: int = 128
    steps: int = 80
    batch_size: int = 32
    lr: float = 2e-3
    temperature: float = 0.05
    reg_weight: float = 0.0
    hard_negatives: bool = True
    pages: int = 3000
    eval_pages: int = 200
    queries_per_page: int = 4
    eval_queries_per_page: int = 1
    pca_vectors: int = 100_000
    max_page_vectors: int | None = None
    max_seconds: float | None = None
    seed: int = 0
    methods: tuple[str, ...] = DEFAULT_METHODS

    def __post_init__(self) -> None:
        from retriever.search import Method

        unknown = set(self.methods) - {Method.maxsim.value, Method.hybrid.value}
        if unknown:
            raise DocpressError(f"the tuned lane scores MaxSim, so only maxsim and hybrid can use it, "
                                f"not {', '.join(sorted(unknown))}")
        if self.pages < 2 or self.queries_per_page < 1:
            raise DocpressError("tune needs at least 2 pages and 1 query per page")


@dataclass
class TuneReport:
    """What a tune run did; `held_out` holds R@1/R@5/MRR of raw 384-d MaxSim, the PCA start and the tuned head."""

    folder: str
    head_hash: str
    data_hash: str
    dims: int
    pages: int
    queries: int
    eval_pages: int
    eval_queries: int
    kinds: dict
    negatives: int
    steps: int
    stopped: str
    train_seconds: float
    seconds: float
    held_out: dict
    methods: list[str]
    head_bytes: int
    tuned_bytes: int
    bytes_per_page: float
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["first_loss"] = self.losses[0] if self.losses else None
        out["final_loss"] = float(np.mean(self.losses[-20:])) if self.losses else None
        del out["losses"]
        return out


@dataclass
class _Split:
    """Pages read from the index and the pseudo-queries cut from them."""

    page_ids: np.ndarray
    texts: list[str]
    pages: list[TextPage]
    queries: list[PseudoQuery]


def tune_index(index, options: TuneOptions | None = None, progress: ProgressFn | None = None) -> TuneReport:
    """Train the index's tuned lane and install it; see the module docstring. A writer: it
    holds the index's writer lock throughout (the pages it trains on stay as they are)."""
    with index.writing():
        return _tune_index(index, options, progress)


def _tune_index(index, options: TuneOptions | None, progress: ProgressFn | None) -> TuneReport:
    options = options or TuneOptions()
    progress = progress or (lambda what, done, total: None)
    started = time.perf_counter()
    _check(index)
    rng = np.random.default_rng(options.seed)
    table = index.catalog.page_table()
    train_rows, eval_rows = _sample(table, options, rng)
    train = _read(index, table, train_rows, options.queries_per_page, rng, progress, "reading pages")
    held = _read(index, table, eval_rows, options.eval_queries_per_page, rng, progress, "reading held-out pages")
    if len({q.page for q in train.queries}) < 2:
        raise DocpressError("the index's pages gave too few pseudo-queries to tune on; add more PDFs")

    head = TokenHead.from_pca(_pca_sample(train.pages, options.pca_vectors, rng), options.dims)
    learner = TextHeadLearner(head, index.encoder, options.max_page_vectors)
    data = _train_set(learner, train, options, progress)
    eval_queries, eval_pages, eval_groups = _eval_items(learner, held, progress)

    def measure(current: TextHeadLearner) -> dict | None:
        if not eval_queries:
            return None
        return held_out_metrics(current, eval_queries, eval_pages, eval_groups)

    held_out = {"raw": measure(TextHeadLearner(_identity(head.in_dim))), "before": measure(learner)}
    config = TrainConfig(steps=options.steps, batch_size=options.batch_size, lr=options.lr,
                         temperature=options.temperature, reg_weight=options.reg_weight,
                         seed=options.seed, max_seconds=options.max_seconds)
    trained = fit(learner, data, config,
                  lambda info: progress(f"training (loss {info.loss:.3f})", info.step, info.steps))
    held_out["after"] = measure(learner)

    data_hash = _data_hash(train, options)
    head.info.seed, head.info.data_hash = options.seed, data_hash
    head.info.pages, head.info.queries = len(train.pages), len(train.queries)
    head.info.steps, head.info.seconds = trained.steps, round(trained.seconds, 2)
    head.info.extra = {"options": asdict(options), "held_out": held_out}
    record = {"head_hash": head.content_hash(), "dims": options.dims, "data_hash": data_hash,
              "methods": list(options.methods), "pages": len(train.pages), "queries": len(train.queries),
              "steps": trained.steps, "seconds": round(trained.seconds, 2), "created_at": time.time()}
    lane_on_disk = install(index, head, record, progress)
    pages = max(1, index.catalog.counts()["pages"])
    return TuneReport(
        folder=index.manifest.tuned["folder"], head_hash=record["head_hash"], data_hash=data_hash, dims=options.dims,
        pages=len(train.pages), queries=len(train.queries), eval_pages=len(held.pages),
        eval_queries=len(eval_queries), kinds=_kinds(train.queries),
        negatives=int((data.negatives >= 0).sum()) if data.negatives is not None else 0,
        steps=trained.steps, stopped=trained.stopped, train_seconds=round(trained.seconds, 2),
        seconds=round(time.perf_counter() - started, 2), held_out=held_out, methods=list(options.methods),
        head_bytes=lane_on_disk.nbytes() - lane_on_disk.store.nbytes(), tuned_bytes=lane_on_disk.nbytes(),
        bytes_per_page=round(lane_on_disk.nbytes() / pages, 1), losses=trained.losses)


def _check(index) -> None:
    if index.manifest.encoder_id != "text":
        raise DocpressError(f"tune trains the text lane; this index uses the {index.manifest.encoder_id} "
                            "encoder (train the optical lane with `docpress distill`)")
    if not index.store.capabilities.float_rows:
        raise DocpressError(f"tune needs the embedded store (bf16 or compressed); this index keeps "
                            f"its vectors in {index.manifest.store}")
    if index.catalog.counts()["pages"] == 0:
        raise DocpressError("the index has no pages to tune on; add PDFs first with `docpress ingest`")


def _sample(table, options: TuneOptions, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the page table for training and for the held-out measurement (a fifth at most)."""
    eligible = np.flatnonzero(table.vec_count >= MIN_PAGE_VECTORS)
    if len(eligible) < 4:
        raise DocpressError(f"the index has {len(eligible)} pages with text enough to tune on; "
                            "tune needs at least 4")
    order = rng.permutation(eligible)
    n_eval = min(options.eval_pages, len(order) // 5)
    n_train = min(options.pages, len(order) - n_eval)
    return np.sort(order[n_eval:n_eval + n_train]), np.sort(order[:n_eval])


def _read(index, table, rows: np.ndarray, per_page: int, rng: np.random.Generator,
          progress: ProgressFn, what: str) -> _Split:
    """Text and stored token vectors of the pages at `rows` (read in file order) and their queries."""
    page_ids = table.page_ids[rows]
    ids, texts = index.catalog.page_texts(page_ids)
    text_of = dict(zip(ids.tolist(), texts))
    pages, queries, kept_ids, kept_texts = [], [], [], []
    for n, row in enumerate(rows):
        page_id = int(table.page_ids[row])
        loc = Location(int(table.vec_start[row]), int(table.vec_count[row]),
                       int(table.pool_start[row]), int(table.pool_count[row]))
        vectors = index.store.page_vectors(page_id, loc)
        cut = cut_queries(len(pages), text_of[page_id], vectors.words, vectors.boxes, per_page, rng)
        if cut:
            queries += cut
            pages.append(page_input(vectors.vectors, vectors.words, source=len(pages)))
            kept_ids.append(page_id)
            kept_texts.append(text_of[page_id])
        if n % 64 == 0 or n + 1 == len(rows):
            progress(what, n + 1, len(rows))
    return _Split(np.asarray(kept_ids, np.int64), kept_texts, pages, queries)


def _pca_sample(pages: list[TextPage], n: int, rng: np.random.Generator) -> np.ndarray:
    """(<= n, in_dim) float32 token vectors drawn evenly from the pages."""
    per_page = max(1, n // max(1, len(pages)))
    parts = []
    for page in pages:
        pick = rng.choice(len(page.vectors), min(per_page, len(page.vectors)), replace=False)
        parts.append(page.vectors[torch.from_numpy(np.sort(pick))].float().numpy())
    return np.concatenate(parts)


def _train_set(learner: TextHeadLearner, split: _Split, options: TuneOptions,
               progress: ProgressFn) -> TrainSet:
    """One page input per query (its page minus the cut), the full pages as hard negatives."""
    texts = [q.text for q in split.queries]
    encoded = _encode(learner, texts, progress, "encoding pseudo-queries")
    positives = [TextPage(split.pages[q.page].vectors, split.pages[q.page].words, q.cut, q.page)
                 for q in split.queries]
    pages, groups = positives + split.pages, [q.page for q in split.queries] + list(range(len(split.pages)))
    negatives = None
    if options.hard_negatives:
        progress("mining hard negatives", 0, 1)
        found = hard_negatives(split.queries, split.texts)
        negatives = np.where(found >= 0, found + len(positives), -1)  # full pages follow the positives
        progress("mining hard negatives", 1, 1)
    return TrainSet(pages, encoded, np.arange(len(positives)), groups=np.asarray(groups),
                    negatives=negatives, query_texts=texts)


def _eval_items(learner: TextHeadLearner, split: _Split,
                progress: ProgressFn) -> tuple[list, list, np.ndarray]:
    """Held-out queries, their positives (page minus cut) and each positive's source page."""
    if not split.queries:
        return [], [], np.zeros(0, np.int64)
    encoded = _encode(learner, [q.text for q in split.queries], progress, "encoding held-out queries")
    pages = [TextPage(split.pages[q.page].vectors, split.pages[q.page].words, q.cut, q.page)
             for q in split.queries]
    return encoded, pages, np.asarray([q.page for q in split.queries], np.int64)


def held_out_metrics(learner, queries: list, pages: list, groups: np.ndarray) -> dict[str, float]:
    """R@1/R@5/MRR of query i finding page i among `pages`; other pages of its group do not count."""
    scores = score_matrix(learner, queries, pages)
    same = (groups[:, None] == groups[None, :]) & ~np.eye(len(groups), dtype=bool)
    return retrieval_metrics(np.where(same, -np.inf, scores), np.arange(len(queries)))


def _encode(learner: TextHeadLearner, texts: list[str], progress: ProgressFn, what: str,
            batch: int = 256) -> list:
    out = []
    for b in range(0, len(texts), batch):
        out += learner.prepare_queries(texts[b:b + batch])
        progress(what, min(b + batch, len(texts)), len(texts))
    return out


def _identity(dim: int) -> TokenHead:
    head = TokenHead(dim, dim)
    with torch.no_grad():
        head.weight.copy_(torch.eye(dim))
    return head


def _kinds(queries: list[PseudoQuery]) -> dict[str, int]:
    out: dict[str, int] = {}
    for q in queries:
        out[q.kind] = out.get(q.kind, 0) + 1
    return out


def _data_hash(split: _Split, options: TuneOptions) -> str:
    """16 hex digits of what the head was trained on: pages (id, text), queries and options."""
    digest = hashlib.sha256()
    for page_id, text in zip(split.page_ids.tolist(), split.texts):
        digest.update(f"{page_id}:{hashlib.sha1(text.encode()).hexdigest()}\n".encode())
    for q in split.queries:
        digest.update(f"{q.page}:{q.cut[0]}:{q.cut[1]}:{q.text}\n".encode())
    digest.update(json.dumps(asdict(options), sort_keys=True).encode())
    return digest.hexdigest()[:16]


def install(index, head: TokenHead, record: dict, progress: ProgressFn | None = None):
    """Write the head and every projected token row to a new folder, then point the manifest at
    it; returns the index's new tuned lane (retriever.lanes.Lane).

    Order for crash safety: temp folder -> fsync -> rename -> manifest (atomic replace) -> old
    folder removed. Before the manifest write the index searches as it did.
    """
    progress = progress or (lambda what, done, total: None)
    directory = index.directory
    for stale in directory.glob(TUNED_TMP_PREFIX + "*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    folder = tuned_folder(record["head_hash"])
    record = {**record, "folder": folder}
    current = index.manifest.tuned.get("folder")
    if current != folder:
        tmp = directory / f"{TUNED_TMP_PREFIX}{os.getpid()}"
        head.save(tmp / HEAD_FOLDER)
        store = ProjectedStore(tmp, index.store, head.weight.detach().numpy())
        store.catch_up(lambda done, total: progress("projecting token vectors", done, total))
        _fsync_dir(tmp)
        if (directory / folder).exists():  # the same head from an interrupted run: not live
            shutil.rmtree(directory / folder)
        os.rename(tmp, directory / folder)
        _fsync_dir(directory)
    index.set_tuned(record)
    if current and current != folder:
        shutil.rmtree(directory / current, ignore_errors=True)
    return index.tuned


def _fsync_dir(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
