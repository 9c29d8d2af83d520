"""Commands that build and look after an index: ingest, compress, ls, rm, info."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from docpress.cli.common import (
    CompressionOpt,
    IndexOpt,
    JsonOpt,
    err,
    fail,
    open_index,
    out,
    parse_compression,
    parse_meta,
    run,
)
from docpress.pdf.ocr import OcrMode


def _lane_encoder(name: str, options: dict):
    """An extra lane's encoder from the ingest options (--weights and --mode go to optical)."""
    from docpress.encoders import load_encoder

    return load_encoder(name, **(options if name == "optical" else {}))


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
    model: Annotated[Optional[Path], typer.Option(
        help="Text encoder for a new index: a local sentence-transformers model folder (default: the "
             "bundled all-MiniLM-L6-v2).", show_default=False)] = None,
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

    metadata = parse_meta(meta)
    target = index or default_index_path()
    options = {k: v for k, v in (("weights", weights and str(weights)), ("mode", mode)) if v}
    lanes = list(lane or [])
    if options and encoder != "optical" and "optical" not in lanes:
        fail("--weights and --mode are options of the optical lane (--encoder optical or --lane optical)")
    if model is not None:
        if encoder not in (None, "text") or options:
            fail("--model is the text encoder's model; the optical lane takes --weights")
        options = {"model": str(model)}
    if (target / MANIFEST).exists() and not options and not lanes:  # as the index was built
        idx = run(lambda: Index.open(target, encoder=encoder, store=store))
    elif lanes:
        idx = run(lambda: Index.create(target, encoder=encoder or "text", store=store,
                                        lanes={name: _lane_encoder(name, options) for name in lanes}))
    else:
        idx = run(lambda: Index.create(target, encoder=encoder or "text", store=store, **options))
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

        report = run(lambda: idx.add(paths, metadata=metadata, ocr=ocr, progress=progress,
                                      on_skip=on_skip,
                                      compression=parse_compression(compression)))
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


def compress(
    preset: Annotated[str, typer.Argument(
        help="balanced, compact or tiny (see the README's table), or explicit stages as JSON.")],
    index: IndexOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the codec's sample and fitting.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Re-code an index's page vectors with a compression preset fitted on its own pages."""
    config = parse_compression(preset)
    idx = run(lambda: open_index(index))
    before = idx.info()
    record = run(lambda: idx.compress(config, seed=seed))
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


def list_documents(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """List the indexed documents."""
    idx = run(lambda: open_index(index))
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


def remove(
    pattern: Annotated[str, typer.Argument(help="A document path, file name or glob.")],
    index: IndexOpt = None,
) -> None:
    """Delete documents from the index."""
    idx = run(lambda: open_index(index))
    gone = run(lambda: idx.remove(pattern))
    idx.close()
    if not gone:
        fail(f"no indexed document matches {pattern!r} (see `docpress ls`)")
    for path in gone:
        out.print(f"removed {path}", highlight=False)


def info(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Show the index: encoder, counts, sizes."""
    idx = run(lambda: open_index(index))
    data = idx.info()
    idx.close()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        out.print(f"{key:>16}  {value}", highlight=False)


