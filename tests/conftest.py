"""Shared fixtures: one text encoder per session, PDFs the tests draw themselves."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# a first stage that outgrew its centroids is refitted before a write returns: no process
# outlives a test (tests/indexer/test_refit.py starts the background one on purpose)
os.environ.setdefault("DOCPRESS_BACKGROUND_REFIT", "0")

SHARED = Path(__file__).resolve().parents[2] / "shared"

TOPICS = {
    "photosynthesis": "Photosynthesis in green plants converts sunlight, water and carbon dioxide "
                      "into glucose and oxygen. Chlorophyll in the chloroplasts absorbs red and blue "
                      "light, and the Calvin cycle fixes carbon into sugar.",
    "volcanoes": "Volcanic eruptions happen when magma rises through cracks in the crust. Runny "
                 "basaltic lava builds shield volcanoes, while sticky andesite magma traps gas and "
                 "explodes in ash clouds from steep stratovolcanoes.",
    "football": "The football club won the league title after a penalty shootout in the final "
                "match. The goalkeeper saved two penalty kicks and the striker scored the winning "
                "goal in front of the home supporters.",
    "espresso": "To descale the espresso machine, fill the water tank with descaling solution, run "
                "it through the steam wand and the brew group, then rinse twice with fresh water. "
                "Descale every two months in hard-water areas.",
    "taxes": "Quarterly income statement: revenue rose to 412 million dollars, cost of sales was "
             "251 million, operating income 96 million and net income 71 million. Purchases of "
             "property, plant and equipment were 38 million.",
}

QUESTIONS = {
    "photosynthesis": "how do plants turn light into sugar",
    "volcanoes": "why do some volcanoes explode with ash",
    "football": "who saved the penalties in the final game",
    "espresso": "how often should I remove limescale from my coffee maker",
    "taxes": "what was the net income and the capital expenditure this quarter",
}


def write_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    """A PDF with one text page per string (pymupdf, Helvetica)."""
    import pymupdf

    doc = pymupdf.open()
    for text in pages:
        page = doc.new_page()
        page.insert_textbox(pymupdf.Rect(72, 72, 520, 760), text, fontsize=12)
    if title:
        doc.set_metadata({"title": title})
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(path)
    doc.close()
    return path


def write_image_only_pdf(path: Path, text: str) -> Path:
    """A scanned-looking PDF: the text is drawn, rendered to pixels and placed as an image."""
    import pymupdf

    src = pymupdf.open()
    page = src.new_page()
    page.insert_textbox(pymupdf.Rect(60, 60, 540, 760), text, fontsize=20)
    pix = page.get_pixmap(dpi=150)
    out = pymupdf.open()
    scanned = out.new_page(width=page.rect.width, height=page.rect.height)
    scanned.insert_image(scanned.rect, pixmap=pix)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


@pytest.fixture(scope="session")
def encoder():
    from docpress.encoders import load_encoder

    return load_encoder("text")


@pytest.fixture(scope="session")
def topic_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("topics")
    for name, text in TOPICS.items():
        write_pdf(folder / f"{name}.pdf", [text], title=name.title())
    return folder


@pytest.fixture(scope="session")
def topic_index(tmp_path_factory, topic_dir, encoder):
    """An index of the topic PDFs, built once and only read by the tests that share it."""
    from docpress import Index

    index = Index.create(tmp_path_factory.mktemp("index") / "ix", encoder=encoder)
    report = index.add([topic_dir], metadata={"corpus": "topics"})
    assert len(report.added) == len(TOPICS)
    yield index
    index.close()
