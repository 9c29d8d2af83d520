"""Every search method on an index, corpus-wide and within-document, as one markdown table.

    python benchmarks/eval_financebench.py --index /tmp/fb-index \
        --queries ../shared/eval/financebench/queries.jsonl
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from docpress import Index  # noqa: E402
from retriever.evaluate import evaluate, load_queries  # noqa: E402
from retriever.search import Method  # noqa: E402

COLUMNS = ("R@1", "R@5", "R@10", "Hit@5", "nDCG@5", "MRR@10", "p50_ms", "p95_ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--method", action="append", help="default: every method")
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    args = parser.parse_args()

    index = Index.open(args.index)
    queries = load_queries(args.queries)
    methods = args.method or [m.value for m in Method]
    index.search("warm up the model and caches", k=1)
    results = {}
    print(f"{len(queries)} queries, {index.info()['pages']} pages\n")
    print("| setting | method | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---:|" * len(COLUMNS))
    for within in (False, True):
        setting = "within-doc" if within else "corpus"
        for method in methods:
            metrics = evaluate(index, queries, method, within_doc=within)
            results[f"{setting}/{method}"] = metrics
            print(f"| {setting} | {method} | " + " | ".join(f"{metrics[c]:.1f}" for c in COLUMNS)
                  + " |", flush=True)
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
