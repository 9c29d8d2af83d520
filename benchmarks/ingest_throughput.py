"""Ingest a folder of PDFs into a fresh index; print pages/s, OCR pages/s, bytes/page, peak memory.

    python benchmarks/ingest_throughput.py ../shared/eval/financebench/pdfs --index /tmp/fb-index
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from docpress import Index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--index", required=True)
    parser.add_argument("--ocr", default="auto")
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    args = parser.parse_args()

    started = time.perf_counter()
    index = Index.create(args.index)
    load_s = time.perf_counter() - started
    last = [time.perf_counter()]

    def progress(path: str, done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            print(f"  {path.rsplit('/', 1)[-1]} {done}/{total}", file=sys.stderr, flush=True)

    report = index.add(args.paths, ocr=args.ocr, progress=progress,
                       on_skip=lambda s: print(f"skipped {s.path}: {s.reason}", file=sys.stderr))
    info = index.info()
    text_pages = report.pages - report.ocr_pages
    text_seconds = report.seconds - report.ocr_seconds
    result = {
        "documents": info["documents"], "pages": report.pages, "ocr_pages": report.ocr_pages,
        "skipped": len(report.skipped), "model_load_s": round(load_s, 2),
        "ingest_s": round(report.seconds, 1),
        "pages_per_s": round(report.pages_per_second, 2),
        "text_pages_per_s": round(text_pages / text_seconds, 2) if text_seconds else None,
        "ocr_s_per_page": round(report.ocr_seconds / report.ocr_pages, 2) if report.ocr_pages else None,
        "vectors_per_page": round(info["vectors"] / max(info["pages"], 1), 1),
        "bytes_per_page": info["bytes_per_page"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.json_out:
        with open(args.json_out, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
