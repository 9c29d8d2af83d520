"""Ingest: PDFs -> pages -> text (OCR where needed) -> vectors -> store + catalog, file by file."""

from __future__ import annotations

import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from docpress.encoders.base import Encoder
from docpress.errors import DocpressError, IndexWriteError, PdfError
from docpress.pdf.ocr import OcrMode, resolve_ocr
from docpress.pdf.prefetch import ReadFile, prefetch, read_file
from docpress.pdf.reader import open_document, render_pages
from docpress.types import Page
from indexer.catalog import Catalog, PageRow
from indexer.stores.base import StoredPage
from retriever.lanes import Lane

# Runs with fewer pages to read than this read them in this process (starting the reader
# processes takes about a second and a half).
PREFETCH_MIN_PAGES = 64
# Pages encoded per model call: enough windows to fill batches, small enough for steady progress.
PAGES_PER_BATCH = 16


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class IngestReport:
    """What one `add` did: counts, skipped files with reasons, and time spent."""

    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # identical to an indexed file (same bytes, same metadata): recorded as another path of it
    duplicates: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    pages: int = 0
    ocr_pages: int = 0
    empty_pages: int = 0
    seconds: float = 0.0
    ocr_seconds: float = 0.0
    compacted: dict | None = None  # what the automatic compaction reclaimed, when it ran

    @property
    def indexed(self) -> int:
        """Files the index now answers for from this run (new, replaced, unchanged, copies)."""
        return len(self.added) + len(self.replaced) + len(self.unchanged) + len(self.duplicates)

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "added": self.added, "replaced": self.replaced, "unchanged": self.unchanged,
            "duplicates": self.duplicates,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "pages": self.pages, "ocr_pages": self.ocr_pages, "empty_pages": self.empty_pages,
            "seconds": round(self.seconds, 3), "ocr_seconds": round(self.ocr_seconds, 3),
            "pages_per_second": round(self.pages_per_second, 2), "compacted": self.compacted,
        }


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[Skipped]]:
    """Files as given plus every *.pdf under given folders (sorted); missing paths are skipped."""
    files, missing = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() == ".pdf" and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(Skipped(str(path), "no such file or folder"))
    seen, unique = set(), []
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, missing


ProgressFn = Callable[[str, int, int], None]  # (file, pages done in file, pages in file)


def _settled(path: Path, document, catalog: Catalog, metadata: dict, report: IngestReport,
             progress: ProgressFn | None) -> bool:
    """Handle a file that needs no reading: unchanged since it was indexed, or a copy of an
    indexed document (recorded as another path of it). False: it must be read and indexed."""
    key = str(path.resolve())
    existing = catalog.document_by_path(key)
    owner = catalog.alias_owner(key)  # this path is a copy of an indexed document
    same = existing or (catalog.document(owner) if owner is not None else None)
    if same and same.sha256 == document.sha256 and same.metadata == metadata:
        report.unchanged.append(key)
    else:
        twin = catalog.document_by_sha(document.sha256, metadata)
        if twin is None or (existing is not None and twin.id == existing.id):
            return False
        with _writing(key), catalog.transaction():  # another copy of an indexed file
            if owner is not None:
                catalog.remove_alias(key)
            if existing:
                _detach(catalog, existing)
            catalog.add_alias(key, twin.id)
        report.duplicates.append(key)
    if progress:
        progress(key, document.page_count, document.page_count)
    return True


@dataclass
class _FileWork:
    """One file read and on its way to the index: its pages, then their vectors per lane."""

    path: Path
    document: object
    read: ReadFile
    vectors: dict[str, list] = field(default_factory=dict)  # lane name -> PageVectors per page

    @property
    def key(self) -> str:
        return str(self.path.resolve())


def ingest_file(path: Path, catalog: Catalog, lanes: Sequence[Lane], ocr: OcrMode, metadata: dict,
                report: IngestReport, progress: ProgressFn | None = None,
                read: ReadFile | None = None, document=None) -> None:
    """Index one PDF, replacing an older version; all its pages become visible in one commit.

    lanes: the index's lanes; each one that owns its rows encodes every page into its store.
    read: its pages already read (by a prefetch worker); None reads them here.
    """
    document = document or open_document(path)  # raises PdfError for unusable files
    if _settled(path, document, catalog, metadata, report, progress):
        return
    work = _FileWork(path, document, read or read_file(path, ocr))
    _encode_files([work], lanes, progress)
    _commit(work, catalog, lanes, metadata, report, progress)


def _encode_files(works: list[_FileWork], lanes: Sequence[Lane], progress: ProgressFn | None) -> None:
    """Every page of `works` through each writing lane's encoder, PAGES_PER_BATCH pages a call
    whichever files they come from: a folder of one-page files fills the model's batches as a
    long report does (short texts run ~1.8x faster 32 windows a call than one)."""
    writers = [lane for lane in lanes if lane.owns_rows]
    items = [(work, page) for work in works for page in work.read.pages]
    for work in works:
        work.vectors = {lane.name: [] for lane in writers}
    for b in range(0, len(items), PAGES_PER_BATCH):
        batch = items[b:b + PAGES_PER_BATCH]
        for lane in writers:
            vectors = _encode([work.path for work, _ in batch], [page for _, page in batch], lane.encoder)
            for (work, _), v in zip(batch, vectors):
                work.vectors[lane.name].append(v)
        last = batch[-1][0]
        if progress and len(works) == 1:  # one long file: its progress page batch by page batch
            progress(last.key, len(last.vectors[writers[0].name]) if writers else 0,
                     last.document.page_count)


def _commit(work: _FileWork, catalog: Catalog, lanes: Sequence[Lane], metadata: dict,
            report: IngestReport, progress: ProgressFn | None) -> None:
    """Write one file's pages and vectors: visible in one catalog commit, durable before it."""
    key, document = work.key, work.document
    writers = [lane for lane in lanes if lane.owns_rows]
    report.ocr_seconds += work.read.ocr_seconds
    existing = catalog.document_by_path(key)
    owner = catalog.alias_owner(key)
    first_id = catalog.next_page_id()
    rows = []
    for i, page in enumerate(work.read.pages):
        report.ocr_pages += page.text_source.startswith("ocr")
        report.empty_pages += not page.words
        rows.append(PageRow(doc_id=-1, number=page.number, width=page.width, height=page.height,
                            text=page.text, text_source=page.text_source, id=first_id + i))
    with _writing(key), catalog.transaction():
        if owner is not None:
            catalog.remove_alias(key)
        old_pages = _detach(catalog, existing) if existing else []
        doc_id = catalog.insert_document(key, document.sha256, document.title,
                                         document.page_count, metadata)
        for row in rows:
            row.doc_id = doc_id
        catalog.insert_pages(rows)
        for lane in writers:
            pages = [StoredPage(row.id, doc_id, v, row.text.split(" "))
                     for row, v in zip(rows, work.vectors[lane.name])]
            # durable in the store before the commit that makes the pages visible
            lane.place(catalog, {sp.page_id: loc for sp, loc in zip(pages, lane.store.add(pages))})
    if old_pages:
        for lane in writers:
            lane.store.remove(old_pages)
    (report.replaced if existing else report.added).append(key)
    report.pages += len(rows)
    work.vectors = {}
    if progress:
        progress(key, len(rows), document.page_count)


def _raise(exc: Exception) -> None:
    raise exc


def _detach(catalog: Catalog, doc) -> list[int]:
    """Take a path's document off it before the path gets new content: a document that has
    identical copies lives on under one of their paths; else it is deleted (its page ids)."""
    copies = catalog.aliases(doc.id).get(doc.id, [])
    if copies:
        catalog.set_document_path(doc.id, copies[0])
        return []
    return catalog.delete_document(doc.id)


@contextmanager
def _writing(key: str):
    """A failure while writing to the index is the index's problem, not the PDF's: one line
    that says nothing of the file was committed."""
    try:
        yield
    except DocpressError:
        raise
    except (sqlite3.Error, OSError, AssertionError, ValueError) as exc:
        raise IndexWriteError(f"writing {key} to the index failed ({type(exc).__name__}: {exc}); "
                              "nothing of it was committed; run `docpress check`") from None


def _encode(path: Path | list[Path], pages: list[Page], encoder: Encoder) -> list:
    """The encoder's PageVectors of a batch, rendering the page images first when it reads them.
    path: the file of every page, or each page's own file (a batch across files)."""
    paths = path if isinstance(path, list) else [path] * len(pages)
    if encoder.needs_images:
        for file in dict.fromkeys(paths):  # one opening of each file
            _attach_images(file, [page for f, page in zip(paths, pages) if f == file], encoder)
    try:
        return encoder.encode_pages(pages)
    finally:
        for page in pages:
            page.image = None  # a batch of page images is megabytes: free them now


def _attach_images(path: Path, pages: list[Page], encoder: Encoder) -> None:
    """Render the batch's pages (one opening of the file) at the DPI the encoder asks for.

    Unreadable pages (no size) and pages that fail to render are marked render_failed, which
    the encoder turns into no vectors.
    """
    readable = [p for p in pages if p.width and p.height]
    dpis = [encoder.render_dpi(p) for p in readable]
    images = render_pages(path, [p.number for p in readable], dpis) if readable else []
    for page in pages:
        page.image, page.render_failed = None, True
    for page, image in zip(readable, images):
        page.image, page.render_failed = image, image is None


def ingest(paths: Iterable[str | Path], catalog: Catalog, lanes: Sequence[Lane],
           ocr: OcrMode = OcrMode.auto, metadata: dict | None = None,
           progress: ProgressFn | None = None,
           on_skip: Callable[[Skipped], None] | None = None,
           workers: int | None = None) -> IngestReport:
    """Ingest files and folders; a bad file is reported in `skipped` and the rest go on.

    Files that need indexing are read (text layer, OCR) by `workers` processes ahead of the
    encoder (docpress.pdf.prefetch; 0: in this process, one after the other); unchanged files
    and copies of indexed ones are settled first, without reading them.
    """
    report = IngestReport()
    started = time.perf_counter()
    ocr = resolve_ocr(ocr)
    metadata = dict(metadata or {})
    files, missing = expand_paths(paths)

    def skip(item: Skipped) -> None:
        report.skipped.append(item)
        if on_skip:
            on_skip(item)

    for item in missing:
        skip(item)
    todo = {}
    for path in files:  # cheap: open, hash, look up
        try:
            document = open_document(path)
            if not _settled(path, document, catalog, metadata, report, progress):
                todo[path] = document
        except DocpressError as exc:
            if not isinstance(exc, PdfError):
                raise  # a problem with the index, not with this file
            skip(Skipped(str(path), exc.reason))
        except Exception as exc:  # a PDF that breaks the parser: report, keep going
            skip(Skipped(str(path), f"failed to read ({type(exc).__name__}: {exc})"))
    if workers is None and (len(todo) < 2 or sum(d.page_count for d in todo.values()) < PREFETCH_MIN_PAGES):
        workers = 0  # starting reader processes costs more than a small run reads
    group: list[_FileWork] = []  # small files read, waiting to fill the encoder's batches

    def guarded(path: Path, step: Callable[[], None]) -> bool:
        """Run one file's step; a file's own problem skips it (False), the index's is raised."""
        try:
            step()
            return True
        except PdfError as exc:
            skip(Skipped(str(path), exc.reason))
        except DocpressError:
            raise  # a problem with the index or the models, not with this file
        except Exception as exc:  # a PDF that breaks the parser mid-way: report, keep going
            skip(Skipped(str(path), f"failed to read ({type(exc).__name__}: {exc})"))
        return False

    def encode(works: list[_FileWork]) -> list[_FileWork]:
        """The works whose pages were encoded; one that breaks a shared batch is found alone."""
        if len(works) > 1:
            try:
                _encode_files(works, lanes, progress)
                return works
            except DocpressError as exc:
                if not isinstance(exc, PdfError):
                    raise
            except Exception:  # noqa: BLE001 (which file it was is found next)
                pass
        # retried alone: without progress, which each file reports once, at its commit
        return [w for w in works if guarded(w.path, lambda w=w: _encode_files([w], lanes, progress if len(works) == 1 else None))]

    def drain() -> None:
        works, group[:] = list(group), []
        for work in encode(works):
            guarded(work.path, lambda work=work: _commit(work, catalog, lanes, metadata, report, progress))

    for path, read in prefetch(list(todo), ocr, workers):
        if isinstance(read, Exception):
            guarded(path, lambda read=read: _raise(read))
            continue
        document = todo[path]
        if any(w.document.sha256 == document.sha256 for w in group):
            drain()  # a copy of a file in the batch: settle it against the committed original
        if _settled(path, document, catalog, metadata, report, progress):
            continue
        work = _FileWork(path, document, read)
        if len(read.pages) >= PAGES_PER_BATCH:  # a long file fills batches of its own
            drain()
            group.append(work)
            drain()
            continue
        group.append(work)
        if sum(len(w.read.pages) for w in group) >= PAGES_PER_BATCH:
            drain()
    drain()
    report.seconds = time.perf_counter() - started
    return report

