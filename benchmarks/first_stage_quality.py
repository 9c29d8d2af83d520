"""What the first stages cost in quality: every question of a dev set ranked with the first
stages forced on (at any index size) and with the exact scan, for hybrid and maxsim,
corpus-wide and within each question's document.

    python benchmarks/first_stage_quality.py --index FB --queries ../shared/eval/financebench/queries.jsonl

By default hybrid uses its first stage past 50k pages and maxsim past 400k token rows
(indexer/page_first_stage.py, indexer/first_stage.py); the dev sets are smaller, so this
lowers both thresholds to 0 and scores the same questions both ways. Prints one JSON object:
per method and setting, the metrics (R@1/5/10, nDCG@5, MRR@10) of both, and how often their
top 10 agree (recall@10 of the staged ranking against the exact one).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import indexer.first_stage as first_stage  # noqa: E402
import indexer.page_first_stage as page_first_stage  # noqa: E402
from docpress import Index  # noqa: E402
from retriever.evaluate import load_queries  # noqa: E402
from retriever.metrics import score_run  # noqa: E402


def _rankings(index: Index, queries, method: str, within_doc: bool, staged: bool):
    index.searcher.first_stages = staged
    out = []
    for q in queries:
        hits = index.search(q.text, k=10, method=method, path=Path(q.doc).name if within_doc else None)
        out.append([(Path(h.path).name, h.page) for h in hits])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--methods", default="hybrid,maxsim")
    args = parser.parse_args()
    first_stage.EXACT_ROWS = 0
    page_first_stage.EXACT_PAGES = 0
    queries = load_queries(Path(args.queries))
    report = {"index": args.index, "queries": len(queries), "results": {}}
    with Index.open(args.index) as index:
        # built here, as an ingest's end builds them: a search never builds a first stage
        cache = index.searcher.cache
        if cache.token_ivf() is None or cache.page_ivf("head") is None or cache.page_ivf("dense") is None:
            raise SystemExit(f"{args.index}: a first stage could not be built (a store without float rows?)")
        for method in args.methods.split(","):
            for within in (False, True):
                exact = _rankings(index, queries, method, within, staged=False)
                staged = _rankings(index, queries, method, within, staged=True)
                relevant = [q.relevant for q in queries]
                agree = [len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(staged, exact)]
                report["results"][f"{method}{' within-doc' if within else ''}"] = {
                    "exact": score_run(exact, relevant), "staged": score_run(staged, relevant),
                    "top10_agreement": round(sum(agree) / max(len(agree), 1), 4)}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
