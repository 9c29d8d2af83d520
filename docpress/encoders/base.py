"""The encoder protocol: pages and queries in, multi-vector embeddings out."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from docpress.render import Page


@dataclass
class PageVectors:
    """A page's multi-vector embedding.

    vectors: (n_vectors, dim) float32, L2-normalised.
    boxes:   (n_vectors, 4) float32, the page region (PDF points) each vector stands for.
    words:   (n_vectors,) int32, index of the page word each vector came from (-1: none).
    weights: (n_vectors,) float32, importance of each vector (1.0 by default).
    pooled:  (n_pooled, dim) float32, L2-normalised single-vector summaries (one per window).
    """

    vectors: np.ndarray
    boxes: np.ndarray
    words: np.ndarray
    weights: np.ndarray
    pooled: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)


@dataclass
class QueryVectors:
    """A query's embedding: (n_tokens, dim) vectors, their tokens, and one pooled (dim,) vector."""

    vectors: np.ndarray
    tokens: list[str]
    pooled: np.ndarray


class Encoder(ABC):
    """Turns pages and queries into vectors in one shared space."""

    id: str
    dim: int

    @abstractmethod
    def config(self) -> dict:
        """Everything that changes the vectors; recorded in the index manifest."""

    def config_hash(self) -> str:
        blob = json.dumps({"id": self.id, **self.config()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @abstractmethod
    def encode_pages(self, pages: list[Page]) -> list[PageVectors]:
        """One PageVectors per page, in order."""

    @abstractmethod
    def encode_queries(self, texts: list[str]) -> list[QueryVectors]:
        """One QueryVectors per query text, in order."""
