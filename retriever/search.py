"""Search: encode queries, score pages by MaxSim, dense, BM25 or their fusion, build hits."""

from __future__ import annotations

from enum import Enum

import numpy as np

from docpress.encoders.base import QueryVectors
from docpress.errors import DocpressError
from indexer.catalog import PageTable
from indexer.store import Location
from retriever.fusion import weighted_sum
from retriever.hits import Hit
from retriever.query_weights import token_weights
from retriever.signals import SignalCache
from retriever.snippets import snippet


class Method(str, Enum):
    hybrid = "hybrid"  # page and document signals fused, MaxSim on the best candidates (default)
    maxsim = "maxsim"  # exact late interaction over every page's token vectors
    dense = "dense"  # one pooled vector per page: its first window of tokens
    bm25 = "bm25"  # lexical, over the page text


DEFAULT_METHOD = Method.hybrid

# hybrid, measured on the FinanceBench dev set (README, "How hybrid ranks"). Page signals:
PAGE_WEIGHTS = {"dense": 1.0, "head": 1.0, "maxsim": 0.5, "bm25_head": 0.5}
# Document signals (which document is meant), added to every page of the document; they only
# matter when several documents are searched.
DOC_WEIGHTS = {"profile": 0.5, "document": 0.5}
# Pages that reach the MaxSim stage of hybrid: the cheap signals pick them from all pages.
RERANK_CANDIDATES = 256
# Each extra lane's MaxSim (e.g. the optical lane) on those candidates: as much as the main
# lane's. Not measured with a trained optical model (none exists offline here; README).
LANE_WEIGHT = 0.5


class Searcher:
    """Answers queries against one index (its catalog, store and encoder)."""

    def __init__(self, index):
        self.index = index
        self.cache = SignalCache(index.directory, index.catalog, index.store)

    def search(self, queries: list[str], k: int = 10, method: str = DEFAULT_METHOD,
               path_glob: str | None = None, metadata: dict | None = None) -> list[list[Hit]]:
        try:
            method = Method(method)
        except ValueError:
            raise DocpressError(f"unknown search method {method!r}; choose one of: "
                                f"{', '.join(m.value for m in Method)}") from None
        if k < 1:
            raise DocpressError("k must be at least 1")
        table = self.index.catalog.page_table(path_glob, metadata)
        if len(table) == 0:
            return [[] for _ in queries]
        encoded = self.index.encoder.encode_queries(queries)
        by_lane = {lane.name: self._lane_encoder(lane).encode_queries(queries)
                   for lane in self.index.lanes} if method is Method.hybrid else {}
        results = []
        for i, (text, qv) in enumerate(zip(queries, encoded)):
            lane_queries = {name: vectors[i] for name, vectors in by_lane.items()}
            rows, scores = self.rank(text, qv, table, method, k, lane_queries)
            results.append(self._hits(table, rows, scores, qv, method))
        return results

    def _lane_encoder(self, lane):
        """A lane's encoder, sharing the main text model as its query tower where it can."""
        encoder = lane.encoder
        share = getattr(encoder, "use_query_tower", None)
        if share is not None and not lane.tower_shared:
            try:
                share(self.index.encoder)
            except DocpressError:
                pass  # another query model: the lane keeps its own
            lane.tower_shared = True
        return encoder

    # -- signals ------------------------------------------------------------------------
    def maxsim(self, qv: QueryVectors, table: PageTable, method: Method = Method.maxsim) -> np.ndarray:
        weights = token_weights(qv.tokens)
        tuned = self.index.tuned
        if tuned is not None and tuned.uses(method.value):  # `docpress tune` chose it for this method
            return tuned.maxsim(qv.vectors, weights, table)
        return self.index.store.maxsim(qv.vectors * weights[:, None], table)

    def dense(self, qv: QueryVectors, table: PageTable) -> np.ndarray:
        # The first window holds the page's title and opening lines: measured better than
        # the best of all windows (README).
        return self.index.store.dense(qv.pooled, table)[:, 0]

    def head(self, qv: QueryVectors, table: PageTable) -> np.ndarray:
        return self.cache.head_vectors(table) @ qv.pooled

    def documents(self, text: str, table: PageTable) -> np.ndarray:
        """Fused document-level score of each page's document; 0 when one document is searched."""
        doc_ids = np.unique(table.doc_ids)
        if len(doc_ids) < 2:
            return np.zeros(len(table))
        signals = {"profile": self.cache.profile_bm25().scores(text, doc_ids),
                   "document": self.cache.document_bm25().scores(text, doc_ids)}
        per_doc = weighted_sum(signals, DOC_WEIGHTS)
        return per_doc[np.searchsorted(doc_ids, table.doc_ids)]

    # -- ranking ------------------------------------------------------------------------
    def rank(self, text: str, qv: QueryVectors, table: PageTable, method: Method,
             k: int, lane_queries: dict[str, QueryVectors] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows of `table`, scores) of the best k pages, best first. lane_queries: the query
        encoded by each extra lane (hybrid fuses them)."""
        if method is Method.hybrid:
            return self._hybrid(text, qv, table, k, lane_queries or {})
        if method is Method.maxsim:
            scores = self.maxsim(qv, table)
        elif method is Method.dense:
            scores = self.dense(qv, table)
        else:
            scores = self.cache.page_bm25().scores(text, table.page_ids)
        top = np.argsort(-scores, kind="stable")[:k]
        return top, scores[top]

    def _hybrid(self, text: str, qv: QueryVectors, table: PageTable, k: int,
                lane_queries: dict[str, QueryVectors]) -> tuple[np.ndarray, np.ndarray]:
        # Stage 1, every page: the cheap signals, standardized over all pages.
        cheap = {"dense": self.dense(qv, table), "head": self.head(qv, table),
                 "bm25_head": self.cache.head_bm25().scores(text, table.page_ids)}
        first = weighted_sum(cheap, PAGE_WEIGHTS) + self.documents(text, table)
        n = max(k, RERANK_CANDIDATES)
        candidates = np.argsort(-first, kind="stable")[:n]
        # Stage 2, the candidates: MaxSim joins, standardized the same way over all pages by
        # the candidates' mean and spread (MaxSim of the other pages is never computed).
        rows = np.sort(candidates)  # stores score runs of contiguous pages fastest
        ms = self.maxsim(qv, table.subset(rows), Method.hybrid)
        final = first.copy()
        final[rows] += PAGE_WEIGHTS["maxsim"] * _standardized(ms)
        for lane in self.index.lanes:  # extra lanes join the same way
            lqv = lane_queries.get(lane.name)
            if lqv is not None:
                located = self.index.catalog.lane_table(lane.name, table.subset(rows))
                lane_ms = lane.store.maxsim(lqv.vectors * token_weights(lqv.tokens)[:, None], located)
                final[rows] += LANE_WEIGHT * _standardized(lane_ms)
        order = candidates[np.argsort(-final[candidates], kind="stable")][:k]
        return order, final[order]

    def _hits(self, table: PageTable, rows: np.ndarray, scores: np.ndarray, qv: QueryVectors,
              method: Method) -> list[Hit]:
        catalog, store = self.index.catalog, self.index.store
        hits, docs = [], {}
        for i, score in zip(rows, scores):
            page_id = int(table.page_ids[i])
            row = catalog.page(page_id)
            doc = docs.get(row.doc_id) or docs.setdefault(row.doc_id, catalog.document(row.doc_id))
            vectors = store.page_vectors(page_id, Location(row.vec_start, row.vec_count,
                                                           row.pool_start, row.pool_count))
            text, boxes = snippet(row.text, vectors, qv.vectors)
            hits.append(Hit(path=doc.path, page=row.number, score=float(score), snippet=text,
                            title=doc.title, text_source=row.text_source, metadata=doc.metadata,
                            boxes=boxes, doc_id=doc.id, page_id=page_id, method=method.value))
        return hits


def _standardized(scores: np.ndarray) -> np.ndarray:
    """Scores minus their mean, over their spread (1 when they do not spread)."""
    spread = scores.std() if len(scores) > 1 and scores.std() > 0 else 1.0
    return (scores - scores.mean()) / spread
