"""Search at scale, simulated: an index of N pages grown from a real one, timed per method.

    python benchmarks/scale.py --source /tmp/mmlb-index --queries ../shared/eval/mmlongbench-dev/queries.jsonl \
        --pages 100000 --work /tmp/scale --json

The simulation: the source index (an ingested corpus, compressed) is copied, then its pages
are appended again and again as new documents until the index holds N pages. Each copy's
codes get noise (every code bit flipped with probability --noise; the pooled codes' low bit
flipped with probability 0.3), so copies are near, not exact, duplicates of real pages;
their texts are the real pages' texts. Nothing is encoded: the build costs what the store
and catalog writes cost. With --store qdrant-edge the index keeps its vectors in Qdrant's engine
in-process: every page is a copy, its decoded vectors plus Gaussian noise (sigma 0.02 a
dimension, normalised again), since the engine stores float vectors, not docpress's codes.

Printed as one JSON object: per method, p50/p95 ms of the search alone (warm: the files read
once into the page cache, query vectors encoded beforehand) and p50 with query encoding; the first query after opening (it builds
the BM25 and head-vector caches); peak RSS; disk bytes per page; build seconds; adding 100
pages and deleting one document (store and catalog only, no encoding) and the first search
after each. maxsim goes through its token first stage (indexer/first_stage.py) past 400k token
rows, hybrid through its page first stage (indexer/page_first_stage.py) past 150k pages; their
recall@10 against the exhaustive scan is printed as is and by original page (the copies of one
page tie up to their noise, so which copy wins is noise). rrf, dense and bm25 score every
page: recall 1.0 by construction.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from docpress import Index
from indexer.catalog import PageRow
from indexer.stores.base import StoredPage, location_of

METHODS = ("hybrid", "rrf", "maxsim", "dense", "bm25")
FLOAT_NOISE = 0.02  # per-dimension sigma of the float copies (Qdrant Edge), before normalising


def _noisy(page, rng: np.random.Generator, noise: float):
    """A near copy of a compressed page: code bits flipped at random."""
    from docpress.compress.pipeline import CompressedPage

    codes = page.codes.copy()
    if codes.size and noise > 0:
        flips = rng.random((*codes.shape, 8)) < noise
        codes ^= np.packbits(flips, axis=-1).reshape(codes.shape)
    pooled = page.pooled.copy()
    if pooled.size:
        pooled ^= (rng.random(pooled.shape) < 0.3).astype(np.uint8)
    return CompressedPage(codes, page.boxes, page.words, pooled, page.n_in)


def _noisy_vectors(page, compressor, rng: np.random.Generator, sigma: float):
    """A near copy of a compressed page as float vectors (for a store that keeps floats, Qdrant
    Edge): the decoded rows plus Gaussian noise per dimension, normalised again."""
    vectors = compressor.decode_page(page)

    def jitter(x: np.ndarray) -> np.ndarray:
        if not len(x):
            return x
        x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    return type(vectors)(jitter(vectors.vectors), vectors.boxes, vectors.words, vectors.weights,
                         jitter(vectors.pooled))


class Grower:
    """Appends noisy copies of the source index's documents to an index: codes with flipped
    bits into a store of the same codec, or noisy float vectors into a Qdrant Edge store."""

    def __init__(self, source: Index, index: Index, seed: int, noise: float, tag: str = "copy"):
        self.index, self.noise, self.tag = index, noise, tag
        self.rng = np.random.default_rng(seed)
        catalog, store = source.catalog, source.store
        if not hasattr(store, "add_compressed"):
            sys.exit("the source index must be compressed (the default for 1,000 pages or more)")
        self.compressor = store.compressor
        table = catalog.page_table()
        self.docs = {}
        for i, page_id in enumerate(table.page_ids):
            row = catalog.page(int(page_id))
            self.docs.setdefault(row.doc_id, []).append((row, store.compressed_page(location_of(table, i))))
        self.titles = {d.id: d for d in catalog.documents()}
        self.round = 0

    def grow(self, pages: int, max_doc_pages: int | None = None) -> int:
        """Append copies of whole documents (cut to max_doc_pages) until `pages` are added."""
        catalog, store, lane = self.index.catalog, self.index.store, self.index.lanes[0]
        added = 0
        while added < pages:
            self.round += 1
            for doc_id, rows in self.docs.items():
                if added >= pages:
                    break
                rows = rows[:min(pages - added, max_doc_pages or len(rows))]
                doc = self.titles[doc_id]
                with catalog.transaction():
                    path = f"{doc.path}#{self.tag}{self.round}"
                    new_doc = catalog.insert_document(path, f"sim-{self.tag}{self.round}-{doc.sha256}", doc.title,
                                                      len(rows), {"copy": self.round})
                    first = catalog.next_page_id()
                    if hasattr(store, "add_compressed"):
                        locations = store.add_compressed([_noisy(p, self.rng, self.noise) for _, p in rows])
                    else:
                        locations = store.add([StoredPage(first + i, new_doc, _noisy_vectors(
                            p, self.compressor, self.rng, FLOAT_NOISE), r.text.split(" "))
                            for i, (r, p) in enumerate(rows)])
                    catalog.insert_pages([PageRow(new_doc, r.number, r.width, r.height, r.text, r.text_source,
                                                  id=first + i) for i, (r, _) in enumerate(rows)])
                    lane.place(catalog, {first + i: loc for i, loc in enumerate(locations)})
                added += len(rows)
        return added


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _source_of(index: Index) -> dict[int, tuple[str, int]]:
    """Each page's original: a copy's document path without its #copyN / #addN suffix, and
    its page number."""
    names = {d.id: re.sub(r"#(copy|add)\d+$", "", d.path) for d in index.catalog.documents()}
    table = index.catalog.page_table()
    return {int(p): (names[int(d)], int(n)) for p, d, n in zip(table.page_ids, table.doc_ids, table.numbers)}


def _recall(index: Index, queries: list[str], method: str, path: str | None = None) -> dict:
    """First-stage recall@10 against the exhaustive scan: the share of the exact top 10 the
    method's first stage returns, and the same counted by original page (a near-copy of an
    exact top-10 page counts: the simulation's copies of a page tie up to their noise).
    maxsim and hybrid have first stages; the other methods score every page."""
    searcher = index.searcher
    if method not in ("maxsim", "hybrid"):
        return {"first_stage": "none (every page scored)", "first_stage_recall_at_10": 1.0}
    sources = _source_of(index)
    recalls, by_source, exact_ms = [], [], []
    for q in queries:
        staged = {h.page_id for h in index.search(q, k=10, method=method, path=path)}
        searcher.first_stages = False
        started = time.perf_counter()
        exact = {h.page_id for h in index.search(q, k=10, method=method, path=path)}
        exact_ms.append((time.perf_counter() - started) * 1000)
        searcher.first_stages = True
        recalls.append(len(staged & exact) / max(len(exact), 1))
        wanted = {sources[p] for p in exact}
        by_source.append(len({sources[p] for p in staged} & wanted) / max(len(wanted), 1))
    if method == "maxsim":
        stage = searcher.cache.token_ivf()
        kind, nbytes = "token IVF-PQ", stage.nbytes() if stage else 0
    else:
        stage = searcher.cache.page_ivf("head")
        kind = "head and first-window IVF-SQ8, BM25's and the best documents' pages"
        nbytes = stage.nbytes() + searcher.cache.page_ivf("dense").nbytes() if stage else 0
    return {"first_stage": kind if stage else "none (a small index: exact scan)",
            "first_stage_recall_at_10": round(float(np.mean(recalls)), 3),
            "first_stage_recall_at_10_min": round(float(np.min(recalls)), 3),
            "first_stage_recall_at_10_by_original": round(float(np.mean(by_source)), 3),
            "exhaustive_p50_ms": round(statistics.median(exact_ms), 1),
            "first_stage_bytes_per_page": round(nbytes / len(sources))}


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", required=True, help="an ingested, compressed index")
    parser.add_argument("--queries", required=True, help="JSONL with a 'query' field")
    parser.add_argument("--pages", type=int, required=True)
    parser.add_argument("--work", required=True, help="where the grown index is built")
    parser.add_argument("--store", default="local", choices=["local", "qdrant-edge"],
                        help="local: the embedded store, the source's codec; qdrant-edge: Qdrant's "
                             "engine in-process (float16 token vectors, pip install 'docpress[qdrant-edge]')")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--n-queries", type=int, default=30)
    parser.add_argument("--noise", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--reuse", action="store_true",
                        help="search the index an earlier run left in --work instead of building it "
                             "again (build times then read 0; the add and delete steps change it)")
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    say = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    target = Path(args.work) / f"index-{args.pages}"
    if args.measure is None and args.reuse and (target / "manifest.json").exists():
        with Index.open(target) as index:
            if index.info()["pages"] < 0.99 * args.pages:
                sys.exit(f"{target} holds fewer than {args.pages} pages: run without --reuse")
        import subprocess  # the searches of the index already built, timed again (build: 0)

        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--measure", "0,0,0,0"])
        sys.exit(done.returncode)
    if args.measure is None:
        shutil.rmtree(target, ignore_errors=True)
        if args.store == "local":  # the source's pages and codec, grown by copies
            shutil.copytree(args.source, target, ignore=shutil.ignore_patterns("cache", "writer.*"))
        else:  # every page a copy, as floats in the engine's shard inside the index folder
            with Index.open(args.source) as source:
                Index.create(target, encoder=source.encoder, store="qdrant-edge:edge").close()
        started = time.perf_counter()
        with Index.open(args.source) as source, Index.open(target) as index, index.writing():
            have = index.info()["pages"]
            if args.pages > have:
                Grower(source, index, args.seed, args.noise).grow(args.pages - have)
        build_s = time.perf_counter() - started
        say(f"built {args.pages} pages in {build_s:.0f} s")
        # The search caches, as an ingest's end builds them (Index.warm_caches), timed apart:
        # BM25 and head vectors, hybrid's page IVFs, maxsim's token IVF (only if maxsim is run).
        with Index.open(target) as index:
            cache = index.searcher.cache
            caches_s = _timed(lambda: [build() for build in (cache.page_bm25, cache.head_bm25, cache.profile_bm25,
                                                              cache.document_bm25, cache._heads)])
            pages_s = _timed(lambda: (cache.page_ivf("head"), cache.page_ivf("dense")))
            tokens_s = _timed(cache.token_ivf) if "maxsim" in args.methods.split(",") else 0.0
        say(f"caches {caches_s:.0f} s, page IVFs {pages_s:.0f} s, token IVF {tokens_s:.0f} s")
        # The searches run in a fresh process: its peak RSS is a reader's, not the builder's
        # (whose mapped pages of every file it wrote would count).
        import subprocess

        done = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--measure", f"{build_s},{caches_s},{pages_s},{tokens_s}"])
        sys.exit(done.returncode)
    build_s, caches_s, pages_s, tokens_s = map(float, args.measure.split(","))

    lines = Path(args.queries).read_text().splitlines()
    queries = [json.loads(line)["query"] for line in lines if line.strip()][:args.n_queries]
    for file in target.rglob("*"):  # warm: the index's files in the page cache, as a server has them
        if file.is_file():
            with open(file, "rb") as fh:
                while fh.read(1 << 24):
                    pass
    index = Index.open(target)
    encoder = index.encoder
    encode_s = []
    encoded = {}
    for q in queries:
        started = time.perf_counter()
        encoded[q] = encoder.encode_queries([q])[0]
        encode_s.append(time.perf_counter() - started)
    real_encode = encoder.encode_queries
    encoder.encode_queries = lambda texts: [encoded[t] if t in encoded else real_encode([t])[0] for t in texts]
    first_query_s = _timed(lambda: index.search(queries[0], k=10))
    say(f"first query (builds the caches) {first_query_s:.1f} s")

    results = {}
    for method in args.methods.split(","):
        index.search(queries[0], k=10, method=method)  # warm this method's caches
        times = []
        for q in queries:
            times.append(_timed(lambda q=q: index.search(q, k=10, method=method)) * 1000)
        p50 = statistics.median(times)
        results[method] = {"p50_ms": round(p50, 1), "p95_ms": round(float(np.percentile(times, 95)), 1),
                           "p50_ms_with_encoding": round(p50 + statistics.median(encode_s) * 1000, 1),
                           **_recall(index, queries, method)}
        say(f"{method}: {results[method]}")
    # A filter that keeps one copy round of the documents (~1.6% of the pages at 100k): the
    # search stays exact on them (pre-filtered), timed per method too.
    glob = "*#copy1"
    kept = len(index.catalog.page_table(glob))
    filtered = {}
    for method in args.methods.split(","):
        index.search(queries[0], k=10, method=method, path=glob)
        times = [_timed(lambda q=q: index.search(q, k=10, method=method, path=glob)) * 1000 for q in queries]
        filtered[method] = {"p50_ms": round(statistics.median(times), 1)}
    # A wider filter (copy rounds 1 and 10-19, ~17% of the pages at 100k) that maxsim answers
    # through its first stage, candidates outside the filter dropped: timed, and its recall.
    wide = "*#copy1*"
    wide_kept = len(index.catalog.page_table(wide))
    if "maxsim" in args.methods.split(","):
        times = [_timed(lambda q=q: index.search(q, k=10, method="maxsim", path=wide)) * 1000 for q in queries]
        filtered_wide = {"glob": wide, "pages_kept": wide_kept, "maxsim": {
            "p50_ms": round(statistics.median(times), 1), **_recall(index, queries, "maxsim", wide)}}
    else:
        filtered_wide = {}
    index.close()

    with Index.open(target) as index:  # closed: a Qdrant Edge shard takes one opener at a time
        pages = index.info()["pages"]
    disk = _disk_bytes(target)
    with Index.open(target) as index:
        grower = Grower(Index.open(args.source), index, args.seed + 1, args.noise, "add")  # not timed
        grower.round = int(time.time())  # new paths even when an earlier run (--reuse) added some
        started = time.perf_counter()
        with index.writing():  # the lock, the writes and the catalog's backup, as an ingest has them
            grower.grow(100, max_doc_pages=100)
        add_s = time.perf_counter() - started
        index.encoder.encode_queries = encoder.encode_queries
        after_add_s = _timed(lambda: index.search(queries[1], k=10))
        victim = index.catalog.documents()[-1].path
        delete_s = _timed(lambda: index.remove(victim))
        after_delete_s = _timed(lambda: index.search(queries[2], k=10))
    out = {"pages": pages, "source": str(args.source), "noise": args.noise, "queries": len(queries),
           "store": args.store, "build_s": round(build_s, 1),
           "caches_build_s": round(caches_s, 1), "page_ivfs_build_s": round(pages_s, 1),
           "token_ivf_build_s": round(tokens_s, 1),
           "disk_bytes_per_page": round(disk / pages),
           "first_query_s": round(first_query_s, 2),
           "query_encoding_p50_ms": round(statistics.median(encode_s) * 1000, 1),
           "methods": results,
           "filter": {"glob": glob, "pages_kept": kept, "methods": filtered}, "filter_wide": filtered_wide,
           "add_100_pages_s": round(add_s, 2), "first_search_after_add_s": round(after_add_s, 2),
           "delete_document_s": round(delete_s, 2), "first_search_after_delete_s": round(after_delete_s, 2),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
