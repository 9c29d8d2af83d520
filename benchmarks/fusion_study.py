"""Score fusion rules on dumped signals (benchmarks/signals_dump.py), every dev set, corpus-wide
and within each question's document, with paired bootstrap intervals against a baseline.

    python benchmarks/fusion_study.py fb=fb.npz mmlb=mmlb.npz sample=sample.npz [--rules a,b]

A rule maps the signals of the pages searched to one score per page. Rules are general (the
same for every set and question): they are chosen by their average over the sets.
"""

from __future__ import annotations

import argparse
from typing import Callable

import numpy as np

from retriever.fusion import standardize

PAGE = ("bm25", "bm25_head", "dense", "head", "maxsim")
RRF_K = 60
CANDIDATES = 256


def z(x: np.ndarray) -> np.ndarray:
    return standardize(x)  # the product's z-score: non-finite scores (no window) go to -10


def ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(len(x), np.int64)
    r[np.argsort(-x, kind="stable")] = np.arange(len(x))
    return r


def rrf(signals: list[np.ndarray], k: int = RRF_K, weights=None) -> np.ndarray:
    weights = weights or [1.0] * len(signals)
    return sum(w / (k + 1 + ranks(s)) for w, s in zip(weights, signals))


def doc_signal(sig: dict, doc_ids: np.ndarray, pooled: bool = False) -> np.ndarray:
    """The document-level BM25 signals, z-scored over the documents searched, spread to pages;
    `pooled` scales each by 1 - 1 / its pages searched (0 for a one-page document)."""
    docs, first, where = np.unique(doc_ids, return_index=True, return_inverse=True)
    if len(docs) < 2:
        return np.zeros(len(doc_ids))
    per_doc = 0.5 * z(sig["profile"][first]) + 0.5 * z(sig["document"][first])
    if pooled:
        per_doc = per_doc * (1.0 - 1.0 / np.bincount(where, minlength=len(docs)))
    return per_doc[where]


def current_hybrid(sig: dict, doc_ids: np.ndarray) -> np.ndarray:
    first = z(sig["dense"]) + z(sig["head"]) + 0.5 * z(sig["bm25_head"]) + doc_signal(sig, doc_ids)
    cand = np.argsort(-first, kind="stable")[:CANDIDATES]
    out = first.copy()
    out[cand] += 0.5 * z(sig["maxsim"][cand])
    # pages outside the candidates never pass one inside
    rest = np.ones(len(out), bool)
    rest[cand] = False
    if rest.any():
        out[rest] = np.minimum(out[rest], out[cand].min() - 1e-9)
    return out


def zsum(names, weights=None, doc=0.0):
    weights = weights or [1.0] * len(names)

    def rule(sig, doc_ids):
        out = sum(w * z(sig[n]) for n, w in zip(names, weights))
        return out + doc * doc_signal(sig, doc_ids) if doc else out
    return rule


def rrf_rule(names, weights=None, doc=0.0, k=RRF_K):
    def rule(sig, doc_ids):
        signals = [sig[n] for n in names]
        w = list(weights or [1.0] * len(names))
        if doc and len(np.unique(doc_ids)) > 1:
            signals.append(doc_signal(sig, doc_ids))
            w.append(doc)
        return rrf(signals, k, w)
    return rule


def confident(names, weights=None, doc=1.0, top=10, rerank=False):
    """z-scores weighted by each signal's confidence on this query: how far its best pages
    stand above the rest (mean z of its top `top` pages); a flat signal counts little."""
    weights = weights or [1.0] * len(names)

    def rule(sig, doc_ids):
        out = 0.0
        for n, w in zip(names, weights):
            zs = z(sig[n])
            conf = max(np.sort(zs)[-top:].mean(), 0.0) if len(zs) else 0.0
            out = out + w * conf * zs
        return out + doc * doc_signal(sig, doc_ids)
    return rule


def windows_dense(sig: dict, margin: float | None) -> np.ndarray:
    """The dense signal from the dumped windows: the first alone (margin None), else the first
    or a later window that beats it by more than `margin` (retriever.signals.page_dense)."""
    first, later = sig["dense_first"], sig["dense_later"]
    if margin is None:
        return first
    return np.where(np.isfinite(first), np.maximum(first, later - margin), first)


def two_stage(bm25: float, maxsim: float, head_bm25: float = 0.5, candidates: int = CANDIDATES,
              doc: float = 1.0, pooled: bool = False, later: float | None | str = "dumped"):
    """hybrid's shape: cheap signals (and full-page BM25 with weight `bm25`) over every page pick
    the candidates; MaxSim, z-scored over the candidates, joins with weight `maxsim`; the
    document signal (its two halves summed) counts `doc` times. `later`: the dense signal as
    dumped ("dumped"), or rebuilt from the windows with that margin (windows_dense)."""
    def rule(sig, doc_ids):
        dense = sig["dense"] if later == "dumped" else windows_dense(sig, later)
        first = (z(dense) + z(sig["head"]) + head_bm25 * z(sig["bm25_head"])
                 + doc * doc_signal(sig, doc_ids, pooled))
        if bm25:
            first = first + bm25 * z(sig["bm25"])
        cand = np.argsort(-first, kind="stable")[:candidates]
        out = first.copy()
        out[cand] += maxsim * z(sig["maxsim"][cand])
        rest = np.ones(len(out), bool)
        rest[cand] = False
        if rest.any():
            out[rest] = np.minimum(out[rest], out[cand].min() - 1e-9)
        return out
    return rule


RULES: dict[str, Callable] = {
    "current": current_hybrid,
    **{n: (lambda n: lambda s, d: s[n])(n) for n in PAGE},
    "rrf(bm25,maxsim)": rrf_rule(["bm25", "maxsim"]),
    "rrf(bm25,maxsim,dense)": rrf_rule(["bm25", "maxsim", "dense"]),
    "rrf(all5)": rrf_rule(list(PAGE)),
    "rrf(all5)+doc": rrf_rule(list(PAGE), doc=1.0),
    "z(all5)": zsum(list(PAGE)),
    "z(all5)+doc": zsum(list(PAGE), doc=1.0),
    "z(bm25,maxsim,dense,head)+doc": zsum(["bm25", "maxsim", "dense", "head"], doc=1.0),
    "z(current+bm25)": zsum(["dense", "head", "bm25_head", "maxsim", "bm25"], [1, 1, 0.5, 0.5, 1], doc=1.0),
    **{f"z(current+{w}bm25)": zsum(["dense", "head", "bm25_head", "maxsim", "bm25"], [1, 1, 0.5, 0.5, w], doc=1.0)
       for w in (0.25, 0.5)},
    **{f"z(current+{w}maxsim+{b}bm25)": zsum(["dense", "head", "bm25_head", "maxsim", "bm25"], [1, 1, 0.5, w, b], doc=1.0)
       for w, b in ((1, 0.5), (1, 1), (1.5, 0.5), (1.5, 1))},
    "conf(all5)+doc": confident(list(PAGE)),
    "conf(current+bm25)": confident(["dense", "head", "bm25_head", "maxsim", "bm25"], [1, 1, 0.5, 0.5, 1]),
    "conf(current+bm25,top3)": confident(["dense", "head", "bm25_head", "maxsim", "bm25"], [1, 1, 0.5, 0.5, 1], top=3),
    "conf(d,h,m,b)": confident(["dense", "head", "maxsim", "bm25"]),
    **{f"2stage(b{b},m{m})": two_stage(b, m) for b in (0, 0.25, 0.5, 0.75, 1.0) for m in (0.5, 1.0, 1.5)},
    **{f"2stage(b{b},m{m},h0)": two_stage(b, m, 0.0) for b in (0.5, 1.0) for m in (1.0, 1.5)},
    **{f"2stage(b{b},m{m},d{d})": two_stage(b, m, doc=d) for b, m in ((0.75, 1.0), (1.0, 1.5))
       for d in (0.5, 2.0, 2.5, 3.0, 4.0)},
    "2stage(b0.75,m1.0,d3.0,pooled)": two_stage(0.75, 1.0, doc=3.0, pooled=True),
    # the dense signal's windows: the first alone, or a later one that beats it by a margin
    "hybrid(first window)": two_stage(0.75, 1.0, doc=3.0, pooled=True, later=None),
    **{f"hybrid(later window +{m})": two_stage(0.75, 1.0, doc=3.0, pooled=True, later=m)
       for m in (0.0, 0.02, 0.05, 0.08, 0.12)},
}


def evaluate(data, rule, within: bool) -> np.ndarray:
    """(n_queries, 5) per-question R@1, R@5, R@10, nDCG@5, MRR@10."""
    n_q = len(data["query_docs"])
    out = np.zeros((n_q, 5))
    sig_all = {n: data[n] for n in (*PAGE, "profile", "document", "dense_first", "dense_later") if n in data}
    for i in range(n_q):
        mask = data["doc_names"] == data["query_docs"][i] if within else np.ones(len(data["doc_ids"]), bool)
        rows = np.flatnonzero(mask)
        sig = {n: v[i, rows] for n, v in sig_all.items()}
        scores = rule(sig, data["doc_ids"][rows])
        order = np.argsort(-scores, kind="stable")[:10]
        rel = data["relevant"][i, rows][order]
        n_rel = max(int(data["n_relevant"][i]), 1)
        dcg = sum(1 / np.log2(r + 2) for r in range(min(5, len(rel))) if rel[r])
        ideal = sum(1 / np.log2(r + 2) for r in range(min(n_rel, 5)))
        first = np.flatnonzero(rel)
        out[i] = [rel[:1].sum() / n_rel, rel[:5].sum() / n_rel, rel[:10].sum() / n_rel,
                  dcg / ideal, 1 / (first[0] + 1) if len(first) else 0.0]
    return 100 * out


def bootstrap(a: np.ndarray, b: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), (n, len(a)))
    diffs = (a[idx] - b[idx]).mean(1)
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="+", help="NAME=signals.npz")
    parser.add_argument("--rules", help="rule names separated by ; (default: all)")
    parser.add_argument("--baseline", default="current")
    args = parser.parse_args()
    sets = {s.split("=")[0]: dict(np.load(s.split("=")[1])) for s in args.sets}
    rules = args.rules.split(";") if args.rules else list(RULES)
    print("| rule | " + " | ".join(f"{s} {w} R@5 / nDCG@5" for s in sets for w in ("corpus", "in-doc"))
          + " | mean nDCG@5 |")
    print("|---|" + "---:|" * (2 * len(sets) + 1))
    base = {(s, w): evaluate(d, RULES[args.baseline], w) for s, d in sets.items() for w in (False, True)}
    for name in rules:
        cells, means = [], []
        for s, d in sets.items():
            for w in (False, True):
                per_q = evaluate(d, RULES[name], w)
                m = per_q.mean(0)
                lo, hi = bootstrap(per_q[:, 3], base[(s, w)][:, 3])
                cells.append(f"{m[1]:.1f} / {m[3]:.1f} [{lo:+.1f},{hi:+.1f}]")
                means.append(m[3])
        print(f"| {name} | " + " | ".join(cells) + f" | {np.mean(means):.1f} |", flush=True)


if __name__ == "__main__":
    main()
