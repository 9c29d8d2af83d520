"""Draw search latency against index size from benchmarks/scale.py's JSON outputs, and print
them as a markdown table.

    python benchmarks/scale_plot.py benchmarks/results/scale-*.json --out benchmarks/results/scale.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="JSON files written by scale.py --json")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = sorted((json.loads(Path(p).read_text()) for p in args.results), key=lambda r: r["pages"])
    methods = sorted({m for r in runs for m in r["methods"]})
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method in methods:
        points = [(r["pages"], r["methods"][method]["p50_ms"]) for r in runs if method in r["methods"]]
        line, = ax.plot(*zip(*points), marker="o", label=method)
        exact = [(r["pages"], r["methods"][method]["exhaustive_p50_ms"]) for r in runs
                 if "exhaustive_p50_ms" in r["methods"].get(method, {})]
        if exact:  # the same method scoring every page, for comparison
            ax.plot(*zip(*exact), marker="x", linestyle="--", color=line.get_color(),
                    label=f"{method}, every page scored")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pages in the index")
    ax.set_ylabel("search p50, ms (2 cores, warm, no query encoding)")
    ax.set_title("docpress search latency against index size (simulated growth)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(table(runs, methods))


def table(runs: list[dict], methods: list[str]) -> str:
    """Per size: each method's p50 / p95 ms, then the write and memory figures."""
    head = ["pages", *methods, "1% filter, hybrid", "first query s", "add 100 pages s",
            "first search after s", "delete doc s", "peak RSS MB", "bytes/page"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [f"{r['pages']:,}"]
        for m in methods:
            got = r["methods"].get(m)
            recall = got.get("first_stage_recall_at_10", 1.0) if got else 1.0
            exact = f", scan {got['exhaustive_p50_ms']}, recall {recall}" if got and "exhaustive_p50_ms" in got else ""
            cells.append(f"{got['p50_ms']} / {got['p95_ms']}{exact}" if got else "not run")
        hybrid = r.get("filter", {}).get("methods", {}).get("hybrid")
        cells += [f"{hybrid['p50_ms']}" if hybrid else "-", f"{r['first_query_s']}", f"{r['add_100_pages_s']}",
                  f"{r['first_search_after_add_s']}", f"{r['delete_document_s']}", f"{r['peak_rss_mb']:,}",
                  f"{r['disk_bytes_per_page']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
