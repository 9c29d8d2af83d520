"""The `docpress` command line: ingest, search, ls, rm, info, eval (train, distill: cli_train)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from docpress.errors import DocpressError
from docpress.text import OcrMode

app = typer.Typer(help="Search PDF corpora by meaning.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
out = Console()
err = Console(stderr=True)

IndexOpt = Annotated[Optional[Path], typer.Option(
    "--index", "-i", help="Index folder [default: $DOCPRESS_INDEX or ./.docpress].",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CompressionOpt = Annotated[str, typer.Option(
    help="Vector compression: auto (bf16 until the index holds 1,000 pages, then balanced), "
         "none, balanced, compact or tiny (see `docpress compress`).")]
MethodOpt = Annotated[str, typer.Option(
    "--method", "-m", help="Ranking: hybrid (default), maxsim, dense or bm25.")]


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def _parse_meta(pairs: list[str] | None) -> dict:
    meta = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--meta takes KEY=VALUE, got {pair!r}")
        meta[key] = value
    return meta


def _parse_compression(text: str | None):
    """A preset name, or a JSON object of explicit stages."""
    if text is None or not text.lstrip().startswith("{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"--compression: not a preset name or JSON object ({exc.msg})")


def _lane_encoder(name: str, options: dict):
    """An extra lane's encoder from the ingest options (--weights and --mode go to optical)."""
    from docpress.encoders import load_encoder

    return load_encoder(name, **(options if name == "optical" else {}))


def _run(fn):
    """Call fn, turning DocpressError into one line on stderr and exit code 1."""
    try:
        return fn()
    except DocpressError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted: documents committed so far are kept")
        raise typer.Exit(code=130)


def _open(index: Path | None):
    from docpress.index import Index

    return Index.open(index)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="PDF files and folders (searched for *.pdf).")],
    index: IndexOpt = None,
    ocr: Annotated[OcrMode, typer.Option(help="OCR for pages without a text layer.")] = OcrMode.auto,
    meta: Annotated[Optional[list[str]], typer.Option(
        "--meta", help="KEY=VALUE metadata for these documents (repeatable), for filters.")] = None,
    encoder: Annotated[Optional[str], typer.Option(
        help="Page encoder for a new index: text (the default) or optical.", show_default=False)] = None,
    lane: Annotated[Optional[list[str]], typer.Option(
        "--lane", help="Extra lane for a new index, fused into hybrid search: optical "
                       "(with --weights).", show_default=False)] = None,
    weights: Annotated[Optional[Path], typer.Option(
        help="Optical lane: a docpress optical model folder or a DeepSeek-OCR checkpoint.")] = None,
    mode: Annotated[Optional[str], typer.Option(
        help="Optical lane resolution: tiny, small, base, large or gundam (default: the model's).")] = None,
    store: Annotated[Optional[str], typer.Option(
        help="Vector store for a new index: local (embedded, the default), "
             "qdrant://HOST:PORT/COLLECTION or qdrant+path:DIR/COLLECTION.")] = None,
    compression: CompressionOpt = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Add PDFs to the index (created if missing). Unchanged files are skipped, changed ones replaced."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from docpress.index import Index, default_index_path
    from indexer.manifest import MANIFEST

    metadata = _parse_meta(meta)
    target = index or default_index_path()
    options = {k: v for k, v in (("weights", weights and str(weights)), ("mode", mode)) if v}
    lanes = list(lane or [])
    if options and encoder != "optical" and "optical" not in lanes:
        _fail("--weights and --mode are options of the optical lane (--encoder optical or --lane optical)")
    if (target / MANIFEST).exists() and not options and not lanes:  # as the index was built
        idx = _run(lambda: Index.open(target, encoder=encoder, store=store))
    elif lanes:
        idx = _run(lambda: Index.create(target, encoder=encoder or "text", store=store,
                                        lanes={name: _lane_encoder(name, options) for name in lanes}))
    else:
        idx = _run(lambda: Index.create(target, encoder=encoder or "text", store=store, **options))
    skipped_lines = []

    def on_skip(item) -> None:
        skipped_lines.append(f"skipped {item.path}: {item.reason}")
        if not as_json:
            err.print(skipped_lines[-1], highlight=False, soft_wrap=True)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=err,
                  disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("pages", total=None, rate="")
        state = {"file": None, "done": 0, "base": 0}

        def progress(path: str, done: int, total: int) -> None:
            if path != state["file"]:
                state["base"] += state["done"]
                state["file"], state["done"] = path, 0
                bar.update(task, description=Path(path).name[:40])
            state["done"] = done
            elapsed = bar.tasks[0].elapsed or 0
            pages = state["base"] + done
            bar.update(task, completed=pages, rate=f"{pages / elapsed:.1f} pages/s" if elapsed else "")

        report = _run(lambda: idx.add(paths, metadata=metadata, ocr=ocr, progress=progress,
                                      on_skip=on_skip,
                                      compression=_parse_compression(compression)))
    coded_with = idx.compression
    idx.close()
    if as_json:
        print(json.dumps({**report.as_dict(), "compression": coded_with}, indent=2))
        return
    out.print(f"{len(report.added)} added, {len(report.replaced)} replaced, "
              f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped; "
              f"{report.pages} pages ({report.ocr_pages} OCR'd, {report.empty_pages} without text) "
              f"in {report.seconds:.1f}s, {report.pages_per_second:.1f} pages/s -> {target}"
              + (f" (compression: {coded_with})" if coded_with != "none" else ""), highlight=False)


@app.command()
def compress(
    preset: Annotated[str, typer.Argument(
        help="balanced, compact or tiny (see the README's table), or explicit stages as JSON.")],
    index: IndexOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the codec's sample and fitting.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Re-code an index's page vectors with a compression preset fitted on its own pages."""
    config = _parse_compression(preset)
    idx = _run(lambda: _open(index))
    before = idx.info()
    record = _run(lambda: idx.compress(config, seed=seed))
    after = idx.info()
    idx.close()
    summary = {"compression": record, "pages": after["pages"],
               "bytes_per_page_before": before["bytes_per_page"],
               "bytes_per_page": after["bytes_per_page"], "vectors_before": before["vectors"],
               "vectors": after["vectors"]}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    out.print(f"compressed {after['pages']} pages with {idx.compression}: "
              f"{before['bytes_per_page']:,.0f} -> {after['bytes_per_page']:,.0f} bytes a page, "
              f"{before['vectors']:,} -> {after['vectors']:,} vectors", highlight=False)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="The question, in plain words.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Number of pages to return.")] = 5,
    method: MethodOpt = "hybrid",
    doc: Annotated[Optional[str], typer.Option(help="Only documents whose path or name matches this glob.")] = None,
    meta: Annotated[Optional[list[str]], typer.Option("--meta", help="Only documents with KEY=VALUE.")] = None,
    index: IndexOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the pages that best answer a question."""
    metadata = _parse_meta(meta)
    idx = _run(lambda: _open(index))
    hits = _run(lambda: idx.search(query, k=k, method=method, path=doc, metadata=metadata or None))
    idx.close()
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
        table.add_row(str(rank), Path(hit.path).name, str(hit.page + 1), f"{hit.score:.3f}",
                      hit.snippet + source)
    out.print(table)
    out.print("pages are 1-based here; --json gives 0-based page numbers", style="dim")


@app.command("ls")
def list_documents(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """List the indexed documents."""
    idx = _run(lambda: _open(index))
    docs = idx.documents()
    idx.close()
    if as_json:
        print(json.dumps([{"path": d.path, "pages": d.page_count, "title": d.title,
                           "metadata": d.metadata, "sha256": d.sha256} for d in docs], indent=2))
        return
    table = Table()
    for name in ("document", "pages", "title", "metadata"):
        table.add_column(name, overflow="fold")
    for d in docs:
        table.add_row(d.path, str(d.page_count), d.title, json.dumps(d.metadata) if d.metadata else "")
    out.print(table)


@app.command("rm")
def remove(
    pattern: Annotated[str, typer.Argument(help="A document path, file name or glob.")],
    index: IndexOpt = None,
) -> None:
    """Delete documents from the index."""
    idx = _run(lambda: _open(index))
    gone = _run(lambda: idx.remove(pattern))
    idx.close()
    if not gone:
        _fail(f"no indexed document matches {pattern!r} (see `docpress ls`)")
    for path in gone:
        out.print(f"removed {path}", highlight=False)


@app.command()
def info(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Show the index: encoder, counts, sizes."""
    idx = _run(lambda: _open(index))
    data = idx.info()
    idx.close()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        out.print(f"{key:>16}  {value}", highlight=False)


@app.command("eval")
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

    rows = _run(lambda: load_queries(queries))
    idx = _run(lambda: _open(index))
    methods = method or [m.value for m in Method]
    results = {m: _run(lambda m=m: run_eval(idx, rows, m, within_doc)) for m in methods}
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


from docpress.cli_train import distill, train  # noqa: E402 - they use the helpers above

app.command()(train)
app.command()(distill)
from docpress.cli_tune import tune  # noqa: E402

app.command()(tune)


def main() -> None:  # pragma: no cover - entry point for `python -m docpress`
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
