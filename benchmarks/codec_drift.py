"""Does a codec fitted early still code later documents well? (what `--compression auto` does)

`ingest --compression auto` fits the codec when the index first holds 1,000 pages and codes
every later page with it. This re-plays that on a finished index: for each preset, a hardlinked
copy of the index is compressed with a codec fitted only on the documents ingested first (up to
--fit-pages pages, in catalog order), and every method is evaluated corpus-wide and within
documents. Compare with `docpress compress PRESET` (fitted on all pages) + `docpress eval`.

    python benchmarks/codec_drift.py --index /work/runs/fb-index \\
        --queries ../shared/eval/financebench/queries.jsonl --work /work/runs/drift
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from docpress import Index  # noqa: E402
from retriever.evaluate import evaluate, load_queries  # noqa: E402

METHODS = ["hybrid", "maxsim", "dense"]


def linked_copy(src: Path, dst: Path) -> None:
    """The index at dst: vector files hardlinked (append-only, never written in place), the rest copied."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "vectors":
            shutil.copytree(item, dst / item.name, copy_function=os.link)
        elif item.is_dir():
            shutil.copytree(item, dst / item.name)
        else:
            shutil.copy2(item, dst / item.name)


def first_pages(index: Index, limit: int) -> np.ndarray:
    """Page ids of the documents ingested first, whole documents, until `limit` pages."""
    ids: list[int] = []
    rows = index.catalog.db.execute("SELECT doc_id, id FROM pages ORDER BY doc_id, number").fetchall()
    by_doc: dict[int, list[int]] = {}
    for doc_id, page_id in rows:
        by_doc.setdefault(doc_id, []).append(page_id)
    for doc_id in sorted(by_doc):
        if len(ids) >= limit:
            break
        ids.extend(by_doc[doc_id])
    return np.asarray(ids, np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", required=True, help="an uncompressed index (only read)")
    parser.add_argument("--queries", required=True)
    parser.add_argument("--work", required=True, help="folder for the compressed copies")
    parser.add_argument("--preset", action="append", help="presets [default: balanced, compact]")
    parser.add_argument("--fit-pages", type=int, default=1000)
    args = parser.parse_args()
    queries = load_queries(args.queries)
    out = {}
    print("| preset | fitted on | setting | method | R@5 | nDCG@5 |")
    print("|---|---|---|---|---:|---:|")
    for preset in args.preset or ["balanced", "compact"]:
        target = Path(args.work) / preset
        linked_copy(Path(args.index), target)
        index = Index.open(target)
        fit_on = first_pages(index, args.fit_pages)
        docs = len({int(d) for d in index.catalog.page_table().subset(
            np.isin(index.catalog.page_table().page_ids, fit_on)).doc_ids})
        index.compress(preset, fit_page_ids=fit_on)
        label = f"first {len(fit_on)} pages ({docs} documents)"
        for within in (False, True):
            for method in METHODS:
                m = evaluate(index, queries, method, within_doc=within)
                out[f"{preset}/{'within' if within else 'corpus'}/{method}"] = m
                print(f"| {preset} | {label} | {'within-doc' if within else 'corpus'} | {method} | "
                      f"{m['R@5']:.1f} | {m['nDCG@5']:.1f} |", flush=True)
        index.close()
    (Path(args.work) / "drift.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
