"""Evaluate an index on a queries file (FinanceBench's JSONL format): every metric, every method."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from docpress.errors import DocpressError
from docpress.jsonl import read_jsonl
from retriever.metrics import Item, score_run


@dataclass
class Query:
    qid: str
    text: str
    relevant: set[Item]
    doc: str | None  # the document the question is about (for --within-doc)


def load_queries(path: Path) -> list[Query]:
    """Read JSONL lines {qid, query, relevant: [{doc, page}], doc}; pages are 0-based."""
    def parse(row: dict, n: int) -> Query:
        relevant = {(Path(r["doc"]).name, int(r["page"])) for r in row["relevant"]}
        return Query(str(row.get("qid", n)), row["query"], relevant, row.get("doc"))

    return read_jsonl(path, parse, "query", '{"query": ..., "relevant": [{"doc": ..., "page": 0}]}')


def evaluate(index, queries: list[Query], method: str, within_doc: bool = False,
             k: int = 10) -> dict:
    """Run every query and score the rankings; returns metrics (percent), p50/p95 latency of a
    search, and apart from them `load_s`: the first search's extra time (the model loads and
    the caches build then), which the latencies leave out."""
    rankings, latencies = [], []
    started = time.perf_counter()
    if queries:
        index.search(queries[0].text, k=k, method=method)  # warm: model and caches
    load_s = time.perf_counter() - started
    for q in queries:
        if within_doc and not q.doc:
            raise DocpressError(f"query {q.qid} has no 'doc' field, needed for --within-doc")
        started = time.perf_counter()
        hits = index.search(q.text, k=k, method=method,
                            path=Path(q.doc).name if within_doc else None)
        latencies.append(time.perf_counter() - started)
        rankings.append([(Path(h.path).name, h.page) for h in hits])
    metrics = score_run(rankings, [q.relevant for q in queries])
    latencies.sort()
    metrics["p50_ms"] = 1000 * latencies[len(latencies) // 2]
    metrics["p95_ms"] = 1000 * latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))]
    metrics["load_s"] = load_s
    return metrics
