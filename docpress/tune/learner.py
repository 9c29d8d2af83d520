"""TextHeadLearner: the text encoder as the trainer sees it, frozen MiniLM token vectors under a TokenHead.

Pages come from the index's stored token vectors (or the encoder, for PDFs), queries from the
encoder's query tokens; both are frozen and only the head trains, so one step costs a few
matmuls and the same `docpress.train.loop.fit` that trains the optical encoder trains this one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from docpress.tokens import token_weights
from docpress.train.loss import pad
from docpress.tune.head import TokenHead
from docpress.types import Page


@dataclass
class TextPage:
    """A page input: its stored token vectors, minus the ones a pseudo-query was cut from.

    vectors: (n, in_dim) bfloat16, shared by every query cut from the same page (no copies).
    words:   (n,) int64 word index of each vector.
    cut:     [lo, hi) words whose vectors are left out, or None for the whole page.
    source:  the page it came from (the group the trainer keeps apart).
    """

    vectors: torch.Tensor
    words: torch.Tensor
    cut: tuple[int, int] | None = None
    source: int = -1

    def keep(self) -> torch.Tensor:
        """(n,) bool: the vectors this input shows."""
        if self.cut is None:
            return torch.ones(len(self.words), dtype=torch.bool)
        lo, hi = self.cut
        return (self.words < lo) | (self.words >= hi)

    def shown(self) -> torch.Tensor:
        return self.vectors[self.keep()]

    def __len__(self) -> int:
        return int(self.keep().sum())


class TextHeadLearner:
    """A TokenHead trained over frozen text-encoder vectors; implements docpress.train.Learner.

    encoder: the TextTokenEncoder that made the index (queries, and pages given as PDFs).
    max_page_vectors: while training, each page input shows at most this many of its vectors,
    a fresh random draw every step (None: all). A filing page has ~700 and a draw of 256 made
    steps ~7x faster, but FinanceBench a little worse (README, Tuning), so tune draws none by
    default. Scoring outside training always uses every vector.
    """

    device = "cpu"

    def __init__(self, head: TokenHead, encoder=None, max_page_vectors: int | None = None):
        self.head = head
        self.encoder = encoder
        self.dim = head.out_dim
        self.max_page_vectors = max_page_vectors

    def autocast(self):
        return torch.autocast("cpu", enabled=False)  # float32 on the CPU: deterministic

    # -- frozen work ----------------------------------------------------------------------
    def prepare_pages(self, path: Path, pages: list[Page]) -> list[TextPage]:
        """The encoder's token vectors of PDF pages (an index's pages come from its store)."""
        return [page_input(v.vectors, v.words, source=-1) for v in self.encoder.encode_pages(pages)]

    def prepare_queries(self, texts: list[str]) -> list[torch.Tensor]:
        """(n_tokens, in_dim) float32 per text: the query tokens search scores (no punctuation)."""
        out = []
        for qv in self.encoder.encode_queries(texts):
            keep = token_weights(qv.tokens) > 0
            out.append(torch.from_numpy(np.ascontiguousarray(qv.vectors[keep], np.float32)))
        return out

    # -- trainable parts --------------------------------------------------------------------
    def page_vectors(self, items: list[TextPage]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, out_dim) unit vectors of the pages (padded) and their (B, n) mask."""
        shown = [self._draw(item.shown()) for item in items]
        flat = self.head(torch.cat(shown).float()) if shown else torch.zeros((0, self.dim))
        return pad(list(torch.split(flat, [len(s) for s in shown])))

    def _draw(self, vectors: torch.Tensor) -> torch.Tensor:
        """A random subset of a page's vectors while training (torch's RNG: fit seeds it)."""
        cap = self.max_page_vectors
        if not self.head.training or cap is None or len(vectors) <= cap:
            return vectors
        return vectors[torch.randperm(len(vectors))[:cap].sort().values]

    def query_vectors(self, items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, out_dim) unit vectors of the queries' tokens (padded) and their (B, n) mask."""
        tokens, mask = pad(items)
        return self.head(tokens), mask

    def target_vectors(self, raw: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.head(raw.float())

    def regularizer(self) -> torch.Tensor:
        return self.head.orthogonality()

    def parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def train(self, mode: bool = True) -> None:
        self.head.train(mode)

    def save(self, directory: str | os.PathLike) -> Path:
        return self.head.save(directory)


def page_input(vectors: np.ndarray, words: np.ndarray, source: int, cut: tuple[int, int] | None = None) -> TextPage:
    """A TextPage from a page's (n, in_dim) float32 vectors and (n,) word indices (stored as bf16)."""
    return TextPage(torch.from_numpy(np.ascontiguousarray(vectors, np.float32)).bfloat16(),
                    torch.from_numpy(np.asarray(words, np.int64).reshape(-1)), cut, source)
