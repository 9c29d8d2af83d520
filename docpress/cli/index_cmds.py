"""Commands that build and look after an index: ingest, compress, ls, rm, info."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from docpress.cli.common import (
    CompressionOpt,
    IndexOpt,
    JsonOpt,
    NoWaitOpt,
    err,
    fail,
    open_index,
    out,
    parse_compression,
    parse_meta,
    run,
    say_waiting,
)
from docpress.pdf.ocr import OcrMode


def _lane_encoder(name: str, options: dict):
    """An extra lane's encoder from the ingest options (--weights and --mode go to optical)."""
    from docpress.encoders import load_encoder

    return load_encoder(name, **(options if name == "optical" else {}))


def _text_encoder(options: dict):
    from docpress.encoders import load_encoder

    return load_encoder("text", **options)


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
    runtime: Annotated[Optional[str], typer.Option(
        help="Text encoder runtime for a new index: torch (the default), onnx, or onnx-int8 "
             "(int8 vectors: faster on CPUs without bf16, see the README).", show_default=False)] = None,
    store: Annotated[Optional[str], typer.Option(
        help="Vector store for a new index: local (embedded, the default), "
             "qdrant://HOST:PORT/COLLECTION, qdrant+path:DIR/COLLECTION or qdrant-edge:DIR.")] = None,
    compression: CompressionOpt = "auto",
    sync: Annotated[bool, typer.Option(
        "--sync", help="Also remove indexed documents under these folders whose files are gone.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit 1 if any file was skipped (default: exit 0 when some were indexed).")] = False,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Add PDFs to the index (created if missing). Unchanged files are skipped, changed ones replaced.

    Exit status: 0 when every file is indexed (or unchanged), or some are and others were
    skipped (said on stderr; --strict makes that 1); 1 when nothing could be indexed."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from docpress.index import Index, default_index_path
    from docpress.ingest import expand_paths
    from indexer.manifest import MANIFEST

    metadata = parse_meta(meta)
    target = index or default_index_path()
    files, missing = expand_paths(paths)
    if not files and not sync:
        for item in missing:
            err.print(f"skipped {item.path}: {item.reason}", highlight=False, soft_wrap=True)
        fail("no PDF files to index in " + ", ".join(str(p) for p in paths))
    existed = (target / MANIFEST).exists()
    options = {k: v for k, v in (("weights", weights and str(weights)), ("mode", mode)) if v}
    lanes = list(lane or [])
    if options and encoder != "optical" and "optical" not in lanes:
        fail("--weights and --mode are options of the optical lane (--encoder optical or --lane optical)")
    if model is not None:
        if encoder not in (None, "text") or options:
            fail("--model is the text encoder's model; the optical lane takes --weights")
        options = {"model": str(model)}
    if runtime is not None:
        if encoder not in (None, "text") or "optical" in lanes:
            fail("--runtime is the text encoder's runtime; it takes no extra lanes")
        options["runtime"] = runtime
    text_options = {k: v for k, v in options.items() if k in ("model", "runtime")}
    if existed and text_options == {"runtime": runtime} and not lanes:  # this runtime on an index
        idx = run(lambda: Index.open(target, encoder=_text_encoder(text_options), store=store))
    elif existed and not options and not lanes:  # as the index was built
        idx = run(lambda: Index.open(target, encoder=encoder, store=store))
    elif lanes:
        idx = run(lambda: Index.create(target, encoder=encoder or "text", store=store,
                                        lanes={name: _lane_encoder(name, options) for name in lanes}))
    else:
        idx = run(lambda: Index.create(target, encoder=encoder or "text", store=store, **options))
    idx.wait_for_writer, idx.on_wait = not no_wait, say_waiting(target)
    idx.searches_after_writes = False  # the command exits after: only caches others read
    skipped_lines = []

    def on_skip(item) -> None:
        skipped_lines.append(f"skipped {item.path}: {item.reason}")
        if not as_json:
            err.print(skipped_lines[-1], highlight=False, soft_wrap=True)

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=err, disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("pages", total=None, rate="")
        state = {"file": None, "done": 0, "base": 0}
        if not bar.disable:  # the total is counted beside the work: 10,000 files take a while
            threading.Thread(target=_count_pages, args=(files, bar, task), daemon=True).start()

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
    removed = run(lambda: idx.sync(paths)) if sync else []
    coded_with = idx.compression
    idx.close()
    if not existed and report.indexed == 0:  # a run that added nothing leaves no index behind
        import shutil

        shutil.rmtree(target, ignore_errors=True)
    if as_json:
        print(json.dumps({**report.as_dict(), "removed": removed, "compression": coded_with}, indent=2))
    else:
        out.print(f"{len(report.added)} added, {len(report.replaced)} replaced, "
                  f"{len(report.unchanged)} unchanged, "
                  + (f"{len(report.duplicates)} copies of indexed files, " if report.duplicates else "")
                  + (f"{len(removed)} removed (files gone), " if sync else "")
                  + f"{len(report.skipped)} skipped; "
                  f"{report.pages} pages ({report.ocr_pages} OCR'd, {report.empty_pages} without text) "
                  f"in {report.seconds:.1f}s, {report.pages_per_second:.1f} pages/s -> {target}"
                  + (f" (compression: {coded_with})" if coded_with != "none" else "")
                  + (f"; compacted, {report.compacted['bytes_reclaimed']:,} bytes reclaimed"
                     if report.compacted else ""), highlight=False, soft_wrap=True)
    if files and report.indexed == 0:
        fail(f"nothing was indexed: all {len(report.skipped)} files were skipped")
    if strict and report.skipped:
        fail(f"{len(report.skipped)} files were skipped (--strict)")


def _count_pages(files, bar, task) -> None:
    """Set the progress bar's total to the pages of all files, growing as they are counted."""
    from docpress.pdf.reader import page_count

    total = 0
    for i, path in enumerate(files):
        total += page_count(path)
        if i % 50 == 49 or i == len(files) - 1:
            bar.update(task, total=total)


def compress(
    preset: Annotated[str, typer.Argument(
        help="balanced, compact or tiny (see the README's table), or explicit stages as JSON.")],
    index: IndexOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the codec's sample and fitting.")] = 0,
    no_wait: NoWaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-code an index's page vectors with a compression preset fitted on its own pages."""
    config = parse_compression(preset)
    idx = run(lambda: open_index(index, no_wait))
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
    docs = run(idx.documents)
    copies = run(idx.aliases)
    idx.close()
    if as_json:
        print(json.dumps([{"path": d.path, "other_paths": copies.get(d.id, []), "pages": d.page_count,
                           "title": d.title, "metadata": d.metadata, "sha256": d.sha256}
                          for d in docs], indent=2))
        return
    table = Table()
    for name in ("document", "pages", "title", "metadata"):
        table.add_column(name, overflow="fold")
    for d in docs:
        shown = "\n".join([d.path, *(f"= {p}" for p in copies.get(d.id, []))])
        table.add_row(shown, str(d.page_count), d.title, json.dumps(d.metadata) if d.metadata else "")
    out.print(table)


def remove(
    pattern: Annotated[str, typer.Argument(help="A document path, file name or glob.")],
    index: IndexOpt = None,
    no_wait: NoWaitOpt = False,
) -> None:
    """Delete documents from the index."""
    idx = run(lambda: open_index(index, no_wait))
    idx.searches_after_writes = False  # the command exits after: only caches others read
    gone = run(lambda: idx.remove(pattern))
    idx.close()
    if not gone:
        fail(f"no indexed document matches {pattern!r} (see `docpress ls`)")
    for path in gone:
        out.print(f"removed {path}", highlight=False)


def info(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Show the index: encoder, counts, sizes."""
    idx = run(lambda: open_index(index))
    data = run(idx.info)
    idx.close()
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        out.print(f"{key:>16}  {value}", highlight=False)




def compact(index: IndexOpt = None, no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Reclaim the space of removed and replaced documents: rewrite the live vectors, delete the rest."""
    idx = run(lambda: open_index(index, no_wait))
    report = run(idx.compact)
    idx.close()
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    line = (f"compacted {idx.directory}: {report.bytes_before:,} -> {report.bytes_after:,} bytes "
            f"({report.bytes_before - report.bytes_after:,} reclaimed), "
            f"{report.rows_before:,} -> {report.rows_after:,} vector rows")
    if report.kept:
        line += f"; {len(report.kept)} old folders are still in use by a reader and go next time"
    out.print(line, highlight=False, soft_wrap=True)


def check(
    index: IndexOpt = None,
    deep: Annotated[bool, typer.Option("--deep", help="Also verify every page's checksum and the "
                                                      "catalog's own integrity (reads everything).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the index for damage; exit 1 (and say what to do) if any is found."""
    from docpress.errors import CorruptIndexError, DocpressError
    from docpress.index import Index, default_index_path

    target = index or default_index_path()
    try:
        idx = Index.open(target)
        report = idx.check(deep=deep)
        idx.close()
        problems = [p.line() for p in report.problems]
        counts = {"pages_checked": report.pages_checked,
                  "pages_without_checksum": report.pages_without_checksum}
    except CorruptIndexError as exc:
        problems, counts = [str(exc)], {}
    except DocpressError as exc:  # no index there, another version: not damage
        fail(str(exc))
    if as_json:
        print(json.dumps({"ok": not problems, "problems": problems, **counts}, indent=2))
    elif not problems:
        note = ""
        if counts.get("pages_without_checksum"):
            note = (f" ({counts['pages_without_checksum']:,} pages predate checksums; "
                    "`docpress compact` records them)")
        out.print(f"ok: {target}" + (f", {counts['pages_checked']:,} pages verified" if deep else "")
                  + note, highlight=False, soft_wrap=True)
    for line in problems if not as_json else []:
        err.print(f"[red]damaged:[/red] {line}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(code=1)


def refit(index: IndexOpt = None, as_json: JsonOpt = False) -> None:
    """Rebuild the search first stages (FAISS IVFs) that the index has outgrown, while the old
    ones serve; ingest and rm start this in the background when it is due."""
    from docpress.index import Index, default_index_path

    target = index or default_index_path()
    idx = run(lambda: Index.open(target))
    rebuilt = run(idx.refit_first_stages)
    idx.close()
    if as_json:
        print(json.dumps({"refitted": rebuilt}))
        return
    out.print(f"refitted {', '.join(rebuilt)} in {target}" if rebuilt else f"nothing to refit in {target}",
              highlight=False, soft_wrap=True)


def repair(index: IndexOpt = None, no_wait: NoWaitOpt = False, as_json: JsonOpt = False) -> None:
    """Bring a damaged index back to its last consistent state; say what was dropped."""
    from docpress.index import Index, default_index_path

    target = index or default_index_path()
    report = run(lambda: Index.repair(target, wait=not no_wait, on_wait=say_waiting(target)))
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
        return
    for action in report.actions:
        out.print(f"- {action}", highlight=False, soft_wrap=True)
    if report.dropped:
        out.print(f"dropped {len(report.dropped)} documents ({report.pages_dropped} pages); the next "
                  "`docpress ingest` of their files adds them back:", highlight=False, soft_wrap=True)
        for path in report.dropped:
            out.print(f"  {path}", highlight=False, soft_wrap=True)
    out.print(f"repaired {target}", highlight=False)
