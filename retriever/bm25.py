"""BM25 over page text (bm25s), built from the catalog and cached beside it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np


def _stemmer():
    try:
        import Stemmer
    except ImportError:  # stemming is a bonus; plain tokens still work
        return None
    return Stemmer.Stemmer("english")


class Bm25Index:
    """A bm25s index over every page's text, keyed by page id.

    scores(query) gives (n_pages,) float32 in the order of `page_ids`.
    """

    def __init__(self, page_ids: np.ndarray, retriever, stemmer):
        self.page_ids = np.asarray(page_ids, dtype=np.int64)
        self._row = {int(p): i for i, p in enumerate(self.page_ids)}
        self.retriever = retriever
        self.stemmer = stemmer

    @classmethod
    def build(cls, page_ids: np.ndarray, texts: list[str]) -> "Bm25Index":
        import bm25s

        stemmer = _stemmer()
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(page_ids, retriever, stemmer)

    @classmethod
    def load_or_build(cls, cache: Path, generation: int, catalog) -> "Bm25Index":
        """Reuse the cached index when the catalog has not changed since it was built."""
        import bm25s

        stamp = cache / "stamp.json"
        if stamp.exists() and json.loads(stamp.read_text()).get("generation") == generation:
            retriever = bm25s.BM25.load(str(cache / "bm25"), load_corpus=False)
            page_ids = np.load(cache / "page_ids.npy")
            return cls(page_ids, retriever, _stemmer())
        page_ids, texts = catalog.page_texts()
        index = cls.build(page_ids, texts)
        try:
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir(parents=True, exist_ok=True)
            index.retriever.save(str(cache / "bm25"))
            np.save(cache / "page_ids.npy", page_ids)
            stamp.write_text(json.dumps({"generation": generation}))
        except OSError:  # a read-only index still searches; it just rebuilds next time
            pass
        return index

    def query_tokens(self, query: str) -> list[str]:
        import bm25s

        tokenized = bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer,
                                   return_ids=False, show_progress=False)
        return tokenized[0]

    def scores(self, query: str, page_ids: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every page (or of `page_ids`, in that order); 0 for unknown pages."""
        if len(self.page_ids) == 0:
            return np.zeros(0 if page_ids is None else len(page_ids), np.float32)
        tokens = [t for t in self.query_tokens(query) if t in self.retriever.vocab_dict]
        full = (self.retriever.get_scores(tokens).astype(np.float32) if tokens
                else np.zeros(len(self.page_ids), np.float32))
        if page_ids is None:
            return full
        rows = np.asarray([self._row.get(int(p), -1) for p in page_ids])
        out = np.where(rows >= 0, full[np.clip(rows, 0, None)], 0.0)
        return out.astype(np.float32)
