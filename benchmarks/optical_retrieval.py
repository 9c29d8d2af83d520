"""Optical lane vs text lane on FinanceBench filings: a random-init small DeepEncoder distilled on CPU.

No pretrained DeepSeek-OCR / SAM / CLIP weights are available offline here, so the optical
model starts from random weights (its DeepEncoder stays random; only the retrieval head, the
query projection and the last CLIP layers train) and is distilled from the text lane on the
filings' own pages (`docpress distill`), for a time budget. Both lanes are then scored
within-document on the FinanceBench questions about those filings (0-based answer pages).

    python benchmarks/optical_retrieval.py --out /work/runs/optical-retrieval.txt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from docpress import Index  # noqa: E402
from docpress.encoders import load_encoder  # noqa: E402
from docpress.encoders.optical.encoder import DeepEncoderConfig, OpticalEncoder  # noqa: E402
from docpress.train import (  # noqa: E402
    DistillOptions,
    OpticalLearner,
    TrainConfig,
    distill_set,
    fit,
    retrieval_metrics,
    score_matrix,
)
from retriever.evaluate import Query, evaluate, load_queries  # noqa: E402
from retriever.metrics import score_run  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval" / "financebench"
# Filings with three or four questions each and 9-156 pages (357 pages, 20 questions).
DOCS = ["AMCOR_2023_10K.pdf", "BESTBUY_2023_10K.pdf", "Pfizer_2023Q2_10Q.pdf",
        "ULTABEAUTY_2023Q4_EARNINGS.pdf", "MGMRESORTS_2022Q4_EARNINGS.pdf", "BESTBUY_2024Q2_10Q.pdf"]
# Small enough to encode ~3 pages/s on 2 CPU cores at 640 px (SAM 64-d x 4, CLIP 128-d x 4).
MODEL = DeepEncoderConfig(sam_hidden=64, sam_layers=4, sam_heads=2, sam_global=[1, 3], sam_out=64,
                          compress_channels=[128, 128], clip_hidden=128, clip_layers=4, clip_heads=4,
                          clip_mlp=512, projector_dim=None)
COLUMNS = ["R@1", "R@5", "nDCG@5", "MRR@10"]


def learner_rankings(learner: OpticalLearner, data, queries: list[Query]) -> list[list[tuple[str, int]]]:
    """Within-document MaxSim rankings straight from the learner (no index): (doc, page) lists."""
    encoded = learner.prepare_queries([q.text for q in queries])
    scores = score_matrix(learner, encoded, data.pages)
    names = [n.rsplit(":", 1) for n in data.names]
    rankings = []
    for q, row in zip(queries, scores):
        own = np.array([doc == Path(q.doc).name for doc, _ in names])
        order = np.argsort(-np.where(own, row, -np.inf), kind="stable")[: int(own.sum())]
        rankings.append([(names[i][0], int(names[i][1])) for i in order[:10]])
    return rankings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", nargs="+", default=DOCS, help="FinanceBench PDF names")
    parser.add_argument("--minutes", type=float, default=6.0, help="time budget of the training steps")
    parser.add_argument("--mode", default="small", help="optical resolution mode")
    parser.add_argument("--clip-layers", type=int, default=2, help="last CLIP layers trained")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; on cores shared with other jobs one thread was 5-20x faster "
                             "than two (a second thread waits on a busy core at every op)")
    parser.add_argument("--work", help="folder for the indexes and the model (default: a temporary one)")
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    work = Path(args.work or tempfile.mkdtemp(prefix="optical-retrieval-"))
    pdfs = [SHARED / "pdfs" / d for d in args.docs]
    rows = [json.loads(line) for line in (SHARED / "queries.jsonl").read_text().splitlines() if line.strip()]
    subset = work / "queries.jsonl"
    subset.parent.mkdir(parents=True, exist_ok=True)
    subset.write_text("".join(json.dumps(r) + "\n" for r in rows if r["doc"] in set(args.docs)))
    queries = load_queries(subset)
    results: dict[str, dict] = {}
    timings: dict[str, float] = {}

    # -- the text lane ------------------------------------------------------------------------
    text = load_encoder("text")
    started = time.perf_counter()
    text_index = Index.create(work / "text-index", encoder=text)
    report = text_index.add(pdfs)
    timings["text ingest"] = time.perf_counter() - started
    pages = report.pages or sum(d.page_count for d in text_index.documents())
    for method in ("maxsim", "hybrid", "bm25"):
        results[f"text lane, {method}"] = evaluate(text_index, queries, method, within_doc=True)
    text_index.close()

    # -- the optical lane: random init, distilled ------------------------------------------------
    OpticalEncoder(model_config=MODEL, dim=128, mode=args.mode, random_init=True, seed=0,
                   dtype="float32").save(work / "optical-random")
    optical = OpticalEncoder(work / "optical-random", dtype="float32")
    learner = OpticalLearner(optical, args.clip_layers, query_tower=text)
    started = time.perf_counter()
    data = distill_set(pdfs, learner, None, DistillOptions(queries_per_page=8, holdout=1, seed=0))
    timings["optical prepare (render, frozen encoder, teacher)"] = time.perf_counter() - started
    held_before = retrieval_metrics(score_matrix(learner, data.eval_queries, data.pages), data.eval_positives)
    results["optical random init (no training), maxsim"] = score_run(
        learner_rankings(learner, data, queries), [q.relevant for q in queries])
    # 3-minute runs on these pages, held-out pseudo-query MRR: no cell term 10.2, cell weight 3
    # 5.0 (lr 5e-3: 2.7; all 4 CLIP layers: 3.1): a 640-px cell of a 10-K holds 20-40 words
    config = TrainConfig(steps=1_000_000, batch_size=32, lr=2e-3, temperature=0.05, cell_weight=0.0,
                         seed=0, max_seconds=args.minutes * 60)
    fitted = fit(learner, data, config)
    timings["optical training steps"] = fitted.seconds
    held_after = retrieval_metrics(score_matrix(learner, data.eval_queries, data.pages), data.eval_positives)
    results["optical distilled, maxsim (learner, fp32)"] = score_run(
        learner_rankings(learner, data, queries), [q.relevant for q in queries])
    model_dir = learner.save(work / "optical-distilled")

    started = time.perf_counter()
    optical_index = Index.create(work / "optical-index", encoder=load_encoder("optical", weights=str(model_dir)))
    optical_index.encoder.use_query_tower(text)
    optical_index.add(pdfs)
    timings["optical ingest"] = time.perf_counter() - started
    for method in ("maxsim", "hybrid"):
        label = "optical distilled, maxsim (index)" if method == "maxsim" else \
            "optical distilled, hybrid (+ BM25 over the text layer)"
        results[label] = evaluate(optical_index, queries, method, within_doc=True)
    optical_index.close()

    # -- both lanes in one index: the text lane's hybrid with the optical lane's MaxSim fused in --
    started = time.perf_counter()
    fused_index = Index.create(work / "fused-index", encoder=text,
                               lanes={"optical": load_encoder("optical", weights=str(model_dir))})
    fused_index.add(pdfs)
    timings["text + optical lane ingest"] = time.perf_counter() - started
    results["text lane + optical lane, hybrid (fused)"] = evaluate(fused_index, queries, "hybrid",
                                                                   within_doc=True)
    fused_index.close()

    # -- report -----------------------------------------------------------------------------------
    minutes = (timings["optical prepare (render, frozen encoder, teacher)"] + fitted.seconds) / 60
    params = sum(p.numel() for p in optical.model.parameters())
    trained = sum(p.numel() for p in learner.parameters())
    say(f"Optical vs text lane, FinanceBench, within-document: {len(queries)} questions on "
        f"{len(pdfs)} filings ({pages} pages)")
    say(f"optical = random-init tiny DeepEncoder distilled for {minutes:.1f} minutes on CPU "
        f"({fitted.steps} steps); no pretrained weights available offline")
    say(f"  model: SAM {MODEL.sam_hidden}-d x {MODEL.sam_layers}, compressor -> {MODEL.clip_hidden}, "
        f"CLIP {MODEL.clip_hidden}-d x {MODEL.clip_layers}, {params / 1e6:.2f} M parameters, "
        f"{trained / 1e6:.2f} M trained (head, query projection, last {args.clip_layers} CLIP layers); "
        f"mode {args.mode} ({len(data.pages[0])} vectors/page), 128-d")
    say(f"  distillation: {len(data.queries)} pseudo-queries cut from {len(data.pages)} pages' text, "
        f"encoded by the teacher's (text lane, all-MiniLM-L6-v2) query side; in-batch ColPali loss "
        f"(T={config.temperature}, batch {config.batch_size})"
        + (f" + cell regression (weight {config.cell_weight})" if config.cell_weight else ", no cell term"))
    say(f"  held-out pseudo-queries ({len(data.eval_queries)}, one unseen sentence a page, ranked among "
        f"all {len(data.pages)} pages): R@1 {held_before['R@1']:.1f} -> {held_after['R@1']:.1f}, "
        f"MRR {held_before['MRR']:.1f} -> {held_after['MRR']:.1f}")
    say()
    width = max(len(k) for k in results)
    say(f"{'lane, method':<{width}}  " + "  ".join(f"{c:>7}" for c in COLUMNS))
    for name, metrics in results.items():
        say(f"{name:<{width}}  " + "  ".join(f"{metrics[c]:7.1f}" for c in COLUMNS))
    say()
    say("times: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
    say(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs shared with other "
        f"jobs, {args.threads} torch thread(s); percent over {len(queries)} questions "
        f"(one question moves R@1 by {100 / len(queries):.1f} points)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
