"""Coverage-guided fuzzing (atheris / libFuzzer) of PDF reading and the OCR decision.

The same path as benchmarks/fuzz_pdf.py (open_document, read_pages, the OCR decision with a stub
engine, render_pages at a low DPI) on each input: a PdfError is an expected refusal, anything
else escapes and libFuzzer saves the input as a crash (so do a timeout, a MuPDF abort or the RSS
limit). docpress and pymupdf's Python layer are instrumented; MuPDF itself (C) is not, so the
guidance comes from which Python paths an input takes. Mutations: libFuzzer's own, and half the
time one of fuzz_pdf's PDF-aware edits (/Length, xref, startxref, object numbers, names).

    python benchmarks/fuzz_atheris.py --make-corpus /work/runs/fuzz/atheris/corpus
    nice -n 19 python benchmarks/fuzz_atheris.py /work/runs/fuzz/atheris/corpus \\
        -max_total_time=300 -timeout=20 -rss_limit_mb=3072 -max_len=20000 \\
        -artifact_prefix=/work/runs/fuzz/atheris/
"""

from __future__ import annotations

import logging
import os
import random
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def make_corpus(folder: Path) -> None:
    """The generated seeds (not the zoo: a corpus folder is for inputs this project made)."""
    from fuzz_pdf import generated_seeds

    folder.mkdir(parents=True, exist_ok=True)
    for name, data in generated_seeds():
        if name != "gen-huge-page":  # a 40-megapixel render per run: fuzz_pdf covers it
            (folder / f"{name}.pdf").write_bytes(data)
    print(f"wrote {len(list(folder.glob('*.pdf')))} seeds to {folder}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        make_corpus(Path(sys.argv[2]))
        return

    import atheris

    # pymupdf's Python layer is instrumented too: docpress alone has few branches to tell
    # inputs apart (39 edges against 490 with pymupdf). FUZZ_INSTRUMENT=docpress,fuzz_pdf
    # narrows it; the time per input is mostly MuPDF's either way.
    packages = os.environ.get("FUZZ_INSTRUMENT", "docpress,pymupdf,fuzz_pdf").split(",")
    with atheris.instrument_imports(include=packages):
        import fuzz_pdf
        import pymupdf

        from docpress.errors import PdfError

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    pdf_log = logging.getLogger("docpress.pdf")
    pdf_log.addHandler(logging.NullHandler())
    pdf_log.propagate = False  # read_pages logs each unreadable page
    # the reader opens paths: each input is written to one file, reused
    fd, name = tempfile.mkstemp(suffix=".pdf", prefix="atheris-")
    os.close(fd)
    path = Path(name)

    def test_one_input(data: bytes) -> None:
        path.write_bytes(data)
        pymupdf.TOOLS.reset_mupdf_warnings()
        try:
            fuzz_pdf.exercise(path)
        except PdfError as exc:
            if not exc.reason or "\n" in exc.reason:
                raise AssertionError(f"PdfError reason not one line: {exc.reason!r}") from None

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if not data or rng.random() < 0.5:
            return atheris.Mutate(data, max_size)
        buf = bytearray(data)
        kind = rng.choice(list(fuzz_pdf.MUTATIONS))
        if not fuzz_pdf.MUTATIONS[kind](buf, rng):
            return atheris.Mutate(data, max_size)
        return bytes(buf[:max_size])

    atheris.Setup(sys.argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()  # libFuzzer exits the process itself: the one temp file stays, overwritten per input


if __name__ == "__main__":
    main()
