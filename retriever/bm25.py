"""BM25 (bm25s) over any keyed texts: pages, page heads, document profiles; cached on disk."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from retriever.lexical import TERMS_VERSION, TOKEN_PATTERN, normalize


def replace_folder(target: Path, write: Callable[[Path], object]) -> None:
    """Write a cache folder aside and swap it in with renames: readers of the old one (other
    processes share the index) never see it half written."""
    tag = f"{os.getpid()}-{threading.get_ident()}"
    tmp, old = target.with_name(f"{target.name}.tmp-{tag}"), target.with_name(f"{target.name}.old-{tag}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    write(tmp)
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)


def _stemmer():
    try:
        import Stemmer
    except ImportError:  # stemming is a bonus; plain tokens still work
        return None
    return Stemmer.Stemmer("english")


class Bm25Index:
    """A bm25s index over texts keyed by integer ids (page or document ids).

    scores(query, ids) gives (len(ids),) float32 in the order of `ids` (0 for unknown ids).
    """

    def __init__(self, keys: np.ndarray, retriever, stemmer):
        self.keys = np.asarray(keys, dtype=np.int64)
        self._row = {int(p): i for i, p in enumerate(self.keys)}
        self.retriever = retriever
        self.stemmer = stemmer

    @classmethod
    def build(cls, keys: np.ndarray, texts: list[str]) -> "Bm25Index":
        import bm25s

        stemmer = _stemmer()
        retriever = bm25s.BM25()
        if len(texts):
            tokens = bm25s.tokenize([normalize(t) for t in texts], stopwords="en",
                                    stemmer=stemmer, token_pattern=TOKEN_PATTERN, show_progress=False)
            retriever.index(tokens, show_progress=False)
        return cls(keys, retriever, stemmer)

    @classmethod
    def load_or_build(cls, cache: Path, generation: int,
                      corpus: Callable[[], tuple[np.ndarray, list[str]]]) -> "Bm25Index":
        """Reuse the cached index when the catalog has not changed since it was built."""
        import bm25s

        wanted = {"generation": generation, "terms": TERMS_VERSION}
        try:
            if json.loads((cache / "stamp.json").read_text()) == wanted:
                retriever = bm25s.BM25.load(str(cache / "bm25"), load_corpus=False)
                return cls(np.load(cache / "keys.npy"), retriever, _stemmer())
        except Exception:  # noqa: BLE001 - missing, damaged or being replaced: derived data, rebuilt
            pass
        keys, texts = corpus()
        index = cls.build(keys, texts)
        if len(keys):
            try:
                replace_folder(cache, lambda tmp: (index.retriever.save(str(tmp / "bm25")),
                                                   np.save(tmp / "keys.npy", index.keys),
                                                   (tmp / "stamp.json").write_text(json.dumps(wanted))))
            except OSError:  # a read-only index still searches; it just rebuilds next time
                pass
        return index

    def query_tokens(self, query: str) -> list[str]:
        import bm25s

        tokenized = bm25s.tokenize([normalize(query)], stopwords="en", stemmer=self.stemmer,
                                   token_pattern=TOKEN_PATTERN, return_ids=False, show_progress=False)
        return tokenized[0]

    def scores(self, query: str, keys: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every key (or of `keys`, in that order)."""
        n = len(self.keys) if keys is None else len(keys)
        vocab = getattr(self.retriever, "vocab_dict", None) or {}
        tokens = [t for t in self.query_tokens(query) if t in vocab]
        if not tokens:
            return np.zeros(n, np.float32)
        full = self.retriever.get_scores(tokens).astype(np.float32)
        if keys is None:
            return full
        rows = np.asarray([self._row.get(int(p), -1) for p in keys], dtype=np.int64)
        return np.where(rows >= 0, full[np.clip(rows, 0, None)], 0.0).astype(np.float32)
