"""Query-token weights for MaxSim: today's rule (punctuation 0, every other token 1) against
weights from the corpus, measured on a dev set with every question, corpus-wide and within its
document, for maxsim and hybrid.

    python benchmarks/token_weights_study.py --index DIR --queries Q --out runs.json \
        [--variants base,stop,idf,sqrtidf,idfstop] [--methods maxsim,hybrid]
    python benchmarks/token_weights_study.py --table runs.json [more.json ...]

Variants (each times today's punctuation mask):
- base: today's rule;
- stop: English stopwords (the list BM25 drops) weigh 0;
- idf: each WordPiece token weighs its inverse document frequency over the index's pages,
  log(1 + (N - df + 0.5) / (df + 0.5)), counted with the encoder's own tokenizer;
- sqrtidf: the square root of that;
- idfstop: idf, stopwords 0.
The search runs exactly (no first stage), so only the weights differ. `--table` prints R@5,
nDCG@5 and the paired bootstrap 95% interval of the nDCG@5 difference against `base`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

import retriever.lanes as lanes  # noqa: E402
from docpress import Index  # noqa: E402
from docpress.tokens import token_weights  # noqa: E402
from retriever.evaluate import load_queries  # noqa: E402
from retriever.metrics import METRICS  # noqa: E402


def wordpiece_idf(index: Index) -> tuple[np.ndarray, object]:
    """(idf of every WordPiece id over the index's pages, the tokenizer)."""
    tokenizer = index.searcher.main.encoder.tokenizer
    table = index.catalog.page_table()
    got, texts = index.catalog.page_texts(table.page_ids)
    df = np.zeros(tokenizer._tok.get_vocab_size() + 1, np.int64)
    for start in range(0, len(texts), 512):
        for ids in tokenizer(texts[start:start + 512])["input_ids"]:
            df[np.unique(np.asarray(ids, np.int64))] += 1
    n = len(texts)
    return np.log(1 + (n - df + 0.5) / (df + 0.5)), tokenizer


def weigher(kind: str, idf: np.ndarray, tokenizer):
    from bm25s.stopwords import STOPWORDS_EN

    stop = set(STOPWORDS_EN)

    def weights(tokens: list[str]) -> np.ndarray:
        w = token_weights(tokens)
        if kind == "base":
            return w
        if kind in ("stop", "idfstop"):
            w = w * np.asarray([0.0 if t in stop else 1.0 for t in tokens], np.float32)
        if kind == "stop":
            return w
        of = idf[[tokenizer._tok.token_to_id(t) or 0 for t in tokens]].astype(np.float32)
        if kind in ("idf", "idfstop"):
            return w * of
        if kind == "sqrtidf":
            return w * np.sqrt(of)
        raise SystemExit(f"unknown variant {kind!r}")

    return weights


def run(args) -> None:
    queries = load_queries(Path(args.queries))
    runs = {}
    with Index.open(args.index) as index:
        index.searcher.first_stages = False
        idf, tokenizer = wordpiece_idf(index)
        for kind in args.variants.split(","):
            lanes.token_weights = weigher(kind, idf, tokenizer)  # what Lane.query_matrix applies
            for method in args.methods.split(","):
                for within in (False, True):
                    per_query = []
                    for q in queries:
                        hits = index.search(q.text, k=10, method=method,
                                            path=Path(q.doc).name if within else None)
                        ranked = [(Path(h.path).name, h.page) for h in hits]
                        per_query.append([fn(ranked, q.relevant) for fn in METRICS.values()])
                    key = f"{kind} {method} {'within' if within else 'corpus'}"
                    runs[key] = per_query
                    print(key, " ".join(f"{m}={100 * v:.1f}" for m, v in zip(METRICS, np.mean(per_query, 0))),
                          file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps({"metrics": list(METRICS), "runs": runs}))


def bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    diffs = 100 * (a[idx] - b[idx]).mean(1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def table(paths: list[str]) -> None:
    print("| set | variant | method | setting | R@5 | nDCG@5 | nDCG@5 vs base, 95% |")
    print("|---|---|---|---|---:|---:|---|")
    for path in paths:
        data = json.loads(Path(path).read_text())
        r5, ndcg = data["metrics"].index("R@5"), data["metrics"].index("nDCG@5")
        for key, per_query in data["runs"].items():
            kind, method, where = key.split()
            a, b = np.asarray(per_query), np.asarray(data["runs"][f"base {method} {where}"])
            lo, hi = bootstrap(a[:, ndcg], b[:, ndcg])
            print(f"| {Path(path).stem} | {kind} | {method} | {where} | {100 * a[:, r5].mean():.1f} | "
                  f"{100 * a[:, ndcg].mean():.1f} | [{lo:+.1f}, {hi:+.1f}] |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index")
    parser.add_argument("--queries")
    parser.add_argument("--out")
    parser.add_argument("--variants", default="base,stop,idf,sqrtidf,idfstop")
    parser.add_argument("--methods", default="maxsim,hybrid")
    parser.add_argument("--table", nargs="+", help="print the table of these runs files")
    args = parser.parse_args()
    if args.table:
        table(args.table)
    elif args.index and args.queries and args.out:
        run(args)
    else:
        parser.error("give --index, --queries and --out, or --table FILES")


if __name__ == "__main__":
    main()
