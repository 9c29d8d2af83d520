"""Bytes reclaimed by compaction after deleting a third of a dev set's documents.

    python benchmarks/compaction.py --index IDX --queries Q.jsonl --work DIR [--json]

Copies the index to DIR, removes every third document (in path order), compacts, and prints
the index folder's bytes at each step, the vector rows, and whether every query's top 10
(hybrid and maxsim) is the same before and after the compaction (it must be: the rows are
copied byte for byte).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from docpress import Index  # noqa: E402
from docpress.compact import folder_bytes  # noqa: E402
from retriever.evaluate import load_queries  # noqa: E402


def top10(index: Index, queries: list[str], method: str) -> list[list[tuple]]:
    return [[(h.page_id, round(h.score, 5)) for h in hits]
            for hits in index.search_many(queries, k=10, method=method)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, required=True)
    parser.add_argument("--queries", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    shutil.copytree(args.index, args.work)
    queries = [q.text for q in load_queries(args.queries)]
    rows = []
    with Index.open(args.work) as index:
        info = index.info()
        rows.append({"step": "as ingested", "bytes": folder_bytes(args.work), "documents": info["documents"],
                     "pages": info["pages"], "dead_rows_share": info["dead_rows_share"]})
        docs = sorted(d.path for d in index.documents())
        for path in docs[::3]:
            index.remove(path)
        info = index.info()
        rows.append({"step": f"removed {len(docs[::3])} of {len(docs)} documents", "bytes": folder_bytes(args.work),
                     "documents": info["documents"], "pages": info["pages"],
                     "dead_rows_share": info["dead_rows_share"]})
        before = {m: top10(index, queries, m) for m in ("hybrid", "maxsim")}
        started = time.perf_counter()
        report = index.compact()
        seconds = time.perf_counter() - started
        info = index.info()
        rows.append({"step": f"compacted ({seconds:.1f} s)", "bytes": folder_bytes(args.work),
                     "documents": info["documents"], "pages": info["pages"],
                     "dead_rows_share": info["dead_rows_share"]})
        after = {m: top10(index, queries, m) for m in ("hybrid", "maxsim")}
    same = {m: before[m] == after[m] for m in before}
    result = {"index": str(args.index), "compression": info["compression"], "steps": rows,
              "reclaimed_bytes": report.bytes_before - report.bytes_after,
              "vector_rows": [report.rows_before, report.rows_after], "top10_identical": same,
              "queries": len(queries)}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"index {args.index} ({info['compression']}), {len(queries)} queries")
    print("| step | bytes on disk | documents | pages | dead row share |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['bytes']:,} | {r['documents']} | {r['pages']:,} | {r['dead_rows_share']:.3f} |")
    print(f"\nreclaimed {result['reclaimed_bytes']:,} bytes; vector rows {report.rows_before:,} -> "
          f"{report.rows_after:,}; top-10 identical after compaction: {json.dumps(same)}")


if __name__ == "__main__":
    main()
