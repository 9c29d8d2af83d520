"""The tuned lane of an index: its TokenHead, the projected token rows, and which methods use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from docpress.errors import IndexMismatchError
from docpress.tune.head import TokenHead
from indexer.local import LocalStore
from indexer.projected import ProjectedStore

HEAD_FOLDER = "head"


class TunedLane:
    """Opened from the folder the manifest's `tuned` record names (inside the index folder).

    maxsim(query vectors, weights, pages): the query's MiniLM token vectors through the head,
    weighted, against the projected page rows.
    """

    def __init__(self, directory: Path, record: dict, base: LocalStore):
        self.directory = Path(directory)
        self.record = record
        self.head = TokenHead.load(self.directory / HEAD_FOLDER)
        if self.head.content_hash() != record.get("head_hash"):
            raise IndexMismatchError(f"the tuned head in {self.directory} is not the one the manifest "
                                     "records; run `docpress tune` again")
        self.store = ProjectedStore(self.directory, base, self.head.weight.detach().numpy())
        self.methods = frozenset(record.get("methods", ()))

    @classmethod
    def open(cls, index_directory: Path, record: dict, base) -> "TunedLane | None":
        """The lane, or None when there is none or the store is not the bf16 one it was made from."""
        if not record or type(base) is not LocalStore:
            return None
        return cls(Path(index_directory) / record["folder"], record, base)

    def uses(self, method: str) -> bool:
        return method in self.methods

    def maxsim(self, query: np.ndarray, weights: np.ndarray, pages) -> np.ndarray:
        """(n_pages,) float32 MaxSim; query (n_tokens, in_dim) unit MiniLM vectors, weights (n_tokens,)."""
        projected = self.head.project(query) * np.asarray(weights, np.float32)[:, None]
        return self.store.maxsim(projected, pages)

    def nbytes(self) -> int:
        head = sum(p.stat().st_size for p in (self.directory / HEAD_FOLDER).iterdir())
        return self.store.nbytes() + head
