"""`docpress search --html FILE`: one self-contained page of results (thumbnails inline)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

THUMB_DPI = 60


def thumbnail_data_url(hit, dpi: int = THUMB_DPI) -> str:
    """The hit's highlighted page as a PNG data URL ("" when its file cannot be rendered)."""
    from docpress.errors import DocpressError

    try:
        image = hit.highlight(dpi=dpi)
    except DocpressError:
        return ""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def write_results_page(target: Path, query: str, hits: list) -> None:
    rows = []
    for rank, hit in enumerate(hits, 1):
        src = thumbnail_data_url(hit)
        image = f'<img src="{src}" alt="page {hit.page + 1}">' if src else "<div class=gone>file gone</div>"
        words = ", ".join(sorted({w for r in hit.regions for w in r.tokens}))
        rows.append(
            f'<li data-page-id="{hit.page_id}">{image}<div><h2>{rank}. {html.escape(Path(hit.path).name)}, '
            f'page {hit.page + 1}</h2><p class=meta>{html.escape(hit.path)} &middot; score {hit.score:.3f}'
            f' &middot; matched: {html.escape(words)}</p><p>{html.escape(hit.snippet)}</p></div></li>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>docpress: {html.escape(query)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
li{{display:flex;gap:1.5em;margin:1.5em 0;list-style:none}} img{{width:300px;border:1px solid #ccc}}
h2{{font-size:1.1em;margin:0}} .meta{{color:#666;font-size:.85em}}</style></head>
<body><h1>{html.escape(query)}</h1><ol>{''.join(rows) or '<p>no pages match</p>'}</ol></body></html>
"""
    Path(target).write_text(page, encoding="utf-8")
