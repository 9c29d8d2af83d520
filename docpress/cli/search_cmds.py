"""Commands that ask an index questions: search, eval."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from docpress.cli.common import IndexOpt, JsonOpt, MethodOpt, err, open_index, out, parse_meta, run


def search(
    query: Annotated[str, typer.Argument(help="The question, in plain words.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Number of pages to return.")] = 5,
    method: MethodOpt = "hybrid",
    doc: Annotated[Optional[str], typer.Option(help="Only documents whose path or name matches this glob.")] = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", help="Only documents with KEY=VALUE.")] = None,
    index: IndexOpt = None,
    html: Annotated[Optional[Path], typer.Option(
        "--html", help="Also write a self-contained HTML page of the results (highlighted thumbnails).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the pages that best answer a question."""
    metadata = parse_meta(meta)
    idx = run(lambda: open_index(index))
    hits = run(lambda: idx.search(query, k=k, method=method, path=doc, metadata=metadata or None))
    idx.close()
    if html is not None:
        from docpress.cli.html import write_results_page

        run(lambda: write_results_page(html, query, hits))
        err.print(f"wrote {html}", highlight=False)
    gone = sum(hit.missing for hit in hits)
    if gone:  # once per search, on stderr: the JSON and the table stay as they are
        err.print(f"warning: the files of {gone} of these hits are gone from disk; "
                  "`docpress ingest --sync FOLDER` removes them from the index", highlight=False, soft_wrap=True)
    if as_json:
        print(json.dumps({"query": query, "method": method, "hits": [h.as_dict() for h in hits]},
                         indent=2, ensure_ascii=False))
        return
    if not hits:
        out.print("no pages match")
        return
    table = Table(show_lines=True)
    for name in ("#", "document", "page", "score", "snippet"):
        table.add_column(name, overflow="fold")
    for rank, hit in enumerate(hits, 1):
        source = "" if hit.text_source == "pdf" else f" ({hit.text_source})"
        table.add_row(str(rank), Path(hit.path).name + (" (file gone)" if hit.missing else ""),
                      str(hit.page + 1), f"{hit.score:.3f}",
                      hit.snippet + source)
    out.print(table)
    out.print("pages are 1-based here; --json gives 0-based page numbers", style="dim")


def show(
    query: Annotated[str, typer.Argument(help="The question, in plain words.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Number of pages to draw.")] = 3,
    method: MethodOpt = "hybrid",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the PNG files.")] = Path("docpress-show"),
    dpi: Annotated[int, typer.Option(help="Resolution of the pictures.")] = 110,
    index: IndexOpt = None,
) -> None:
    """Draw where the question matched on each of the best pages: one PNG per hit (paths printed)."""
    idx = run(lambda: open_index(index))
    hits = run(lambda: idx.search(query, k=k, method=method))
    idx.close()
    if not hits:
        out.print("no pages match")
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for rank, hit in enumerate(hits, 1):
        target = out_dir / f"{rank:02d}-{Path(hit.path).stem[:40]}-p{hit.page + 1}.png"
        image = run(lambda hit=hit: hit.highlight(dpi=dpi))
        image.save(target)
        out.print(str(target), highlight=False)


def evaluate(
    queries: Annotated[Path, typer.Argument(help="JSONL: {query, relevant: [{doc, page}], doc}.")],
    method: Annotated[Optional[list[str]], typer.Option(
        "--method", "-m", help="Method(s) to evaluate [default: all].")] = None,
    within_doc: Annotated[bool, typer.Option("--within-doc", help="Search only each question's own document.")] = False,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score the index on questions with known answer pages: Recall@1/5/10, nDCG@5, MRR@10."""
    from retriever.evaluate import evaluate as run_eval
    from retriever.evaluate import load_queries
    from retriever.search import Method

    rows = run(lambda: load_queries(queries))
    idx = run(lambda: open_index(index))
    methods = method or [m.value for m in Method]
    results = {m: run(lambda m=m: run_eval(idx, rows, m, within_doc)) for m in methods}
    idx.close()
    if as_json:
        print(json.dumps({"queries": len(rows), "within_doc": within_doc, "results": results}, indent=2))
        return
    table = Table(title=f"{len(rows)} queries, {'within-document' if within_doc else 'corpus-wide'}")
    columns = list(next(iter(results.values())))
    table.add_column("method")
    for c in columns:
        table.add_column(c, justify="right")
    for m, metrics in results.items():
        table.add_row(m, *(f"{metrics[c]:.1f}" for c in columns))
    out.print(table)
