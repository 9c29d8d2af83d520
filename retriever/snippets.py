"""Snippets: the run of page words where a query's tokens matched best."""

from __future__ import annotations

import numpy as np

from docpress.maxsim import best_matches

SNIPPET_WORDS = 32


def best_window(n_words: int, focus: np.ndarray, weights: np.ndarray,
                width: int = SNIPPET_WORDS) -> tuple[int, int]:
    """(start, end) of the `width`-word window holding the most focus weight.

    focus: (m,) word indices that matched; weights: (m,) how strongly.
    >>> best_window(100, np.array([50, 52, 90]), np.array([1.0, 1.0, 1.5]), width=10)
    (46, 56)
    """
    if n_words <= width or len(focus) == 0:
        return 0, min(n_words, width)
    mass = np.zeros(n_words + 1)
    np.add.at(mass, np.clip(focus, 0, n_words - 1) + 1, weights)
    cum = np.cumsum(mass)
    totals = cum[width:] - cum[:-width]  # window starting at i covers words i..i+width-1
    start = int(np.argmax(totals))
    # centre the window on its matched words rather than starting at the first of them
    inside = focus[(focus >= start) & (focus < start + width)]
    if len(inside):
        centre = int(round((inside.min() + inside.max()) / 2))
        start = min(max(centre - width // 2, 0), n_words - width)
    return start, start + width


def snippet(text: str, page_vectors, query: np.ndarray, width: int = SNIPPET_WORDS,
            sims: np.ndarray | None = None) -> tuple[str, list]:
    """The best-matching text of a page and the boxes of the regions that matched.

    page_vectors: PageVectors of the page; query: (n_query_tokens, dim) float32; sims:
    query @ page_vectors.vectors.T when the caller has it.
    Vectors tied to no word (words == -1, e.g. the optical lane's grid cells) do not place the
    text window, which then falls back to the page's opening words; their boxes are still
    returned, as they show where on the page the query matched.
    """
    words = text.split(" ") if text else []
    if not words:
        return "", []
    if len(page_vectors.vectors) == 0 or len(query) == 0:
        return " ".join(words[:width]), []
    if sims is None:
        best, scores = best_matches(query, page_vectors.vectors)
    else:
        best = sims.argmax(1)
        scores = sims[np.arange(len(best)), best]
    focus = page_vectors.words[best].astype(np.int64)
    weights = np.clip(scores, 0.0, None)
    worded = focus >= 0  # a -1 must not count as the page's first word
    start, end = best_window(len(words), focus[worded], weights[worded], width)
    prefix = "… " if start > 0 else ""
    suffix = " …" if end < len(words) else ""
    keep = ~worded | ((focus >= start) & (focus < end))
    boxes = [tuple(round(float(c), 1) for c in page_vectors.boxes[i]) for i in np.unique(best[keep])]
    return prefix + " ".join(words[start:end]) + suffix, boxes
