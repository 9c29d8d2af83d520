"""Damage every kind of file of an index in every way; print what docpress says and does.

    python benchmarks/damage_table.py --work DIR [--json]

For each file kind (manifest, catalog, each vector file of a bf16 and of a compressed index,
the codec) and each damage (truncate to half, delete, zero every byte, 4 KiB of garbage in
the middle), on a fresh copy of a small generated index: the exit code and first line of
`search`, of `check --deep`, then `repair`, then whether search answers again (exit 0 with
the expected document first) and how many documents repair dropped. Every row must show
non-zero exits with one line before the repair and a working index after it; a "silent"
outcome (exit 0 before repair and a wrong or missing answer) is a failure of docpress.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
TOPICS = {
    "ferry": "The ferry timetable changes in October; the last boat leaves the harbour at nine.",
    "bakery": "The bakery on the corner sells rye loaves and sourdough every morning from seven.",
    "telescope": "The telescope survey mapped faint galaxies with a wide-field camera for a year.",
    "pension": "The pension fund reported a funding ratio of 104 percent and lower liabilities.",
}
QUESTION, ANSWER = "when does the last boat leave the harbour", "ferry"


def docpress(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "docpress", *args], capture_output=True, text=True, env=ENV)


def build(work: Path, compression: str) -> Path:
    import pymupdf

    docs = work / "docs"
    for name, text in TOPICS.items():
        doc = pymupdf.open()
        for i in range(3):
            doc.new_page().insert_textbox(pymupdf.Rect(60, 60, 540, 780), f"{text} Part {i + 1}.", fontsize=12)
        docs.mkdir(parents=True, exist_ok=True)
        doc.save(docs / f"{name}.pdf")
    index = work / f"ix-{compression}"
    assert docpress("ingest", str(docs), "--index", str(index), "--compression", compression).returncode == 0
    return index


def damage(path: Path, how: str) -> None:
    if how == "delete":
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    elif how == "truncate":
        os.truncate(path, path.stat().st_size // 2)
    elif how == "zero":
        path.write_bytes(bytes(path.stat().st_size))
    elif how == "garbage":
        data = bytearray(path.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 4096] = os.urandom(min(4096, len(data) - mid))
        path.write_bytes(bytes(data))


def first_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
    return lines[0][:150] if lines else ""


def case(pristine: Path, work: Path, relative: str, how: str) -> dict:
    index = work / "case"
    shutil.rmtree(index, ignore_errors=True)
    shutil.copytree(pristine, index)
    target = index / relative
    damage(target, how)
    search = docpress("search", QUESTION, "--index", str(index), "--json", "-k", "1")
    answered = ""
    if search.returncode == 0:
        hits = json.loads(search.stdout)["hits"]
        answered = Path(hits[0]["path"]).stem if hits else "(none)"
    check = docpress("check", "--deep", "--index", str(index))
    repair = docpress("repair", "--index", str(index), "--json")
    dropped = len(json.loads(repair.stdout)["dropped"]) if repair.returncode == 0 else None
    docpress("ingest", str(pristine.parent / "docs"), "--index", str(index))  # adds back what was dropped
    after = docpress("search", QUESTION, "--index", str(index), "--json", "-k", "1")
    works = after.returncode == 0 and Path(json.loads(after.stdout)["hits"][0]["path"]).stem == ANSWER
    traceback = any("Traceback" in r.stderr for r in (search, check, repair, after))
    silent = search.returncode == 0 and answered != ANSWER
    return {"file": relative, "damage": how, "search_exit": search.returncode,
            "search_says": first_line(search) if search.returncode else f"answered {answered}",
            "check_exit": check.returncode, "check_lines": len(check.stderr.strip().splitlines()),
            "repair_exit": repair.returncode, "dropped": dropped, "works_after": works,
            "traceback": traceback, "silent_wrong": silent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    rows = []
    for compression in ("none", "balanced"):
        pristine = build(args.work, compression)
        vectors = next(p.name for p in pristine.iterdir() if p.name.startswith(("vectors", "compressed-")))
        files = ["manifest.json", "catalog.sqlite"] + sorted(
            f"{vectors}/{p.name}" for p in (pristine / vectors).iterdir() if p.is_file() and p.name != ".pin")
        if compression != "none":
            files += [f"{vectors}/codec/codec.npz", f"{vectors}/codec/codec.json"]
        else:
            files += [vectors]
        for relative in files:
            kinds = ("delete",) if (pristine / relative).is_dir() else ("truncate", "delete", "zero", "garbage")
            for how in kinds:
                rows.append({"index": compression, **case(pristine, args.work, relative, how)})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| index | file | damage | search before repair | check --deep | repair (docs dropped) | "
          "works after repair + ingest |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        before = f"exit {r['search_exit']}: {r['search_says']}"
        if r["silent_wrong"]:
            before += " **SILENT**"
        if r["traceback"]:
            before += " **TRACEBACK**"
        print(f"| {r['index']} | {r['file']} | {r['damage']} | {before} | exit {r['check_exit']} | "
              f"exit {r['repair_exit']} ({r['dropped']}) | {'yes' if r['works_after'] else '**no**'} |")
    bad = sum(r["silent_wrong"] or r["traceback"] or not r["works_after"] for r in rows)
    print(f"\n{len(rows)} cases; silent, traceback or not working after repair: {bad}")


if __name__ == "__main__":
    main()
