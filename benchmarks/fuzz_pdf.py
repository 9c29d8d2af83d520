"""Byte-mutation fuzzing of PDF reading and the OCR decision: no input may crash, hang or eat memory.

Each case takes a seed PDF (small files of the shared PDF zoo, read in place, and PDFs built here
with pymupdf), applies one to three mutations (truncation, bit and byte flips, chunk duplication
and deletion, stream /Length, xref offset, startxref, object number, number and name edits) and
runs the path ingest takes on it in a worker process: open_document, every page of read_pages,
the OCR decision (fill_text with a stub engine: the page is rendered for OCR, no model runs),
render_pages of the first two readable pages at a low DPI. The worker has an address-space limit
and each file a wall-time limit, so a hang or a crash in MuPDF costs one file, never the run.

Outcomes: ok, pdf_error (a clean one-line refusal), exception (any other type escaped: a bug),
invariant (it returned, but something it returned is wrong: a page size that is not finite, a
render over the pixel cap, a page count that does not match), crash (the worker died by a
signal), hang (the wall-time limit), oom (MemoryError or a MuPDF allocation failure escaped).
Every input that did not end ok or pdf_error is saved under OUT/findings/ for triage; case i
is the same file for the same --seed and OUT (which keeps the generated seeds), so
`--replay i --out OUT` rebuilds one.

    nice -n 19 python benchmarks/fuzz_pdf.py --n 10000 --seed 1 --workers 1 --out /work/runs/fuzz/run1
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import os
import random
import re
import resource
import signal
import sys
import time
import traceback
from collections import Counter
from multiprocessing.connection import wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ZOO = ROOT.parent / "shared" / "corpora" / "pdf-zoo"
LOW_DPI = 36  # render_pages in the campaign: enough to run the rasteriser, cheap per file
OCR_RENDERS_PER_FILE = 2  # pages per file that go through the stub OCR engine (a 150-DPI render)
DEFAULT_PIXEL_CAP = 40_000_000  # what the reader promises; its own constant when it has one
OUTCOMES = ("ok", "pdf_error", "exception", "invariant", "crash", "hang", "oom")


# -- seeds ---------------------------------------------------------------------------------

def _raw_pdf(objects: list[bytes], root: int = 1, trailer_extra: bytes = b"") -> bytes:
    """A PDF from object bodies (object i + 1 is objects[i]) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<</Size %d/Root %d 0 R%s>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, root, trailer_extra, xref)
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<</Length %d%s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def generated_seeds() -> list[tuple[str, bytes]]:
    """Small PDFs of the kinds ingest meets, built here (no third-party bytes)."""
    import zlib

    import pymupdf

    seeds: list[tuple[str, bytes]] = []
    text = "The quick brown fox jumps over the lazy dog"

    def text_doc(pages: int = 3) -> pymupdf.Document:
        doc = pymupdf.open()
        for i in range(pages):
            doc.new_page(width=595, height=842).insert_text((72, 100), f"{text} {i}", fontsize=12)
        return doc

    seeds.append(("gen-text-plain", text_doc().tobytes(garbage=4)))
    seeds.append(("gen-text-objstm", text_doc().tobytes(garbage=4, deflate=True, use_objstms=1)))

    doc = pymupdf.open()
    page = doc.new_page(width=400, height=500)
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 48, 48), False)
    pix.clear_with(90)
    page.insert_image(pymupdf.Rect(50, 50, 250, 250), pixmap=pix)
    page = doc.new_page(width=400, height=500)
    gray = pymupdf.Pixmap(pymupdf.csGRAY, pymupdf.IRect(0, 0, 40, 30), False)
    gray.clear_with(200)
    page.insert_image(pymupdf.Rect(20, 20, 220, 170), stream=gray.tobytes("jpeg"))
    seeds.append(("gen-images", doc.tobytes(garbage=4, deflate=True)))

    doc = pymupdf.open()
    doc.new_page(width=300, height=300)  # blank
    doc.new_page(width=300, height=300).insert_text((72, 72), "Page 5")
    page = doc.new_page(width=300, height=300)
    page.draw_rect(pymupdf.Rect(50, 50, 200, 200), color=(0, 0, 0), fill=(0.5, 0.2, 0.1))
    page.draw_bezier((10, 10), (100, 250), (200, 10), (290, 290))
    page = doc.new_page(width=600, height=300)
    page.insert_text((50, 50), "Rotated page with words on it", fontsize=20)
    page.set_rotation(90)
    seeds.append(("gen-sparse-vector-rotated", doc.tobytes(garbage=4)))

    doc = text_doc(1)
    page = doc[0]
    page.add_highlight_annot(pymupdf.Rect(70, 85, 300, 105))
    page.add_text_annot((400, 400), "a note")
    widget = pymupdf.Widget()
    widget.field_type = pymupdf.PDF_WIDGET_TYPE_TEXT
    widget.field_name, widget.field_value = "name", "value"
    widget.rect = pymupdf.Rect(72, 200, 300, 230)
    page.add_widget(widget)
    seeds.append(("gen-annots-form", doc.tobytes(garbage=4)))

    seeds.append(("gen-owner-password", text_doc(2).tobytes(
        garbage=4, encryption=pymupdf.PDF_ENCRYPT_RC4_128, owner_pw="owner",
        permissions=pymupdf.PDF_PERM_PRINT)))

    doc = pymupdf.open()
    page = doc.new_page(width=400, height=300)
    page.insert_font(fontname="F0", fontbuffer=pymupdf.Font("tiro").buffer)
    page.insert_text((40, 100), "Embedded and subset font program", fontname="F0", fontsize=14)
    doc.subset_fonts()
    seeds.append(("gen-embedded-font", doc.tobytes(garbage=4, deflate=True)))

    # Two xref sections: the original file plus an incremental update adding a page.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "incremental.pdf"
        text_doc(1).save(path, garbage=0)
        doc = pymupdf.open(path)
        doc.new_page(width=595, height=842).insert_text((72, 100), "added by an incremental update")
        doc.saveIncr()
        doc.close()
        seeds.append(("gen-incremental", path.read_bytes()))

    # Hand-written: nested page tree, Form XObject, Type3 font, axial shading, inline image,
    # a Flate stream with a PNG predictor. Object numbers: see the list.
    content = (b"q 1 0 0 1 50 50 cm /Fm0 Do Q BT /T3 12 Tf 100 600 Td (ab) Tj ET "
               b"q 200 0 0 100 100 300 cm /Sh0 sh Q "
               b"q 40 0 0 40 300 500 cm BI /W 4 /H 4 /CS /G /BPC 8 ID \x00\x40\x80\xff"
               b"\x00\x40\x80\xff\x00\x40\x80\xff\x00\x40\x80\xff EI Q "
               b"BT /F1 11 Tf 72 720 Td (Hand written page with a nested page tree) Tj ET")
    rows = b"".join(b"\x02" + bytes([(x * 16 + y) % 256 for x in range(8)]) for y in range(8))
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",                                           # 1
        b"<</Type/Pages/Kids[3 0 R 4 0 R]/Count 3>>",                              # 2
        b"<</Type/Pages/Parent 2 0 R/Kids[5 0 R 6 0 R]/Count 2/MediaBox[0 0 612 792]>>",  # 3
        b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 400]/Contents 12 0 R>>",     # 4
        b"<</Type/Page/Parent 3 0 R/Resources 7 0 R/Contents 8 0 R>>",             # 5
        b"<</Type/Page/Parent 3 0 R/Resources 7 0 R/Contents 12 0 R/Rotate 180>>",  # 6
        b"<</Font<</T3 9 0 R/F1 13 0 R>>/XObject<</Fm0 10 0 R/Im0 14 0 R>>/Shading<</Sh0 11 0 R>>>>",  # 7
        _stream(content),                                                          # 8
        (b"<</Type/Font/Subtype/Type3/FontBBox[0 0 10 10]/FontMatrix[0.1 0 0 0.1 0 0]"
         b"/CharProcs<</a 15 0 R/b 15 0 R>>/Encoding<</Differences[97/a/b]>>"
         b"/FirstChar 97/LastChar 98/Widths[10 10]>>"),                            # 9
        _stream(b"0 0 m 100 100 l S /Im0 Do", b"/Type/XObject/Subtype/Form/BBox[0 0 100 100]"
                b"/Resources 7 0 R"),                                              # 10
        (b"<</ShadingType 2/ColorSpace/DeviceRGB/Coords[0 0 1 0]/Function"
         b"<</FunctionType 2/Domain[0 1]/C0[1 0 0]/C1[0 0 1]/N 1>>/Extend[true true]>>"),  # 11
        _stream(b"BT /Helv 9 Tf 10 10 Td (x) Tj ET"),                              # 12
        b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",                        # 13
        _stream(zlib.compress(rows), b"/Type/XObject/Subtype/Image/Width 8/Height 8"
                b"/ColorSpace/DeviceGray/BitsPerComponent 8/Filter/FlateDecode"
                b"/DecodeParms<</Predictor 12/Columns 8>>"),                       # 14
        _stream(b"10 0 0 0 10 10 d1 0 0 10 10 re f"),                              # 15
    ]
    seeds.append(("gen-handwritten-tree", _raw_pdf(objects)))

    # A poster-sized page (20,000 points a side) and a page whose image decodes to far more
    # pixels than the file has bytes: both must render within bounded memory.
    doc = pymupdf.open()
    doc.new_page(width=20000, height=20000).insert_text((100, 200), text, fontsize=60)
    seeds.append(("gen-huge-page", doc.tobytes(garbage=4)))
    bomb = zlib.compress(bytes(4000 * 4000), 9)
    objects = [
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        (b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 400 400]/Resources<</XObject<</Im0 5 0 R>>>>"
         b"/Contents 4 0 R>>"),
        _stream(b"q 400 0 0 400 0 0 cm /Im0 Do Q"),
        _stream(bomb, b"/Type/XObject/Subtype/Image/Width 4000/Height 4000/ColorSpace/DeviceGray"
                b"/BitsPerComponent 8/Filter/FlateDecode"),
    ]
    seeds.append(("gen-image-bomb", _raw_pdf(objects)))
    return seeds


def load_seeds(out: Path, max_bytes: int) -> list[tuple[str, bytes]]:
    """Zoo seeds plus the generated ones, kept under OUT/seeds/ on the first run: pymupdf gives an
    encrypted file a new /ID and keys on each save, and case i must stay the same file."""
    folder = out / "seeds"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for name, data in generated_seeds():
            (folder / f"{name}.pdf").write_bytes(data)
    generated = [(p.stem, p.read_bytes()) for p in sorted(folder.glob("gen-*.pdf"))]
    return zoo_seeds(max_bytes) + generated


def zoo_seeds(max_bytes: int) -> list[tuple[str, bytes]]:
    """The zoo's PDFs up to max_bytes, read in place (they are never copied into the project)."""
    if not ZOO.is_dir():
        return []
    files = sorted(p for p in ZOO.rglob("*.pdf") if p.is_file() and p.stat().st_size <= max_bytes)
    return [("zoo:" + str(p.relative_to(ZOO)), p.read_bytes()) for p in files]


# -- mutations -------------------------------------------------------------------------------

NUMBERS = [b"0", b"1", b"-1", b"2", b"7", b"255", b"256", b"65535", b"65536", b"2147483647",
           b"2147483648", b"4294967296", b"9223372036854775808", b"1000000000000",
           b"99999999999999999999999999", b"1e38", b"3.4e38", b"-0", b".", b"--1", b"0.0000001",
           b"-2147483648", b"20000", b"14400"]
NAMES = [b"Page", b"Pages", b"Kids", b"Count", b"Parent", b"Contents", b"Resources", b"XObject",
         b"Font", b"Type3", b"Type0", b"FlateDecode", b"DCTDecode", b"LZWDecode", b"ASCIIHexDecode",
         b"ASCII85Decode", b"RunLengthDecode", b"CCITTFaxDecode", b"JBIG2Decode", b"JPXDecode",
         b"Crypt", b"ObjStm", b"XRef", b"Length", b"Filter", b"DecodeParms", b"Predictor",
         b"Columns", b"Colors", b"BitsPerComponent", b"Width", b"Height", b"MediaBox", b"CropBox",
         b"Rotate", b"UserUnit", b"Annots", b"Subtype", b"Image", b"Form", b"Pattern", b"Shading",
         b"ColorSpace", b"Indexed", b"ICCBased", b"DeviceN", b"Lab", b"Encrypt", b"W", b"Index",
         b"Size", b"Prev", b"Root", b"Info", b"First", b"N", b"ToUnicode", b"Encoding"]
SPECIAL_BYTES = b"\x00\xff()<>[]{}/%\n\r R0-.#\\"


def _span(rng: random.Random, size: int, cap: int = 4096) -> int:
    """A chunk length, log-uniform from 1 to cap (most edits are small, a few large)."""
    return max(1, min(size, int(math.exp(rng.uniform(0, math.log(cap))))))


def _edit_match(data: bytearray, rng: random.Random, pattern: bytes, group: int, values) -> bool:
    matches = list(re.finditer(pattern, bytes(data)))
    if not matches:
        return False
    m = rng.choice(matches)
    old = m.group(group)
    new = values(old) if callable(values) else rng.choice(values)
    data[m.start(group):m.end(group)] = new
    return True


def _nearby(rng: random.Random, old: bytes) -> bytes:
    try:
        value = int(old)
    except ValueError:
        return rng.choice(NUMBERS)
    return str(value + rng.choice([-1, 1]) * rng.choice([1, 2, 7, 64, 1000, 65536])).encode()


def _number_values(rng: random.Random):
    return lambda old: _nearby(rng, old) if rng.random() < 0.4 else rng.choice(NUMBERS)


def m_truncate(data: bytearray, rng: random.Random) -> bool:
    if len(data) < 2:
        return False
    keep = rng.randrange(1, len(data)) if rng.random() < 0.5 else len(data) - _span(rng, len(data) - 1)
    del data[keep:]
    return True


def m_bitflip(data: bytearray, rng: random.Random) -> bool:
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(data))
        data[i] ^= 1 << rng.randrange(8)
    return True


def m_byteset(data: bytearray, rng: random.Random) -> bool:
    for _ in range(rng.randint(1, 8)):
        value = rng.choice(SPECIAL_BYTES) if rng.random() < 0.5 else rng.randrange(256)
        data[rng.randrange(len(data))] = value
    return True


def m_dup_chunk(data: bytearray, rng: random.Random) -> bool:
    n = _span(rng, len(data))
    start = rng.randrange(len(data) - n + 1)
    chunk = data[start:start + n]
    at = start + n if rng.random() < 0.5 else rng.randrange(len(data) + 1)
    data[at:at] = chunk * rng.choice([1, 1, 1, 2, 16])
    return True


def m_del_chunk(data: bytearray, rng: random.Random) -> bool:
    n = _span(rng, len(data) - 1)
    start = rng.randrange(len(data) - n + 1)
    del data[start:start + n]
    return True


def m_length(data: bytearray, rng: random.Random) -> bool:
    def value(old: bytes) -> bytes:
        return b"999 0 R" if rng.random() < 0.1 else _number_values(rng)(old)
    return _edit_match(data, rng, rb"/Length\s*(\d+)", 1, value)


def m_xref_offset(data: bytearray, rng: random.Random) -> bool:
    def offset(old: bytes) -> bytes:
        roll = rng.random()
        if roll < 0.4:
            value = max(0, int(old) + rng.randint(-40, 40))
        elif roll < 0.8:
            value = rng.randrange(len(data))
        else:
            value = rng.choice([0, 9999999999, len(data)])
        return b"%010d" % value
    if rng.random() < 0.2 and _edit_match(data, rng, rb"\d{10} (\d{5}) [nf]", 1,
                                          [b"65535", b"00001", b"99999"]):
        return True
    if rng.random() < 0.1 and _edit_match(data, rng, rb"\d{10} \d{5} ([nf])", 1, [b"n", b"f", b"x"]):
        return True
    if _edit_match(data, rng, rb"(\d{10}) \d{5} [nf]", 1, offset):
        return True
    # A cross-reference stream (compressed files): its /W, /Index, /Size or /Prev instead.
    return _edit_match(data, rng, rb"/(?:W|Index|Size|Prev)\s*\[?\s*(\d+)", 1, _number_values(rng))


def m_startxref(data: bytearray, rng: random.Random) -> bool:
    def value(old: bytes) -> bytes:
        return rng.choice([_nearby(rng, old), b"0", str(rng.randrange(len(data))).encode(),
                           b"99999999999", b"-5"])
    return _edit_match(data, rng, rb"startxref\s+(\d+)", 1, value)


def m_objnum(data: bytearray, rng: random.Random) -> bool:
    numbers = sorted({int(m.group(1)) for m in re.finditer(rb"(\d+) \d+ obj", bytes(data))}) or [1]

    def renumber(old: bytes) -> bytes:
        roll = rng.random()
        if roll < 0.6:
            return str(rng.choice(numbers)).encode()  # another object: cycles, wrong types
        return rng.choice([b"0", str(int(old) + 1).encode(), b"8388607", b"2147483647", b"99999999"])
    if rng.random() < 0.15:
        return _edit_match(data, rng, rb"\d+ (\d+) (?:obj|R)", 1, [b"1", b"65535", b"65536"])
    return _edit_match(data, rng, rb"(\d+) \d+ (?:obj|R)", 1, renumber)


def m_number(data: bytearray, rng: random.Random) -> bool:
    return _edit_match(data, rng, rb"[\s\[/(](-?\d+(?:\.\d+)?)(?=[\s\]/>])", 1, _number_values(rng))


def m_name(data: bytearray, rng: random.Random) -> bool:
    return _edit_match(data, rng, rb"/([A-Za-z][A-Za-z0-9]*)", 1, NAMES)


MUTATIONS = {
    "truncate": m_truncate, "bitflip": m_bitflip, "byteset": m_byteset, "dup_chunk": m_dup_chunk,
    "del_chunk": m_del_chunk, "length": m_length, "xref_offset": m_xref_offset,
    "startxref": m_startxref, "objnum": m_objnum, "number": m_number, "name": m_name,
}


def make_case(seeds: list[tuple[str, bytes]], seed: int, index: int) -> tuple[str, list[str], bytes]:
    """Case `index` of campaign `seed`: (seed name, mutations applied, bytes). Deterministic."""
    rng = random.Random(f"{seed}:{index}")
    generated = [s for s in seeds if s[0].startswith("gen-")]
    zoo = [s for s in seeds if not s[0].startswith("gen-")]
    name, raw = rng.choice(generated if not zoo or rng.random() < 0.5 else zoo)
    data = bytearray(raw)
    applied = []
    for _ in range(rng.choices([1, 2, 3], [0.6, 0.25, 0.15])[0]):
        kind = rng.choice(list(MUTATIONS))
        if data and MUTATIONS[kind](data, rng):
            applied.append(kind)
    if not applied:  # no place for the chosen edits: a bit flip is always possible
        m_bitflip(data, rng)
        applied.append("bitflip")
    return name, applied, bytes(data)


# -- the path under test ------------------------------------------------------------------

class InvariantError(AssertionError):
    """The path returned normally, but what it returned is wrong."""


class _NoTextEngine:
    """Stands in for the OCR model: fill_text runs its decision and the render, no model runs.
    It notes the size of each image it gets (fill_text swallows errors raised in an engine)."""

    class _Result:
        txts = None
        boxes = None

    def __init__(self):
        self.shapes: list[tuple] = []

    def __call__(self, image):
        self.shapes.append(image.shape)
        return self._Result()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InvariantError(message)


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def exercise(path: Path) -> dict:
    """Everything ingest does with a file short of encoding it; raise on a broken contract."""
    from docpress.pdf import ocr, reader
    from docpress.pdf.ocr import OcrMode, fill_text

    cap = getattr(reader, "MAX_RENDER_PIXELS", DEFAULT_PIXEL_CAP)
    engine = _NoTextEngine()
    ocr._rapidocr_engine = lambda: engine  # the campaign never loads a model
    document = reader.open_document(path)
    _check(document.page_count > 0, f"page_count {document.page_count}")
    pages = needs_ocr = ocr_rendered = 0
    readable = []
    for page in reader.read_pages(path):
        _check(page.number == pages, f"page {page.number} yielded as page {pages}")
        _check(_finite(page.width, page.height) and page.width >= 0 and page.height >= 0,
               f"page size {page.width} x {page.height}")
        for word in page.words:
            _check(isinstance(word.text, str) and word.text.strip() == word.text and word.text,
                   f"word {word.text!r}")
            _check(_finite(*word.box), f"word box {word.box}")
        if page.needs_ocr:
            needs_ocr += 1
            goes_to_ocr = page.width and not page.text_only and ocr_rendered < OCR_RENDERS_PER_FILE
            page = fill_text(path, page, OcrMode.rapidocr if goes_to_ocr else OcrMode.off)
            ocr_rendered += bool(goes_to_ocr)
            _check(page.text_source in ("pdf", "none"), f"text_source {page.text_source}")
        if page.width and page.height and len(readable) < 2:
            readable.append(page.number)
        pages += 1
    _check(pages == document.page_count, f"read {pages} pages of {document.page_count}")
    for shape in engine.shapes:  # what OCR would have read
        _check(len(shape) == 3 and shape[0] >= 1 and shape[1] >= 1 and shape[0] * shape[1] <= cap,
               f"OCR image {shape}")
    rendered = 0
    for image in reader.render_pages(path, readable, [LOW_DPI] * len(readable)):
        if image is not None:
            rendered += 1
            _check(image.mode == "RGB" and image.width >= 1 and image.height >= 1, f"image {image}")
            _check(image.width * image.height <= cap, f"render {image.width} x {image.height} over the cap")
    return {"pages": pages, "needs_ocr": needs_ocr, "ocr_rendered": ocr_rendered, "rendered": rendered}


def _is_memory_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or "malloc" in text or "out of memory" in text


def run_one(path: Path) -> dict:
    """Outcome of one file: {outcome, kind, message, where}."""
    from docpress.errors import PdfError

    try:
        info = exercise(path)
    except PdfError as exc:
        if exc.reason and "\n" not in exc.reason and "\r" not in exc.reason:
            return {"outcome": "pdf_error", "kind": "PdfError", "message": exc.reason[:200]}
        return {"outcome": "exception", "kind": "PdfError(not one line)", "message": repr(exc.reason)[:300]}
    except InvariantError as exc:
        return {"outcome": "invariant", "kind": "invariant", "message": str(exc)[:300],
                "where": _where(exc)}
    except Exception as exc:  # the contract allows PdfError only: anything else is a finding
        outcome = "oom" if _is_memory_error(exc) else "exception"
        return {"outcome": outcome, "kind": type(exc).__name__, "message": " ".join(str(exc).split())[:300],
                "where": _where(exc)}
    return {"outcome": "ok", **info}


def _where(exc: BaseException) -> str:
    """The innermost frames in docpress, which say which call escaped."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "docpress" in f.filename]
    return " < ".join(f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in reversed(frames[-3:]))


# -- workers ----------------------------------------------------------------------------------

def _peak_rss_reset() -> None:
    try:  # Linux: "5" resets the peak RSS (VmHWM) to the current RSS
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss_kib() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class _PageFailures(logging.Handler):
    """Collects why pages were unreadable or unrenderable (read_pages and render_pages log it)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen: Counter = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.seen) < 20:
            text = record.getMessage().split(": ", 1)[-1]  # without the path
            self.seen[re.sub(r"\d+", "N", text)[:100]] += 1


def _worker(conn, mem_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    failures = _PageFailures()
    pdf_log = logging.getLogger("docpress.pdf")
    pdf_log.addHandler(failures)
    pdf_log.propagate = False  # read_pages logs each unreadable page: counted, not printed
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    import docpress.pdf.ocr  # noqa: F401  (imports before the first clock starts)

    while True:
        path = conn.recv()
        if path is None:
            return
        _peak_rss_reset()
        failures.seen.clear()
        started = time.perf_counter()
        result = run_one(Path(path))
        result["page_failures"] = dict(failures.seen)
        result["seconds"] = round(time.perf_counter() - started, 3)
        result["rss_kib"] = _peak_rss_kib()
        pymupdf.TOOLS.reset_mupdf_warnings()  # the warnings buffer would grow over the files
        conn.send(result)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Slot:
    """One worker process and the case it is working on; replaced when it dies or hangs."""

    def __init__(self, ctx, index: int, work: Path, mem_bytes: int):
        self.ctx, self.index, self.mem_bytes = ctx, index, mem_bytes
        self.path = work / f"slot{index}.pdf"
        self.proc = self.conn = None
        self.case = None
        self.started = 0.0
        self.files = 0

    def start(self) -> None:
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=_worker, args=(child, self.mem_bytes), daemon=True)
        self.proc.start()
        child.close()
        self.conn, self.files = parent, 0

    def submit(self, case: dict, data: bytes) -> None:
        if self.proc is None:
            self.start()
        self.path.write_bytes(data)
        self.case, self.started = case, time.perf_counter()
        self.cpu_started = _cpu_seconds(self.proc.pid)
        self.conn.send(str(self.path))
        self.files += 1

    def hung(self, timeout: float) -> bool:
        """Over the time limit. On a shared machine a starved worker is not a hung one: it must
        also have used half the limit in CPU time, or have waited five limits."""
        wall = time.perf_counter() - self.started
        if wall <= timeout:
            return False
        return wall > 5 * timeout or _cpu_seconds(self.proc.pid) - self.cpu_started >= timeout / 2

    def stop(self, kill: bool = False) -> int | None:
        if self.proc is None:
            return None
        if kill:
            os.kill(self.proc.pid, signal.SIGKILL)
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(10)
        code = self.proc.exitcode
        self.conn.close()
        self.proc = self.conn = None
        return code


def campaign(args) -> dict:
    out = Path(args.out)
    seeds = load_seeds(out, args.max_seed_bytes)
    work, findings = out / "work", out / "findings"
    work.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    log = open(out / "cases.jsonl", "a")
    ctx = mp.get_context("spawn")
    slots = [Slot(ctx, i, work, args.mem_mb << 20) for i in range(args.workers)]
    counts = Counter({k: 0 for k in OUTCOMES})
    classes: Counter = Counter()
    by_seed: Counter = Counter()
    by_mutation: Counter = Counter()
    page_failures: Counter = Counter()
    slowest: list[tuple[float, int]] = []
    max_rss = 0
    started = time.perf_counter()
    pending = list(range(args.start, args.start + args.n))[::-1]
    busy: dict = {}
    last_print = started

    def finish(slot: Slot, result: dict) -> None:
        nonlocal max_rss
        case = slot.case
        case.update(result)
        outcome = result["outcome"]
        counts[outcome] += 1
        by_seed[(case["seed"], outcome)] += 1
        for m in case["mutations"]:
            by_mutation[(m, outcome)] += 1
        page_failures.update(result.get("page_failures", {}).keys())  # files, not pages
        max_rss = max(max_rss, result.get("rss_kib", 0))
        slowest.append((result.get("seconds", args.timeout), case["case"]))
        slowest.sort(reverse=True)
        del slowest[5:]
        big = result.get("rss_kib", 0) > args.rss_alert_mb * 1024
        if outcome not in ("ok", "pdf_error") or big:
            label = outcome if outcome not in ("ok", "pdf_error") else "big_rss"
            classes[(label, result.get("kind", ""), _signature(result))] += 1
            name = f"{case['case']:06d}-{label}-{re.sub(r'[^A-Za-z0-9]+', '_', case['seed'])[-40:]}.pdf"
            (findings / name).write_bytes(slot.path.read_bytes())
        log.write(json.dumps(case) + "\n")
        slot.case = None
        busy.pop(slot.index, None)

    try:
        while pending or busy:
            for slot in slots:
                if slot.index not in busy and pending:
                    if slot.proc is not None and slot.files >= args.recycle:
                        slot.stop()  # a fresh worker now and then: MuPDF's caches start empty
                    index = pending.pop()
                    name, applied, data = make_case(seeds, args.seed, index)
                    slot.submit({"case": index, "seed": name, "mutations": applied, "bytes": len(data)}, data)
                    busy[slot.index] = slot
            now = time.perf_counter()
            deadline = min(s.started + args.timeout for s in busy.values())
            ready = wait([s.conn for s in busy.values()], timeout=max(1.0, deadline - now))
            for slot in list(busy.values()):
                if slot.conn in ready:
                    try:
                        result = slot.conn.recv()
                    except (EOFError, OSError):
                        code = slot.stop(kill=False)
                        # SIGKILL not sent by us: the kernel's OOM killer
                        outcome = "oom" if code == -signal.SIGKILL else "crash"
                        kind = f"signal {-code}" if code and code < 0 else f"exit {code}"
                        result = {"outcome": outcome, "kind": kind, "message": "worker died"}
                    finish(slot, result)
                elif slot.hung(args.timeout):
                    slot.stop(kill=True)
                    finish(slot, {"outcome": "hang", "kind": "timeout", "seconds": args.timeout,
                                  "message": f"over {args.timeout} s"})
            done = sum(counts.values())
            if time.perf_counter() - last_print > 60:
                last_print = time.perf_counter()
                print(f"  {done}/{args.n} {dict(counts)} {time.perf_counter() - started:.0f} s",
                      file=sys.stderr, flush=True)
    finally:
        for slot in slots:
            slot.stop()
        log.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "command": " ".join(sys.argv),
        "seed": args.seed, "start": args.start,
        "files": sum(counts.values()),
        "seeds": {"zoo": sum(1 for s in seeds if s[0].startswith("zoo:")),
                  "generated": sum(1 for s in seeds if s[0].startswith("gen-"))},
        "outcomes": dict(counts),
        "max_worker_rss_mib": round(max(max_rss, children) / 1024, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "slowest": [{"case": c, "seconds": s} for s, c in slowest],
        "classes": [{"outcome": o, "kind": k, "signature": sig, "count": n}
                    for (o, k, sig), n in classes.most_common()],
        "page_failures": dict(page_failures.most_common(15)),  # files in which a page was lost, by reason
        "by_mutation": {f"{m}/{o}": n for (m, o), n in sorted(by_mutation.items())},
    }


def _signature(result: dict) -> str:
    """What groups findings into classes: where it escaped, and the message without numbers."""
    message = re.sub(r"\d+(\.\d+)?", "N", result.get("message", ""))[:100]
    return f"{result.get('where', '')} | {message}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="mutated files to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first case index (to run in chunks)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", default="/work/runs/fuzz/campaign")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per file")
    parser.add_argument("--mem-mb", type=int, default=3072, help="address-space limit of a worker")
    parser.add_argument("--rss-alert-mb", type=int, default=1024,
                        help="also save inputs whose worker peak RSS passed this")
    parser.add_argument("--recycle", type=int, default=500, help="files per worker before a fresh one")
    parser.add_argument("--max-seed-bytes", type=int, default=120_000, help="largest zoo file to seed from")
    parser.add_argument("--replay", type=int, help="write case REPLAY to OUT/replay-REPLAY.pdf, run it here")
    args = parser.parse_args()

    if args.replay is not None:
        seeds = load_seeds(Path(args.out), args.max_seed_bytes)
        name, applied, data = make_case(seeds, args.seed, args.replay)
        path = Path(args.out) / f"replay-{args.replay}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(json.dumps({"case": args.replay, "seed": name, "mutations": applied, "path": str(path),
                          **run_one(path)}))
        return
    summary = campaign(args)
    with open(Path(args.out) / f"summary-{args.seed}-{args.start}.json", "w") as fh:
        json.dump(summary, fh, indent=2)
    print(json.dumps({k: v for k, v in summary.items() if k != "by_mutation"}, indent=2))


if __name__ == "__main__":
    main()
