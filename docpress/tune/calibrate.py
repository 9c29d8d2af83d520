"""Label-free calibration of hybrid's fusion weights on an index's own pages (`docpress calibrate`).

How much full-page BM25 and MaxSim should count depends on the corpus (BM25 is the strongest
signal on reports and papers, and nearly useless on filings whose questions carry instruction
text). With no labelled questions, calibration asks pseudo-queries instead:

- pieces cut from sampled pages (a sentence, a heading line, a table row's label, a span;
  docpress.tune.pseudo), each with its page as the only answer;
- the answer page is scored *without* the piece, for every signal: its text (BM25 over the page
  and over its head) and its vectors (dense, head vector, MaxSim: the page minus the piece is
  encoded again, and coded like the index's pages), so no signal wins by finding the query's own
  words on the page;
- every other page keeps the signals search computes for it.

Each weight setting of a small grid ranks the pages as hybrid would (cheap signals over all
pages, MaxSim on the best 256); the setting with the best nDCG@5 on one half of the
pseudo-queries is kept only if it beats the defaults on the other half by `min_gain` points.
The choice is reproducible for a seed and stored in the manifest (`fusion`).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from docpress.errors import DocpressError
from docpress.maxsim import best_matches
from docpress.tokens import token_weights
from docpress.tune.pseudo import cut_queries
from docpress.types import Page, Word
from indexer.stores.base import location_of
from retriever.fusion import standardize, top_indices
from retriever.lanes import MAXSIM_WEIGHT
from retriever.search import PAGE_WEIGHTS, RERANK_CANDIDATES, first_stage
from retriever.signals import HEAD_TOKENS, HEAD_WORDS, page_dense, page_dense_flat

ProgressFn = Callable[[str, int, int], None]

BM25_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
MAXSIM_GRID = (0.5, 1.0, 1.5)


@dataclass
class CalibrateOptions:
    """queries: pseudo-queries cut (one per sampled page); min_gain: nDCG@5 points the fitted
    weights must gain over the defaults on the held-out half to be kept."""

    queries: int = 400
    seed: int = 0
    min_gain: float = 1.0


@dataclass
class CalibrationReport:
    queries: int
    chosen: dict
    default: dict
    fit: dict  # "bm25=B,maxsim=M" -> nDCG@5 on the fitting half
    held_out: dict  # {"chosen": {...}, "default": {...}} metrics on the other half
    applied: bool
    seconds: float
    kinds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _key(b: float, m: float) -> str:
    return f"bm25={b},maxsim={m}"


class _Lexical:
    """BM25 over a fixed set of texts (retriever.bm25), with one text swappable per query."""

    def __init__(self, texts: list[str]):
        from retriever.bm25 import Bm25Index

        self.index = Bm25Index.build(np.arange(len(texts)), texts)

    def scores(self, query: str, swap_row: int, swap_text: str) -> np.ndarray:
        """BM25 of every text, row `swap_row` scored as `swap_text` instead."""
        return self.index.scores_as(query, swap_row, swap_text)


def _page_without(words: list[str], cut: tuple[int, int], width: float, height: float) -> Page:
    kept = words[:cut[0]] + words[cut[1]:]
    return Page(0, width, height, [Word(w, (0.0, 0.0, 0.0, 0.0)) for w in kept])


def _rank_metrics(rank: int | None) -> tuple[float, float, float]:
    """(R@1, R@5, nDCG@5) of one query whose only answer sits at 0-based `rank` (None: missed)."""
    if rank is None:
        return 0.0, 0.0, 0.0
    return float(rank == 0), float(rank < 5), 1 / np.log2(rank + 2) if rank < 5 else 0.0


def split_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fitting rows, held-out rows): a seeded half of the pseudo-queries each."""
    order = np.random.default_rng(seed + 1).permutation(n)
    return order[: n // 2], order[n // 2:]


def choose(ndcg: np.ndarray, fit_rows: np.ndarray, settings: list[tuple[float, float]],
           default: tuple[float, float]) -> int:
    """The setting with the best mean nDCG@5 over the fitting rows alone ((n_queries,
    n_settings) per-query values); ties go to the setting nearest the default."""
    mean = ndcg[fit_rows].mean(0)
    return max(range(len(settings)), key=lambda i: (round(float(mean[i]), 9),
                                                    -abs(settings[i][0] - default[0])
                                                    - abs(settings[i][1] - default[1])))


def calibrate_fusion(index, options: CalibrateOptions | None = None,
                     progress: ProgressFn | None = None) -> CalibrationReport:
    """Fit hybrid's BM25 and MaxSim weights on pseudo-queries; store them when they help."""
    options = options or CalibrateOptions()
    progress = progress or (lambda what, done, total: None)
    started = time.perf_counter()
    if index.manifest.lanes:
        raise DocpressError("calibrate fits the text lane's fusion; this index has extra lanes")
    table = index.catalog.page_table()
    if len(table) < 20:
        raise DocpressError("calibrate needs an index of at least 20 pages; add PDFs first")
    searcher = index.searcher
    store = searcher.main.store
    ids, texts = index.catalog.page_texts(table.page_ids)
    text_of = dict(zip(ids.tolist(), texts))
    page_texts = [text_of[int(p)] for p in table.page_ids]

    # Pseudo-queries: one per sampled page with enough text and vectors.
    rng = np.random.default_rng(options.seed)
    queries = []
    for row in rng.permutation(len(table)):
        if len(queries) == options.queries:
            break
        if table.vec_count[row] < 32:
            continue
        stored = store.page_vectors(int(table.page_ids[row]), location_of(table, int(row)))
        cut = cut_queries(int(row), page_texts[row], stored.words, stored.boxes, 1, rng)
        queries.extend(cut)
        progress("cutting pseudo-queries", len(queries), options.queries)
    if len(queries) < 20:
        raise DocpressError("the index's pages gave too few pseudo-queries to calibrate on")

    encoder = index.encoder
    query_vectors = encoder.encode_queries([q.text for q in queries])
    positives = []
    for lo in range(0, len(queries), 32):
        batch = queries[lo:lo + 32]
        pages = [_page_without(page_texts[q.page].split(" "), q.cut, 1.0, 1.0) for q in batch]
        encoded = encoder.encode_pages(pages)
        positives.extend(store.as_stored(v, [w.text for w in p.words]) for v, p in zip(encoded, pages))
        progress("encoding answer pages", len(positives), len(queries))

    lexical = _Lexical(page_texts)
    heads = _Lexical([" ".join(t.split(" ")[:HEAD_WORDS]) for t in page_texts])
    all_heads = searcher.cache.head_vectors(table)
    settings = [(b, m) for b in BM25_GRID for m in MAXSIM_GRID]
    results = np.zeros((len(queries), len(settings), 3))
    for qi, (q, qv, pos) in enumerate(zip(queries, query_vectors, positives)):
        row = q.page
        rest = " ".join(page_texts[row].split(" ")[:q.cut[0]] + page_texts[row].split(" ")[q.cut[1]:])
        dense = page_dense_flat(*store.window_scores(qv.pooled, table), table.pool_count).astype(np.float64)
        dense[row] = float(page_dense((pos.pooled @ qv.pooled)[None, :])[0]) if len(pos.pooled) else -np.inf
        head = (all_heads @ qv.pooled).astype(np.float64)
        if len(pos.vectors):
            h = pos.vectors[:HEAD_TOKENS].mean(0)
            head[row] = float(h @ qv.pooled / max(np.linalg.norm(h), 1e-12))
        signals = {"dense": dense, "head": head,
                   "bm25": lexical.scores(q.text, row, rest),
                   "bm25_head": heads.scores(q.text, row, " ".join(rest.split(" ")[:HEAD_WORDS]))}
        documents = searcher.documents(q.text, table)
        weighted = qv.vectors * token_weights(qv.tokens)[:, None]
        maxsim: dict[int, float] = {}
        for si, (b, m) in enumerate(settings):
            first = first_stage(signals, documents, {**PAGE_WEIGHTS, "bm25": b})
            candidates = top_indices(first, RERANK_CANDIDATES)
            need = sorted(set(candidates.tolist()) - set(maxsim) - {row})
            if need:
                rows = np.asarray(need)
                maxsim.update(zip(need, searcher.main.maxsim(index.catalog, qv, table.subset(rows)).tolist()))
            if row in candidates and row not in maxsim:
                maxsim[row] = float(best_matches(weighted, pos.vectors)[1].sum()) if len(pos.vectors) else 0.0
            ms = np.asarray([maxsim[int(c)] for c in candidates])
            final = first[candidates] + m * standardize(ms)
            order = candidates[np.argsort(-final, kind="stable")]
            hit = np.flatnonzero(order == row)
            results[qi, si] = _rank_metrics(int(hit[0]) if len(hit) else None)
        progress("scoring weight settings", qi + 1, len(queries))

    fit_rows, held_rows = split_rows(len(queries), options.seed)
    default = (PAGE_WEIGHTS["bm25"], MAXSIM_WEIGHT)
    settings_fit = results[fit_rows, :, 2].mean(0)
    best = choose(results[:, :, 2], fit_rows, settings, default)
    di = settings.index(default)

    def metrics(si: int) -> dict:
        r1, r5, ndcg = 100 * results[held_rows, si].mean(0)
        return {"R@1": round(r1, 1), "R@5": round(r5, 1), "nDCG@5": round(ndcg, 1)}

    held = {"chosen": metrics(best), "default": metrics(di)}
    gain = held["chosen"]["nDCG@5"] - held["default"]["nDCG@5"]
    applied = bool(best != di and gain >= options.min_gain)
    chosen = {"bm25": settings[best][0], "maxsim": settings[best][1]}
    if applied:
        index.set_fusion({**chosen, "queries": len(queries), "seed": options.seed,
                          "held_out": held, "created_at": time.time()})
    else:
        index.set_fusion({})
    kinds: dict[str, int] = {}
    for q in queries:
        kinds[q.kind] = kinds.get(q.kind, 0) + 1
    return CalibrationReport(
        queries=len(queries), chosen=chosen, default={"bm25": default[0], "maxsim": default[1]},
        fit={_key(*s): round(100 * float(v), 1) for s, v in zip(settings, settings_fit)},
        held_out=held, applied=applied, seconds=round(time.perf_counter() - started, 1), kinds=kinds)
