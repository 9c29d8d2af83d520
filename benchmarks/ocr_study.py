"""OCR engines and settings on scanned pages of known text: characters/s, pages/s and CER.

Ground truth comes from born-digital pages: each is rendered to an image at a scan DPI and
wrapped alone in a new PDF page (image only), so the page's original text layer is the truth.
Sources: pages this script draws itself with pymupdf (paragraphs, small and large fonts, two
columns, a table, a mixed page), plus text-only pages (no images) of the born-digital PDFs in
../shared/eval/financebench/pdfs and ../shared/eval/mmlongbench-dev/pdfs, read in place.

    # 1. scans: s150 = grey 150 dpi, lossless; s300n = grey 300 dpi, 0.3 deg skew, noise, JPEG q70
    python benchmarks/ocr_study.py build --out /work/runs/ocr/scans
    # 2. every setting on every page, settings interleaved page by page (noise hits all alike)
    python benchmarks/ocr_study.py run --scans /work/runs/ocr/scans --variant s150 \
        --out /work/runs/ocr/s150.jsonl
    # 3. scanned files of ../shared/corpora/pdf-zoo (no truth: chars/s and words found only),
    #    and what docpress sends to OCR there (blank and picture-only pages)
    python benchmarks/ocr_study.py zoo --out /work/runs/ocr/zoo.jsonl
    # 4. tables
    python benchmarks/ocr_study.py report /work/runs/ocr/s150.jsonl [...]

CER (character error rate), as computed here:
  * normalise both texts: Unicode NFKC (ligatures split), typographic quotes/dashes/bullets
    mapped to ASCII, lower case, every run of whitespace to one space, stripped;
  * reading order: both the truth (the text layer's words and boxes) and the OCR output
    (words and boxes) go through the same geometric ordering (reading_order): words chained
    into lines left to right (next word = nearest to the right overlapping vertically by
    half the smaller height, so a skewed scan's lines hold together), lines top to bottom by
    their first word; words sharing one box (rapidocr boxes whole lines) stay in the
    engine's order. So CER measures recognition, not which column an engine reads first;
  * a second order: the engine's own output order against the text layer's content-stream
    order (what a reader of the page would follow in a born-digital file), "emitted";
  * CER = min(Levenshtein in the geometric order, Levenshtein in the emitted order)
    / len(truth), unit costs, on characters (spaces included): per page, the order that
    agrees better, so neither a skewed line nor a column read across is counted as
    misrecognition. The two are kept apart in the rows (cer_geometric, cer_emitted).
  Reported per setting: mean and median over pages, and pooled (sum of distances / sum of
  lengths); plus word recall (share of the truth's normalised words found, as multisets:
  order-free) and the emitted CER alone (includes layout analysis).
Speed: wall seconds of render + OCR of a page (as fill_text does it), engines built and warmed
before timing; chars/s = truth characters / seconds; pages/s = pages / total seconds.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FINANCEBENCH = SHARED / "eval" / "financebench" / "pdfs"
MMLONG = SHARED / "eval" / "mmlongbench-dev" / "pdfs"
ZOO = SHARED / "corpora" / "pdf-zoo"
# PP-OCRv4 mobile det/rec, as shipped inside the rapidocr-onnxruntime 1.4.4 wheel
# (pip download rapidocr-onnxruntime==1.4.4 --no-deps; unzip): optional, for "mobile vs small".
V4_MODELS = Path("/work/runs/ocr/wheels/rapidocr_ort144/rapidocr_onnxruntime/models")

VARIANTS = {
    # name: (scan dpi, skew degrees, noise sigma, jpeg quality or None for lossless)
    "s150": (150, 0.0, 0.0, None),
    "s300n": (300, 0.3, 8.0, 70),
}


# ----------------------------------------------------------------------------- metrics

_ASCII = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
                        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2032": "'",
                        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-",
                        "\u2014": "-", "\u2015": "-", "\u2212": "-",
                        "\u2022": "*", "\u00b7": "*", "\u25cf": "*", "\u25aa": "*",
                        "\u00a0": " "})


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_ASCII).lower()
    return " ".join(text.split())


def levenshtein(a: str, b: str) -> int:
    """Unit-cost edit distance; one numpy row per character of the longer string."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    codes = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    ramp = np.arange(len(b) + 1, dtype=np.int64)
    prev = ramp.copy()
    cur = np.empty_like(prev)
    for i, ch in enumerate(a, 1):
        cur[0] = i
        # match/substitute from the diagonal, delete from above
        np.minimum(prev[:-1] + (codes != ord(ch)), prev[1:] + 1, out=cur[1:])
        # insert from the left: cur[j] = min_k<=j cur[k] + (j - k)
        cur = np.minimum.accumulate(cur - ramp) + ramp
        prev, cur = cur, prev
    return int(prev[-1])


def _levenshtein_slow(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        new = [i]
        for j, cb in enumerate(b, 1):
            new.append(min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (ca != cb)))
        row = new
    return row[-1]


def reading_order(words: list[tuple[str, tuple]]) -> str:
    """Words (text, (x0, y0, x1, y1, ...)) in a canonical geometric order; the same function
    orders the truth and every engine's output.

    Lines are chained left to right: taking words by left edge, a word extends the line whose
    last word ends left of it (up to a small overlap) and overlaps it vertically by at least
    half the smaller height, the nearest such line; else it starts a line. Chaining follows a
    skewed scan's drift, and x-height or hyphen boxes overlap their neighbours. Lines are then
    read top to bottom by their first word's centre. Consecutive words sharing one box (an
    engine that boxes whole lines) stay together as one item."""
    items: list[tuple[str, tuple]] = []
    for text, box in words:
        box = tuple(box[:4])
        if items and items[-1][1] == box:
            items[-1] = (items[-1][0] + " " + text, box)
        else:
            items.append((text, box))
    lines: list[list[int]] = []
    for i in sorted(range(len(items)), key=lambda i: (items[i][1][0], i)):
        x0, y0, _, y1 = items[i][1]
        best, best_gap = None, None
        for n, line in enumerate(lines):
            _, ly0, lx1, ly1 = items[line[-1]][1]
            gap = x0 - lx1
            overlap = min(y1, ly1) - max(y0, ly0)
            if gap >= -0.25 * (y1 - y0) and overlap >= 0.5 * min(y1 - y0, ly1 - ly0) and \
                    (best_gap is None or gap < best_gap):
                best, best_gap = n, gap
        if best is None:
            lines.append([i])
        else:
            lines[best].append(i)
    lines.sort(key=lambda line: ((items[line[0]][1][1] + items[line[0]][1][3]) / 2, items[line[0]][1][0]))
    return " ".join(items[i][0] for line in lines for i in line)


def score(truth_words, truth_stream: str, ocr_words) -> dict:
    gt = normalise(reading_order(truth_words))
    hyp = normalise(reading_order(ocr_words))
    gt_stream = normalise(truth_stream)
    hyp_stream = normalise(" ".join(w for w, _ in ocr_words))
    dist_geom = levenshtein(hyp, gt)
    dist_stream = levenshtein(hyp_stream, gt_stream)
    dist = min(dist_geom, dist_stream)  # the reading order that agrees better
    gt_bag, hyp_bag = Counter(gt.split()), Counter(hyp.split())
    found = sum((gt_bag & hyp_bag).values())
    return {"gt_chars": len(gt), "ocr_chars": len(hyp), "dist": dist, "cer": dist / max(len(gt), 1),
            "cer_geometric": dist_geom / max(len(gt), 1), "cer_emitted": dist_stream / max(len(gt_stream), 1),
            "word_recall": found / max(sum(gt_bag.values()), 1),
            "word_precision": found / max(sum(hyp_bag.values()), 1)}


# ----------------------------------------------------------------------------- pages of known text

_VOCAB = """the of and to in a is that for it as was with be by on not he this are or his from at
which but have an they you were her she there been one all we their has would when if so what
more some out about into them can only other new time could these two may first then do any like
my now over such our man me even most made after also did many before must through back years
where much your way well down should because each just those people how too little state good
very make world still own see men work long here get both between life being under never day same
another know while last might us great old year off come since against go came right used take
three company revenue income assets liabilities operating quarter fiscal net cash flow growth
shareholders equity dividend segment customers market products services total increase decrease
compared primarily results expenses interest tax rate percent million billion agreement report
management financial statements period ended december march june september annual board director
research development manufacturing supply inventory capital program strategy risk factors""".split()
_NAMES = ["Acme", "Northwind", "Contoso", "Fabrikam", "Tailspin", "Wingtip", "Litware", "Adatum",
          "Proseware", "Lucerne", "Margie", "Trey", "Woodgrove", "Humongous", "Alpine", "Coho"]


def _sentence(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(8, 20)):
        r = rng.random()
        if r < 0.08:
            words.append(rng.choice(_NAMES))
        elif r < 0.13:
            words.append(f"${rng.randint(1, 999)}.{rng.randint(0, 9)} million")
        elif r < 0.17:
            words.append(f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%")
        elif r < 0.20:
            words.append(str(rng.randint(1990, 2025)))
        else:
            words.append(rng.choice(_VOCAB))
    text = " ".join(words)
    text = text[0].upper() + text[1:]
    if rng.random() < 0.3:
        cut = text.find(" ", len(text) // 2)
        text = text[:cut] + "," + text[cut:] if cut > 0 else text
    return text + "."


def _para(rng, n) -> str:
    return " ".join(_sentence(rng) for _ in range(n))


def make_generated(path: Path, seed: int = 7) -> Path:
    """Six born-digital pages of varied layout, all US letter."""
    import pymupdf

    rng = random.Random(seed)
    doc = pymupdf.open()
    W, H = 612, 792

    # 1. paragraphs, 11 pt Helvetica
    page = doc.new_page(width=W, height=H)
    y = 72
    for _ in range(5):
        text = _para(rng, 4)
        rect = pymupdf.Rect(72, y, W - 72, y + 130)
        page.insert_textbox(rect, text, fontsize=11, fontname="helv")
        y += 130
    # 2. small fonts: 8 pt Times body, 6.5 pt footnotes
    page = doc.new_page(width=W, height=H)
    page.insert_textbox(pymupdf.Rect(54, 54, W - 54, 640), _para(rng, 40), fontsize=8, fontname="tiro")
    page.insert_textbox(pymupdf.Rect(54, 660, W - 54, H - 40), _para(rng, 6), fontsize=6.5, fontname="tiro")
    # 3. large fonts: a 28 pt title, 18 pt headings, 14 pt body
    page = doc.new_page(width=W, height=H)
    page.insert_textbox(pymupdf.Rect(54, 50, W - 54, 130), "Annual Report " + str(rng.randint(2001, 2024)),
                        fontsize=28, fontname="hebo")
    y = 140
    for _ in range(3):
        page.insert_textbox(pymupdf.Rect(54, y, W - 54, y + 40), " ".join(rng.sample(_VOCAB, 4)).title(),
                            fontsize=18, fontname="hebo")
        page.insert_textbox(pymupdf.Rect(54, y + 32, W - 54, y + 200), _para(rng, 3), fontsize=14,
                            fontname="helv")
        y += 210
    # 4. two columns, 10 pt Times, narrow gutter
    page = doc.new_page(width=W, height=H)
    page.insert_textbox(pymupdf.Rect(54, 50, W - 54, 80), "Two Column Article Heading", fontsize=16,
                        fontname="tibo")
    gutter = 18
    mid = W / 2
    page.insert_textbox(pymupdf.Rect(54, 90, mid - gutter / 2, H - 54), _para(rng, 22), fontsize=10,
                        fontname="tiro")
    page.insert_textbox(pymupdf.Rect(mid + gutter / 2, 90, W - 54, H - 54), _para(rng, 22), fontsize=10,
                        fontname="tiro")
    # 5. a ruled table of numbers, 9 pt
    page = doc.new_page(width=W, height=H)
    page.insert_textbox(pymupdf.Rect(54, 50, W - 54, 80), "Consolidated Statement Of Operations",
                        fontsize=14, fontname="hebo")
    cols = [54, 230, 320, 410, 500, W - 40]
    heads = ["Item", "2021", "2022", "2023", "Change"]
    y = 96
    rows = 26
    for r in range(rows + 1):
        for c in range(5):
            if r == 0:
                text, font = heads[c], "hebo"
            elif c == 0:
                text, font = " ".join(rng.sample(_VOCAB, 2)).capitalize(), "helv"
            elif c == 4:
                text, font = f"{rng.uniform(-40, 40):.1f}%", "helv"
            else:
                text, font = f"{rng.randint(100, 99999):,}", "helv"
            page.insert_text((cols[c] + 4, y + 14), text, fontsize=9, fontname=font)
        page.draw_line((54, y), (W - 40, y), width=0.5)
        y += 22
    page.draw_line((54, y), (W - 40, y), width=0.5)
    for x in cols:
        page.draw_line((x, 96), (x, y), width=0.5)
    # 6. mixed: heading, bullets, monospace block, 7 pt footnote
    page = doc.new_page(width=W, height=H)
    page.insert_textbox(pymupdf.Rect(54, 50, W - 54, 80), "Product Notice And Instructions", fontsize=16,
                        fontname="hebo")
    y = 95
    for _ in range(8):
        page.insert_textbox(pymupdf.Rect(72, y, W - 54, y + 40), "- " + _sentence(rng), fontsize=10.5,
                            fontname="helv")
        y += 40
    code = "\n".join(f"ID-{rng.randint(1000, 9999)}  {rng.choice(_NAMES).upper():<10} "
                     f"{rng.randint(1, 500):>4} units  {rng.uniform(1, 99):6.2f}" for _ in range(10))
    page.insert_textbox(pymupdf.Rect(72, y + 10, W - 54, y + 200), code, fontsize=9.5, fontname="cour")
    page.insert_textbox(pymupdf.Rect(54, 660, W - 54, H - 40), _para(rng, 4), fontsize=7, fontname="helv")
    doc.save(path)
    return path


def pick_pages(folder: Path, files: int, skip: int = 0) -> list[tuple[Path, int]]:
    """One text-only page (no images, >= 400 characters, no unmapped glyphs) from each of
    `files` PDFs spread over the folder's sorted list, starting a third of the way in."""
    import pymupdf

    paths = sorted(folder.glob("*.pdf"))
    chosen: list[tuple[Path, int]] = []
    step = max(len(paths) // max(files, 1), 1)
    for path in paths[skip::step] + paths:
        if len(chosen) == files:
            break
        if any(path == p for p, _ in chosen):
            continue
        doc = pymupdf.open(path)
        n = doc.page_count
        for k in range(n):
            number = (n // 3 + k) % n
            page = doc[number]
            if page.rotation or page.get_images():
                continue
            text = page.get_text()
            if len(text) >= 400 and "\ufffd" not in text:
                chosen.append((path, number))
                break
        doc.close()
    return chosen


def scan_page(src_page, dpi: int, skew: float, noise: float, jpeg: int | None, rng: np.random.Generator):
    """The page as a scanner would give it: one grey image, optionally skewed/noisy/JPEG."""
    import pymupdf
    from PIL import Image

    pix = src_page.get_pixmap(dpi=dpi, colorspace=pymupdf.csGRAY, alpha=False)
    img = Image.frombytes("L", (pix.width, pix.height), pix.samples)
    if skew:
        img = img.rotate(skew, resample=Image.BILINEAR, expand=False, fillcolor=255)
    if noise:
        arr = np.asarray(img, dtype=np.float32) + rng.normal(0, noise, (img.height, img.width))
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    if jpeg:
        img.save(buf, "JPEG", quality=jpeg)
    else:
        img.save(buf, "PNG")
    return buf.getvalue()


def build(out: Path, per_corpus: int) -> None:
    import pymupdf

    out.mkdir(parents=True, exist_ok=True)
    generated = make_generated(out / "generated_born_digital.pdf")
    sources = [(generated, i) for i in range(6)]
    sources += pick_pages(FINANCEBENCH, per_corpus)
    sources += pick_pages(MMLONG, per_corpus)
    rng = np.random.default_rng(0)
    manifest = []
    for k, (path, number) in enumerate(sources):
        src = pymupdf.open(path)
        page = src[number]
        words = [(w[4], tuple(round(v, 2) for v in w[:4])) for w in page.get_text("words", sort=False)]
        stream = " ".join(w for w, _ in words)
        name = f"p{k:02d}"
        for variant, (dpi, skew, noise, jpeg) in VARIANTS.items():
            image = scan_page(page, dpi, skew, noise, jpeg, rng)
            doc = pymupdf.open()
            new = doc.new_page(width=page.rect.width, height=page.rect.height)
            new.insert_image(new.rect, stream=image)
            (out / variant).mkdir(exist_ok=True)
            doc.save(out / variant / f"{name}.pdf", deflate=True)
            doc.close()
        manifest.append({"name": name, "source": str(path.relative_to(SHARED.parent)) if SHARED.parent in
                         path.parents else path.name, "page": number,
                         "kind": "generated" if path == generated else path.parent.parent.name,
                         "width": page.rect.width, "height": page.rect.height,
                         "truth_words": words, "truth_stream": stream})
        src.close()
    # blank and near-blank scans (a duplex back side; a page with only a page number)
    for variant, (dpi, skew, noise, jpeg) in VARIANTS.items():
        for name, text in (("blank", None), ("pageno", "- 12 -")):
            src = pymupdf.open()
            page = src.new_page(width=612, height=792)
            if text:
                page.insert_text((290, 760), text, fontsize=10)
            image = scan_page(page, dpi, skew, noise, jpeg, rng)
            doc = pymupdf.open()
            new = doc.new_page(width=612, height=792)
            new.insert_image(new.rect, stream=image)
            doc.save(out / variant / f"{name}.pdf", deflate=True)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{len(manifest)} pages x {len(VARIANTS)} variants in {out}")


# ----------------------------------------------------------------------------- engines

def _quiet_rapidocr():
    logging.getLogger("RapidOCR").setLevel(logging.ERROR)


def rapidocr_setting(params: dict, dpi: int):
    """A function (path, page number) -> [(word, box in points)] in the engine's order."""
    from rapidocr import RapidOCR

    from docpress.pdf.reader import render_page

    engine = RapidOCR(params={"Global.log_level": "error", **params})
    _quiet_rapidocr()
    engine(np.full((64, 256, 3), 255, np.uint8))  # load the models before timing

    def run(path: Path, number: int):
        image = render_page(path, number, dpi=dpi)
        result = engine(np.asarray(image))
        if result.txts is None:
            return []
        scale = 72.0 / dpi
        words = []
        for text, quad in zip(result.txts, result.boxes):
            xs, ys = [p[0] * scale for p in quad], [p[1] * scale for p in quad]
            box = (min(xs), min(ys), max(xs), max(ys))
            words.extend((t, box) for t in text.split())
        return words

    engine(np.full((200, 600, 3), 255, np.uint8))
    return run


def tesseract_pymupdf_setting(dpi: int):
    """docpress's tesseract path before this study: MuPDF's built-in Tesseract."""
    import pymupdf

    def run(path: Path, number: int):
        doc = pymupdf.open(path)
        try:
            tp = doc[number].get_textpage_ocr(dpi=dpi, full=True)
            return [(w[4], tuple(w[:4])) for w in tp.extractWORDS()]
        finally:
            doc.close()

    return run


def tesseract_cli_setting(dpi: int, psm: int, threads: int = 1, extra: tuple = ()):
    """The tesseract program on a grey render (PGM on stdin, TSV on stdout)."""
    from docpress.pdf.reader import render_page

    env = dict(os.environ, OMP_THREAD_LIMIT=str(threads))

    def run(path: Path, number: int):
        image = render_page(path, number, dpi=dpi).convert("L")
        buf = io.BytesIO()
        image.save(buf, "PPM")
        out = subprocess.run(["tesseract", "stdin", "stdout", "--oem", "1", "--psm", str(psm), "-l", "eng",
                              *extra, "tsv"], input=buf.getvalue(), capture_output=True, env=env,
                             check=True).stdout.decode("utf-8", "replace")
        scale = 72.0 / dpi
        words = []
        for line in out.splitlines()[1:]:
            f = line.split("\t")
            if len(f) == 12 and f[0] == "5" and f[11].strip():
                x, y, w, h = (int(v) for v in f[6:10])
                # the word's confidence rides along as a fifth box value (for conf filters post hoc)
                words.append((f[11].strip(), (x * scale, y * scale, (x + w) * scale, (y + h) * scale,
                                              float(f[10]))))
        return words

    return run


def docpress_setting():
    """Whatever docpress's fill_text does with --ocr auto now (render + engine + boxes)."""
    from docpress.pdf.ocr import OcrMode, fill_text
    from docpress.pdf.reader import read_pages

    def run(path: Path, number: int):
        for page in read_pages(path):
            if page.number == number:
                page = fill_text(path, page, OcrMode.auto)
                return [(w.text, w.box) for w in page.words]
        return []

    return run


def docpress_mode_setting(mode: str):
    """fill_text with an explicit engine, as the code stands."""
    from docpress.pdf.ocr import OcrMode, fill_text
    from docpress.pdf.reader import read_pages

    def run(path: Path, number: int):
        for page in read_pages(path):
            if page.number == number:
                page = fill_text(path, page, OcrMode(mode))
                return [(w.text, w.box) for w in page.words]
        return []

    return run


def settings(names: list[str] | None):
    """name -> (engine, setting, dpi, factory). The first is the baseline: docpress today."""
    nocls = {"Global.use_cls": False}
    t1 = {"EngineConfig.onnxruntime.intra_op_num_threads": 1}
    t2 = {"EngineConfig.onnxruntime.intra_op_num_threads": 2}
    table = {
        "rapidocr-today": ("rapidocr", "PP-OCRv6 small, defaults (cls on, det min-side 736, batch 6, threads auto)",
                           150, lambda: rapidocr_setting({}, 150)),
        "rapidocr-nocls": ("rapidocr", "no angle classifier", 150, lambda: rapidocr_setting(nocls, 150)),
        "rapidocr-nocls-t1": ("rapidocr", "no cls, intra_op threads 1", 150,
                              lambda: rapidocr_setting({**nocls, **t1}, 150)),
        "rapidocr-nocls-t2": ("rapidocr", "no cls, intra_op threads 2", 150,
                              lambda: rapidocr_setting({**nocls, **t2}, 150)),
        "rapidocr-nocls-det960": ("rapidocr", "no cls, det limit max 960", 150,
                                  lambda: rapidocr_setting({**nocls, "Det.limit_type": "max",
                                                            "Det.limit_side_len": 960}, 150)),
        "rapidocr-nocls-t1-det960": ("rapidocr", "no cls, intra_op threads 1, det limit max 960", 150,
                                     lambda: rapidocr_setting({**nocls, **t1, "Det.limit_type": "max",
                                                               "Det.limit_side_len": 960}, 150)),
        "rapidocr-nocls-batch16": ("rapidocr", "no cls, rec batch 16", 150,
                                   lambda: rapidocr_setting({**nocls, "Rec.rec_batch_num": 16}, 150)),
        "rapidocr-nocls-100dpi": ("rapidocr", "no cls", 100, lambda: rapidocr_setting(nocls, 100)),
        "rapidocr-v4mobile": ("rapidocr", "PP-OCRv4 mobile det+rec (rapidocr-onnxruntime 1.4.4 wheel), no cls",
                              150, lambda: rapidocr_setting(_v4_params(nocls), 150)),
        "tesseract-today": ("tesseract", "MuPDF built-in (get_textpage_ocr)", 150,
                            lambda: tesseract_pymupdf_setting(150)),
    }
    for dpi in (150, 200, 300):
        for psm in (3, 6):
            table[f"tesseract-psm{psm}-{dpi}"] = (
                "tesseract", f"CLI oem 1 psm {psm}, OMP_THREAD_LIMIT=1", dpi,
                (lambda d=dpi, p=psm: tesseract_cli_setting(d, p)))
    table["tesseract-psm3-150-t2"] = ("tesseract", "CLI oem 1 psm 3, OMP_THREAD_LIMIT=2", 150,
                                      lambda: tesseract_cli_setting(150, 3, threads=2))
    table["docpress-auto"] = ("docpress", "fill_text(OcrMode.auto) as the code stands", 0, docpress_setting)
    table["docpress-rapidocr"] = ("docpress", "fill_text(OcrMode.rapidocr) as the code stands", 0,
                                  lambda: docpress_mode_setting("rapidocr"))
    if names:
        unknown = [n for n in names if n not in table]
        if unknown:
            sys.exit(f"unknown settings {unknown}; known: {list(table)}")
        table = {n: table[n] for n in names}
    if "rapidocr-v4mobile" in table and not V4_MODELS.is_dir():
        print(f"skip rapidocr-v4mobile: no {V4_MODELS}", file=sys.stderr)
        del table["rapidocr-v4mobile"]
    if any(v[0] == "tesseract" for v in table.values()) and not _which("tesseract"):
        print("skip tesseract settings: not installed", file=sys.stderr)
        table = {k: v for k, v in table.items() if v[0] != "tesseract"}
    return table


def _which(name):
    import shutil

    return shutil.which(name)


def _v4_params(base: dict) -> dict:
    from rapidocr import ModelType, OCRVersion

    return {**base, "Det.model_path": str(V4_MODELS / "ch_PP-OCRv4_det_infer.onnx"),
            "Det.ocr_version": OCRVersion.PPOCRV4, "Det.model_type": ModelType.MOBILE,
            "Rec.model_path": str(V4_MODELS / "ch_PP-OCRv4_rec_infer.onnx"),
            "Rec.ocr_version": OCRVersion.PPOCRV4, "Rec.model_type": ModelType.MOBILE}


# ----------------------------------------------------------------------------- runs

def run(scans: Path, variant: str, names: list[str] | None, out: Path, limit: int | None,
        extra_pages: bool, start: int = 0) -> None:
    manifest = json.loads((scans / "manifest.json").read_text())
    manifest = manifest[start:]
    if limit:
        manifest = manifest[:limit]
    table = settings(names)
    engines = {}
    for name, (_, _, _, factory) in table.items():
        started = time.perf_counter()
        engines[name] = factory()
        print(f"built {name} in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    order = list(table)
    with open(out, "a") as fh:
        for k, item in enumerate(manifest):
            path = scans / variant / f"{item['name']}.pdf"
            truth = [(w, tuple(b)) for w, b in item["truth_words"]]
            rotated = order[k % len(order):] + order[:k % len(order)]  # who goes first rotates
            for name in rotated:
                started = time.perf_counter()
                words = engines[name](path, 0)
                seconds = time.perf_counter() - started
                row = {"variant": variant, "setting": name, "engine": table[name][0],
                       "desc": table[name][1], "dpi": table[name][2], "page": item["name"],
                       "kind": item["kind"], "seconds": seconds, **score(truth, item["truth_stream"], words),
                       "words": [[w, [round(float(v), 1) for v in b]] for w, b in words]}
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                print(f"{variant} {item['name']} {name:26s} {seconds:6.2f}s cer {row['cer']:.3f} "
                      f"emitted {row['cer_emitted']:.3f} recall {row['word_recall']:.3f}", flush=True)
        if extra_pages:  # blank and near-blank scans: cost of OCR on a page with nothing to read
            for page_name in ("blank", "pageno"):
                path = scans / variant / f"{page_name}.pdf"
                for name in order:
                    started = time.perf_counter()
                    words = engines[name](path, 0)
                    seconds = time.perf_counter() - started
                    row = {"variant": variant, "setting": name, "engine": table[name][0], "dpi": table[name][2],
                           "page": page_name, "kind": "blank", "seconds": seconds,
                           "ocr_chars": sum(len(w) for w, _ in words), "text": " ".join(w for w, _ in words)[:80]}
                    fh.write(json.dumps(row) + "\n")
                    print(f"{variant} {page_name} {name:26s} {seconds:6.2f}s -> {row['text']!r}", flush=True)


def zoo(names: list[str] | None, out: Path) -> None:
    """pdf-zoo: which pages docpress would OCR, and each setting's time and output on them."""
    from docpress.errors import PdfError
    from docpress.pdf.reader import read_pages

    table = settings(names)
    engines = {name: factory() for name, (_, _, _, factory) in table.items()}
    with open(out, "a") as fh:
        for path in sorted(ZOO.rglob("*.pdf")):
            try:
                pages = [p for p in read_pages(path) if p.needs_ocr]
            except PdfError:
                continue
            for page in pages:
                sent = page.width > 0 and not page.text_only  # fill_text's own test, mode aside
                base = {"file": str(path.relative_to(ZOO)), "page": page.number, "has_images": page.has_images,
                        "text_only": page.text_only, "sent_to_ocr": sent,
                        "size_pt": [round(page.width), round(page.height)]}
                if not sent:
                    fh.write(json.dumps({**base, "setting": None}) + "\n")
                    print(base, "not sent to OCR")
                    continue
                for name, engine in engines.items():
                    started = time.perf_counter()
                    words = engine(path, page.number)
                    seconds = time.perf_counter() - started
                    text = " ".join(w for w, _ in words)
                    row = {**base, "setting": name, "seconds": seconds, "ocr_chars": len(text),
                           "ocr_words": len(words), "text": text[:100]}
                    fh.write(json.dumps(row) + "\n")
                    fh.flush()
                    print(f"{base['file']}:{page.number} {name:26s} {seconds:6.2f}s {len(text):5d} chars "
                          f"{text[:60]!r}", flush=True)


# ----------------------------------------------------------------------------- report

def _fmt(x, nd=3):
    return f"{x:.{nd}f}"


def report(files: list[Path], only: list[str] | None = None) -> str:
    """One table per results file and variant (a file is one run: its speed ratios compare
    settings timed side by side, page by page)."""
    rows = [dict(json.loads(line), run=f.name) for f in files for line in f.read_text().splitlines()]
    if only:
        rows = [r for r in rows if r.get("setting") in only]
    lines = []
    truth_rows = [r for r in rows if "cer" in r]
    for run_name, variant in dict.fromkeys((r["run"], r["variant"]) for r in truth_rows):
        rs = [r for r in truth_rows if r["variant"] == variant and r["run"] == run_name]
        names = list(dict.fromkeys(r["setting"] for r in rs))
        base = {r["page"]: r["seconds"] for r in rs if r["setting"] == names[0]}
        lines.append(f"\n### {variant} ({run_name}): {VARIANTS.get(variant, ('?',))[0]} dpi scans, "
                     f"{len({r['page'] for r in rs})} pages of known text\n")
        lines.append("| setting | engine | what | DPI | pages | pages/s | chars/s | speed vs "
                     f"{names[0]} (same pages) | CER mean | CER median | CER pooled | emitted CER mean | word recall "
                     "| word precision |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name in names:
            g = [r for r in rs if r["setting"] == name]
            secs = sum(r["seconds"] for r in g)
            cers = [r["cer"] for r in g]
            lines.append("| " + " | ".join([
                name, g[0]["engine"], g[0].get("desc", ""), str(g[0]["dpi"] or "-"), str(len(g)),
                _fmt(len(g) / secs, 2), f"{sum(r['gt_chars'] for r in g) / secs:.0f}",
                _fmt(sum(base[r["page"]] for r in g if r["page"] in base)
                     / sum(r["seconds"] for r in g if r["page"] in base), 2) + "x",
                _fmt(statistics.mean(cers)), _fmt(statistics.median(cers)),
                _fmt(sum(r["dist"] for r in g) / sum(r["gt_chars"] for r in g)),
                _fmt(statistics.mean(r["cer_emitted"] for r in g)),
                _fmt(statistics.mean(r["word_recall"] for r in g)),
                _fmt(statistics.mean(r["word_precision"] for r in g))]) + " |")
        pages = sorted({r["page"] for r in rs})
        lines.append("\nCER per page (p00-p05 generated, p06-p11 financebench, p12-p17 mmlongbench-dev):\n")
        lines.append("| setting | " + " | ".join(pages) + " |")
        lines.append("|---|" + "---|" * len(pages))
        for name in names:
            cer = {r["page"]: r["cer"] for r in rs if r["setting"] == name}
            lines.append(f"| {name} | " + " | ".join(f"{cer[p]:.3f}" if p in cer else "-" for p in pages) + " |")
        kinds = sorted({r["kind"] for r in rs})
        lines.append(f"\nCER mean by source ({', '.join(kinds)}):\n")
        lines.append("| setting | " + " | ".join(kinds) + " |")
        lines.append("|---|" + "---|" * len(kinds))
        for name in names:
            cells = []
            for kind in kinds:
                g = [r["cer"] for r in rs if r["setting"] == name and r["kind"] == kind]
                cells.append(f"{_fmt(statistics.mean(g))} (n={len(g)})" if g else "-")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    blank_rows = [r for r in rows if r.get("kind") == "blank"]
    if blank_rows:
        lines.append("\n### Blank and near-blank scanned pages (sent to OCR today)\n")
        lines.append("| variant | page | setting | seconds | chars found |")
        lines.append("|---|---|---|---|---|")
        for r in blank_rows:
            lines.append(f"| {r['variant']} | {r['page']} | {r['setting']} | {r['seconds']:.2f} | {r['ocr_chars']} |")
    zoo_rows = [r for r in rows if "file" in r]
    if zoo_rows:
        lines.append("\n### pdf-zoo pages without a usable text layer (no ground truth)\n")
        names = list(dict.fromkeys(r["setting"] for r in zoo_rows if r["setting"]))
        lines.append("| file:page | images | text_only | sent to OCR | " +
                     " | ".join(f"{n} s / chars" for n in names) + " |")
        lines.append("|---|---|---|---|" + "---|" * len(names))
        keys = list(dict.fromkeys((r["file"], r["page"]) for r in zoo_rows))
        totals = {n: [0.0, 0] for n in names}
        for key in keys:
            g = [r for r in zoo_rows if (r["file"], r["page"]) == key]
            cells = []
            for n in names:
                h = [r for r in g if r["setting"] == n]
                if h:
                    cells.append(f"{h[0]['seconds']:.2f} / {h[0]['ocr_chars']}")
                    totals[n][0] += h[0]["seconds"]
                    totals[n][1] += h[0]["ocr_chars"]
                else:
                    cells.append("-")
            lines.append(f"| {key[0]}:{key[1]} | {g[0]['has_images']} | {g[0]['text_only']} | "
                         f"{g[0]['sent_to_ocr']} | " + " | ".join(cells) + " |")
        lines.append("| total (chars/s) | | | | " + " | ".join(
            f"{t[0]:.1f} s / {t[1]} ({t[1] / t[0]:.0f}/s)" if t[0] else "-" for t in totals.values()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--out", type=Path, default=Path("/work/runs/ocr/scans"))
    b.add_argument("--per-corpus", type=int, default=6, help="pages from each of the two eval sets")
    r = sub.add_parser("run")
    r.add_argument("--scans", type=Path, default=Path("/work/runs/ocr/scans"))
    r.add_argument("--variant", default="s150", choices=list(VARIANTS))
    r.add_argument("--settings", nargs="*", help="default: all")
    r.add_argument("--start", type=int, default=0, help="skip the first N pages")
    r.add_argument("--limit", type=int, help="N pages only")
    r.add_argument("--no-blank", action="store_true", help="skip the blank/near-blank pages")
    r.add_argument("--out", type=Path, required=True)
    z = sub.add_parser("zoo")
    z.add_argument("--settings", nargs="*")
    z.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("report")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--settings", nargs="*", help="only these settings")
    q = sub.add_parser("rescore", help="recompute the metrics of rows that kept their OCR words")
    q.add_argument("--scans", type=Path, default=Path("/work/runs/ocr/scans"))
    q.add_argument("files", type=Path, nargs="+")
    sub.add_parser("selftest")
    args = parser.parse_args()
    if args.cmd == "build":
        build(args.out, args.per_corpus)
    elif args.cmd == "run":
        run(args.scans, args.variant, args.settings, args.out, args.limit, not args.no_blank, args.start)
    elif args.cmd == "zoo":
        zoo(args.settings, args.out)
    elif args.cmd == "rescore":
        manifest = {m["name"]: m for m in json.loads((args.scans / "manifest.json").read_text())}
        for f in args.files:
            rows = [json.loads(line) for line in f.read_text().splitlines()]
            for r in rows:
                if "words" in r:
                    item = manifest[r["page"]]
                    truth = [(w, tuple(b)) for w, b in item["truth_words"]]
                    r.update(score(truth, item["truth_stream"], [(w, tuple(b)) for w, b in r["words"]]))
            f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif args.cmd == "report":
        print(report(args.files, args.settings))
    else:
        rng = random.Random(1)
        for _ in range(300):
            a = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
            c = "".join(rng.choice("abc ") for _ in range(rng.randint(0, 12)))
            assert levenshtein(a, c) == _levenshtein_slow(a, c), (a, c)
        assert normalise("  The\u00a0ﬁrst \u201cQuote\u201d\n– x ") == 'the first "quote" - x'
        words = [("right", (300, 10, 340, 20)), ("left", (10, 11, 40, 21)), ("next", (10, 30, 40, 40))]
        assert reading_order(words) == "left right next"
        words = [("a", (10, 10, 20, 22)), ("-", (22, 15, 24, 16)), ("me", (26, 13, 40, 20)), ("b", (10, 30, 20, 42))]
        assert reading_order(words) == "a - me b"
        print("selftest ok")


if __name__ == "__main__":
    main()
