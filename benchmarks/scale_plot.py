"""Draw search latency against index size from benchmarks/scale.py's JSON outputs.

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
        ax.plot(*zip(*points), marker="o", label=method)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("pages in the index")
    ax.set_ylabel("search p50, ms (2 cores, warm, no query encoding)")
    ax.set_title("docpress search latency against index size (simulated growth)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
