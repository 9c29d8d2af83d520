"""The compressed vector store: page codes in append-only memory-mapped files, scored on the codes.

Layout of the store folder:
- codec/            the fitted Compressor (codec.json, codec.npz): how pages and queries are coded;
- codes.u8          (n_rows, code_bytes) uint8, the quantized token vectors;
- boxes.f16|boxes.u8 (n_rows, 4): float16 boxes, or bytes relative to the page's frame;
- words.i32|words.u16 (n_rows, 1): each row's word index (u16: 65535 means none);
- frames.f64        (n_pages, 5) float64: vec_start and frame (x0, y0, x1, y1), u8 boxes only;
- pooled.u8         (n_pooled, pooled_bytes) uint8, the quantized window summaries.
As in the bf16 store, rows become reachable only once the catalog records their location.
"""

from __future__ import annotations

import bisect
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from docpress.compress import CompressedPage, Compressor
from docpress.compress.fit import fit_codec
from docpress.errors import CorruptIndexError, DocpressError, IndexMismatchError
from docpress.maxsim import segment_max
from docpress.types import PageVectors
from indexer.catalog import PageTable
from indexer.layout import CODEC_BACKUP, CODEC_FOLDER
from indexer.locks import FolderPin
from indexer.segments import AppendOnlyArray, align_lengths, consecutive_locations
from indexer.stores.base import (Capabilities, Location, StoredPage, VectorStore, few_of, location_of,
                                 row_index, window_rows)

# Rows scored per block: bounds the (rows, n_query_tokens) score block to some tens of MB.
CHUNK_ROWS = 1 << 17
NO_WORD_U16 = 65535


class CompressedStore(VectorStore):
    """Page vectors as codes of a fitted Compressor; MaxSim runs on the codes.

    maxsim: per query token, the best code score on each page (a matmul for fp16/bf16/int8, table
    lookups for pq and binary), summed. When the quantizer's scores are not dot products of the
    decoded vectors (binary Hamming) and `rerank` > 0, the best `rerank` pages are decoded and
    rescored in float; they then rank above every other page, whose code scores are shifted
    below theirs (the order among the rest is the code order).
    """

    name = "compressed"
    # Re-coding reads the decoded vectors, so a compressed index can take another preset; the
    # rows decode one by one, so a tuned lane can be projected from them.
    capabilities = Capabilities(compression=True, extra_lanes=True, float_rows=True)

    def __init__(self, directory: Path, compressor: Compressor | None = None,
                 rerank: int | None = None, expected: dict | str | None = None):
        self.dir = Path(directory)
        codec = self.dir / CODEC_FOLDER
        if (codec / "codec.json").exists():
            saved = Compressor.load(codec, expected)
            if compressor is not None and compressor.fingerprint() != saved.fingerprint():
                raise IndexMismatchError(f"the store at {self.dir} was coded with another codec "
                                         f"({saved.fingerprint()}, not {compressor.fingerprint()})")
            compressor = saved
        elif compressor is None:
            raise DocpressError(f"no compressed store at {self.dir}: compress an index into it first")
        elif not compressor.fitted:
            raise DocpressError("a new compressed store needs a fitted compressor (fit it on a sample)")
        else:
            if expected is not None:
                compressor.check_config(expected)
            self.dir.mkdir(parents=True, exist_ok=True)
            compressor.save(codec)
            compressor.save(self.dir / CODEC_BACKUP)  # a damaged codec is restored from it
        self.compressor = compressor
        self.rerank = compressor.rerank if rerank is None else int(rerank)
        self.dim = compressor.dim
        self.codes = AppendOnlyArray(self.dir / "codes.u8", (compressor.code_bytes,), "uint8")
        if compressor.boxes_format == "u8":
            self.boxes = AppendOnlyArray(self.dir / "boxes.u8", (4,), "uint8")
            self.frames: AppendOnlyArray | None = AppendOnlyArray(self.dir / "frames.f64", (5,), "float64")
        else:
            self.boxes = AppendOnlyArray(self.dir / "boxes.f16", (4,), "float16")
            self.frames = None
        wdtype = "uint16" if compressor.words_format == "u16" else "int32"
        self.words = AppendOnlyArray(self.dir / f"words.{compressor.words_format}", (1,), wdtype)
        self.pooled = AppendOnlyArray(self.dir / "pooled.u8", (compressor.pooled_bytes,), "uint8")
        self._pin = FolderPin(self.dir)
        self._pooled_table = None  # (rows, the pooled codes as the quantizer scores them)

    # -- writing ------------------------------------------------------------------------
    def add(self, pages: list[StoredPage]) -> list[Location]:
        """Compress and store pages (the text lane's pruning reads each page's `words`)."""
        if not pages:
            return []
        return self.add_compressed([self.compressor.compress_page(p.vectors, p.words) for p in pages])

    def add_compressed(self, pages: list[CompressedPage]) -> list[Location]:
        """Store pages already compressed by this store's compressor."""
        if not pages:
            return []
        start = align_lengths([self.codes, self.boxes, self.words])
        n_rows = sum(len(p) for p in pages)
        codes = np.concatenate([p.codes for p in pages]) if n_rows else \
            np.zeros((0, self.compressor.code_bytes), np.uint8)
        boxes = np.concatenate([p.boxes for p in pages]) if n_rows else np.zeros((0, 4), np.float32)
        words = np.concatenate([p.words for p in pages]) if n_rows else np.zeros(0, np.int32)
        frames = []
        if self.frames is not None:
            encoded, row = [], start
            for p in pages:
                frame = _frame(p.boxes)
                encoded.append(_boxes_to_u8(p.boxes, frame))
                if len(p):
                    frames.append([row, *frame])
                row += len(p)
            boxes = np.concatenate(encoded) if n_rows else np.zeros((0, 4), np.uint8)
        else:
            boxes = boxes.astype(np.float16)
        tok = self.codes.append(codes)
        box = self.boxes.append(boxes)
        word = self.words.append(_words_to_store(words, self.words.dtype))
        assert tok == box == word == start, "compressed vector files out of step"
        if frames:
            self.frames.append(np.asarray(frames, np.float64))
        pooled = [p.pooled for p in pages if len(p.pooled)]
        pool = self.pooled.append(np.concatenate(pooled) if pooled else
                                  np.zeros((0, self.compressor.pooled_bytes), np.uint8))
        return self._stamp([Location(*loc) for loc in consecutive_locations(
            tok, pool, [len(p) for p in pages], [len(p.pooled) for p in pages])])

    def remove(self, page_ids: list[int]) -> None:
        # As in the bf16 store: rows stay until a compaction; the catalog no longer points at them.
        return None

    # -- scoring ------------------------------------------------------------------------
    def maxsim(self, query: np.ndarray, pages: PageTable) -> np.ndarray:
        if len(pages) == 0 or len(query) == 0:
            return np.zeros(len(pages), np.float32)
        q = self.compressor.transform_query(query)
        if self.rerank <= 0 or self.compressor.quantizer.exact:
            return self.code_token_maxsim(q, pages).sum(0)
        if self.rerank >= len(pages):  # every page would be rescored: skip the first stage
            return self.decoded_maxsim(q, pages)
        return self._rerank(q, pages, self.code_token_maxsim(q, pages).sum(0))

    def code_token_maxsim(self, q: np.ndarray, pages: PageTable) -> np.ndarray:
        """(n_query_tokens, n_pages) float32: each (transformed) query token's best code score."""
        return self._token_maxsim(self.compressor.quantizer.prepare(q), len(q), pages)

    def decoded_maxsim(self, q: np.ndarray, pages: PageTable) -> np.ndarray:
        """(n_pages,) MaxSim of a transformed query on the pages' decoded vectors, computed on the
        codes (for binary Hamming codes: the float query against the +-1 bits)."""
        return self._token_maxsim(self.compressor.quantizer.prepare_exact(q), len(q), pages).sum(0)

    def _token_maxsim(self, prepared, n_query: int, pages: PageTable) -> np.ndarray:
        quantizer = self.compressor.quantizer
        out = np.zeros((len(pages), n_query), np.float32)
        table = self.codes.view()
        starts, counts = pages.vec_start, pages.vec_count
        if _scattered(starts, counts):
            # Candidates all over the file (a first stage's or hybrid's): their rows gathered
            # into blocks of at most CHUNK_ROWS and each block scored in one call, not one call
            # per run (127 calls a query at 10k pages cost more in call overhead than in scoring).
            nonempty = np.flatnonzero(counts > 0)
            ends = np.cumsum(counts[nonempty])
            lo = 0
            while lo < len(nonempty):
                done = int(ends[lo - 1]) if lo else 0
                hi = max(lo + 1, int(np.searchsorted(ends, done + CHUNK_ROWS, side="right")))
                block = nonempty[lo:hi]
                sims = quantizer.score(prepared, table[row_index(starts[block], counts[block])])
                offsets = np.concatenate([[0], np.cumsum(counts[block])[:-1]])
                out[block] = segment_max(sims, offsets, axis=0)
                lo = hi
            return out.T
        i = 0
        while i < len(pages):
            # A run of pages whose rows are contiguous and fit in one block.
            j, rows = i, 0
            while j < len(pages) and (j == i or (starts[j] == starts[j - 1] + counts[j - 1]
                                                 and rows + counts[j] <= CHUNK_ROWS)):
                rows += counts[j]
                j += 1
            nonempty = np.flatnonzero(counts[i:j] > 0)
            if len(nonempty):
                lo = starts[i]
                sims = quantizer.score(prepared, table[lo:lo + rows])  # (rows, n_query_tokens)
                out[i + nonempty] = segment_max(sims, starts[i:j][nonempty] - lo, axis=0)
            i = j
        return out.T

    def _rerank(self, q: np.ndarray, pages: PageTable, scores: np.ndarray) -> np.ndarray:
        k = min(self.rerank, len(pages))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(pages) else np.arange(len(pages))
        exact = self.decoded_maxsim(q, pages.subset(top))
        final = scores.astype(np.float32).copy()
        rest = np.ones(len(pages), bool)
        rest[top] = False
        if rest.any():
            gap = float(exact.min()) - float(final[rest].max())
            if gap <= 0:
                final[rest] += gap - 1e-3
        final[top] = exact
        return final

    def window_scores(self, pooled: np.ndarray, pages: PageTable):
        if len(self.pooled) == 0:
            return np.zeros(0, np.float32), pages.pool_start, pages.pool_count
        q = self.compressor.transform_pooled(pooled)
        quantizer = self.compressor.pooled_quantizer
        view = self.pooled.view()
        if few_of(pages, len(view)):  # a first stage's candidates: their windows only
            rows, first = window_rows(pages)
            return quantizer.score(quantizer.prepare(q), view[rows])[:, 0], first, pages.pool_count
        cached = self._pooled_table
        if cached is None or cached[0] != len(view):  # the file grew: made again, once
            cached = self._pooled_table = (len(view), quantizer.table(view))
        return quantizer.score_table(quantizer.prepare(q), cached[1])[:, 0], pages.pool_start, pages.pool_count

    def window_scores_of(self, pages: PageTable):
        # The table's windows gathered from the file and made a scoring table once (8,192
        # sampled pages of 100k: 3.0 ms a query before, when gathered for each).
        if len(self.pooled) == 0 or len(pages) == 0:
            return super().window_scores_of(pages)
        quantizer = self.compressor.pooled_quantizer
        rows, first = window_rows(pages)
        table = quantizer.table(self.pooled.view()[rows])

        def scores(pooled: np.ndarray):
            q = quantizer.prepare(self.compressor.transform_pooled(pooled))
            return quantizer.score_table(q, table)[:, 0], first, pages.pool_count
        return scores

    def first_windows(self, pages: PageTable) -> np.ndarray:
        out = np.zeros((len(pages), self.dim), np.float32)
        has = np.flatnonzero(pages.pool_count > 0)
        if len(has):
            out[has] = self.compressor.restore_pooled(self.pooled.view()[pages.pool_start[has]])
        return out

    # -- reading back -------------------------------------------------------------------
    def compressed_page(self, location: Location) -> CompressedPage:
        """One page's stored codes, boxes (decoded) and words."""
        s, n = location.vec_start, location.vec_count
        ps, pn = location.pool_start, location.pool_count
        raw = self.boxes.rows(s, n)
        if self.frames is not None:
            boxes = _boxes_from_u8(raw, self._frame(s) if n else np.zeros(4))
        else:
            boxes = raw.astype(np.float32)
        return CompressedPage(self.codes.rows(s, n), boxes, _words_from_store(self.words.rows(s, n)),
                              self.pooled.rows(ps, pn), n)

    def as_stored(self, vectors: PageVectors, words: list[str] | None = None) -> PageVectors:
        return self.compressor.decode_page(self.compressor.compress_page(vectors, words))

    def n_rows(self) -> int:
        return len(self.codes)

    def vector_rows(self, lo: int, hi: int) -> np.ndarray:
        """(hi - lo, dim) float32: the coded rows [lo, hi) decoded into the encoder's space."""
        return self.compressor.restore(self.codes.rows(lo, hi - lo)).astype(np.float32)

    def page_vectors(self, page_id: int, location: Location) -> PageVectors:
        """The page's vectors decoded back into the encoder's space (approximate: compressed)."""
        return self.compressor.decode_page(self.compressed_page(location))

    def pages_vectors(self, pages: PageTable) -> list[PageVectors]:
        return self.compressor.decode_pages([self.compressed_page(location_of(pages, i)) for i in range(len(pages))])

    def row_files(self) -> list[AppendOnlyArray]:
        return [self.codes, self.boxes, self.words]

    def pool_files(self) -> list[AppendOnlyArray]:
        return [self.pooled]

    def rewrite(self, directory: Path, pages: PageTable) -> tuple["CompressedStore", dict[int, Location]]:
        # Codes, boxes and words are copied as bytes (decoding and coding again would not give
        # them back for every quantizer); the codec goes along.
        new = CompressedStore(directory, self.compressor)

        def frames(batch: PageTable, first_row: int) -> None:  # each page's frame, by its new first row
            if self.frames is None:
                return
            firsts = first_row + np.cumsum(batch.vec_count) - batch.vec_count
            rows = [[first, *self._frame(int(s))] for first, s, n in
                    zip(firsts, batch.vec_start, batch.vec_count) if n]
            if rows:
                new.frames.append(np.asarray(rows, np.float64))

        return new, self._copy_rows_into(new, pages, frames)

    def close(self) -> None:
        self._pin.close()

    def _frame(self, vec_start: int) -> np.ndarray:
        # frames.f64 is appended in row order, so its first column is sorted: a binary search,
        # not a dict of every frame rebuilt after each write (quadratic over an ingest).
        # a plain view of the mapped column: no copy, and no memmap overhead per bisect step
        rows = self.frames.view().view(np.ndarray)
        i = bisect.bisect_left(rows[:, 0], vec_start)
        frame = np.asarray(rows[i, 1:]) if i < len(rows) and rows[i, 0] == vec_start else None
        if frame is None:
            raise CorruptIndexError(f"{self.dir / 'frames.f64'} lacks the frame of rows at {vec_start} "
                                    f"(damaged); run `docpress repair --index {self.dir.parent}`")
        return frame

    def checksum(self, location: Location) -> int | None:
        # u8 boxes mean nothing without their page's frame: it is part of the page's rows.
        crc = super().checksum(location)
        if self.frames is None or location.vec_count == 0:
            return crc
        try:
            frame = self._frame(location.vec_start)
        except CorruptIndexError:
            return -1  # no CRC-32 is negative: a missing frame never matches
        return zlib.crc32(np.ascontiguousarray(frame, np.float64).tobytes(), crc)

    def nbytes(self) -> int:
        files = [self.codes, self.boxes, self.words, self.pooled]
        if self.frames is not None:
            files.append(self.frames)
        codec = sum(p.stat().st_size for p in (self.dir / CODEC_FOLDER).glob("*") if p.is_file())
        return sum(a.nbytes() for a in files) + codec


# -- box and word storage ------------------------------------------------------------------
def _scattered(starts: np.ndarray, counts: np.ndarray) -> bool:
    """Pages in many separate runs of rows: worth gathering into blocks."""
    if len(starts) < 2 or int(counts.sum()) == 0:
        return False
    breaks = int(np.count_nonzero(starts[1:] != starts[:-1] + counts[:-1]))
    return breaks >= 8


def _frame(boxes: np.ndarray) -> np.ndarray:
    """(4,) float64 union of a page's boxes (zeros for a page without vectors)."""
    if len(boxes) == 0:
        return np.zeros(4)
    return np.concatenate([boxes[:, :2].min(0), boxes[:, 2:].max(0)]).astype(np.float64)


def _boxes_to_u8(boxes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Boxes as bytes of the frame, rounded outwards so a decoded box covers the original."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.uint8)
    lo, span = np.tile(frame[:2], 2), np.tile(np.maximum(frame[2:] - frame[:2], 1e-6), 2)
    t = (boxes.astype(np.float64) - lo) / span * 255.0
    t[:, :2] = np.floor(t[:, :2] + 1e-9)
    t[:, 2:] = np.ceil(t[:, 2:] - 1e-9)
    return np.clip(t, 0, 255).astype(np.uint8)


def _boxes_from_u8(codes: np.ndarray, frame: np.ndarray) -> np.ndarray:
    lo, span = np.tile(frame[:2], 2), np.tile(np.maximum(frame[2:] - frame[:2], 1e-6), 2)
    return (lo + codes.astype(np.float64) / 255.0 * span).astype(np.float32)


def _words_to_store(words: np.ndarray, dtype: np.dtype) -> np.ndarray:
    words = np.asarray(words, np.int64).reshape(-1, 1)
    if dtype == np.uint16:  # 65535 marks "no word"; larger indices (pages past 65k words) clip
        return np.where(words < 0, NO_WORD_U16, np.minimum(words, NO_WORD_U16 - 1)).astype(np.uint16)
    return words.astype(np.int32)


def _words_from_store(words: np.ndarray) -> np.ndarray:
    words = words.reshape(-1)
    if words.dtype == np.uint16:
        return np.where(words == NO_WORD_U16, -1, words.astype(np.int32)).astype(np.int32)
    return words.astype(np.int32)


# -- building from a bf16 store --------------------------------------------------------------
def build_compressed_store(src: VectorStore, table: PageTable,
                           page_words: dict[int, list[str]] | None, compressor: Compressor,
                           out_dir: Path, sample_vectors: int = 300_000, chunk_pages: int = 256,
                           seed: int = 0, pooled_pages: int = 4000,
                           progress: Callable[[int, int], None] | None = None,
                           fit_rows: np.ndarray | None = None,
                           ) -> tuple[CompressedStore, dict[int, Location]]:
    """Re-encode an existing store's pages into a new compressed store under `out_dir`.

    Fits the compressor first when it is not fitted: on random pages holding about
    `sample_vectors` vectors (before pruning), with IDF counts from every page's words and the
    pooled codec on the pooled vectors of up to `pooled_pages` random pages. Pages are
    read and written `chunk_pages` at a time, in the table's order. Returns the store and the new
    location of every page (what the catalog must point at to search the compressed store).
    page_words: page id -> its text split on " " (None: no text, e.g. the optical lane).
    fit_rows: fit only on these rows of the table (default: all of them).
    """
    out_dir = Path(out_dir)
    if (out_dir / "codes.u8").exists():
        raise DocpressError(f"{out_dir} already holds a compressed store; choose an empty folder")
    page_words = page_words or {}

    def words(i: int) -> list[str] | None:
        return page_words.get(int(table.page_ids[i]))

    if not compressor.fitted:
        fit_codec(compressor, table.vec_count, lambda rows: src.pages_vectors(table.subset(rows)), words,
                  vocabulary=page_words.values() if page_words else None, sample_vectors=sample_vectors,
                  pooled_pages=pooled_pages, seed=seed, fit_rows=fit_rows)
    store = CompressedStore(out_dir, compressor)
    locations: dict[int, Location] = {}
    for lo in range(0, len(table), chunk_pages):
        idx = range(lo, min(lo + chunk_pages, len(table)))
        chunk = table.subset(slice(idx.start, idx.stop))
        stored = [StoredPage(int(pid), int(did), vectors, words(i)) for i, pid, did, vectors in
                  zip(idx, chunk.page_ids, chunk.doc_ids, src.pages_vectors(chunk))]
        locs = store.add(stored)
        locations.update({p.page_id: loc for p, loc in zip(stored, locs)})
        if progress:
            progress(idx.stop, len(table))
    return store, locations
