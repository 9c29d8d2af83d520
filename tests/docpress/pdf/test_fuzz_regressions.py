"""What fuzzing the PDF path found (benchmarks/fuzz_pdf.py, results in benchmarks/results/fuzz.md),
each on a small PDF built here and damaged the same way, and the memory bounds: a poster-sized
page renders within the pixel cap, a 5,000-page file streams, a page of a million paths is
decided for OCR without listing them.

The contract: for any bytes, open_document / read_pages / render_pages raise PdfError (one-line
reason) or return; a page that cannot be read or rendered costs that page only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

pymupdf = pytest.importorskip("pymupdf")

from docpress.errors import PdfError  # noqa: E402
from docpress.pdf import ocr as ocr_mod  # noqa: E402
from docpress.pdf.ocr import MAX_OCR_PIXELS, OcrMode, fill_text  # noqa: E402
from docpress.pdf.reader import (  # noqa: E402
    MAX_RENDER_PIXELS,
    open_document,
    read_pages,
    render_page,
    render_pages,
    render_zoom,
)

ROOT = Path(__file__).resolve().parents[3]
SENTENCE = "The quick brown fox jumps over the lazy dog"


def _text_pdf_bytes(pages: int = 3, size=(595, 842)) -> bytes:
    doc = pymupdf.open()
    for i in range(pages):
        doc.new_page(width=size[0], height=size[1]).insert_text((72, 100), f"{SENTENCE} {i}", fontsize=12)
    data = doc.tobytes(garbage=4)  # plain objects, a classic xref table
    doc.close()
    return data


def _raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF from object bodies (object i + 1 is objects[i]) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def _stream(data: bytes, extra: bytes = b"") -> bytes:
    return b"<</Length %d%s>>\nstream\n" % (len(data), extra) + data + b"\nendstream"


def _one_page(contents: bytes, resources: bytes = b"<<>>", box: bytes = b"0 0 400 400") -> bytes:
    return _raw_pdf([
        b"<</Type/Catalog/Pages 2 0 R>>",
        b"<</Type/Pages/Kids[3 0 R]/Count 1>>",
        b"<</Type/Page/Parent 2 0 R/MediaBox[%s]/Resources %s/Contents 4 0 R>>" % (box, resources),
        contents,
    ])


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path: Path) -> str:
    """The one-line reason every entry point gives for an unusable file."""
    with pytest.raises(PdfError) as info:
        open_document(path)
    reason = info.value.reason
    assert reason and "\n" not in reason and str(path) not in reason
    with pytest.raises(PdfError):
        next(read_pages(path))
    with pytest.raises(PdfError):
        render_pages(path, [0], 36)
    return reason


def _run(code: str, *args: str) -> dict:
    """Run code in a fresh interpreter (its own peak RSS); it prints one JSON line."""
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- found by the campaign ----------------------------------------------------------------

@pytest.mark.parametrize("count", [b"4", b"50", b"2000000000"])
def test_page_count_past_the_objects_is_a_clean_refusal(tmp_path, count):
    """A /Count the file cannot have: MuPDF opens the file, then counting the pages raises
    ("Invalid number of pages"), which escaped open_document as a RuntimeError."""
    data = _text_pdf_bytes(3)
    assert data.count(b"/Count 3") == 1
    path = _write(tmp_path, "count.pdf", data.replace(b"/Count 3", b"/Count " + count))
    if count == b"4":  # within the object count MuPDF believes it: the missing page is unreadable
        pages = list(read_pages(path))
        assert open_document(path).page_count == 4 and len(pages) == 4
        assert [p.text_source for p in pages] == ["pdf", "pdf", "pdf", "none"]
        assert pages[3].words == [] and pages[3].width == 0
        return
    assert _refused(path) == "broken PDF (Invalid number of pages)"


@pytest.mark.parametrize("box, long_side", [(b"0 0 9223372036854775808 842", 0),
                                             (b"0 0 243 9223372036854775808", 1)])
def test_page_too_long_to_render_is_refused_not_zero_pixels(tmp_path, box, long_side):
    """A MediaBox of 9.2e18 points (a number edit): within the pixel cap such a page is under
    a pixel across, and MuPDF returned a 16777216 x 0 image. Now the page is not rendered."""
    data = _text_pdf_bytes(1)
    path = _write(tmp_path, "long.pdf", data.replace(b"/MediaBox[0 0 595 842]", b"/MediaBox[" + box + b"]"))
    (page,) = read_pages(path)
    assert (page.width, page.height)[long_side] > 1e18
    assert render_pages(path, [0], 36) == [None]
    with pytest.raises(PdfError, match="too large to render"):
        render_page(path, 0, dpi=150)


def test_render_page_of_an_unloadable_page_is_a_pdf_error(tmp_path):
    """render_page (OCR's renderer) let MuPDF's exceptions out (ValueError "page not in
    document"); now a one-line PdfError, and render_pages gives None for that page."""
    path = _write(tmp_path, "count.pdf", _text_pdf_bytes(3).replace(b"/Count 3", b"/Count 4"))
    with pytest.raises(PdfError, match="page 4 could not be rendered") as info:
        render_page(path, 3, dpi=72)
    assert "\n" not in info.value.reason
    images = render_pages(path, [0, 3], 72)
    assert images[0].size == (595, 842) and images[1] is None


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.9, 0.99])
@pytest.mark.parametrize("objstms", [0, 1])
def test_truncated_anywhere(tmp_path, keep, objstms):
    doc = pymupdf.open()
    for i in range(3):
        doc.new_page().insert_text((72, 72), f"{SENTENCE} {i}")
    data = doc.tobytes(garbage=4, deflate=bool(objstms), use_objstms=objstms)
    _contract(_write(tmp_path, "cut.pdf", data[: int(len(data) * keep)]))


def _contract(path: Path) -> dict:
    """Everything ingest does with the file (no OCR model): a PdfError, or pages that are sane."""
    try:
        document = open_document(path)
        pages = list(read_pages(path))
        readable = [p.number for p in pages if p.width and p.height][:2]
        images = render_pages(path, readable, 36)
    except PdfError as exc:
        assert exc.reason and "\n" not in exc.reason
        return {"refused": exc.reason}
    assert len(pages) == document.page_count > 0
    assert [p.number for p in pages] == list(range(len(pages)))
    for image in images:
        assert image is None or (image.width >= 1 and image.height >= 1
                                 and image.width * image.height <= MAX_RENDER_PIXELS)
    return {"pages": len(pages), "words": sum(len(p.words) for p in pages)}


# The campaign's mutation kinds, each applied to generated files at fixed places.
def _edits(data: bytes) -> dict[str, bytes]:
    xref = data.index(b"\nxref\n") + 1
    startxref = int(re.search(rb"startxref\s+(\d+)", data).group(1))
    first_offset = re.search(rb"(\d{10}) 00000 n", data)
    length = re.search(rb"/Length (\d+)", data)
    return {
        "startxref-0": re.sub(rb"startxref\s+\d+", b"startxref\n0", data),
        "startxref-past-end": re.sub(rb"startxref\s+\d+", b"startxref\n99999999999", data),
        "startxref-off-by-3": re.sub(rb"startxref\s+\d+", b"startxref\n%d" % (startxref + 3), data),
        "xref-offset-garbage": data[:first_offset.start(1)] + b"%010d" % 7 + data[first_offset.end(1):],
        "xref-offset-huge": data[:first_offset.start(1)] + b"9999999999" + data[first_offset.end(1):],
        "length-0": data[:length.start(1)] + b"0" + data[length.end(1):],
        "length-huge": data[:length.start(1)] + b"2147483648" + data[length.end(1):],
        "length-ref": data[:length.start(1)] + b"999 0 R" + data[length.end(1):],
        "page-parent-self": data.replace(b"/Parent 2 0 R", b"/Parent 4 0 R", 1),
        "kids-cycle": re.sub(rb"/Kids\[(\d+) 0 R", b"/Kids[2 0 R", data, count=1),
        "object-renumbered-huge": data.replace(b"\n5 0 obj", b"\n100000 0 obj", 1),
        "chunk-deleted": data[:xref - 300] + data[xref - 100:],
        "chunk-duplicated": data[:xref] + data[200:600] + data[xref:],
        "name-swapped": data.replace(b"/Type/Pages", b"/Type/Page", 1),
        "bits-flipped": bytes(b ^ (0x20 if i % 97 == 13 else 0) for i, b in enumerate(data)),
    }


@pytest.mark.parametrize("kind", sorted(_edits(_text_pdf_bytes(3))))
def test_mutated_text_pdf_keeps_the_contract(tmp_path, kind):
    data = _text_pdf_bytes(3)
    outcome = _contract(_write(tmp_path, f"{kind}.pdf", _edits(data)[kind]))
    if kind in ("startxref-0", "startxref-past-end", "startxref-off-by-3", "xref-offset-huge",
                "length-0", "length-huge", "object-renumbered-huge"):
        # MuPDF's repair finds every object again: nothing of the text is lost
        assert outcome == {"pages": 3, "words": 3 * len(SENTENCE.split()) + 3}, outcome


# -- the OCR decision: bounded, and the same as before ---------------------------------------

def test_text_only_decision_matches_drawn_kinds(tmp_path):
    """text_only: True when the page draws only text, False for any image (inline too), path or
    shading; now decided by stopping at the first non-text drawing instead of get_bboxlog."""
    inline = b"q 40 0 0 40 100 100 cm BI /W 2 /H 2 /CS /G /BPC 8 ID \x00\xff\xff\x00 EI Q"
    shading = b"<</Shading<</Sh0<</ShadingType 2/ColorSpace/DeviceRGB/Coords[0 0 1 0]" \
              b"/Function<</FunctionType 2/Domain[0 1]/C0[1 0 0]/C1[0 0 1]/N 1>>>>>>>>"
    font = b"<</Font<</F1<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>>>>>"
    cases = {
        "blank": (_stream(b""), b"<<>>", True),
        "short-text": (_stream(b"BT /F1 12 Tf 72 72 Td (Page 5) Tj ET"), font, True),
        "invisible-text": (_stream(b"BT 3 Tr /F1 12 Tf 72 72 Td (Hi) Tj ET"), font, True),
        "clip-only": (_stream(b"q 0 0 10 10 re W n Q"), b"<<>>", True),
        "inline-image": (_stream(inline), b"<<>>", False),
        "shading": (_stream(b"q 100 0 0 100 50 50 cm /Sh0 sh Q"), shading, False),
        "one-path": (_stream(b"BT /F1 12 Tf 72 72 Td (Hi) Tj ET 0 0 m 100 100 l S"), font, False),
    }
    for name, (contents, resources, text_only) in cases.items():
        path = _write(tmp_path, f"{name}.pdf", _one_page(contents, resources))
        (page,) = read_pages(path)
        assert page.needs_ocr and page.text_only is text_only, name
        # the decision pymupdf's own listing gives
        with pymupdf.open(path) as doc:
            kinds = {kind for kind, _ in doc[0].get_bboxlog()}
        assert (kinds <= {"fill-text", "stroke-text", "ignore-text"}) is text_only, (name, kinds)


PATH_BOMB = '''
import json, resource, sys, time, zlib
sys.path.insert(0, ".")
from docpress.pdf.reader import read_pages
path = sys.argv[1]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
(page,) = read_pages(path)
print(json.dumps({"needs_ocr": page.needs_ocr, "text_only": page.text_only,
                  "seconds": time.perf_counter() - started,
                  "growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
'''


def test_page_of_many_paths_is_decided_in_bounded_memory(tmp_path):
    """A 27 KB file whose page strokes a million paths: get_bboxlog listed every one (~200 MB,
    6 s); the decision now stops at the first."""
    content = b"0 0 m 1 1 l S\n" * 1_000_000
    path = _write(tmp_path, "paths.pdf",
                  _one_page(_stream(zlib.compress(content, 9), b"/Filter/FlateDecode")))
    assert path.stat().st_size < 40_000
    result = _run(PATH_BOMB, str(path))
    assert result["needs_ocr"] and not result["text_only"]
    assert result["growth_mib"] < 40, result  # MuPDF's text extraction of the page, no list


# -- memory bounds ------------------------------------------------------------------------

@pytest.mark.parametrize("size", [(20000, 20000), (14400, 200), (595, 842), (3e7, 1), (1, 1)])
@pytest.mark.parametrize("dpi", [1, 36, 150, 300])
def test_render_zoom_stays_within_the_cap(size, dpi):
    width, height = size
    zoom = render_zoom(width, height, dpi)
    assert 0 < zoom <= dpi / 72
    # what MuPDF allocates at most (it rounds outwards)
    assert (width * zoom + 2) * (height * zoom + 2) <= MAX_RENDER_PIXELS * 1.000001
    if (width * dpi / 72 + 2) * (height * dpi / 72 + 2) <= MAX_RENDER_PIXELS:
        assert zoom == dpi / 72  # pages within the cap render exactly as asked


POSTER = '''
import json, resource, sys
sys.path.insert(0, ".")
from docpress.pdf.reader import render_page, render_pages
path, dpi = sys.argv[1], int(sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
(image,) = render_pages(path, [0], dpi)
size, image = image.size, None
single = render_page(path, 0, dpi=dpi)
print(json.dumps({"size": size, "single": single.size,
                  "growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
'''


def test_poster_page_renders_within_the_pixel_cap(tmp_path):
    """20,000 x 20,000 points at 72 DPI is 400 megapixels (1.2 GB of RGB, and as much again
    for each copy); it renders at a lower DPI to at most MAX_RENDER_PIXELS instead."""
    path = _write(tmp_path, "poster.pdf", _text_pdf_bytes(1, size=(20000, 20000)))
    result = _run(POSTER, str(path), "72")
    width, height = result["size"]
    assert result["single"] == [width, height]
    assert width == height and width * height <= MAX_RENDER_PIXELS
    assert width * height > 0.95 * MAX_RENDER_PIXELS  # scaled to the cap, not beyond it
    # the pixmap and the image, 120 MB each at the cap, and MuPDF's working memory; without
    # the cap it is 1.2 GB per copy
    assert result["growth_mib"] < 4 * MAX_RENDER_PIXELS * 3 / 2**20, result


def test_render_page_takes_a_fractional_dpi(tmp_path):
    """_ocr_dpi is a float for any page over 1920 points (4000 pixels at 150 DPI), and
    get_pixmap(dpi=144.0) raised TypeError (fz_pixmap_xres_set wants an int) in pymupdf 1.28:
    rapidocr failed on every such page. Rendering by a zoom matrix takes any DPI."""
    path = _write(tmp_path, "a2.pdf", _text_pdf_bytes(1, size=(2000, 1000)))
    assert render_page(path, 0, dpi=144.0).size == (4000, 2000)
    assert render_pages(path, [0], [14.4])[0].size == (400, 200)


def test_ocr_of_a_poster_page_stays_within_the_cap(tmp_path, monkeypatch):
    """The OCR decision renders a page needing OCR at _ocr_dpi (4000 pixels a side at most),
    inside the reader's cap, so the engine's pixel boxes scale back to points by 72 / dpi."""
    assert MAX_OCR_PIXELS ** 2 <= MAX_RENDER_PIXELS
    doc = pymupdf.open()
    page = doc.new_page(width=20000, height=10000)
    page.draw_rect(pymupdf.Rect(100, 100, 19900, 9900), color=(0, 0, 0))  # no text: needs OCR
    path = tmp_path / "poster-scan.pdf"
    doc.save(path)
    doc.close()
    seen = []

    class Result:
        def __init__(self, h, w):
            self.txts = ["a poster sized scanned page"]
            self.boxes = [[[0, 0], [w, 0], [w, h], [0, h]]]

    class Engine:
        def __call__(self, image):
            seen.append(image.shape)
            return Result(*image.shape[:2])

    monkeypatch.setattr(ocr_mod, "_rapidocr_engine", lambda: Engine())
    (page,) = read_pages(path)
    assert page.needs_ocr and not page.text_only
    page = fill_text(path, page, OcrMode.rapidocr)
    assert page.text_source == "ocr:rapidocr" and page.text == "a poster sized scanned page"
    ((h, w, _),) = seen
    assert max(w, h) <= MAX_OCR_PIXELS + 1 and w * h <= MAX_RENDER_PIXELS
    x0, y0, x1, y1 = page.words[0].box
    assert (x0, y0) == (0, 0) and abs(x1 - 20000) < 10 and abs(y1 - 10000) < 10


MANY_PAGES = '''
import json, resource, sys
sys.path.insert(0, ".")
from docpress.pdf.reader import open_document, read_pages
path = sys.argv[1]
count = open_document(path).page_count
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pages = words = 0
for page in read_pages(path):
    pages += 1
    words += len(page.words)
print(json.dumps({"count": count, "pages": pages, "words": words,
                  "growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
'''


def test_5000_page_file_streams(tmp_path):
    """5,000 pages of 100 words: holding the pages would take ~180 MB; read_pages yields them
    one by one and the reader's memory stays flat."""
    n = 5000
    lines = b" ".join(b"BT /F1 8 Tf 10 %d Td (%s) Tj ET" % (390 - 9 * r, b" ".join(
        b"word%d" % (r * 10 + c) for c in range(10))) for r in range(10))
    objects = [b"<</Type/Catalog/Pages 2 0 R>>",
               b"<</Type/Pages/Count %d/Kids[%s]>>" % (n, b" ".join(b"%d 0 R" % (5 + i) for i in range(n))),
               b"<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>",
               _stream(lines)]
    objects += [(b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 400]/Resources<</Font<</F1 3 0 R>>>>"
                 b"/Contents 4 0 R>>")] * n
    path = _write(tmp_path, "5000.pdf", _raw_pdf(objects))
    result = _run(MANY_PAGES, str(path))
    assert result["count"] == result["pages"] == n and result["words"] == 100 * n
    assert result["growth_mib"] < 64, result
