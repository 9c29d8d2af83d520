"""MaxSim, the late-interaction score, in the forms docpress needs: over stored bf16 rows, over
padded torch batches (training), and per query token (snippets, highlights).

MaxSim(q, p) = sum over query tokens i of max over page vectors j of <q_i, p_j>.
torch is imported inside the functions that use it, so importing this module stays cheap.
"""

from __future__ import annotations

import warnings

import numpy as np

# Rows scored per matmul: bounds the (n_query_tokens, rows) score block to a few hundred MB.
CHUNK_ROWS = 1 << 19


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 stored as int16 bits (round to nearest even)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).bfloat16().view(torch.int16).numpy()


def bf16_tensor(bits: np.ndarray):
    """int16 bits (a memmap is fine) -> a bfloat16 tensor sharing memory where possible."""
    import torch

    with warnings.catch_warnings():
        # read-only memmaps are only ever read here; copying gigabytes to silence torch is waste
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(bits)).view(torch.bfloat16)


def segment_max(sims: np.ndarray, offsets: np.ndarray, axis: int) -> np.ndarray:
    """Max of each segment of `sims` along `axis`; segments start at `offsets` (non-empty ones).

    >>> segment_max(np.array([[1., 5., 2., 7.]]), np.array([0, 2]), axis=1).tolist()
    [[5.0, 7.0]]
    """
    return np.maximum.reduceat(sims, offsets, axis=axis)


def token_maxsim(table: np.ndarray, query: np.ndarray, starts: np.ndarray,
                 counts: np.ndarray) -> np.ndarray:
    """(n_query_tokens, n_pages) float32: each query token's best dot product on each page.

    table: (n_rows, dim) bf16 bits (int16, a memmap is fine); page i owns rows
    [starts[i], starts[i] + counts[i]); query: (n_query_tokens, dim) float32 in the same space.
    A page without rows scores 0.
    """
    import torch

    out = np.zeros((len(query), len(starts)), np.float32)
    if len(starts) == 0 or len(query) == 0:
        return out
    q = torch.from_numpy(np.ascontiguousarray(query, dtype=np.float32)).bfloat16()
    ends = np.cumsum(counts)
    i = 0
    while i < len(starts):
        # The next pages, up to CHUNK_ROWS vectors: one matmul, one reduceat.
        j = max(i + 1, int(np.searchsorted(ends, ends[i] - counts[i] + CHUNK_ROWS, "right")))
        s_, c_ = starts[i:j], counts[i:j]
        if np.all(s_[1:] == s_[:-1] + c_[:-1]):  # contiguous on disk: a view, no copy
            rows = table[s_[0]:s_[0] + c_.sum()]
        else:  # scattered candidates: one gather
            rows = table[np.concatenate([np.arange(a, a + c) for a, c in zip(s_, c_)])]
        sims = (q @ bf16_tensor(rows).T).float().numpy()  # (n_query_tokens, rows)
        nonempty = np.flatnonzero(c_ > 0)
        if len(nonempty):
            offsets = (np.cumsum(c_) - c_)[nonempty]
            out[:, i + nonempty] = segment_max(sims, offsets, axis=1)
        i = j
    return out


def best_matches(query: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query token, its best page vector and that dot product.

    query (n_query_tokens, dim), vectors (n_vectors, dim), n_vectors > 0.
    Returns ((n_query_tokens,) int64 vector index, (n_query_tokens,) float32 score).

    >>> best_matches(np.eye(2, dtype=np.float32), np.array([[0., 1.], [1., 0.]], np.float32))[0].tolist()
    [1, 0]
    """
    sims = query @ vectors.T  # (n_query_tokens, n_vectors)
    best = sims.argmax(1)
    return best, sims[np.arange(len(query)), best]


def padded_maxsim(queries, query_mask, pages, page_mask, normalize: bool = True):
    """MaxSim of every query against every page, on padded torch batches (training).

    queries (Bq, nq, d), query_mask (Bq, nq); pages (Bp, np, d), page_mask (Bp, np).
    Returns (Bq, Bp): sum over a query's tokens of the best page vector's dot product, divided
    by the query's token count when `normalize`. A page needs at least one unmasked vector.
    """
    import torch

    sims = torch.einsum("qnd,pmd->qpnm", queries, pages)
    sims = sims.masked_fill(~page_mask[None, :, None, :], float("-inf"))
    best = sims.amax(dim=-1).masked_fill(~query_mask[:, None, :], 0.0)  # (Bq, Bp, nq)
    scores = best.sum(-1)
    if normalize:
        scores = scores / query_mask.sum(-1, keepdim=True).clamp(min=1)
    return scores
