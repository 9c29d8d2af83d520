"""Compression trade-off on an index: bytes per page against Recall@5 / nDCG@5 and MaxSim latency.

    python benchmarks/compression.py --index /work/runs/fb-index \
        --queries ../shared/eval/financebench/queries.jsonl --out /work/runs/compress

For every setting (a preset name, or NAME=JSON for explicit stages) it fits a Compressor on a
sample of the index's pages, re-encodes every page into a compressed store under OUT/NAME
(the index folder is only read), and scores the queries with the store's `maxsim`, corpus-wide
and within the query's document. The first row is the index's own bf16 store. Latency is the
median time of the `maxsim` call alone (query encoding excluded, the same for every row).
Writes OUT/compression.md (the table), OUT/compression.json and OUT/compression.png (the
Pareto front of bytes per page against nDCG@5).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

from docpress import Index  # noqa: E402
from docpress.compress import Compressor  # noqa: E402
from docpress.tokens import token_weights  # noqa: E402
from indexer.catalog import PageTable  # noqa: E402
from indexer.stores.compressed import CompressedStore, build_compressed_store  # noqa: E402
from retriever.evaluate import load_queries  # noqa: E402
from retriever.metrics import ndcg_at, score_run  # noqa: E402

_PF3 = '"prune": {"method": "lexical"}, "merge": {"method": "ward", "pool_factor": 3}'
DEFAULT_SETTINGS = [
    # Prune and merge alone (bf16 codes, f16 boxes): what fewer vectors cost before quantizing.
    'pf3-bf16={' + _PF3 + '}',
    # Projection + int8 on the same vectors.
    'pf3-pca128-int8={' + _PF3 + ', "reduce": {"method": "pca", "dims": 128}, '
    '"quantize": {"kind": "int8"}, "pooled": {"reduce": {"method": "pca", "dims": 128}, '
    '"quantize": {"kind": "int8"}}, "meta": {"boxes": "u8", "words": "u16"}}',
    "balanced",
    "compact",
    # compact's geometry with product quantization (24 one-byte codes, lookup-table MaxSim)
    'compact-pq24={"preset": "compact", "quantize": {"kind": "pq", "m": 24}}',
    # compact's codes scored by Hamming MaxSim, then the best 200 pages rescored in float
    'compact-hamming={"preset": "compact", "quantize": {"kind": "binary", "scaled": true}, '
    '"rerank": 200}',
    "tiny",
]
LOCATIONS = "locations.npy"  # (n_pages, 5) int64: page id, vec_start, vec_count, pool_start, pool_count


def parse_setting(text: str) -> tuple[str, dict | str]:
    if "=" in text:
        name, config = text.split("=", 1)
        return name.strip(), json.loads(config)
    return text.strip(), text.strip()


def relocated(table: PageTable, locations: np.ndarray) -> PageTable:
    """The table with each page's rows in the compressed store (same page order)."""
    by_id = {int(r[0]): r for r in locations}
    rows = np.stack([by_id[int(p)] for p in table.page_ids]) if len(table) else np.zeros((0, 5), np.int64)
    return PageTable(table.page_ids, table.doc_ids, table.numbers, rows[:, 1].copy(),
                     rows[:, 2].copy(), rows[:, 3].copy(), rows[:, 4].copy())


def build(index: Index, table: PageTable, page_words: dict, name: str, config, out: Path,
          sample_vectors: int, reuse: bool) -> tuple[CompressedStore, PageTable, float]:
    """Build (or reopen, with --reuse and a matching config) the compressed store of a setting."""
    folder = out / name
    expected = Compressor.from_config(config).config()
    if reuse and (folder / LOCATIONS).exists():
        saved = json.loads((folder / "codec" / "codec.json").read_text())["config"]
        if saved == expected:
            store = CompressedStore(folder, expected=expected)
            return store, relocated(table, np.load(folder / LOCATIONS)), float("nan")
    if folder.exists():
        shutil.rmtree(folder)
    started = time.perf_counter()
    store, locations = build_compressed_store(index.store, table, page_words,
                                              Compressor.from_config(config), folder,
                                              sample_vectors=sample_vectors)
    seconds = time.perf_counter() - started
    rows = np.asarray([[pid, l.vec_start, l.vec_count, l.pool_start, l.pool_count]
                       for pid, l in locations.items()], np.int64)
    np.save(folder / LOCATIONS, rows)
    return store, relocated(table, rows), seconds


def evaluate(store, table: PageTable, queries, qvecs, qpooled, items, doc_of) -> dict:
    """Recall@5 / nDCG@5 corpus-wide and within-document, dense nDCG@5, maxsim p50 latency."""
    runs = {"corpus": [], "within": [], "dense": []}
    latency = {"corpus": [], "within": []}
    for q, vecs, pooled in zip(queries, qvecs, qpooled):
        started = time.perf_counter()
        scores = store.maxsim(vecs, table)
        latency["corpus"].append(time.perf_counter() - started)
        runs["corpus"].append([items[i] for i in np.argsort(-scores, kind="stable")[:10]])
        mask = np.flatnonzero(table.doc_ids == doc_of[q.doc])
        sub = table.subset(mask)
        started = time.perf_counter()
        scores = store.maxsim(vecs, sub)
        latency["within"].append(time.perf_counter() - started)
        runs["within"].append([items[mask[i]] for i in np.argsort(-scores, kind="stable")[:10]])
        dense = store.dense(pooled, table).max(1)
        runs["dense"].append([items[i] for i in np.argsort(-dense, kind="stable")[:10]])
    relevant = [q.relevant for q in queries]
    out = {}
    for key in ("corpus", "within"):
        m = score_run(runs[key], relevant)
        out[f"{key}_R@5"], out[f"{key}_nDCG@5"] = m["R@5"], m["nDCG@5"]
        out[f"{key}_p50_ms"] = 1000 * float(np.median(latency[key]))
        out[f"{key}_per_query"] = [100 * ndcg_at(r, rel, 5) for r, rel in zip(runs[key], relevant)]
        out[f"{key}_top5"] = [r[:5] for r in runs[key]]
    out["dense_nDCG@5"] = score_run(runs["dense"], relevant)["nDCG@5"]
    return out


def retention_ci(per_query: list[float], base: list[float], draws: int = 2000) -> tuple[float, float]:
    """95% paired-bootstrap interval of mean(per_query) / mean(base), in percent."""
    a, b = np.asarray(per_query), np.asarray(base)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(a), (draws, len(a)))
    ratios = a[idx].mean(1) / np.maximum(b[idx].mean(1), 1e-9)
    return 100 * float(np.percentile(ratios, 2.5)), 100 * float(np.percentile(ratios, 97.5))


def agreement(top5: list, base_top5: list) -> float:
    """Mean share of the bf16 store's top 5 pages that a setting's top 5 keeps, in percent."""
    return 100 * float(np.mean([len(set(map(tuple, a)) & set(map(tuple, b))) / max(len(b), 1)
                                for a, b in zip(top5, base_top5)]))


def pareto_png(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for key, colour in (("corpus", "tab:blue"), ("within", "tab:orange")):
        pts = sorted((r["bytes_per_page"], r[f"{key}_nDCG@5"], r["setting"]) for r in rows)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=colour,
                   label=f"{'corpus-wide' if key == 'corpus' else 'within-document'} nDCG@5")
        front, best = [], -1.0
        for x, y, _ in pts:  # smallest first: a point is on the front if it beats all smaller ones
            if y > best:
                front.append((x, y))
                best = y
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color=colour, alpha=0.6)
        for x, y, name in pts:
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax.axvline(4096, color="grey", linestyle="--", linewidth=1)
    ax.text(4096, ax.get_ylim()[0], " 4 KB", color="grey", fontsize=8, va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("vector store bytes per page (log)")
    ax.set_ylabel("nDCG@5 (%)")
    ax.set_title("FinanceBench: compression Pareto front (MaxSim)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", default="/work/runs/fb-index", help="an uncompressed index (only read)")
    parser.add_argument("--queries", default=str(Path(__file__).resolve().parents[2] / "shared" / "eval"
                                                 / "financebench" / "queries.jsonl"))
    parser.add_argument("--out", default="/work/runs/compress", help="compressed stores and results")
    parser.add_argument("--setting", action="append",
                        help="a preset name or NAME=JSON config (repeatable; default: presets and variants)")
    parser.add_argument("--sample-vectors", type=int, default=300_000,
                        help="raw vectors (before pruning) the codec is fitted on")
    parser.add_argument("--reuse", action="store_true", help="reopen stores already built with the same config")
    parser.add_argument("--limit-docs", type=int, help="smoke test: only the first N documents")
    parser.add_argument("--limit-queries", type=int, help="smoke test: only the first N queries")
    args = parser.parse_args()

    out = Path(args.out).resolve()
    if out == Path(args.index).resolve() or Path(args.index).resolve() in out.parents:
        parser.error("--out must not be inside the index folder")
    out.mkdir(parents=True, exist_ok=True)
    index = Index.open(args.index)
    table = index.catalog.page_table()
    if args.limit_docs:
        keep = sorted(d.id for d in index.catalog.documents())[:args.limit_docs]
        table = table.subset(np.isin(table.doc_ids, keep))
    ids, texts = index.catalog.page_texts(table.page_ids)
    page_words = {int(i): t.split(" ") for i, t in zip(ids, texts)}
    names = {d.id: Path(d.path).name for d in index.catalog.documents() if d.id in set(table.doc_ids.tolist())}
    doc_of = {name: doc_id for doc_id, name in names.items()}
    items = [(names[int(d)], int(n)) for d, n in zip(table.doc_ids, table.numbers)]
    queries = [q for q in load_queries(args.queries) if q.doc in doc_of][:args.limit_queries]
    encoded = index.encoder.encode_queries([q.text for q in queries])
    qvecs = [e.vectors * token_weights(e.tokens)[:, None] for e in encoded]
    qpooled = [e.pooled for e in encoded]
    n_pages = len(table)
    print(f"{len(queries)} queries, {n_pages} pages, {int(table.vec_count.sum()) / n_pages:.1f} "
          f"vectors a page\n", flush=True)

    results = []
    base = {"setting": "uncompressed (bf16)", "config": index.manifest.compression,
            "vectors_per_page": float(table.vec_count.mean()),
            "bytes_per_page": index.store.nbytes() / len(index.catalog.page_table()),
            "build_s": float("nan"),
            **evaluate(index.store, table, queries, qvecs, qpooled, items, doc_of)}
    results.append(base)
    header = ("| setting | vectors/page | bytes/page | R@5 | nDCG@5 | nDCG ret. [95% CI] | top-5 agree | "
              "p50 ms | R@5 in-doc | nDCG@5 in-doc | ret. in-doc [95% CI] | p50 ms in-doc | "
              "dense nDCG@5 | build s |")
    lines = [header, "|---|" + "---:|" * 13]

    def row(r: dict) -> str:
        cells = [r["setting"], f"{r['vectors_per_page']:.1f}", f"{r['bytes_per_page']:,.0f}"]
        for key in ("corpus", "within"):
            ret = 100 * r[f"{key}_nDCG@5"] / base[f"{key}_nDCG@5"]
            lo, hi = retention_ci(r[f"{key}_per_query"], base[f"{key}_per_query"])
            r[f"{key}_retention"], r[f"{key}_retention_ci"] = ret, (lo, hi)
            cells += [f"{r[f'{key}_R@5']:.1f}", f"{r[f'{key}_nDCG@5']:.1f}",
                      f"{ret:.0f}% [{lo:.0f}, {hi:.0f}]"]
            if key == "corpus":
                r["top5_agreement"] = agreement(r["corpus_top5"], base["corpus_top5"])
                cells.append(f"{r['top5_agreement']:.0f}%")
            cells.append(f"{r[f'{key}_p50_ms']:.1f}" if key == "within" else f"{r[f'{key}_p50_ms']:.0f}")
        cells += [f"{r['dense_nDCG@5']:.1f}", f"{r['build_s']:.0f}"]
        return "| " + " | ".join(cells) + " |"

    print(header + "\n" + lines[1] + "\n" + row(base), flush=True)
    lines.append(row(base))
    for text in args.setting or DEFAULT_SETTINGS:
        name, config = parse_setting(text)
        store, ctable, seconds = build(index, table, page_words, name, config, out,
                                       args.sample_vectors, args.reuse)
        r = {"setting": name, "config": store.compressor.config(),
             "vectors_per_page": float(ctable.vec_count.mean()),
             "bytes_per_page": store.nbytes() / n_pages, "build_s": seconds,
             **evaluate(store, ctable, queries, qvecs, qpooled, items, doc_of)}
        results.append(r)
        lines.append(row(r))
        print(lines[-1], flush=True)
        store.close()
    # The bf16 baseline's latency again, now that the machine has run the others (load drifts).
    again = evaluate(index.store, table, queries, qvecs, qpooled, items, doc_of)
    note = (f"\nbf16 maxsim p50 re-measured at the end: {again['corpus_p50_ms']:.0f} ms corpus-wide, "
            f"{again['within_p50_ms']:.1f} ms within-document.")
    print(note)
    (out / "compression.md").write_text("\n".join(lines) + "\n" + note + "\n")
    (out / "compression.json").write_text(json.dumps(results, indent=2))
    pareto_png(results, out / "compression.png")
    print(f"\nwrote {out / 'compression.md'}, {out / 'compression.json'}, {out / 'compression.png'}")


if __name__ == "__main__":
    main()
