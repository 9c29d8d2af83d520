"""Where on a page a query matched, from the late-interaction scores themselves.

Each query token's best page vector is what MaxSim adds up; those vectors' boxes (word boxes
for the text lane, grid cells for the optical lane, unions of boxes for merged vectors of a
compressed index) are the regions that matched. The heat of every page vector is its best
similarity to any query word, spread from the page's median (0) to its best (1), so the
overlay shows the places that stand out on this page, not a page-wide glow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from docpress.tokens import token_weights

# Regions kept per hit (the strongest), and the heat at which a vector starts to show.
TOP_REGIONS = 5
HEAT_FLOOR = 0.15


@dataclass
class Region:
    """A region of the page that matched: box in PDF points (x0, y0, x1, y1), the best
    similarity there, and the query words whose best match it is."""

    box: tuple[float, float, float, float]
    score: float
    tokens: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"box": [round(c, 1) for c in self.box], "score": round(self.score, 4), "tokens": self.tokens}


@dataclass
class Heat:
    """Per page vector: its box and its heat in [0, 1] (what the overlay paints)."""

    boxes: np.ndarray  # (n, 4) float32, PDF points
    heat: np.ndarray  # (n,) float32


def word_of(token: str) -> str:
    """A query token as a reader would name it (word pieces without their ## mark)."""
    return token[2:] if token.startswith("##") else token


def match_regions(query: np.ndarray, tokens: list[str], vectors: np.ndarray, boxes: np.ndarray,
                  top: int = TOP_REGIONS, sims: np.ndarray | None = None) -> tuple[list[Region], Heat]:
    """The strongest regions and the heat of every page vector.

    query: (n_query_tokens, dim) float32 unit rows; tokens: their strings (punctuation and
    special tokens weigh 0 and match nothing); vectors: (n, dim) page vectors; boxes: (n, 4);
    sims: query @ vectors.T when the caller has it (the snippet needs it too).
    """
    if len(vectors) == 0 or len(query) == 0:
        return [], Heat(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    live = token_weights(tokens) > 0
    sims = (query[live] @ vectors.T) if sims is None else sims[live]  # (live tokens, n)
    if sims.size == 0:
        return [], Heat(np.asarray(boxes, np.float32), np.zeros(len(vectors), np.float32))
    per_vector = sims.max(0)
    floor, peak = float(np.median(per_vector)), float(per_vector.max())
    heat = np.clip((per_vector - floor) / max(peak - floor, 1e-6), 0.0, 1.0).astype(np.float32)
    best = sims.argmax(1)  # each live token's best vector: what MaxSim sums
    best_sim = sims[np.arange(len(best)), best]
    # one region a vector some token picked, in the order they were first picked, scored by
    # its best token; only the strongest `top` are made (a hit's 10 pages, each query's)
    picked, first, which = np.unique(best, return_index=True, return_inverse=True)
    score = np.full(len(picked), -np.inf, np.float32)
    np.maximum.at(score, which, best_sim)
    in_order = np.argsort(first, kind="stable")
    strongest = in_order[np.argsort(-score[in_order], kind="stable")][:top]
    live_tokens = [t for t, keep in zip(tokens, live) if keep]
    regions = []
    for i in strongest:
        words = list(dict.fromkeys(word_of(live_tokens[t]) for t in np.flatnonzero(which == i)))
        regions.append(Region(tuple(float(c) for c in boxes[picked[i]]), float(score[i]), words))
    return regions, Heat(np.asarray(boxes, np.float32), heat)


def paint(image, heat: Heat, regions: list[Region], page_size: tuple[float, float]):
    """The page image with the heat overlaid (red, stronger where hotter) and the regions
    outlined with the query words they matched. Returns a new RGB PIL image."""
    from PIL import Image, ImageDraw

    width, height = image.size
    sx, sy = width / max(page_size[0], 1e-6), height / max(page_size[1], 1e-6)
    field_ = np.zeros((height, width), np.float32)
    for (x0, y0, x1, y1), h in zip(heat.boxes, heat.heat):
        if h < HEAT_FLOOR:
            continue
        a, b = max(int(x0 * sx), 0), max(int(y0 * sy), 0)
        c, d = min(int(np.ceil(x1 * sx)), width), min(int(np.ceil(y1 * sy)), height)
        if c > a and d > b:
            np.maximum(field_[b:d, a:c], h, out=field_[b:d, a:c])
    base = np.asarray(image.convert("RGB"), np.float32)
    alpha = (field_ * 0.55)[..., None]
    tint = np.array([255.0, 40.0, 0.0], np.float32)
    out = Image.fromarray((base * (1 - alpha) + tint * alpha).clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for region in regions:
        x0, y0, x1, y1 = region.box
        rect = [x0 * sx - 2, y0 * sy - 2, x1 * sx + 2, y1 * sy + 2]
        draw.rectangle(rect, outline=(230, 120, 0), width=2)
        label = " ".join(region.tokens)[:40]
        if label:
            draw.text((rect[0], max(rect[1] - 12, 0)), label, fill=(200, 60, 0))
    return out
