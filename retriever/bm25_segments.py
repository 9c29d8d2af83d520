"""BM25 postings that grow by segments: a write adds the new texts' postings, never re-reads
the rest.

Why not bm25s alone: bm25s bakes the collection's statistics (IDF, average length) into every
stored score, so a new page means re-tokenising every page. At 100k pages the first search
after any write spent 101 s rebuilding the indexes (benchmarks/scale.py). Here each segment
keeps raw term frequencies, and the statistics are computed over the live texts at query time.
The scores are bm25s's Lucene variant (its default: k1 1.5, b 0.75) over the same terms, equal
to bm25s's on the same texts (tests/retriever/test_bm25_segments.py); bm25s still tokenises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

K1, B = 1.5, 0.75


@dataclass
class Segment:
    """Postings of some texts: keys[i] is text i's id; for term t (a global term id), the texts
    holding it are rows[indptr[t]:indptr[t + 1]] with counts tf[...] (t beyond the segment's
    vocabulary: none)."""

    keys: np.ndarray  # (n,) int64
    lengths: np.ndarray  # (n,) float32, terms per text
    indptr: np.ndarray  # (n_terms + 1,) int64
    rows: np.ndarray  # (nnz,) int32
    tf: np.ndarray  # (nnz,) uint16 (float32 where a count passes 65,535, or saved by older code)

    @classmethod
    def of(cls, keys: np.ndarray, docs: list[np.ndarray], n_terms: int) -> "Segment":
        """From each text's term ids (one entry per occurrence)."""
        lengths = np.asarray([len(d) for d in docs], np.float32)
        if not docs or not lengths.any():
            return cls(np.asarray(keys, np.int64), lengths, np.zeros(n_terms + 1, np.int64),
                       np.zeros(0, np.int32), np.zeros(0, np.float32))
        row_of = np.repeat(np.arange(len(docs), dtype=np.int64), lengths.astype(np.int64))
        terms = np.concatenate(docs).astype(np.int64)
        pair = terms * len(docs) + row_of  # one entry per (term, text) after unique
        pairs, tf = np.unique(pair, return_counts=True)
        term, row = pairs // len(docs), (pairs % len(docs)).astype(np.int32)
        return cls(np.asarray(keys, np.int64), lengths, _indptr(term, n_terms), row, compact_counts(tf))

    def postings(self, term: int) -> tuple[np.ndarray, np.ndarray]:
        if term + 1 >= len(self.indptr):
            return self.rows[:0], self.tf[:0]
        lo, hi = self.indptr[term], self.indptr[term + 1]
        return self.rows[lo:hi], self.tf[lo:hi]


def merge(segments: list[Segment], live: list[np.ndarray], n_terms: int) -> Segment:
    """One segment of the live texts of `segments` (dead ones dropped), postings by term."""
    keys, lengths, terms, rows, tfs = [], [], [], [], []
    offset = 0
    for seg, alive in zip(segments, live):
        new_row = np.cumsum(alive) - 1  # old row -> row among the kept
        width = len(seg.indptr) - 1
        term_of = np.repeat(np.arange(width, dtype=np.int64), np.diff(seg.indptr))
        keep = alive[seg.rows]
        terms.append(term_of[keep])
        rows.append(new_row[seg.rows[keep]] + offset)
        tfs.append(seg.tf[keep])
        keys.append(seg.keys[alive])
        lengths.append(seg.lengths[alive])
        offset += int(alive.sum())
    term = np.concatenate(terms) if terms else np.zeros(0, np.int64)
    row = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    tf = np.concatenate(tfs) if tfs else np.zeros(0, np.float32)
    order = np.lexsort((row, term))
    return Segment(np.concatenate(keys) if keys else np.zeros(0, np.int64),
                   np.concatenate(lengths) if lengths else np.zeros(0, np.float32),
                   _indptr(term, n_terms), row[order].astype(np.int32), compact_counts(tf[order]))


def compact_counts(tf: np.ndarray) -> np.ndarray:
    """Term counts in 2 bytes where they fit (a quarter of the postings' memory: 220 MB at 1M
    pages); scoring widens them to float32 exactly either way."""
    if tf.dtype == np.uint16:
        return tf  # as saved: a mapped file stays mapped, not read
    return tf.astype(np.uint16) if not len(tf) or tf.max() <= np.iinfo(np.uint16).max else tf.astype(np.float32)


def _indptr(term: np.ndarray, n_terms: int) -> np.ndarray:
    """Where each term's postings start in postings sorted by term."""
    indptr = np.zeros(n_terms + 1, np.int64)
    indptr[1:] = np.cumsum(np.bincount(term, minlength=n_terms)[:n_terms])
    return indptr


def collection(segments: list[Segment], live: list[np.ndarray]) -> tuple[int, float]:
    """(live texts, their average length in terms)."""
    n = sum(int(a.sum()) for a in live)
    total = sum(float(seg.lengths[a].sum()) for seg, a in zip(segments, live))
    return n, (total / n if n else 0.0) or 1.0


def live_postings(segments: list[Segment], live: list[np.ndarray], term: int,
                  whole: list[bool] | None = None) -> list[tuple]:
    """(segment, rows, term counts) of the live texts holding `term` (`whole`: which segments
    have no dead text, so need no mask)."""
    out = []
    for s, (seg, alive) in enumerate(zip(segments, live)):
        rows, tf = seg.postings(term)
        if whole is None or not whole[s]:
            keep = alive[rows]
            rows, tf = rows[keep], tf[keep]
        out.append((s, rows, tf))
    return out


def _norm(length, avgdl: float):
    """A text's part of BM25's denominator."""
    return K1 * ((1 - B) + B * length / avgdl)


def weight(tf, length, df: int, n: int, avgdl: float):
    """Lucene's BM25 term weight (bm25s's default): idf times the saturated term count."""
    return _idf(df, n) * tf / (_norm(length, avgdl) + tf)


def _idf(df: int, n: int) -> np.float32:
    return np.float32(np.log(1 + (n - df + 0.5) / (df + 0.5)))


@dataclass
class Prepared:
    """What scoring needs of the live texts beside the postings, fixed until the next write:
    their count and average length, each text's length norm, the segments without dead texts."""

    n: int
    avgdl: float
    norms: list[np.ndarray]
    whole: list[bool]

    @classmethod
    def of(cls, segments: list[Segment], live: list[np.ndarray]) -> "Prepared":
        n, avgdl = collection(segments, live)
        return cls(n, avgdl, [_norm(seg.lengths, avgdl) for seg in segments], [bool(a.all()) for a in live])


def score(segments: list[Segment], live: list[np.ndarray], terms: list[int],
          prepared: Prepared | None = None) -> list[np.ndarray]:
    """Per segment, the BM25 score of each of its texts for the query terms (0 for dead texts),
    with document frequencies, count and average length over the live texts of all segments."""
    prepared = prepared or Prepared.of(segments, live)
    out = [np.zeros(len(seg.keys), np.float32) for seg in segments]
    if prepared.n == 0:
        return out
    for term in terms:
        hits = live_postings(segments, live, term, prepared.whole)
        idf = _idf(sum(len(rows) for _, rows, _ in hits), prepared.n)
        for s, rows, tf in hits:
            if len(rows):  # weight(), with the norms computed once
                out[s][rows] += idf * tf / (prepared.norms[s][rows] + tf)
    return out
