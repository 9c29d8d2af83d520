"""Search: encode queries, score pages by MaxSim, dense, BM25 or their fusion, build hits."""

from __future__ import annotations

import os
from enum import Enum

import numpy as np

from docpress.errors import DocpressError
from docpress.types import QueryVectors
from indexer.catalog import Catalog, PageTable
from indexer.first_stage import Depth, LiveRows, worth_it
from indexer.page_first_stage import positions
from indexer.page_first_stage import worth_it as pages_worth_it
from retriever.fusion import (
    reciprocal_ranks,
    standardize,
    standardize_like,
    top_indices,
    weighted_sum,
)
from retriever.highlight import match_regions
from retriever.hits import Hit
from retriever.lanes import Lane, lanes_for
from retriever.lexical import query_terms
from retriever.signals import SignalCache, page_dense_flat
from retriever.snippets import snippet


class Method(str, Enum):
    hybrid = "hybrid"  # page and document signals fused, MaxSim on the best candidates (default)
    rrf = "rrf"  # the same signals and candidates, fused by reciprocal rank instead of z-scores
    maxsim = "maxsim"  # exact late interaction over every page's token vectors
    dense = "dense"  # pooled vectors of a page's windows of tokens: its first, or a clearly better one
    bm25 = "bm25"  # lexical, over the page text


DEFAULT_METHOD = Method.hybrid

# hybrid: the weights with the best mean nDCG@5 over the three dev sets, corpus-wide and within
# a document, and of the rules tied for it the one that loses least on any set (README, "How
# hybrid ranks"; benchmarks/results/fusion.md). Cheap page signals; each lane's MaxSim joins
# on the candidates with the lane's own weight (retriever.lanes).
PAGE_WEIGHTS = {"dense": 1.0, "head": 1.0, "bm25_head": 0.5, "bm25": 0.75}
# Document signals (which document is meant), added to every page of the document; they only
# matter when several documents are searched.
DOC_WEIGHTS = {"profile": 1.5, "document": 1.5}
# Pages that reach the MaxSim stage of hybrid: the cheap signals pick them from all pages.
RERANK_CANDIDATES = 256
# hybrid on large indexes (indexer.page_first_stage): each cheap signal's best pages, from an
# IVF for the vector signals (lists probed: PAGE_NPROBE) and from the full BM25 scores, plus
# every page of the best documents, are scored exactly; the z-scores of the vector signals
# take their mean and spread from a fixed sample of the pages searched.
PAGE_POOL = 1000
PAGE_NPROBE = 32
MIN_POOL_SHARE = 0.05
TOP_DOCUMENTS = 4
STATS_SAMPLE = 8192
# maxsim on a server store (Qdrant) past SERVER_EXACT_PAGES: the server's own two-stage query,
# SERVER_CANDIDATES pages prefetched by the pooled vector, then exact MaxSim on them (recall@10
# against the exact scan 0.59 / 0.89 / 0.97 at 200 / 1,000 / 3,000 candidates on 10k pages of
# Qdrant Edge; benchmarks/results/scale.md).
SERVER_EXACT_PAGES = 20_000
SERVER_CANDIDATES = 3000
SERVER_SPARE = 16
# maxsim looks wider this many times (indexer.first_stage.Depth.wider) when a filter leaves
# too few of the first stage's candidates, then scans the filtered pages exactly.
WIDEN_TIMES = 2


def first_stage(cheap: dict[str, np.ndarray], documents: np.ndarray, weights: dict[str, float],
                scale=standardize) -> np.ndarray:
    """The first-stage score of every page: its cheap signals on one scale, weighted, plus its
    document's signal (the per-document z-score sum; in rank fusion, its ranks)."""
    first = weighted_sum(cheap, weights, scale)
    if scale is standardize:
        return first + documents
    if documents.any():  # ranks of a flat signal (one document searched) would be noise
        return first + scale(documents)
    return first


def page_weights(fusion: dict | None) -> dict[str, float]:
    """hybrid's cheap-signal weights, with full-page BM25's from a calibration when there is one."""
    weights = dict(PAGE_WEIGHTS)
    if fusion and "bm25" in fusion:
        weights["bm25"] = float(fusion["bm25"])
    return weights


def parse_method(method: str | Method) -> Method:
    try:
        return Method(method)
    except ValueError:
        raise DocpressError(f"unknown search method {method!r}; choose one of: "
                            f"{', '.join(m.value for m in Method)}") from None


class Searcher:
    """Answers queries from an index's parts: its catalog, its lanes (the main lane first) and
    the caches of its cheap signals."""

    def __init__(self, catalog: Catalog, lanes: list[Lane], cache: SignalCache,
                 fusion: dict | None = None, first_stages: bool = True):
        self.catalog = catalog
        # maxsim and hybrid through their first stages on large indexes (False: always the
        # exact scan of every page)
        self.first_stages = first_stages
        self._per_index: dict[str, tuple] = {}  # {what: (the whole table it is of, value)}
        self.lanes = lanes
        self.main = lanes[0]
        self.cache = cache
        self.page_weights = page_weights(fusion)
        # Pages whose scores came out NaN or +inf in the last search: only damaged rows give
        # those, and the caller verifies them (a damaged page must not silently drop out).
        self.suspects: set[int] = set()

    def search(self, queries: list[str], k: int = 10, method: str = DEFAULT_METHOD,
               path_glob: str | None = None, metadata: dict | None = None) -> list[list[Hit]]:
        method = parse_method(method)
        if k < 1:
            raise DocpressError("k must be at least 1")
        for query in queries:
            if not query_terms(query):
                raise DocpressError(f"the query {query!r} has no words to search for (it is empty, "
                                    "punctuation or stopwords only); ask a question in words")
        self.suspects = set()
        table = self.catalog.page_table(path_glob, metadata)
        if len(table) == 0:
            return [[] for _ in queries]
        lanes = lanes_for(self.lanes, method.value)
        encoded = self._encode(queries, [self.main, *lanes])
        results = []
        for i, text in enumerate(queries):
            by_lane = {lane.name: encoded[id(lane.encoder)][i] for lane in lanes}
            qv = encoded[id(self.main.encoder)][i]
            rows, scores = self.rank(text, qv, table, method, k, by_lane)
            results.append(self._hits(table, rows, scores, qv, method))
        return results

    def page_hit(self, page_id: int, query: str) -> Hit | None:
        """One page as a hit for `query` (its regions and heat), whatever its rank; None when
        the page is not in the index. Its score is the page's MaxSim on the main lane."""
        table = self.catalog.page_table()
        rows = np.flatnonzero(table.page_ids == page_id)
        if not len(rows) or not query_terms(query):
            return None
        qv = self.main.encoder.encode_queries([query])[0]
        score = self.main.maxsim(self.catalog, qv, table.subset(rows))
        return self._hits(table, rows, score, qv, Method.maxsim)[0]

    @staticmethod
    def _encode(queries: list[str], lanes: list[Lane]) -> dict[int, list[QueryVectors]]:
        """The queries encoded once by each distinct encoder the lanes use."""
        out: dict[int, list[QueryVectors]] = {}
        for lane in lanes:
            if id(lane.encoder) not in out:
                out[id(lane.encoder)] = lane.encoder.encode_queries(queries)
        return out

    # -- signals ------------------------------------------------------------------------
    def dense(self, qv: QueryVectors, table: PageTable) -> np.ndarray:
        windows = self.main.store.window_scores(qv.pooled, table)
        return self._watch(page_dense_flat(*windows, table.pool_count), table)

    def head(self, qv: QueryVectors, table: PageTable) -> np.ndarray:
        return self._watch(self.cache.head_scores(table, qv.pooled), table)

    def _maxsim(self, lane: Lane, qv: QueryVectors, table: PageTable) -> np.ndarray:
        return self._watch(lane.maxsim(self.catalog, qv, table), table)

    def _watch(self, scores: np.ndarray, table: PageTable) -> np.ndarray:
        """Note the pages whose score is NaN or +inf (-inf is a page without windows)."""
        with np.errstate(invalid="ignore"):
            odd = np.isnan(scores) | np.isposinf(scores)
        if odd.any():
            self.suspects.update(int(p) for p in table.page_ids[odd])
        return scores

    def documents(self, text: str, table: PageTable) -> np.ndarray:
        """Fused document-level score of each page's document; 0 when one document is searched."""
        doc_ids, per_doc, where = self._document_scores(text, table)
        return per_doc[where] if len(doc_ids) >= 2 else np.zeros(len(table))

    def _of_table(self, what: str, table: PageTable, make):
        """make(table), kept while the whole index is searched and unchanged (the catalog hands
        out one table object a generation); made anew for a filter's table."""
        kept = self._per_index.get(what)
        if kept is not None and kept[0] is table:
            return kept[1]
        value = make(table)
        if table is self.catalog.page_table():
            self._per_index[what] = (table, value)
        return value

    def _documents_of(self, table: PageTable) -> tuple[np.ndarray, np.ndarray]:
        """(the documents of the table's pages, sorted; each page's among them): a sort of
        every page, 30 ms at 1M pages, so kept (_of_table)."""
        return self._of_table("documents", table, lambda t: np.unique(t.doc_ids, return_inverse=True))

    def _document_scores(self, text: str, table: PageTable):
        """(the documents searched, each one's fused score, each page's document among them)."""
        doc_ids, where = self._documents_of(table)
        if len(doc_ids) < 2:
            return doc_ids, np.zeros(len(doc_ids)), where
        signals = {"profile": self.cache.profile_bm25().scores(text, doc_ids),
                   "document": self.cache.document_bm25().scores(text, doc_ids)}
        # What a document adds is the pooled evidence of its pages: nothing for a one-page
        # document (it would count that page's BM25 again), nearly all of it for long ones.
        pooling = 1.0 - 1.0 / np.bincount(where, minlength=len(doc_ids))
        return doc_ids, pooling * weighted_sum(signals, DOC_WEIGHTS), where

    # -- ranking ------------------------------------------------------------------------
    def rank(self, text: str, qv: QueryVectors, table: PageTable, method: Method, k: int,
             by_lane: dict[str, QueryVectors]) -> tuple[np.ndarray, np.ndarray]:
        """(rows of `table`, scores) of the best k pages, best first. qv: the query encoded by
        the main lane's encoder; by_lane: encoded by each lane the method uses."""
        if method in (Method.hybrid, Method.rrf):
            return self._fused(text, qv, table, k, by_lane, method)
        if method is Method.maxsim:
            lanes = lanes_for(self.lanes, method.value)
            if lanes == [self.main] and self.first_stages:
                found = (self._maxsim_two_stage(by_lane[self.main.name], table, k)
                         if self.main.store.capabilities.two_stage
                         else self._maxsim_candidates(by_lane[self.main.name], table, k))
                if found is not None:
                    return found
            scores = self._maxsim(lanes[0], by_lane[lanes[0].name], table)
            for lane in lanes[1:]:
                scores = scores + self._maxsim(lane, by_lane[lane.name], table)
        elif method is Method.dense:
            scores = self.dense(qv, table)
        else:  # by its nonzero pages: most pages hold no query term
            best = self.cache.page_bm25().top_scores(text, table.page_ids, k)
            return best.top, best.values_at(best.top)
        top = top_indices(scores, k)
        return top, scores[top]

    def _maxsim_candidates(self, qv: QueryVectors, table: PageTable, k: int):
        """MaxSim's best k through the token first stage: candidates from the IVF, then exact
        MaxSim on them. None where the scan over `table` is exact and cheap, or where too few
        candidates fall inside a narrow filter even when looking wider (then scan the filter)."""
        if not worth_it(int(table.vec_count.sum())):
            return None
        try:
            stage = self.cache.token_ivf(build=False)
        except OSError:  # derived data a full or read-only disk refused: scan instead
            return None
        if stage is None:
            return None
        query = self.main.query_matrix(qv)
        live, depth = self._live_rows(table), Depth()
        for _ in range(WIDEN_TIMES + 1):
            rows, _ = stage.candidates(query, live, depth)
            if len(rows) >= min(max(k, depth.ndocs // 4), len(table)):
                break
            depth = depth.wider()
        else:
            return None
        rows = np.sort(rows)
        exact = self._maxsim(self.main, qv, table.subset(rows))
        top = top_indices(exact, k)
        return rows[top], exact[top]

    def _live_rows(self, table: PageTable) -> LiveRows:
        """The map from store rows to the table's pages: a sort of every page's first row, 5 ms
        a query at 100k pages, so kept (_of_table). The whole catalog's also spells out every
        row's owner; a filter's table is looked up by binary search."""
        return self._of_table("live rows", table,
                              lambda t: LiveRows(t, owners=t is self.catalog.page_table()))

    def _maxsim_two_stage(self, qv: QueryVectors, table: PageTable, k: int):
        """MaxSim's best k from a server store's two-stage query; None on a collection small
        enough to score exactly (the server scans the table's pages)."""
        if len(table) <= SERVER_EXACT_PAGES:
            return None
        everything = len(table) == len(self.catalog.page_table())  # no filter: no id list
        weighted = QueryVectors(self.main.query_matrix(qv), qv.tokens, qv.pooled)
        # a few more than k: points the catalog does not list (a replaced document's, before
        # the store forgets them) are dropped here
        ids, scores = self.main.store.two_stage(weighted, k + SERVER_SPARE, SERVER_CANDIDATES,
                                                None if everything else table.page_ids)
        rows = positions(table.page_ids, ids, missing=-1)
        keep = np.flatnonzero(rows >= 0)[:k]
        if len(keep) < min(k, len(table)):
            return None  # too many unknown points: the exact scan over the catalog's pages
        return rows[keep], scores[keep]

    def _fused(self, text: str, qv: QueryVectors, table: PageTable, k: int,
               by_lane: dict[str, QueryVectors], method: Method) -> tuple[np.ndarray, np.ndarray]:
        """hybrid (z-scores) or rrf (reciprocal ranks) of the same signals, in two stages."""
        scale = standardize if method is Method.hybrid else reciprocal_ranks
        pooled = self._pooled_first(text, qv, table) if method is Method.hybrid else None
        if pooled is not None:  # a large index: stage 1 on the pool of each signal's best pages
            pool, first = pooled
        else:  # Stage 1, every page: the cheap signals, on one scale over all pages.
            cheap = {"dense": self.dense(qv, table), "head": self.head(qv, table),
                     "bm25_head": self.cache.head_bm25().scores(text, table.page_ids),
                     "bm25": self.cache.page_bm25().scores(text, table.page_ids)}
            first = first_stage(cheap, self.documents(text, table), self.page_weights, scale)
            pool = np.arange(len(table))
        candidates = top_indices(first, max(k, RERANK_CANDIDATES))  # positions in the pool
        # Stage 2, the candidates: each lane's MaxSim joins, on the same scale over the
        # candidates (MaxSim of the other pages is never computed).
        candidates = candidates[np.argsort(pool[candidates], kind="stable")]  # stores score runs of contiguous pages fastest
        final = first[candidates].copy()
        subset = table.subset(pool[candidates])
        for lane in lanes_for(self.lanes, method.value):
            final += lane.weight * scale(self._maxsim(lane, by_lane[lane.name], subset))
        order = np.argsort(-final, kind="stable")[:k]
        return pool[candidates[order]], final[order]

    def _stats_sample(self, table: PageTable):
        """A fixed sample of the pages searched, its head vectors and its dense signal as a
        function of the pooled vector: the vector signals' mean and spread come from it (kept,
        _of_table)."""
        def draw(table: PageTable):
            rows = np.random.default_rng(0).choice(len(table), min(STATS_SAMPLE, len(table)), replace=False)
            sample = table.subset(np.sort(rows))
            windows = self.main.store.window_scores_of(sample)
            return self.cache.head_vectors(sample), lambda pooled: page_dense_flat(*windows(pooled), sample.pool_count)

        return self._of_table("stats sample", table, draw)

    def _pooled_first(self, text: str, qv: QueryVectors, table: PageTable):
        """hybrid's stage 1 on a large index: (table rows of the pool, their first-stage
        scores), or None where every page is scored (a small index or filter, a store without
        float rows, a first stage the disk refused)."""
        if not (self.first_stages and pages_worth_it(len(table))):
            return None
        share = len(table) / max(len(self.catalog.page_table()), 1)
        if share < MIN_POOL_SHARE:  # a narrow filter (still past EXACT_PAGES): its scan is cheaper
            return None
        try:
            heads, windows = self.cache.page_ivf("head", build=False), self.cache.page_ivf("dense", build=False)
        except OSError:
            return None
        if heads is None or windows is None:
            return None
        # BM25 by its nonzero pages: most pages hold no query term
        bm25 = self.cache.page_bm25().top_scores(text, table.page_ids, PAGE_POOL)
        bm25_head = self.cache.head_bm25().top_scores(text, table.page_ids, PAGE_POOL)
        doc_ids, per_doc, where = self._document_scores(text, table)
        # the IVFs hold every page: under a filter they look as much wider as it is narrower
        wide, probes = min(int(PAGE_POOL / share), 20 * PAGE_POOL), int(np.ceil(PAGE_NPROBE / share))
        parts = [bm25.top, bm25_head.top,
                 heads.nearest(qv.pooled, wide, probes, table)[:PAGE_POOL],
                 windows.nearest(qv.pooled, wide, probes, table)[:PAGE_POOL]]
        if per_doc.any():  # every page of the best documents: their signal lifts them all
            best = np.zeros(len(doc_ids), bool)
            best[top_indices(per_doc, TOP_DOCUMENTS)] = True
            parts.append(np.flatnonzero(best[where]))
        pool = np.unique(np.concatenate(parts))
        subset = table.subset(pool)
        sample_heads, sample_dense = self._stats_sample(table)
        scaled = {"dense": standardize_like(self.dense(qv, subset), sample_dense(qv.pooled)),
                  "head": standardize_like(self.head(qv, subset), sample_heads @ qv.pooled.astype(np.float32)),
                  "bm25_head": bm25_head.standardized(pool), "bm25": bm25.standardized(pool)}
        return pool, weighted_sum(scaled, self.page_weights, lambda x: x) + per_doc[where[pool]]

    def _hits(self, table: PageTable, rows: np.ndarray, scores: np.ndarray, qv: QueryVectors,
              method: Method) -> list[Hit]:
        hits, docs = [], {}
        # every hit's vectors in one read (one request to a server), their similarities to
        # the query in one product
        rows = np.asarray(rows, np.int64)
        pages = self.main.store.pages_vectors(table.subset(rows))
        counts = [len(vectors.vectors) for vectors in pages]
        every = np.concatenate([v.vectors for v in pages if len(v.vectors)]) if any(counts) else None
        all_sims = np.split(qv.vectors @ every.T, np.cumsum(counts)[:-1], axis=1) \
            if every is not None and len(qv.vectors) else [None] * len(pages)
        page_rows = self.catalog.pages(table.page_ids[rows])
        for i, score, vectors, sims in zip(rows, scores, pages, all_sims):
            page_id = int(table.page_ids[i])
            row = page_rows.get(page_id)
            if row is None:  # removed by another process since this search read the table
                continue
            if row.doc_id not in docs:  # a document's row and paths read once for its hits
                doc = self.catalog.document(row.doc_id)
                docs[row.doc_id] = doc, [doc.path, *self.catalog.aliases(doc.id).get(doc.id, [])]
            doc, paths = docs[row.doc_id]
            sims = sims if len(vectors.vectors) else None
            text, boxes = snippet(row.text, vectors, qv.vectors, sims=sims)
            regions, heat = match_regions(qv.vectors, qv.tokens, vectors.vectors, vectors.boxes, sims=sims)
            # An identical copy still on disk stands in for a file that is gone.
            present = next((p for p in paths if os.path.exists(p)), None)
            path = present or doc.path
            hits.append(Hit(path=path, page=row.number, score=float(score), snippet=text,
                            title=doc.title, text_source=row.text_source, metadata=doc.metadata,
                            boxes=boxes, doc_id=doc.id, page_id=page_id, method=method.value,
                            other_paths=[p for p in paths if p != path], missing=present is None,
                            text=row.text, regions=regions, heat=heat, page_size=(row.width, row.height)))
        return hits
