"""Query token weights for MaxSim: how much each query token's best match should count."""

from __future__ import annotations

import unicodedata

import numpy as np


def _is_punctuation(token: str) -> bool:
    token = token.removeprefix("##")
    return bool(token) and all(unicodedata.category(c).startswith("P") or
                               unicodedata.category(c).startswith("S") for c in token)


def token_weights(tokens: list[str]) -> np.ndarray:
    """(n_tokens,) float32: 0 for punctuation, which matches any page's punctuation; else 1."""
    return np.asarray([0.0 if _is_punctuation(t) else 1.0 for t in tokens], dtype=np.float32)
