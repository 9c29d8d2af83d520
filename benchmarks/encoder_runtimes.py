"""The text encoder's runtimes side by side on real pages: pages/s and faithfulness.

    python benchmarks/encoder_runtimes.py ../shared/eval/financebench/pdfs --pages 240 --json out.json

Reads the text layer of the first pages of the given PDFs (spread over the files), then encodes
them with each runtime in ingest's batches (docpress.ingest.PAGES_PER_BATCH pages), in rounds
that alternate the runtimes so a busy machine slows them alike. Prints, per runtime, the median
pages/s and tokens/s over the rounds, the ratio to torch fp32, and the cosine of every token
vector against torch fp32 (mean and 1st percentile).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from docpress.encoders.text import TextTokenEncoder
from docpress.ingest import PAGES_PER_BATCH, expand_paths
from docpress.pdf.reader import read_pages

# name -> TextTokenEncoder options
RUNTIMES = {
    "torch fp32": {"runtime": "torch", "dtype": "float32"},
    "torch bf16": {"runtime": "torch", "dtype": "bfloat16"},
    "onnx fp32": {"runtime": "onnx"},
    "onnx int8": {"runtime": "onnx-int8"},
}


def sample_pages(paths: list[str], limit: int) -> list:
    """Up to `limit` pages with text, taken in turn from each file so no one file dominates."""
    files, _ = expand_paths(paths)
    per_file = [[p for p in read_pages(f) if p.words] for f in files]
    pages, i = [], 0
    while len(pages) < limit and any(i < len(f) for f in per_file):
        pages.extend(f[i] for f in per_file if i < len(f))
        i += 1
    return pages[:limit]


def encode_all(encoder, pages) -> tuple[float, list]:
    started = time.perf_counter()
    out = []
    for b in range(0, len(pages), PAGES_PER_BATCH):
        out.extend(encoder.encode_pages(pages[b:b + PAGES_PER_BATCH]))
    return time.perf_counter() - started, out


def cosines(reference: list, vectors: list) -> np.ndarray:
    """Per token, the cosine between a runtime's vector and torch fp32's (both normalised)."""
    return np.concatenate([(a.vectors * b.vectors).sum(1) for a, b in zip(reference, vectors)
                           if len(a.vectors)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--pages", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args()

    pages = sample_pages(args.paths, args.pages)
    names = args.runtimes.split(",")
    encoders = {}
    for name in names:
        started = time.perf_counter()
        encoders[name] = TextTokenEncoder(**RUNTIMES[name])
        encoders[name].encode_pages(pages[:4])  # warm: first-call allocations, lazy kernels
        print(f"loaded {name} in {time.perf_counter() - started:.1f} s")
    tokens = None
    seconds = {name: [] for name in names}
    outputs = {}
    for _ in range(args.rounds):
        for name in names:
            spent, outputs[name] = encode_all(encoders[name], pages)
            seconds[name].append(spent)
            tokens = sum(len(v.vectors) for v in outputs[name])
    reference = outputs.get("torch fp32") or outputs[names[0]]
    base = statistics.median(seconds[names[0]])
    rows = []
    for name in names:
        median = statistics.median(seconds[name])
        cos = cosines(reference, outputs[name])
        rows.append({"runtime": name, "pages_per_s": round(len(pages) / median, 2),
                     "tokens_per_s": round(tokens / median), "speed_vs_first": round(base / median, 2),
                     "cosine_mean": round(float(cos.mean()), 5),
                     "cosine_p01": round(float(np.percentile(cos, 1)), 5)})
    result = {"pages": len(pages), "tokens": tokens, "rounds": args.rounds, "runtimes": rows}
    print(f"{len(pages)} pages, {tokens} tokens, median of {args.rounds} rounds")
    print("| runtime | pages/s | tokens/s | speed vs " + names[0] + " | cosine mean | cosine p1 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['runtime']} | {r['pages_per_s']} | {r['tokens_per_s']} | {r['speed_vs_first']}x "
              f"| {r['cosine_mean']} | {r['cosine_p01']} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
