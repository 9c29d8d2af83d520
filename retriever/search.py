"""Search: encode queries, score pages by MaxSim, dense, BM25 or their fusion, build hits."""

from __future__ import annotations

from enum import Enum

import numpy as np

from docpress.encoders.base import QueryVectors
from docpress.errors import DocpressError
from indexer.catalog import PageTable
from indexer.store import Location
from retriever.bm25 import Bm25Index
from retriever.fusion import document_prior, weighted_sum
from retriever.hits import Hit
from retriever.query_weights import token_weights
from retriever.snippets import snippet


class Method(str, Enum):
    maxsim = "maxsim"  # exact late interaction over every page's token vectors
    bm25 = "bm25"  # lexical, over the page text
    dense = "dense"  # one pooled vector per page window
    hybrid = "hybrid"  # all three, fused, plus a document-level prior (the default)


DEFAULT_METHOD = Method.hybrid

# Weights of the standardized signals in `hybrid` (see README, "How hybrid ranks").
HYBRID_WEIGHTS = {"dense": 1.0, "maxsim": 1.0, "bm25": 0.5}
DOC_PRIOR_WEIGHT = 0.5


class Searcher:
    """Answers queries against one index (its catalog, store and encoder)."""

    def __init__(self, index):
        self.index = index
        self._bm25: Bm25Index | None = None
        self._bm25_generation = -1

    def bm25(self) -> Bm25Index:
        generation = self.index.catalog.generation()
        if self._bm25 is None or generation != self._bm25_generation:
            self._bm25 = Bm25Index.load_or_build(self.index.directory / "bm25", generation,
                                                 self.index.catalog)
            self._bm25_generation = generation
        return self._bm25

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
        results = []
        for text, qv in zip(queries, encoded):
            scores = self.scores(text, qv, table, method)
            top = np.argsort(-scores, kind="stable")[:k]
            results.append(self._hits(table, top, scores, qv, method))
        return results

    def signals(self, text: str, qv: QueryVectors, table: PageTable,
                names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Each named signal as (n_pages,) scores aligned with `table`."""
        out = {}
        if "maxsim" in names:
            weights = token_weights(qv.tokens)
            out["maxsim"] = self.index.store.maxsim(qv.vectors * weights[:, None], table)
        if "dense" in names:
            # A page is as close as its closest window.
            out["dense"] = self.index.store.dense(qv.pooled, table).max(1)
        if "bm25" in names:
            out["bm25"] = self.bm25().scores(text, table.page_ids)
        return out

    def scores(self, text: str, qv: QueryVectors, table: PageTable, method: Method) -> np.ndarray:
        if method is not Method.hybrid:
            return self.signals(text, qv, table, (method.value,))[method.value]
        signals = self.signals(text, qv, table, tuple(HYBRID_WEIGHTS))
        page = weighted_sum(signals, HYBRID_WEIGHTS)
        return page + DOC_PRIOR_WEIGHT * document_prior(page, table.doc_ids)

    def _hits(self, table: PageTable, top: np.ndarray, scores: np.ndarray, qv: QueryVectors,
              method: Method) -> list[Hit]:
        catalog, store = self.index.catalog, self.index.store
        hits, docs = [], {}
        for i in top:
            page_id = int(table.page_ids[i])
            row = catalog.page(page_id)
            doc = docs.get(row.doc_id) or docs.setdefault(row.doc_id, catalog.document(row.doc_id))
            vectors = store.page_vectors(page_id, Location(row.vec_start, row.vec_count,
                                                           row.pool_start, row.pool_count))
            text, boxes = snippet(row.text, vectors, qv.vectors)
            hits.append(Hit(path=doc.path, page=row.number, score=float(scores[i]), snippet=text,
                            title=doc.title, text_source=row.text_source, metadata=doc.metadata,
                            boxes=boxes, doc_id=doc.id, page_id=page_id, method=method.value))
        return hits
