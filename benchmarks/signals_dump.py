"""Dump every ranking signal of every page for every question of a dev set, for fusion studies.

    python benchmarks/signals_dump.py --index IDX --queries Q.jsonl --out signals.npz

Per question and page: BM25 over the page, BM25 over its head, dense (as search reads it:
retriever.signals.page_dense), its first window and its best later window apart (-inf: none),
head vector, MaxSim (main lane, every page, exact), and the two document-level BM25 signals
spread to their pages. benchmarks/fusion_study.py reads the file and scores fusion rules,
corpus-wide and within each question's document, without re-encoding anything.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from docpress import Index  # noqa: E402
from retriever.evaluate import load_queries  # noqa: E402
from retriever.search import RERANK_CANDIDATES as BLOCK  # noqa: E402 - hybrid scores this many at once

SIGNALS = ("bm25", "bm25_head", "dense", "dense_first", "dense_later", "head", "maxsim", "profile", "document")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    index = Index.open(args.index)
    queries = load_queries(args.queries)
    searcher = index.searcher
    table = index.catalog.page_table()
    names = {d.id: Path(d.path).name for d in index.documents()}
    doc_names = np.asarray([names[int(d)] for d in table.doc_ids])
    main = searcher.main
    encoded = main.encoder.encode_queries([q.text for q in queries])
    doc_ids = np.unique(table.doc_ids)
    where = np.searchsorted(doc_ids, table.doc_ids)
    out = {s: np.zeros((len(queries), len(table)), np.float32) for s in SIGNALS}
    relevant = np.zeros((len(queries), len(table)), bool)
    started = time.perf_counter()
    for i, (q, qv) in enumerate(zip(queries, encoded)):
        cache = searcher.cache
        out["bm25"][i] = cache.page_bm25().scores(q.text, table.page_ids)
        out["bm25_head"][i] = cache.head_bm25().scores(q.text, table.page_ids)
        out["dense"][i] = searcher.dense(qv, table)
        windows = main.store.dense(qv.pooled, table)
        out["dense_first"][i] = windows[:, 0]
        out["dense_later"][i] = windows[:, 1:].max(axis=1) if windows.shape[1] > 1 else -np.inf
        out["head"][i] = searcher.head(qv, table)
        # in blocks of candidate size, as hybrid scores its candidates: exact on every store
        # (a compressed store scores larger sets on codes first)
        out["maxsim"][i] = np.concatenate([main.maxsim(index.catalog, qv, table.subset(slice(lo, lo + BLOCK)))
                                           for lo in range(0, len(table), BLOCK)])
        out["profile"][i] = cache.profile_bm25().scores(q.text, doc_ids)[where]
        out["document"][i] = cache.document_bm25().scores(q.text, doc_ids)[where]
        relevant[i] = [(n, int(p)) in q.relevant for n, p in zip(doc_names, table.numbers)]
    print(f"{len(queries)} queries x {len(table)} pages in {time.perf_counter() - started:.0f}s")
    np.savez_compressed(args.out, doc_names=doc_names, numbers=table.numbers, doc_ids=table.doc_ids,
                        query_docs=np.asarray([Path(q.doc).name if q.doc else "" for q in queries]),
                        n_relevant=np.asarray([len(q.relevant) for q in queries]),
                        relevant=relevant, **out)


if __name__ == "__main__":
    main()
