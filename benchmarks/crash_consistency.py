"""Kill -9 at random points of ingests, compressions and compactions; count what was lost.

    python benchmarks/crash_consistency.py --work DIR [--runs 20] [--recode-runs 10] [--seed 0] [--json]

Each trial runs one docpress command in a child process on a copy of a prepared index and
sends it SIGKILL at a random moment of its run (uniform over the time an uninterrupted run
of the same command took). A monitor process polls the catalog read-only every 20 ms during
the run and records every document it saw committed, and whether any snapshot showed a
document with fewer pages than it has. After the kill:
- committed pages lost: pages of documents the monitor saw committed that are gone after the
  kill, or whose rows fail their checksums (`docpress check --deep`);
- half documents seen: documents visible (to the monitor, or after the kill) with fewer pages
  than they have;
- the index must open and answer a search, `check --deep` must pass, and a rerun of the same
  command must finish it (the writer lock of the dead process is free).
Ingests start from an index holding a third of the corpus; compressions from the whole corpus
in bf16; compactions from the whole corpus after removing a third of it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
WORDS = ("revenue margin storage volcano harbour ferry bakery rye telescope survey quarterly income "
         "descaling espresso penalty goalkeeper chlorophyll glucose basalt magma ledger audit "
         "pension turbine reactor lagoon orchard glacier canyon satellite").split()

MONITOR = textwrap.dedent("""
    import json, sqlite3, sys, time
    path, out = sys.argv[1], sys.argv[2]
    seen, half = {}, []
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            db.execute("BEGIN")
            docs = dict(db.execute("SELECT path, page_count FROM documents"))
            counts = dict(db.execute("SELECT d.path, COUNT(p.id) FROM documents d "
                                     "LEFT JOIN pages p ON p.doc_id = d.id GROUP BY d.id"))
            db.execute("COMMIT")
            db.close()
        except sqlite3.Error:
            time.sleep(0.02)
            continue
        for doc, n in docs.items():
            seen[doc] = n
            if counts.get(doc, 0) != n:
                half.append(doc)
        with open(out + ".tmp", "w") as fh:
            json.dump({"seen": seen, "half": sorted(set(half))}, fh)
        import os
        os.replace(out + ".tmp", out)
        time.sleep(0.02)
""")


def make_corpus(folder: Path, n_docs: int, rng: random.Random) -> list[Path]:
    import pymupdf

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_docs):
        doc = pymupdf.open()
        for _ in range(rng.randint(2, 8)):
            page = doc.new_page()
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(120, 320)))
            page.insert_textbox(pymupdf.Rect(60, 60, 540, 780), text, fontsize=10)
        path = folder / f"doc{i:03d}.pdf"
        doc.save(path)
        doc.close()
        paths.append(path)
    return paths


def docpress(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "docpress", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def catalog_state(index: Path) -> dict[str, int]:
    """{document path: pages visible} of a (possibly killed) index, read-only."""
    db = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT d.path, COUNT(p.id) FROM documents d "
                               "LEFT JOIN pages p ON p.doc_id = d.id GROUP BY d.id"))
    finally:
        db.close()


def page_counts(index: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{index / 'catalog.sqlite'}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT path, page_count FROM documents"))
    finally:
        db.close()


def written_bytes(index: Path) -> dict[str, int]:
    """Sizes of the index's vector and codec files (what a writer changes besides the catalog)."""
    skip = ("catalog", "writer.json", "cache")
    return {str(p.relative_to(index)): p.stat().st_size for p in index.rglob("*")
            if p.is_file() and not str(p.relative_to(index)).startswith(skip) and p.name != ".pin"}


def trial(kind: str, base: Path, work: Path, command: list[str], delay: float) -> dict:
    index = work / "ix"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(base, index)
    before = catalog_state(index)
    monitor_out = work / "monitor.json"
    monitor = subprocess.Popen([sys.executable, "-c", MONITOR, str(index / "catalog.sqlite"), str(monitor_out)],
                               env=ENV)
    child = subprocess.Popen([sys.executable, "-m", "docpress", *command, "--index", str(index)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    time.sleep(delay)
    finished_first = child.poll() is not None
    if not finished_first:
        os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # the kill came after the command had started writing (not while it loaded its models)
    mid_write = not finished_first and (written_bytes(index) != written_bytes(base)
                                        or catalog_state(index) != before)
    time.sleep(0.1)
    monitor.kill()
    monitor.wait()
    watched = json.loads(monitor_out.read_text()) if monitor_out.exists() else {"seen": {}, "half": []}
    after = catalog_state(index)
    expected = page_counts(index)
    committed = {**before, **watched["seen"]}
    if kind == "compact":  # the documents removed before the run are meant to be gone
        committed = {d: n for d, n in committed.items() if d in before}
    lost = sum(n for d, n in committed.items() if after.get(d, 0) < n)
    half_after = [d for d, n in after.items() if n != expected.get(d, n)]
    check = docpress("check", "--deep", "--index", str(index))
    search = docpress("search", "quarterly income of the bakery", "--index", str(index), "--json")
    rerun = docpress(*command, "--index", str(index))
    final = docpress("check", "--deep", "--index", str(index))
    return {"kind": kind, "delay_s": round(delay, 2), "killed": not finished_first, "mid_write": mid_write,
            "committed_pages_lost": lost, "half_documents": len(set(watched["half"]) | set(half_after)),
            "check_ok": check.returncode == 0, "search_ok": search.returncode == 0,
            "rerun_ok": rerun.returncode == 0 and final.returncode == 0,
            "check_error": check.stderr.strip()[:200] if check.returncode else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=20, help="ingest trials")
    parser.add_argument("--recode-runs", type=int, default=10, help="compression trials, and compaction trials")
    parser.add_argument("--docs", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    paths = make_corpus(work / "corpus", args.docs, rng)
    third = paths[: len(paths) // 3]

    # base indexes: a third (for ingest), everything bf16 (compress), everything minus a third (compact)
    start = work / "base-ingest"
    assert docpress("ingest", *map(str, third), "--index", str(start), "--compression", "none").returncode == 0
    full = work / "base-full"
    assert docpress("ingest", str(work / "corpus"), "--index", str(full), "--compression", "none").returncode == 0
    holed = work / "base-holed"
    shutil.copytree(full, holed)
    for path in third:
        assert docpress("rm", str(path), "--index", str(holed)).returncode == 0

    kinds = {"ingest": (start, ["ingest", str(work / "corpus"), "--compression", "none"]),
             "compress": (full, ["compress", "balanced"]),
             "compact": (holed, ["compact"])}
    rows = []
    for kind, (base, command) in kinds.items():
        probe = work / "probe"
        shutil.rmtree(probe, ignore_errors=True)
        shutil.copytree(base, probe)
        began = time.perf_counter()
        assert docpress(*command, "--index", str(probe)).returncode == 0
        span = time.perf_counter() - began
        for i in range(args.runs if kind == "ingest" else args.recode_runs):
            rows.append(trial(kind, base, work / "trial", command, rng.uniform(0.3, span)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    summary = {}
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        summary[kind] = {"trials": len(mine), "killed": sum(r["killed"] for r in mine),
                         "mid_write": sum(r["mid_write"] for r in mine),
                         "committed_pages_lost": sum(r["committed_pages_lost"] for r in mine),
                         "half_documents_seen": sum(r["half_documents"] for r in mine),
                         "check_failed": sum(not r["check_ok"] for r in mine),
                         "search_failed": sum(not r["search_ok"] for r in mine),
                         "rerun_failed": sum(not r["rerun_ok"] for r in mine)}
    if args.json:
        print(json.dumps({"summary": summary, "trials": rows}, indent=2))
        return
    print("| run killed with SIGKILL | trials | killed mid-run | of them while writing | committed pages "
          "lost | half documents seen | check --deep failed | search failed | rerun failed |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, s in summary.items():
        print(f"| {kind} | {s['trials']} | {s['killed']} | {s['mid_write']} | {s['committed_pages_lost']} | "
              f"{s['half_documents_seen']} | {s['check_failed']} | {s['search_failed']} | {s['rerun_failed']} |")


if __name__ == "__main__":
    main()
