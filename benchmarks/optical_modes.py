"""Optical lane per mode: parameters, visual tokens per page and pages/s on this machine.

Builds the DeepEncoder at its real dims (SAM ViT-B 768-d x 12, compressor 256->512->1024,
CLIP-L 1024-d x 24) with random weights (no checkpoint needed), renders US-letter text pages
at each mode's DPI and times encode_pages in fp32 and bf16.

    python benchmarks/optical_modes.py --out /work/runs/optical-modes.txt
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from docpress.encoders.optical import MODES, page_tokens
from docpress.encoders.optical.encoder import OpticalEncoder
from docpress.pdf.reader import read_pages, render_page

PAGES = {"tiny": 2, "small": 2, "base": 1, "large": 1, "gundam": 1}
FP32_MODES = ("tiny", "small", "base")  # large and gundam take minutes a page in fp32 here
TEXT = ("Quarterly income statement. Revenue rose to 412 million dollars, cost of sales was 251 "
        "million, operating income 96 million and net income 71 million. ") * 12


def make_pdf(path: Path, pages: int) -> Path:
    import pymupdf

    doc = pymupdf.open()
    for i in range(pages):
        page = doc.new_page(width=612, height=792)  # US letter
        page.insert_textbox(pymupdf.Rect(72, 72, 540, 720), f"Page {i + 1}. " + TEXT, fontsize=11)
    doc.save(path)
    return path


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=list(PAGES), choices=list(MODES))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--pages", type=int, help="pages per mode (default: 2/2/1/1/1)")
    parser.add_argument("--all-dtypes", action="store_true",
                        help="time every dtype in every mode (default: fp32 for tiny/small/base only)")
    parser.add_argument("--out", help="also write the table here")
    args = parser.parse_args()
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    started = time.perf_counter()
    enc = OpticalEncoder(random_init=True, query_dim=384, dim=128)
    model = enc.model
    build_s = time.perf_counter() - started
    parts = {"SAM ViT-B (+neck)": count(model.encoder.sam), "compressor": count(model.encoder.compressor),
             "CLIP-L (no patch embed)": count(model.encoder.clip),
             "DeepEncoder total": count(model.encoder),
             "DeepSeek projector 2048->1280": count(model.head.projector),
             "retrieval head 2048->128": count(model.head.proj), "query proj 384->128": count(model.query)}
    say(f"# optical lane, random init at real dims (built in {build_s:.1f} s); torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {os.cpu_count()} cpus")
    for name, n in parts.items():
        say(f"  {name:<32} {n / 1e6:8.2f} M params")
    say()

    workdir = Path(tempfile.mkdtemp(prefix="optical-bench-"))
    pdf = make_pdf(workdir / "pages.pdf", max(PAGES.values()) if args.pages is None else args.pages)
    header = (f"{'mode':<7} {'view px':<16} {'tokens/page':>11} {'kept':>5} {'dim':>4} {'dpi':>4} "
              + " ".join(f"{d + ' p/s':>14}" for d in args.dtypes) + "  params (M)")
    say(header)
    say("-" * len(header))
    results = {}
    for mode in args.modes:
        enc.mode = MODES[mode]
        n = args.pages or PAGES[mode]
        pages = [p for _, p in zip(range(n), read_pages(pdf))]
        dpi = enc.render_dpi(pages[0])
        for page in pages:
            page.image = render_page(pdf, page.number, dpi=dpi)
        size = pages[0].image.size
        tokens = page_tokens(*size, enc.mode)
        speeds = []
        for dtype in args.dtypes:
            if dtype == "float32" and mode not in FP32_MODES and not args.all_dtypes:
                speeds.append(None)
                continue
            enc.dtype = getattr(torch, dtype)
            model.to(enc.dtype)
            t0 = time.perf_counter()
            out = enc.encode_pages(pages)
            seconds = time.perf_counter() - t0
            speeds.append(len(pages) / seconds)
            kept = len(out[0])
        model.to(torch.float32)
        m = enc.mode
        view = f"{m.base_size}" + (f" + {m.image_size} tiles" if m.crop else "")
        results[mode] = speeds
        say(f"{mode:<7} {view:<16} {tokens:>11} {kept:>5} {enc.dim:>4} {dpi:>4} "
            + " ".join(f"{s:>14.3f}" if s else f"{'-':>14}" for s in speeds) + f"  {count(model) / 1e6:.1f}")
    say()
    say("tokens/page: visual tokens the DeepEncoder makes for a US-letter page (gundam: 100 per "
        "640-px tile + 256 for the 1024-px view); kept: vectors stored after dropping cells that "
        "are pure padding. p/s: pages per second of encode_pages (preprocessing + model + head), "
        f"{'; '.join(f'{k}: {PAGES[k] if args.pages is None else args.pages} page(s)' for k in args.modes)}; "
        "no warm-up, one process, machine shared with other jobs (see load average).")
    say("params: the whole model (DeepEncoder + heads); every mode runs the same weights.")
    say(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    say(f"total {time.perf_counter() - started:.0f} s; command: python {' '.join(sys.argv)}")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
