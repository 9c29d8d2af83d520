"""The OCR defaults chosen by measurement (benchmarks/ocr_study.py, benchmarks/results/ocr.md):
auto prefers tesseract when installed, each engine runs with the chosen settings, a scanned page
of known text reads back with a low CER, and blank scans are not sent to an engine."""

from __future__ import annotations

import shutil
import subprocess
import unicodedata

import pymupdf
import pytest

from docpress.pdf import ocr as ocr_mod
from docpress.pdf.ocr import OcrMode, fill_text, resolve_ocr
from docpress.pdf.reader import read_pages

LINES = [
    "Quarterly revenue rose to 412 million dollars in 2023,",
    "while operating income reached 96.4 million (up 7.5%).",
    "Glaciers carve U-shaped valleys as the ice grinds bedrock.",
]


def _tesseract_ready() -> bool:
    return shutil.which("tesseract") is not None and ocr_mod._tesseract_has_english()


def _scan(path, lines=LINES, dpi=150, fontsize=12, blank_noise=False):
    """A born-digital page of `lines`, rendered to a grey image at `dpi` and put alone on a
    new page: an image-only scan whose truth is the text drawn."""
    src = pymupdf.open()
    page = src.new_page(width=612, height=792)
    for i, line in enumerate(lines):
        page.insert_text((72, 100 + i * 2 * fontsize), line, fontsize=fontsize)
    pix = page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY)
    if blank_noise:  # a scanner's faint speckle on an empty sheet
        for x, y in ((100, 100), (400, 900), (1000, 1500)):
            pix.set_pixel(x, y, (235,))
    doc = pymupdf.open()
    new = doc.new_page(width=612, height=792)
    new.insert_image(new.rect, stream=pix.tobytes("png"))
    doc.save(path)
    return path


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def _cer(hyp: str, ref: str) -> float:
    hyp, ref = _norm(hyp), _norm(ref)
    row = list(range(len(ref) + 1))
    for i, a in enumerate(hyp, 1):
        new = [i]
        for j, b in enumerate(ref, 1):
            new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (a != b)))
        row = new
    return row[-1] / max(len(ref), 1)


# -- the choice -------------------------------------------------------------------------

def test_auto_prefers_tesseract_when_installed(monkeypatch):
    assert [m.value for m in OcrMode] == ["auto", "rapidocr", "tesseract", "off"]
    monkeypatch.setattr(ocr_mod, "tesseract_available", lambda: True)
    monkeypatch.setattr(ocr_mod, "_tesseract_has_english", lambda: True)
    monkeypatch.setattr(ocr_mod, "rapidocr_available", lambda: True)
    assert resolve_ocr("auto") is OcrMode.tesseract
    monkeypatch.setattr(ocr_mod, "_tesseract_has_english", lambda: False)  # no eng.traineddata
    assert resolve_ocr("auto") is OcrMode.rapidocr
    monkeypatch.setattr(ocr_mod, "tesseract_available", lambda: False)
    assert resolve_ocr("auto") is OcrMode.rapidocr
    monkeypatch.setattr(ocr_mod, "rapidocr_available", lambda: False)
    assert resolve_ocr("auto") is OcrMode.off


def test_tesseract_runs_with_the_chosen_settings(tmp_path, monkeypatch):
    """Without tesseract: the command, its one thread, the grey 150 dpi image it gets, and
    the TSV words it returns turned into words with boxes in points."""
    assert (ocr_mod.TESSERACT_DPI, ocr_mod.TESSERACT_PSM) == (150, 3)
    seen = {}

    def run(args, input, capture_output, check, timeout, env):
        seen.update(args=args, input=input, env=env)
        tsv = ("level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n"
               "1\t1\t0\t0\t0\t0\t0\t0\t1275\t1650\t-1\t\n"
               "5\t1\t1\t1\t1\t1\t150\t300\t75\t30\t96.1\tQuarterly\n"
               "5\t1\t1\t1\t1\t2\t240\t300\t90\t30\t95.0\trevenue\n"
               "5\t1\t1\t1\t1\t3\t340\t300\t10\t30\t20.0\t \n")
        return subprocess.CompletedProcess(args, 0, tsv.encode(), b"")

    monkeypatch.setattr(ocr_mod.subprocess, "run", run)
    path = _scan(tmp_path / "scan.pdf")
    (page,) = read_pages(path)
    page = fill_text(path, page, OcrMode.tesseract)
    assert seen["args"] == ["tesseract", "stdin", "stdout", "-l", "eng", "--oem", "1", "--psm", "3", "tsv"]
    assert seen["env"]["OMP_THREAD_LIMIT"] == "1"
    header = seen["input"][:20].split()
    assert header[:3] == [b"P5", b"1275", b"1650"]  # grey, US letter at 150 dpi
    assert page.text == "Quarterly revenue" and page.text_source == "ocr:tesseract"
    assert page.words[0].box == pytest.approx((72.0, 144.0, 108.0, 158.4))


def test_tesseract_failure_leaves_the_page_without_text(tmp_path, monkeypatch):
    monkeypatch.setattr(ocr_mod.subprocess, "run", lambda args, **kw: subprocess.CompletedProcess(
        args, 1, b"", b"Error opening data file eng.traineddata\n"))
    path = _scan(tmp_path / "scan.pdf")
    page = fill_text(path, next(read_pages(path)), OcrMode.tesseract)
    assert page.words == [] and page.text_source == "none"


def test_rapidocr_runs_without_the_angle_classifier():
    if not ocr_mod.rapidocr_available():
        pytest.skip("rapidocr is not installed")
    assert ocr_mod.RAPIDOCR_PARAMS["Global.use_cls"] is False
    assert ocr_mod._rapidocr_engine().cfg.Global.use_cls is False


# -- accuracy on a page of known text ---------------------------------------------------

@pytest.mark.parametrize("mode", [OcrMode.tesseract, OcrMode.rapidocr])
def test_scanned_page_of_known_text_reads_back(tmp_path, mode):
    if mode is OcrMode.tesseract and not _tesseract_ready():
        pytest.skip("tesseract (with eng) is not installed: apt-get install tesseract-ocr tesseract-ocr-eng")
    if mode is OcrMode.rapidocr and not ocr_mod.rapidocr_available():
        pytest.skip("rapidocr is not installed")
    path = _scan(tmp_path / "scan.pdf")
    (page,) = read_pages(path)
    assert page.needs_ocr and page.has_images and not page.text_only
    page = fill_text(path, page, mode)
    assert page.text_source == f"ocr:{mode.value}"
    cer = _cer(page.text, " ".join(LINES))
    assert cer < 0.03, (cer, page.text)
    # boxes in points, on the line they were drawn on
    first = next(w for w in page.words if w.text.lower().startswith("quarterly"))
    assert 60 < first.box[0] < 85 and 80 < first.box[1] < 100 < first.box[3] < 110


# -- what is not sent to OCR --------------------------------------------------------------

def _count_engine_calls(monkeypatch) -> list:
    calls: list = []

    class Result:
        txts = boxes = None

    def engine(image):
        calls.append("rapidocr")
        return Result()

    def run(args, **kwargs):
        calls.append("tesseract")
        return subprocess.CompletedProcess(args, 0, b"level\n", b"")

    monkeypatch.setattr(ocr_mod, "_rapidocr_engine", lambda: engine)
    monkeypatch.setattr(ocr_mod.subprocess, "run", run)
    return calls


@pytest.mark.parametrize("mode", [OcrMode.tesseract, OcrMode.rapidocr])
def test_blank_scans_are_not_sent_to_an_engine(tmp_path, monkeypatch, mode):
    calls = _count_engine_calls(monkeypatch)
    blank = _scan(tmp_path / "blank.pdf", lines=[], blank_noise=True)
    (page,) = read_pages(blank)
    assert page.needs_ocr and page.has_images and not page.text_only  # today's flags send it on
    page = fill_text(blank, page, mode)
    assert calls == [] and page.words == [] and page.text_source == "none"
    # sixteen characters of 10 pt text (the least a page keeps) still go to the engine
    short = _scan(tmp_path / "short.pdf", lines=["Sixteen chars ok"], fontsize=10)
    fill_text(short, next(read_pages(short)), mode)
    assert calls == [mode.value]


def test_empty_born_digital_page_is_not_even_rendered(tmp_path, monkeypatch):
    def no_render(*args, **kwargs):
        raise AssertionError("rendered")

    monkeypatch.setattr(ocr_mod, "render_page", no_render)
    doc = pymupdf.open()
    doc.new_page()
    doc.save(tmp_path / "empty.pdf")
    (page,) = read_pages(tmp_path / "empty.pdf")
    assert page.needs_ocr and page.text_only
    for mode in (OcrMode.tesseract, OcrMode.rapidocr):
        assert fill_text(tmp_path / "empty.pdf", page, mode).text_source == "none"


def test_blank_test_on_images():
    from PIL import Image

    white = Image.new("L", (1275, 1650), 255)
    assert ocr_mod._blank(white) and ocr_mod._blank(white.convert("RGB"))
    assert ocr_mod._blank(Image.new("L", (800, 600), 30))  # a uniformly dark sheet: nothing to read
    photo = Image.linear_gradient("L").resize((400, 400))
    assert not ocr_mod._blank(photo)  # pictures still go to the engine
