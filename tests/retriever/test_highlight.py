"""Where a page matched: the hottest region of a hit lies over the words that answer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TOPICS
from typer.testing import CliRunner

from docpress import Index
from docpress.cli import app

ANSWER_RECT = (72, 470, 520, 560)  # where the answer paragraph is drawn, PDF points
QUESTION = "why do some volcanoes explode with ash"


@pytest.fixture(scope="module")
def two_part_page(tmp_path_factory, encoder):
    """One page: an espresso paragraph on top, the volcano paragraph below, for each preset."""
    import pymupdf

    root = tmp_path_factory.mktemp("highlight")
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_textbox(pymupdf.Rect(72, 72, 520, 200), TOPICS["espresso"], fontsize=12)
    page.insert_textbox(pymupdf.Rect(*ANSWER_RECT), TOPICS["volcanoes"], fontsize=12)
    for name in ("football", "taxes", "photosynthesis"):  # a codec needs a few pages to fit on
        doc.new_page().insert_textbox(pymupdf.Rect(72, 72, 520, 400), TOPICS[name], fontsize=12)
    (root / "docs").mkdir()
    doc.save(root / "docs" / "mixed.pdf")
    indexes = {}
    for preset in ("none", "balanced"):
        indexes[preset] = Index.create(root / preset, encoder=encoder)
        indexes[preset].add([root / "docs"], compression=preset)
    yield root, indexes
    for index in indexes.values():
        index.close()


def _redness(image, rect, dpi) -> float:
    """Mean of red minus green inside a rectangle given in PDF points."""
    pixels = np.asarray(image.convert("RGB"), np.float32)
    s = dpi / 72
    x0, y0, x1, y1 = (int(c * s) for c in rect)
    block = pixels[y0:y1, x0:x1]
    return float((block[..., 0] - block[..., 1]).mean())


def test_the_hottest_region_is_over_the_answer(two_part_page):
    _, indexes = two_part_page
    hit = indexes["none"].search(QUESTION, k=1)[0]
    top = hit.regions[0]
    assert ANSWER_RECT[1] - 5 <= top.box[1] and top.box[3] <= ANSWER_RECT[3] + 5  # inside the answer's lines
    assert any(word in ("volcanoes", "explode", "ash") for r in hit.regions[:3] for word in r.tokens)
    plain, painted = hit.image(dpi=72), hit.highlight(dpi=72)
    assert painted.size == plain.size
    inside = _redness(painted, ANSWER_RECT, 72) - _redness(plain, ANSWER_RECT, 72)
    outside = _redness(painted, (72, 72, 520, 200), 72) - _redness(plain, (72, 72, 520, 200), 72)
    assert inside > 20 and inside > 4 * max(outside, 1.0), (inside, outside)


def test_a_compressed_index_keeps_coarser_regions_that_still_point_at_the_answer(two_part_page):
    _, indexes = two_part_page
    hit = indexes["balanced"].search(QUESTION, k=1)[0]
    centre = [(r.box[1] + r.box[3]) / 2 for r in hit.regions[:1]]
    assert hit.regions and ANSWER_RECT[1] - 40 <= centre[0] <= ANSWER_RECT[3] + 40
    painted = hit.highlight(dpi=72)
    assert _redness(painted, ANSWER_RECT, 72) > _redness(painted, (72, 72, 520, 200), 72)


def test_show_and_html_write_the_pictures_of_the_right_pages(two_part_page, tmp_path):
    root, _ = two_part_page
    runner = CliRunner()
    result = runner.invoke(app, ["show", QUESTION, "--index", str(root / "none"), "-k", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.stdout.split()]
    assert [p.name for p in written] == ["01-mixed-p1.png"] and written[0].stat().st_size > 1000
    page = tmp_path / "results.html"
    result = runner.invoke(app, ["search", QUESTION, "--index", str(root / "none"), "-k", "1", "--json",
                                 "--html", str(page)])
    assert result.exit_code == 0
    hit = json.loads(result.stdout)["hits"][0]
    html = page.read_text()
    assert f'data-page-id="{hit["page_id"]}"' in html and "data:image/png;base64," in html
    assert "mixed.pdf</" in html.replace(", page 1", "</") or "mixed.pdf, page 1" in html
