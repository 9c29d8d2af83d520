"""Per-index caches behind the search signals: BM25 indexes and page head vectors."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from indexer.catalog import RENAMED, Catalog, PageTable
from indexer.first_stage import TokenIvf
from indexer.layout import FIRST_STAGE_FOLDER, cache_folder
from indexer.page_first_stage import PageIvf, positions
from indexer.stores.base import VectorStore
from retriever.bm25 import Bm25Index, follow, update_saves

HEAD_TOKENS = 32  # tokens that make a page's head vector (its title or heading)
HEAD_WORDS = 40  # words of a page's head for BM25
PROFILE_WORDS = 100  # words of a document's start, with its file name and title, for BM25
SAVE_SHARE = 0.1  # head vectors are saved again once this share of them is new since the last save
FEW_HEADS = 4096  # (or 1% of the pages) computed alone for the head first stage (_heads_for_stage)
# The BM25 indexes, by their SignalCache method: cache folder, the method giving their keys
# (pages or documents), and whether their texts start with a file name (a rename changes them)
BM25_INDEXES = {"page_bm25": ("bm25-pages", "_page_ids", False), "head_bm25": ("bm25-heads", "_page_ids", False),
                "profile_bm25": ("bm25-profiles", "_doc_ids", True),
                "document_bm25": ("bm25-documents", "_doc_ids", True)}
FIRST_STAGES = ("head", "dense", "tokens")  # the FAISS first stages, by name (hybrid's two, maxsim's)
DOCUMENTS_PER_READ = 64  # whole documents read and tokenised at once (a filing is ~100k words)
# A later window beats a page's first window for the dense signal only by this much cosine:
# the first holds the title and opening lines (the best single window on FinanceBench's
# statements), the later ones what a long page says further down (benchmarks/results/fusion.md).
LATER_WINDOW_MARGIN = 0.02


def page_dense(windows: np.ndarray) -> np.ndarray:
    """The dense signal of each page from Store.dense's (n_pages, n_windows) cosines: its first
    window, or a later one that beats it by more than LATER_WINDOW_MARGIN (-inf: no window).

    >>> [round(float(x), 2) for x in page_dense(np.array([[0.50, 0.51], [0.50, 0.60], [0.4, -np.inf]], np.float32))]
    [0.5, 0.58, 0.4]
    """
    first = windows[:, 0]
    if windows.shape[1] == 1:
        return first
    return np.maximum(first, windows[:, 1:].max(axis=1) - np.float32(LATER_WINDOW_MARGIN))


def page_dense_flat(scores: np.ndarray, first: np.ndarray, count: np.ndarray, pool_count: np.ndarray) -> np.ndarray:
    """page_dense from Store.window_scores' flat scores, without the (n_pages, n_windows) array
    (10k filings of up to 20 windows: 2.8 -> 1.3 ms). Later windows are taken one position at
    a time over the pages that have one there, fewer at each step.

    >>> counts = np.array([2, 1, 0])
    >>> [round(float(x), 2) for x in page_dense_flat(np.array([0.5, 0.6, 0.4, 0.3], np.float32),
    ...                                              np.array([0, 2, 3]), counts, counts)]
    [0.58, 0.4, -inf]
    """
    count = np.minimum(count, pool_count)  # the catalog's count (pool_count) rules, as in Store.dense
    out = np.full(len(count), -np.inf, np.float32)
    if len(scores) == 0:
        return out
    has = np.flatnonzero(count > 0)
    out[has] = np.take(scores, first[has], mode="clip")
    later = np.full(len(count), -np.inf, np.float32)
    rows, at = np.flatnonzero(count > 1), 1
    while len(rows):
        later[rows] = np.maximum(later[rows], np.take(scores, first[rows] + at, mode="clip"))
        at += 1
        rows = rows[count[rows] > at]
    return np.maximum(out, later - np.float32(LATER_WINDOW_MARGIN))


def _vectors_identity(store: VectorStore) -> str:
    """Which vectors the rows hold: a re-coded or compacted store (a new folder) has its
    head vectors recomputed; within one folder rows are only appended."""
    compressor = getattr(store, "compressor", None)
    folder = getattr(store, "dir", None)
    return f"{compressor.fingerprint() if compressor is not None else store.name}@{folder and Path(folder).name}"


def _still_valid(page_ids: np.ndarray, vec_start: np.ndarray, table: PageTable) -> tuple[np.ndarray, np.ndarray]:
    """(rows of `table`, rows of the saved heads) of the pages whose saved head still holds:
    the same page id on the same store rows (the catalog never gives an id twice, local rows
    are only appended, and a server store's pages all have vec_start -1)."""
    ahead = len(page_ids)
    if 0 < ahead <= len(table) and np.array_equal(table.page_ids[:ahead], page_ids) and \
            np.array_equal(table.vec_start[:ahead], vec_start):
        return np.arange(ahead), np.arange(ahead)  # pages only appended: the old rows in one piece
    if not ahead:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(page_ids)
    where = np.clip(np.searchsorted(page_ids, table.page_ids, sorter=order), 0, len(order) - 1)
    known = (page_ids[order[where]] == table.page_ids) & (vec_start[order[where]] == table.vec_start)
    return np.flatnonzero(known), order[where[known]]


def _load_heads(path: Path):
    """(page_ids, SavedHeads, vectors identity, generation, vec_starts) saved by a reader, or
    None. The heads themselves are read when needed, a block at a time (SavedHeads)."""
    try:
        with np.load(path) as saved:
            if "heads" not in saved.files:
                return None
            page_ids, identity, generation = saved["page_ids"], str(saved["identity"]), int(saved["generation"])
            return page_ids, SavedHeads(path, identity, generation, len(page_ids)), identity, generation, \
                saved["vec_start"]
    except Exception:  # noqa: BLE001 - missing, damaged or older: derived data, rebuilt
        return None


class SavedHeads:
    """The head vectors in a saved heads.npz, read from the file when needed: whole, or a
    block of rows at a time into the new array, so that a million saved heads (768 MB) are
    never in memory beside the million new ones while they are carried over."""

    BLOCK = 65536

    def __init__(self, path: Path, identity: str, generation: int, n: int):
        self.path, self.identity, self.generation, self.n = path, identity, generation, n

    def _check(self, archive) -> None:
        """The file is still the one whose ids were read (another reader may have replaced
        it since): else ValueError, and the caller computes the heads again."""
        if str(archive["identity"]) != self.identity or int(archive["generation"]) != self.generation:
            raise ValueError(f"{self.path} was replaced")

    def whole(self) -> np.ndarray:
        with np.load(self.path) as saved:
            self._check(saved)
            heads = saved["heads"].astype(np.float16, copy=False)
        if heads.shape[0] != self.n:
            raise ValueError(f"{self.path}: {heads.shape[0]} heads for {self.n} pages")
        return heads

    def rows_into(self, target: np.ndarray, to: np.ndarray, rows: np.ndarray) -> None:
        """target[to] = saved[rows], reading the saved rows in order, a block at a time."""
        import zipfile

        order = np.argsort(rows, kind="stable")
        rows, to = rows[order], to[order]
        with open(self.path, "rb") as raw:  # one open file for the check and the rows
            with np.load(raw) as saved:
                self._check(saved)
            raw.seek(0)
            with zipfile.ZipFile(raw) as archive, archive.open("heads.npy") as fh:
                self._rows_into(fh, target, to, rows)

    def _rows_into(self, fh, target: np.ndarray, to: np.ndarray, rows: np.ndarray) -> None:
        version = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(fh)
        if fortran or len(shape) != 2 or shape[0] != self.n or shape[1] != target.shape[1]:
            raise ValueError(f"{self.path}: heads of another shape")
        for lo in range(0, shape[0], self.BLOCK):
            hi = min(shape[0], lo + self.BLOCK)
            data = fh.read((hi - lo) * shape[1] * dtype.itemsize)
            a, b = np.searchsorted(rows, [lo, hi])
            if a < b:
                block = np.frombuffer(data, dtype).reshape(hi - lo, shape[1])
                target[to[a:b]] = block[rows[a:b] - lo]


def _carry_rows(target: np.ndarray, to: np.ndarray, source, rows: np.ndarray) -> None:
    """target[to] = source[rows] for saved heads read from their file (SavedHeads) or heads
    in memory; rows that are the first len(rows) in order are one copy, not a gather."""
    if isinstance(source, SavedHeads):
        source.rows_into(target, to, rows)
    elif len(rows) and np.array_equal(to, rows) and rows[-1] == len(rows) - 1:
        target[:len(rows)] = source[:len(rows)]
    else:
        _copy_rows(target, to, source, rows)


def _copy_rows(target: np.ndarray, to: np.ndarray, source: np.ndarray, rows: np.ndarray,
               block: int = 65536) -> None:
    """target[to] = source[rows], a block at a time: one gather of a million heads made a
    768 MB temporary beside the old and the new array."""
    for at in range(0, len(to), block):
        target[to[at:at + block]] = source[rows[at:at + block]]


class SignalCache:
    """Lazily built, generation-stamped caches for one index folder.

    Every cache follows the catalog's generation (any add or remove): the BM25 indexes are
    rebuilt, the head vectors updated with the new pages only.
    """

    def __init__(self, directory: Path, catalog: Catalog, store: VectorStore):
        self.directory = Path(directory)
        self.catalog = catalog
        self.store = store
        self._cache: dict[str, tuple[int, object]] = {}

    def _get(self, name: str, build):
        generation = self.catalog.generation()
        hit = self._cache.get(name)
        if hit is None or hit[0] != generation:
            self._cache[name] = (generation, build(generation))
        return self._cache[name][1]

    def _bm25_of(self, which: str) -> tuple[str, Callable[[], np.ndarray], str]:
        """(cache folder name, its keys, its texts' version) of the BM25 index `which`."""
        name, keys, versioned = BM25_INDEXES[which]
        return name, getattr(self, keys), self._names_version() if versioned else ""

    def _bm25(self, which: str, texts: Callable[[np.ndarray], list[str]], batch: int | None = None) -> Bm25Index:
        name, keys, version = self._bm25_of(which)
        prior = self._cache.get(name)
        return self._get(name, lambda g: follow(cache_folder(self.directory) / name, g, prior[1] if prior else None,
                                                keys, texts, batch, version))

    def bm25_saves(self, which: str) -> bool:
        """Whether bringing the BM25 index `which` up here would save it for the other
        processes (retriever.bm25.update_saves); True where this process holds it already
        (keeping it current costs the new texts only)."""
        name, keys, version = self._bm25_of(which)
        return name in self._cache or update_saves(cache_folder(self.directory) / name, keys(), version)

    def _names_version(self) -> str:
        """Changes when a document takes another path: its texts here start with its file name."""
        return self.catalog.state(RENAMED, "0")

    def _page_ids(self) -> np.ndarray:
        return self.catalog.page_table().page_ids

    def _page_texts(self, page_ids: np.ndarray) -> list[str]:
        """The pages' texts in the order of `page_ids`."""
        got, texts = self.catalog.page_texts(page_ids)
        by_id = dict(zip(got.tolist(), texts))
        return [by_id.get(int(i), "") for i in page_ids]

    def _doc_ids(self) -> np.ndarray:
        return np.asarray([d.id for d in self.catalog.documents()], np.int64)

    def page_bm25(self) -> Bm25Index:
        """Over each page's whole text."""
        return self._bm25("page_bm25", self._page_texts)

    def head_bm25(self) -> Bm25Index:
        """Over each page's first words (titles, headings)."""
        return self._bm25("head_bm25", lambda ids: [" ".join(t.split(" ")[:HEAD_WORDS]) for t in self._page_texts(ids)])

    def profile_bm25(self) -> Bm25Index:
        """Over each document's file name, title and opening words: which document is meant."""
        return self._bm25("profile_bm25", lambda ids: self.catalog.document_texts(PROFILE_WORDS, ids)[1])

    def document_bm25(self) -> Bm25Index:
        """Over each document's whole text."""
        return self._bm25("document_bm25", lambda ids: self.catalog.document_texts(None, ids)[1],
                          batch=DOCUMENTS_PER_READ)

    def token_ivf(self, build: bool = True, defer_drift: bool = False) -> TokenIvf | None:
        """The main store's token first stage (maxsim), in step with the catalog; None where
        an exact scan is the right tool (few rows, or a store without float rows: a server).
        build=False (a search): None too where files would have to be built, or are being
        written by another thread or process: the search scans exactly rather than wait
        (a build takes minutes at 100k pages; ingest and rm build at their end).
        defer_drift: files that only outgrew their centroids are extended and keep serving;
        `outgrown_first_stages` names them, `refit_first_stages` rebuilds them."""
        return self._first_stage("tokens", lambda folder, identity: TokenIvf(folder, self.store, identity),
                                 lambda stage: stage.sync(self.catalog.page_table(), build, defer_drift), build)

    def page_ivf(self, name: str, build: bool = True, defer_drift: bool = False) -> PageIvf | None:
        """hybrid's first stage for one vector signal, "head" or "dense" (by the first window),
        in step with the catalog; None below its page count or on a store without float rows
        (build=False, defer_drift: as token_ivf)."""
        return self._first_stage(name, lambda folder, identity: PageIvf(folder, name, identity),
                                 lambda stage: stage.sync(self.catalog.page_table(), self._page_vectors(name),
                                                          build, defer_drift), build)

    def _page_vectors(self, name: str) -> Callable[[PageTable], np.ndarray]:
        return {"head": self._heads_for_stage, "dense": self.store.first_windows}[name]

    def _heads_for_stage(self, table: PageTable) -> np.ndarray:
        """Head vectors for the head first stage: the kept ones, unless this process holds
        none and the pages are few (an extension by a writer that will not search: 100 pages
        computed alone, not 100k kept heads carried over for them, 2.6 s at 100k pages; a
        build's or refit's blocks of ADD_BLOCK pages go through the kept heads). The same
        values either way: the kept heads are these, rounded to float16 as here."""
        few = max(FEW_HEADS, len(self.catalog.page_table()) // 100)
        if "heads" not in self._cache and len(table) <= few:
            return self.store.head_vectors(table, HEAD_TOKENS).astype(np.float16).astype(np.float32)
        return self.head_vectors(table)

    def outgrown_first_stages(self) -> list[str]:
        """The first stages a writer's deferring sync found outgrown (their files serve on)."""
        stages = {name: self._cache.get(f"ivf-{name}") for name in FIRST_STAGES}
        return [name for name, hit in stages.items()
                if hit is not None and hit[1][1] is not None and hit[1][1].outgrown]

    def first_stage(self, name: str, build: bool = True, defer_drift: bool = False) -> TokenIvf | PageIvf | None:
        """token_ivf ("tokens") or page_ivf ("head", "dense") by name (FIRST_STAGES)."""
        if name == "tokens":
            return self.token_ivf(build, defer_drift)
        return self.page_ivf(name, build, defer_drift)

    def refit_first_stages(self) -> list[str]:
        """Rebuild the first stages that outgrew their centroids, each while its old files
        serve searches and writers (IvfFiles.rebuild); returns those rebuilt."""
        done = []
        table = self.catalog.page_table()
        for name in FIRST_STAGES:
            stage = self.first_stage(name, defer_drift=True)
            if stage is None or not stage.outgrown:
                continue
            vectors = [] if name == "tokens" else [self._page_vectors(name)]
            if stage.rebuild(table, *vectors):
                done.append(name)
        return done

    def _first_stage(self, name: str, make: Callable, sync: Callable, build: bool):
        """A FAISS first stage (indexer.ivf_files) synced once per generation; the same object
        is kept across generations while the vectors are the same, so a write only extends it.
        A search's None (build=False) is not kept: the next search looks again."""
        if not self.store.capabilities.float_rows:
            return None
        identity = _vectors_identity(self.store)
        key = f"ivf-{name}"

        def follow(generation: int):
            prior = self._cache.get(key)
            stage = prior[1][0] if prior and prior[1][0].identity == identity \
                else make(cache_folder(self.directory) / FIRST_STAGE_FOLDER, identity)
            return stage, sync(stage), build

        generation = self.catalog.generation()
        hit = self._cache.get(key)
        # a writer's call (build) is not answered by a search's sync of this generation, which
        # neither built nor checked for drift; a search's None is never kept
        if hit is not None and hit[0] == generation and (hit[1][2] or not build) and \
                (build or hit[1][1] is not None):
            return hit[1][1]
        stage, covered, built = follow(generation)
        self._cache[key] = (generation if build or covered is not None else -1, (stage, covered, built))
        return covered

    def _heads(self) -> tuple[np.ndarray, np.ndarray]:
        """(page_ids, (n, dim) float16 head vectors) of every live page, in page-table order.

        Kept up to date incrementally: after a write only the new pages' heads are computed
        (the rest carry over by page id), unless the vectors themselves changed (another
        codec), which recomputes them all."""
        identity = _vectors_identity(self.store)

        def build(generation: int):
            path = cache_folder(self.directory) / "heads.npz"
            prior = self._cache.get("heads")
            prior = prior[1] if prior else _load_heads(path)  # from disk: the heads not read yet
            everything = self.catalog.page_table()
            if prior is not None and prior[2] == identity and int(prior[3]) == generation:
                if isinstance(prior[1], SavedHeads):
                    try:
                        return (prior[0], prior[1].whole(), *prior[2:])
                    except Exception:  # noqa: BLE001 - damaged since: rebuilt below
                        prior = None
                else:
                    return prior
            heads = np.zeros((len(everything), self.store.dim), np.float16)
            fresh = np.ones(len(everything), bool)
            carried = False  # rows taken over from `prior`
            # Carried over by page id and rows: the catalog never gives a page id twice, and
            # local rows are only appended (a server store's pages all have vec_start -1).
            try:
                if prior is not None and prior[2] == identity and len(prior[0]):
                    rows, saved = _still_valid(prior[0], prior[4], everything)
                    _carry_rows(heads, rows, prior[1], saved)
                    fresh[rows] = False
                    carried = True
            except Exception:  # noqa: BLE001 - the saved heads damaged since their state was read
                fresh[:], carried = True, False
            if fresh.any():
                heads[fresh] = self.store.head_vectors(everything.subset(np.flatnonzero(fresh)), HEAD_TOKENS)
            # Saved when most of it is new; a few new pages are cheap for each reader to add,
            # and saving rewrites every head (768 MB at 1M pages).
            unsaved = int(fresh.sum()) + (prior[5] if prior is not None and len(prior) > 5 and carried else 0)
            if unsaved <= SAVE_SHARE * len(everything) and carried:
                return everything.page_ids, heads, identity, generation, everything.vec_start, unsaved
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f"heads.tmp-{os.getpid()}-{threading.get_ident()}.npz")
                np.savez(tmp, generation=generation, page_ids=everything.page_ids,
                         heads=heads, identity=identity, vec_start=everything.vec_start)
                os.replace(tmp, path)  # whole or not at all, for the other readers
            except OSError:
                pass
            # float16 in memory as on disk: half the bytes a query reads (and 0.8 GB at 1M pages)
            return everything.page_ids, heads, identity, generation, everything.vec_start, 0

        page_ids, heads, *_ = self._get("heads", build)
        return page_ids, heads

    @staticmethod
    def _rows(page_ids: np.ndarray, table: PageTable):
        """Where the pages of `table` sit in the cache (a slice when it is every page, the
        common case: no gather)."""
        if len(page_ids) == len(table) and np.array_equal(page_ids, table.page_ids):
            return slice(None)
        return positions(page_ids, table.page_ids)

    def heads_save(self) -> bool:
        """Whether bringing the head vectors up in a process without them would save them:
        none saved of these vectors, or more than SAVE_SHARE of the pages new since. Reads the
        saved page ids alone (a writer that will not search skips the rest: carrying 1M saved
        heads over and computing the unsaved ones took 4.5 s)."""
        prior = _load_heads(cache_folder(self.directory) / "heads.npz")
        if prior is None or prior[2] != _vectors_identity(self.store):
            return True
        everything = self.catalog.page_table()
        fresh = len(everything) - len(_still_valid(prior[0], prior[4], everything)[0])
        return fresh > SAVE_SHARE * len(everything) or not len(prior[0])

    def warm_heads(self) -> None:
        """Bring the head vectors up to the catalog (without widening them all to float32)."""
        self._heads()

    def head_vectors(self, table: PageTable) -> np.ndarray:
        """(n_pages, dim) head vectors aligned with `table` (a subset of the live pages)."""
        import torch

        page_ids, heads = self._heads()
        return torch.from_numpy(heads[self._rows(page_ids, table)]).float().numpy()  # numpy widens float16 slowly

    def head_scores(self, table: PageTable, pooled: np.ndarray) -> np.ndarray:
        """Each page's head vector against a query's pooled vector, aligned with `table`."""
        page_ids, heads = self._heads()
        rows = self._rows(page_ids, table)
        import torch

        # A float16 product on the float16 rows, as for the whole table: a page scores the
        # same with and without a filter (100k pages: 2.5 ms, float32 rows took 6.5; 3,500
        # gathered rows: 0.4 ms, widened to float32 1.2 ms).
        heads, query = torch.from_numpy(heads), torch.from_numpy(np.ascontiguousarray(pooled, np.float32)).half()
        if isinstance(rows, np.ndarray) and len(rows) * 4 < len(page_ids):  # a filter, a pool
            return (heads.index_select(0, torch.from_numpy(rows.astype(np.int64, copy=False))) @ query).float().numpy()
        return (heads @ query).float().numpy()[rows]
