"""Pruning: choose which of a page's vectors to keep (drop stopwords, punctuation, low importance).

Two pruners share one rule set: forced drops first (stopwords and punctuation, text lane only),
then an optional keep-the-top-fraction by importance and an optional adaptive per-page threshold
(mean + `adaptive` x std of the page's importances). A page never loses all its vectors: the
`min_keep` most important ones survive whatever the rules say.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from docpress.compress.stages import build_stage
from docpress.errors import DocpressError
from docpress.tokens import is_punctuation, strip_symbols
from docpress.types import PageVectors

# A short English list: function words that carry no topic (numbers and negations stay).
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had
has have having he her here hers herself him himself his how i if in into is it its itself just
me more most my myself of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves also may might must shall upon via per within without
""".split())

# Words seen on a single sampled page are not saved; every unseen word counts as seen once.
MIN_SAVED_DF = 2


def normalize_word(word: str) -> str:
    """Lower-case, punctuation stripped from both ends: the key for stopwords and IDF.

    >>> normalize_word("(Revenue),"), normalize_word("U.S.")
    ('revenue', 'u.s')
    """
    return strip_symbols(word).lower()


def page_word_strings(page: PageVectors, words: list[str] | None) -> list[str]:
    """The word string of each vector ("" where it has none): words[page.words[i]]."""
    if words is None:
        return [""] * len(page)
    n = len(words)
    return [words[w] if 0 <= w < n else "" for w in page.words.tolist()]


@dataclass
class PruneResult:
    """Which vectors survive: keep (n_kept,) int64 ascending indices into the page's vectors."""

    keep: np.ndarray
    n_in: int

    def apply(self, page: PageVectors) -> PageVectors:
        k = self.keep
        return PageVectors(page.vectors[k], page.boxes[k], page.words[k], page.weights[k],
                           page.pooled)


class Pruner(ABC):
    """Base of the pruners: `prune` validates, asks `_drop` and `_importance`, applies the rules."""

    method: str

    def __init__(self, keep: float | None = None, adaptive: float | None = None,
                 min_keep: int = 1):
        if keep is not None and not 0.0 < keep <= 1.0:
            raise DocpressError(f"prune keep must be a fraction in (0, 1], not {keep}")
        if min_keep < 1:
            raise DocpressError(f"prune min_keep must be at least 1, not {min_keep}")
        self.keep = keep
        self.adaptive = adaptive
        self.min_keep = int(min_keep)

    # -- public -------------------------------------------------------------------------
    def prune(self, page: PageVectors, words: list[str] | None = None) -> PruneResult:
        """Choose the vectors to keep. words: the page text split on " " (text lane) or None."""
        n = len(page)
        if page.vectors.ndim != 2 or len(page.words) != n or len(page.boxes) != n:
            raise DocpressError("prune: page vectors, boxes and words must have one row per vector")
        if n == 0:
            return PruneResult(np.zeros(0, np.int64), 0)
        strings = page_word_strings(page, words)
        importance = np.asarray(self._importance(page, strings), dtype=np.float64)
        mask = ~np.asarray(self._drop(page, strings), dtype=bool)
        if self.keep is not None and self.keep < 1.0:
            budget = max(1, math.ceil(self.keep * n))
            alive = np.flatnonzero(mask)
            if len(alive) > budget:
                order = alive[np.argsort(-importance[alive], kind="stable")]
                mask[order[budget:]] = False
        if self.adaptive is not None and mask.any():
            vals = importance[mask]
            mask &= importance >= vals.mean() + self.adaptive * vals.std() - 1e-12
        if mask.sum() < min(self.min_keep, n):  # keep what it must
            best = np.argsort(-importance, kind="stable")[:min(self.min_keep, n)]
            mask[best] = True
        return PruneResult(np.flatnonzero(mask).astype(np.int64), n)

    def fit(self, word_lists: Iterable[list[str]]) -> None:
        """Learn corpus statistics from pages' word strings (a no-op for most pruners)."""

    def config(self) -> dict:
        return {"method": self.method, "keep": self.keep, "adaptive": self.adaptive,
                "min_keep": self.min_keep}

    def state(self) -> dict:
        """Fitted parameters as JSON-able data (see `load_state`)."""
        return {}

    def load_state(self, state: dict) -> None:
        pass

    # -- hooks --------------------------------------------------------------------------
    @abstractmethod
    def _importance(self, page: PageVectors, strings: list[str]) -> np.ndarray:
        """(n_vectors,) importance of each vector; higher survives longer."""

    def _drop(self, page: PageVectors, strings: list[str]) -> np.ndarray:
        """(n_vectors,) bool: vectors that go whatever their importance."""
        return np.zeros(len(page), bool)


class LexicalPruner(Pruner):
    """Text lane: drop stopwords and punctuation, rank the rest by IDF learnt on the corpus."""

    method = "lexical"

    def __init__(self, stopwords: bool = True, punctuation: bool = True, keep: float | None = None,
                 adaptive: float | None = None, min_keep: int = 1):
        super().__init__(keep, adaptive, min_keep)
        self.stopwords = bool(stopwords)
        self.punctuation = bool(punctuation)
        self.n_pages = 0
        self.df: dict[str, int] = {}

    def fit(self, word_lists: Iterable[list[str]]) -> None:
        if self.keep is None and self.adaptive is None:
            return  # stopwords and punctuation need no statistics; keep the codec small
        counts: Counter = Counter()
        n = 0
        for words in word_lists:
            n += 1
            counts.update({normalize_word(w) for w in words} - {""})
        self.n_pages = n
        self.df = {w: c for w, c in counts.items() if c >= MIN_SAVED_DF}

    def idf(self, word: str) -> float:
        """Smoothed IDF of a word (normalised first); unseen words count as seen on one page."""
        df = max(self.df.get(normalize_word(word), 1), 1)
        return math.log((self.n_pages + 1) / (df + 1)) + 1.0

    def _importance(self, page: PageVectors, strings: list[str]) -> np.ndarray:
        if not self.n_pages:  # not fitted: every word counts the same
            return np.ones(len(strings))
        cache: dict[str, float] = {}
        return np.asarray([cache[s] if s in cache else cache.setdefault(s, self.idf(s))
                           for s in strings])

    def _drop(self, page: PageVectors, strings: list[str]) -> np.ndarray:
        out = np.zeros(len(strings), bool)
        for i, s in enumerate(strings):
            if self.punctuation and is_punctuation(s):
                out[i] = True
            elif self.stopwords and normalize_word(s) in STOPWORDS:
                out[i] = True
        return out

    def config(self) -> dict:
        return {**super().config(), "stopwords": self.stopwords, "punctuation": self.punctuation}

    def state(self) -> dict:
        return {"n_pages": self.n_pages, "df": self.df}

    def load_state(self, state: dict) -> None:
        self.n_pages = int(state.get("n_pages", 0))
        self.df = {str(k): int(v) for k, v in state.get("df", {}).items()}


class SignalPruner(Pruner):
    """Either lane: rank vectors by their weight (attention, saliency) or by their raw norm."""

    method = "signal"
    SIGNALS = ("weight", "norm")

    def __init__(self, signal: str = "weight", keep: float | None = None,
                 adaptive: float | None = None, min_keep: int = 1):
        super().__init__(keep, adaptive, min_keep)
        if signal not in self.SIGNALS:
            raise DocpressError(f"prune signal must be one of {', '.join(self.SIGNALS)}, not {signal!r}")
        self.signal = signal

    def _importance(self, page: PageVectors, strings: list[str]) -> np.ndarray:
        if self.signal == "weight":
            return np.asarray(page.weights, np.float64)
        return np.linalg.norm(page.vectors, axis=1)

    def config(self) -> dict:
        return {**super().config(), "signal": self.signal}


PRUNERS = {cls.method: cls for cls in (LexicalPruner, SignalPruner)}


def pruner_from_config(config: dict) -> Pruner:
    """Build a pruner from its config dict ({"method": "lexical" | "signal", ...})."""
    return build_stage("prune", PRUNERS, config, "lexical")
