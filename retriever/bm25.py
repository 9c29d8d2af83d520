"""BM25 over any keyed texts (pages, page heads, document profiles), following the catalog's
writes incrementally, saved on disk for the other readers."""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from retriever.bm25_flat import FlatTerms
from retriever.bm25_segments import (
    Prepared,
    Segment,
    collection,
    compact_counts,
    live_postings,
    merge,
    weight,
)
from retriever.fusion import sparse_moments, top_of
from retriever.lexical import TERMS_VERSION, TOKEN_PATTERN, normalize

# Small segments (the writes since a merge) an index may have before they are merged into
# one; each adds a little per query.
MAX_SEGMENTS = 4
# Texts per segment when an index is built (a million pages: 16 segments), and read per batch.
SEGMENT_TEXTS = 65536
READ_TEXTS = 4096
# Bumped when the saved layout changes: an older saved index is rebuilt.
FORMAT = 2


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


def _stamp(version: str) -> dict:
    """What a saved index must have been written with to be taken up: these terms, this
    format, these texts (version)."""
    return {"terms": TERMS_VERSION, "format": FORMAT, "version": version}


def _saved_stamp(folder: Path, stamp: dict) -> dict | None:
    """The stamp of the index saved in `folder` when it matches `stamp`, else None (OSError
    or ValueError where there is none to read)."""
    saved = json.loads((folder / "stamp.json").read_text())
    return saved if all(saved.get(k) == v for k, v in stamp.items()) else None


def _follow_keys(keys: list[np.ndarray], alive: list[np.ndarray], live_keys: np.ndarray):
    """(each segment's live mask once only `live_keys` live, the live keys no segment holds)."""
    live = [a & np.isin(k, live_keys) for k, a in zip(keys, alive)]
    known = np.concatenate([k[a] for k, a in zip(keys, live)]) if live else np.zeros(0, np.int64)
    return live, live_keys[~np.isin(live_keys, known)]


def _to_merge(sizes: list[int], live: list[np.ndarray], n_live: int) -> list[int]:
    """The segments a write's update merges (then saves): all of them when many texts are
    dead, the small ones when there are many; none mostly."""
    dead = sum(int((~a).sum()) for a in live)
    if dead > 0.3 * max(n_live, 1):
        return list(range(len(sizes)))
    small = [i for i, n in enumerate(sizes) if n < SEGMENT_TEXTS]
    return small if len(small) > MAX_SEGMENTS else []


def update_saves(cache: Path, live_keys: np.ndarray, version: str = "") -> bool:
    """Whether follow() in a process without this index in memory would save it: no saved
    index of these terms to update, or an update that merges segments. Reads the saved keys
    and live masks only (a writer that will not search skips the rest: at 1M pages loading
    and updating the page index took 3.5 s, for nothing another process reads)."""
    try:
        saved = _saved_stamp(cache, _stamp(version))
        if saved is None:
            return True
        with np.load(cache / "bm25.npz") as data:
            keys = [data[f"{i}.keys"] for i in range(int(saved["segments"]))]
            alive = [data[f"{i}.live"] for i in range(int(saved["segments"]))]
    except Exception:  # noqa: BLE001 - missing or damaged: follow() builds and saves it
        return True
    live_keys = np.asarray(live_keys, np.int64)
    live, new = _follow_keys(keys, alive, live_keys)
    if len(new) == 0 and all((a == b).all() for a, b in zip(live, alive)):
        return False  # the saved index is current: follow() takes it as it is
    sizes = [len(k) for k in keys] + [min(SEGMENT_TEXTS, len(new) - lo) for lo in range(0, len(new), SEGMENT_TEXTS)]
    live += [np.ones(n, bool) for n in sizes[len(keys):]]
    return bool(_to_merge(sizes, live, len(live_keys)))


_QUERY_STEMMER = threading.Lock()


@lru_cache(maxsize=256)
def _query_tokens(query: str, stem: bool) -> tuple[str, ...]:
    """A query's BM25 tokens, made once for the four indexes a search asks (pages, heads,
    profiles, documents), which all tokenize alike."""
    import bm25s

    with _QUERY_STEMMER:  # one stemmer for queries; a stemmer is not to be shared by threads
        stemmer = _query_stemmer() if stem else None
        return tuple(bm25s.tokenize([normalize(query)], stopwords="en", stemmer=stemmer,
                                    token_pattern=TOKEN_PATTERN, return_ids=False, show_progress=False)[0])


@lru_cache(maxsize=1)
def _query_stemmer():
    return _stemmer()


class Bm25Index:
    """BM25 over texts keyed by integer ids (page or document ids), in segments that follow
    the catalog: a write adds the new texts' postings and marks removed ones dead
    (retriever.bm25_segments says why and how it scores).

    scores(query, ids) gives (len(ids),) float32 in the order of `ids` (0 for unknown ids);
    `keys` are the live ids, in the order scores(query) gives them.
    """

    def __init__(self, vocab: dict[str, int], segments: list[Segment], live: list[np.ndarray], stemmer):
        self.vocab = vocab
        self.segments = segments
        self.live = live
        self.stemmer = stemmer
        self.merged_now = False  # made by merging segments (worth saving for the other readers)
        self.version = ""  # follow()'s version of the texts it was built from
        self._index_keys()

    def _index_keys(self) -> None:
        everything = np.concatenate([s.keys for s in self.segments]) if self.segments else np.zeros(0, np.int64)
        alive = np.concatenate(self.live) if self.live else np.zeros(0, bool)
        self._live_rows = np.flatnonzero(alive)
        self.keys = everything[self._live_rows]
        self._order = np.argsort(self.keys, kind="stable")
        self._last: tuple[np.ndarray, np.ndarray] | None = None  # (keys asked for, their rows)
        self._positions_of: tuple[np.ndarray, np.ndarray] | None = None  # (keys, _positions)
        self._asks_every: tuple[np.ndarray, bool] | None = None  # (keys, _asks_every_live_row)
        self._prepared: Prepared | None = None  # the live texts' statistics for scoring
        self._flat: FlatTerms | None = None  # the postings of the terms asked lately, flat

    # -- building -----------------------------------------------------------------------
    @classmethod
    def build(cls, keys: np.ndarray, texts: list[str]) -> "Bm25Index":
        keys = np.asarray(keys, np.int64)
        text_of = dict(zip(keys.tolist(), texts))
        return cls.built(keys, lambda ids: [text_of[int(i)] for i in ids])

    @classmethod
    def built(cls, keys: np.ndarray, texts: Callable[[np.ndarray], list[str]],
              batch: int | None = None) -> "Bm25Index":
        """An index of the texts of `keys`, read `batch` (READ_TEXTS) at a time."""
        index = cls({}, [], [], _stemmer())
        index._extend(np.asarray(keys, np.int64), texts, batch)
        return index

    def _extend(self, keys: np.ndarray, texts: Callable[[np.ndarray], list[str]],
                batch: int | None = None) -> None:
        """Add texts as segments of at most SEGMENT_TEXTS, reading and tokenising `batch`
        (READ_TEXTS) at a time: memory stays bounded at a million pages."""
        batch = batch or READ_TEXTS
        for lo in range(0, len(keys), SEGMENT_TEXTS):
            part = keys[lo:lo + SEGMENT_TEXTS]
            docs: list[np.ndarray] = []
            for at in range(0, len(part), batch):
                docs.extend(self._term_ids(texts(part[at:at + batch])))
            self.segments.append(Segment.of(part, docs, len(self.vocab)))
            self.live.append(np.ones(len(part), bool))
        self._index_keys()

    def _term_ids(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's terms as ids of this index's vocabulary (new terms are added)."""
        import bm25s

        if not texts:
            return []
        tokens = bm25s.tokenize([normalize(t) for t in texts], stopwords="en", stemmer=self.stemmer,
                                token_pattern=TOKEN_PATTERN, return_ids=True, show_progress=False)
        remap = np.zeros(max(len(tokens.vocab), 1), np.int64)
        for term, local in tokens.vocab.items():
            remap[local] = self.vocab.setdefault(term, len(self.vocab))
        return [remap[np.asarray(ids, np.int64)] for ids in tokens.ids]

    def updated(self, live_keys: np.ndarray, texts: Callable[[np.ndarray], list[str]],
                batch: int | None = None) -> "Bm25Index":
        """This index following a write: keys no longer live are dead, new keys' texts are
        added as a segment (the catalog never gives an id twice, so a live key's text is the
        one indexed). Segments are merged when there are many or many dead texts."""
        live_keys = np.asarray(live_keys, np.int64)
        live, new = _follow_keys([seg.keys for seg in self.segments], self.live, live_keys)
        same = len(new) == 0 and all((a == b).all() for a, b in zip(live, self.live))
        if same:
            return self
        index = Bm25Index(self.vocab, list(self.segments), live, self.stemmer)
        if len(new):
            index._extend(new, texts, batch)
        which = _to_merge([len(seg.keys) for seg in index.segments], index.live, len(index.keys))
        return index.merged(which) if which else index

    def merged(self, which) -> "Bm25Index":
        """The segments `which` (positions) merged into one of their live texts, last."""
        which = set(which)
        keep = [i for i in range(len(self.segments)) if i not in which]
        one = merge([self.segments[i] for i in sorted(which)], [self.live[i] for i in sorted(which)],
                    len(self.vocab))
        index = Bm25Index(self.vocab, [self.segments[i] for i in keep] + [one],
                          [self.live[i] for i in keep] + [np.ones(len(one.keys), bool)], self.stemmer)
        index.merged_now = True
        return index

    # -- on disk ------------------------------------------------------------------------
    def save(self, folder: Path, stamp: dict) -> None:
        """Written aside and swapped in whole (replace_folder): other readers share it."""
        def write(tmp: Path) -> None:
            # terms are word characters only: one newline-separated UTF-8 blob, no pickle
            terms = "\n".join(sorted(self.vocab, key=self.vocab.get)).encode()
            arrays = {"vocab": np.frombuffer(terms, np.uint8)}
            for i, (seg, alive) in enumerate(zip(self.segments, self.live)):
                for field in ("keys", "lengths", "indptr", "rows", "tf"):
                    arrays[f"{i}.{field}"] = getattr(seg, field)
                arrays[f"{i}.live"] = alive
            np.savez(tmp / "bm25.npz", **arrays)
            (tmp / "stamp.json").write_text(json.dumps({**stamp, "segments": len(self.segments)}))

        replace_folder(folder, write)

    @classmethod
    def load(cls, folder: Path, stamp: dict) -> tuple["Bm25Index", dict] | None:
        """(the saved index, its stamp) when it was written with these terms, else None."""
        try:
            saved = _saved_stamp(folder, stamp)
            if saved is None:
                return None
            with np.load(folder / "bm25.npz") as data:
                terms = data["vocab"].tobytes().decode()
                vocab = {t: i for i, t in enumerate(terms.split("\n"))} if terms else {}
                segments, live = [], []
                for i in range(int(saved["segments"])):
                    keys, lengths, indptr, rows, tf = (data[f"{i}.{f}"]
                                                       for f in ("keys", "lengths", "indptr", "rows", "tf"))
                    segments.append(Segment(keys, lengths, indptr, rows, compact_counts(tf)))  # older: float32
                    live.append(data[f"{i}.live"])
            return cls(vocab, segments, live, _stemmer()), saved
        except Exception:  # noqa: BLE001 - missing, damaged or being replaced: derived data, rebuilt
            return None

    # -- scoring ------------------------------------------------------------------------
    def query_tokens(self, query: str) -> list[str]:
        return list(_query_tokens(query, self.stemmer is not None))

    def _terms(self, query: str) -> list[int]:
        return [self.vocab[t] for t in self.query_tokens(query) if t in self.vocab]

    def _prepare(self) -> Prepared:
        """The live texts' statistics: fixed for this object, so computed once."""
        if self._prepared is None:
            self._prepared = Prepared.of(self.segments, self.live)
        return self._prepared

    def _flat_terms(self) -> FlatTerms:
        if self._flat is None:
            self._flat = FlatTerms(self.segments, self.live, self._prepare())
        return self._flat

    def _flat_scores(self, query: str) -> np.ndarray:
        """Every row's score, the segments' rows end to end (dead rows 0)."""
        terms = self._terms(query)
        flat = self._flat_terms()
        return flat.scores(terms) if terms else np.zeros(flat.n_rows, np.float32)

    def scores(self, query: str, keys: np.ndarray | None = None) -> np.ndarray:
        """BM25 score of every live key (or of `keys`, in that order)."""
        full = self._flat_scores(query)[self._live_rows]
        if keys is None:
            return full
        rows = self.rows(keys)
        return np.where(rows >= 0, full[np.clip(rows, 0, None)], 0.0).astype(np.float32)

    def sparse_scores(self, query: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The nonzero entries of scores(query, keys): (their positions in `keys`, ascending;
        their scores). Most pages hold no query term, and at a million pages spelling out
        their zeros, then scaling and ranking them, took most of hybrid's first stage."""
        where, values = self._nonzero_of(self._flat_scores(query), keys)
        order = np.argsort(where, kind="stable")
        return where[order], values[order]

    def top_scores(self, query: str, keys: np.ndarray, k: int) -> "TopScores":
        """The best k of `keys` for the query (as fusion.top_indices of scores(query, keys))
        and the z-scale of the scores over all of them, from the nonzero ones alone."""
        rows = self.rows(keys)
        flat = self._flat_scores(query)

        def values_at(positions: np.ndarray) -> np.ndarray:
            at = rows[positions]
            if not len(self._live_rows):
                return np.zeros(len(at), np.float32)
            return np.where(at >= 0, flat[self._live_rows[np.clip(at, 0, None)]], 0.0).astype(np.float32)

        if self._asks_every_live_row(keys) and np.count_nonzero(flat) > k:
            # every nonzero row is asked (dead rows score 0): the best k and the moments come
            # from the flat scores without listing their nonzero rows (1M pages: 6 against
            # 13 ms an index)
            top = _top_of_flat(flat, self._positions(keys), len(keys), k)
            return TopScores(top, *_moments_of_flat(flat, len(keys)), values_at)
        where, values = self._nonzero_of(flat, keys)
        return TopScores(top_of(where, values, len(keys), k), *sparse_moments(values, len(keys)), values_at)

    def _asks_every_live_row(self, keys: np.ndarray) -> bool:
        """Whether `keys` are the live texts' keys, each once (a search of every page); kept
        for the last keys array, as rows()."""
        kept = self._asks_every
        if kept is not None and kept[0] is keys:
            return kept[1]
        rows = self.rows(keys)
        answer = len(keys) == len(self._live_rows) and bool((rows >= 0).all())
        if answer:  # distinct keys find distinct texts; a page table's ids ascend (np.unique: 0.75 s at 1M)
            answer = bool((keys[1:] > keys[:-1]).all()) or len(np.unique(keys)) == len(keys)
        self._asks_every = (keys, answer)
        return answer

    def _nonzero_of(self, flat: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `keys` of the nonzero flat scores, in no order; those scores)."""
        rows = np.flatnonzero(flat)
        where = self._positions(keys)[rows]
        keep = where >= 0
        return where[keep], flat[rows[keep]]

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """For each row of the segments end to end, the position of its key in `keys` (-1: a
        dead text, or one not asked for); remembered for the last keys array, as rows()."""
        kept = self._positions_of
        if kept is not None and kept[0] is keys:
            return kept[1]
        rows = self.rows(keys)
        asked = rows >= 0
        out = np.full(sum(len(seg.keys) for seg in self.segments), -1, np.int64)
        out[self._live_rows[rows[asked]]] = np.flatnonzero(asked)
        self._positions_of = (keys, out)
        return out

    def scores_as(self, query: str, key: int, text: str) -> np.ndarray:
        """scores(query), with the text of `key` scored as if it were `text`; the collection's
        statistics stay those of the indexed texts (calibration asks how a page with its answer
        cut out would rank)."""
        out = self.scores(query)
        row = int(self.rows(np.asarray([key], np.int64))[0])
        if row < 0:
            return out
        terms = [t for t in self.query_tokens(query) if t in self.vocab]
        words = self.query_tokens(text)
        n, avgdl = collection(self.segments, self.live)
        out[row] = 0.0
        for term in terms:
            tf = np.float32(words.count(term))
            if tf:
                df = sum(len(rows) for _, rows, _ in live_postings(self.segments, self.live, self.vocab[term]))
                out[row] += weight(tf, np.float32(len(words)), df, n, avgdl)
        return out

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Each key's position in `keys` of this index (-1: unknown). Remembered for the last
        keys array: every search of one catalog generation passes the same page-table column.

        >>> Bm25Index.build(np.array([7, 3, 9]), ["a b", "c d", "e f"]).rows(np.array([9, 4, 7])).tolist()
        [2, -1, 0]
        """
        last = self._last
        if last is not None and last[0] is keys:
            return last[1]
        keys = np.asarray(keys, dtype=np.int64)
        if len(self.keys) == 0:
            return np.full(len(keys), -1, np.int64)
        where = np.clip(np.searchsorted(self.keys, keys, sorter=self._order), 0, len(self.keys) - 1)
        rows = self._order[where]
        rows = np.where(self.keys[rows] == keys, rows, -1)
        self._last = (keys, rows)
        return rows


def _top_of_flat(flat: np.ndarray, positions: np.ndarray, n: int, k: int) -> np.ndarray:
    """fusion.top_of of the nonzero flat scores (more than k of them) among n keys, each row
    at its position: the k-th best by a partial selection (torch's topk: 2.7 ms for 1M rows,
    numpy's partition 17), then top_of of only the rows at or above it."""
    import torch

    kth = float(torch.topk(torch.from_numpy(flat), k, sorted=False).values.min())
    near = np.flatnonzero(flat >= kth)  # the best k and their ties
    return top_of(positions[near], flat[near], n, k)


def _moments_of_flat(flat: np.ndarray, n: int) -> tuple[float, float]:
    """fusion.sparse_moments of the nonzero flat scores among n keys: the zero rows add
    nothing to the sums (std^2 = mean of squares - mean^2, in float64)."""
    if n < 2:
        return 0.0, 0.0
    wide = flat.astype(np.float64)
    mean = wide.sum() / n
    return float(mean), float(np.sqrt(max(float(np.dot(wide, wide)) / n - mean * mean, 0.0)))


@dataclass
class TopScores:
    """A query's best keys and the z-scale of its BM25 scores over every key searched."""

    top: np.ndarray  # positions in the keys, best first
    mean: float
    std: float
    values_at: Callable[[np.ndarray], np.ndarray]  # the scores at positions in the keys

    def standardized(self, positions: np.ndarray) -> np.ndarray:
        """z-scores at these positions (0 where the signal is flat), as fusion.standardize
        of the scores of every key gives them."""
        if self.std <= 0:
            return np.zeros(len(positions))
        return (np.asarray(self.values_at(positions), np.float64) - self.mean) / self.std


def follow(cache: Path, generation: int, prior: "Bm25Index | None", live_keys: Callable[[], np.ndarray],
           texts: Callable[[np.ndarray], list[str]], batch: int | None = None,
           version: str = "") -> Bm25Index:
    """The BM25 index of the catalog's `generation`: this process's previous one or the saved
    one brought up to date, else built. Saved again when it was built or merged (a small
    update is cheap to redo in each process). version: changes when texts changed under ids
    that stay live (a document's new file name): neither the previous nor the saved index is
    then reused."""
    stamp = _stamp(version)
    base = prior if prior is not None and prior.version == version else None
    if base is None:
        loaded = Bm25Index.load(cache, stamp)
        base = loaded[0] if loaded else None
    keys = live_keys()
    index = Bm25Index.built(keys, texts, batch) if base is None else base.updated(keys, texts, batch)
    # Saved when built or merged; a small update (new texts, deletions) is cheap for each
    # process to redo, and saving would rewrite every segment (1.8 GB of postings at 1M pages).
    index.version = version
    if base is None or index.merged_now:
        try:
            index.save(cache, {**stamp, "generation": generation})
        except OSError:  # a read-only index still searches; it just rebuilds next time
            pass
        index.merged_now = False  # saved: the next unchanged generation must not save it again
    return index
