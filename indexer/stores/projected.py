"""ProjectedStore: a store's token rows through a linear map, row for row, scored by MaxSim.

Row i of `tokens.bf16` here is normalize(W x_i) for row i of the base store (bf16 rows, or
coded rows decoded), so
the catalog's vec_start / vec_count address both files alike and a tuned lane needs no
locations of its own. The rows are derived data: rows the base gains later (new ingests) are
projected on the next read, under a lock, and a torn append is cut back to whole rows.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np

from docpress.errors import DocpressError
from docpress.maxsim import bf16_tensor, to_bf16_bits, token_maxsim
from docpress.types import PageVectors
from indexer.catalog import PageTable
from indexer.layout import RAW_FOLDER
from indexer.locks import FolderPin
from indexer.segments import AppendOnlyArray
from indexer.stores.base import Capabilities, Location, StoredPage, VectorStore

TOKENS = "tokens.bf16"
ROWS_PREFIX = "rows-"  # rows-BASEFOLDER/: the rows projected from that base folder
LEGACY_SOURCE = "source.json"  # older layout: rows in the tuned folder, their base named here
# Base rows projected per chunk: 256k x 384 float32 in, 256k x 128 out, ~0.5 GB at the peak.
PROJECT_ROWS = 1 << 18

ProgressFn = Callable[[int, int], None]  # (rows done, rows total)


class ProjectedStore(VectorStore):
    """Token rows of `base` projected by `weight` ((out_dim, base.dim) float32) into `directory`.

    A derived store: pages are added to and removed from its base, and it follows (catch_up);
    pooled windows are the base's (the map is for token vectors only).
    """

    name = "projected"
    capabilities = Capabilities()

    def __init__(self, directory: Path, base: VectorStore, weight: np.ndarray):
        if not base.capabilities.float_rows:
            raise DocpressError(f"a projected store needs a store of raw rows, not {base.name!r}")
        self.dir = Path(directory)
        self.base = base
        self.weight = np.ascontiguousarray(weight, np.float32)
        if self.weight.shape[1] != base.dim:
            raise ValueError(f"the map takes {self.weight.shape[1]}-d rows, the store holds {base.dim}-d")
        self.dim = self.weight.shape[0]
        # One folder of rows per base folder: rows projected from another generation of the
        # base (before a compression or compaction) are never read against this one, and a
        # reader still on the old generation keeps its own rows until it lets go.
        self.rows_dir = self.dir / f"{ROWS_PREFIX}{base.dir.name}"
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        self._adopt_legacy_rows()
        self.tokens = AppendOnlyArray(self.rows_dir / TOKENS, (self.dim,), "int16")
        self._pin = FolderPin(self.rows_dir)

    def _adopt_legacy_rows(self) -> None:
        """Rows written straight into the tuned folder by an older docpress (source.json names
        their base; none: the raw bf16 rows) move into their rows folder, or go if stale."""
        legacy = self.dir / TOKENS
        if not legacy.exists():
            return
        with self._lock():
            if not legacy.exists():
                return
            try:
                base = json.loads((self.dir / LEGACY_SOURCE).read_text())["base"]
            except (OSError, ValueError, KeyError, TypeError):
                base = RAW_FOLDER
            if base == self.base.dir.name and not (self.rows_dir / TOKENS).exists():
                os.replace(legacy, self.rows_dir / TOKENS)
            else:
                legacy.unlink()
            (self.dir / LEGACY_SOURCE).unlink(missing_ok=True)

    def project(self, rows: np.ndarray) -> np.ndarray:
        """(n, base.dim) float32 -> (n, dim) float32 unit rows (zero rows stay zero)."""
        import torch
        out = torch.from_numpy(np.ascontiguousarray(rows, np.float32)) @ torch.from_numpy(self.weight).T
        return torch.nn.functional.normalize(out, dim=-1).numpy()

    def catch_up(self, progress: ProgressFn | None = None) -> int:
        """Project the base rows this store lacks; returns how many it added.

        A lock file keeps two processes from appending the same rows twice; the length is
        read again under the lock.
        """
        if len(self.tokens) >= self.base.n_rows():
            return 0
        with self._lock():
            return self._append_missing(progress)

    @contextmanager
    def _lock(self):
        self.rows_dir.mkdir(parents=True, exist_ok=True)
        with open(self.rows_dir / "catch-up.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _append_missing(self, progress: ProgressFn | None) -> int:
        path = self.rows_dir / TOKENS
        if path.exists() and path.stat().st_size % self.tokens.row_bytes:
            os.truncate(path, len(self.tokens) * self.tokens.row_bytes)  # a torn append: whole rows only
        done, total = len(self.tokens), self.base.n_rows()
        if done > total:
            raise ValueError(f"{path} has more rows ({done}) than its base store ({total})")
        start = done
        while done < total:
            hi = min(total, done + PROJECT_ROWS)
            self.tokens.append(to_bf16_bits(self.project(self.base.vector_rows(done, hi))))
            done = hi
            if progress:
                progress(done - start, total - start)
        return total - start

    def maxsim(self, query: np.ndarray, pages: PageTable) -> np.ndarray:
        """(n_pages,) MaxSim of a projected, weighted query ((n_tokens, dim) float32) on the pages."""
        needed = int((pages.vec_start + pages.vec_count).max()) if len(pages) else 0
        if needed > len(self.tokens):
            self.catch_up()
        return token_maxsim(self.tokens.view(), query, pages.vec_start, pages.vec_count).sum(0)

    def add(self, pages: list[StoredPage]) -> list[Location]:
        raise DocpressError("a projected store is derived from its base store: add pages there")

    def remove(self, page_ids: list[int]) -> None:
        return None  # the base store and the catalog govern which rows are live

    def window_scores(self, pooled: np.ndarray, pages: PageTable):
        return self.base.window_scores(pooled, pages)

    def window_scores_of(self, pages: PageTable):
        return self.base.window_scores_of(pages)

    def first_windows(self, pages: PageTable) -> np.ndarray:
        return self.base.first_windows(pages)

    def page_vectors(self, page_id: int, location: Location) -> PageVectors:
        """The base page with its token vectors as projected here."""
        page = self.base.page_vectors(page_id, location)
        if location.vec_start + location.vec_count > len(self.tokens):
            self.catch_up()
        rows = self.tokens.rows(location.vec_start, location.vec_count)
        page.vectors = bf16_tensor(rows).float().numpy()
        return page

    def nbytes(self) -> int:
        return self.tokens.nbytes()

    def close(self) -> None:
        self._pin.close()
