"""Retrieval heads: visual tokens and query tokens projected into one L2-normalised space.

Page side: per grid cell, CLIP's output (CLS dropped) concatenated with the compressed SAM
feature (1024 + 1024 = 2048-d, the reference's order), or CLIP's alone; optionally through
DeepSeek-OCR's own projector (2048 -> 1280, the language model's input space); then a linear
layer to the retrieval dim and L2 normalisation.
Query side: token vectors from a text tower (query.py: MiniLM by default, 384-d; or CLIP's text
tower) through their own linear layer into the same space, identity-initialised when dims match.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FEATURES = ("concat", "clip")


class RetrievalHead(nn.Module):
    """(B, n, clip_dim) CLIP tokens + (B, n, sam_dim) SAM tokens -> (B, n, dim) unit vectors.

    `projector` and the reference's `image_newline` / `view_separator` vectors are kept so a
    DeepSeek-OCR checkpoint survives a save/load round trip; the two separators are not used
    as retrieval vectors.
    """

    def __init__(self, clip_dim: int, sam_dim: int, dim: int, features: str = "concat",
                 projector_dim: int | None = None, use_projector: bool = False):
        super().__init__()
        if features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
        if use_projector and (features != "concat" or not projector_dim):
            raise ValueError("use_projector needs features='concat' and a projector_dim")
        self.features = features
        self.use_projector = use_projector
        in_dim = clip_dim + sam_dim if features == "concat" else clip_dim
        self.projector = nn.Linear(clip_dim + sam_dim, projector_dim) if projector_dim else None
        if projector_dim:
            self.image_newline = nn.Parameter(torch.zeros(projector_dim))
            self.view_separator = nn.Parameter(torch.zeros(projector_dim))
        self.proj = nn.Linear(projector_dim if use_projector else in_dim, dim)

    def forward(self, clip_tokens: torch.Tensor, sam_tokens: torch.Tensor) -> torch.Tensor:
        if self.features == "concat":
            x = torch.cat([clip_tokens, sam_tokens], dim=-1)
        else:
            x = clip_tokens
        if self.use_projector:
            x = self.projector(x)
        return F.normalize(self.proj(x).float(), dim=-1)


class QueryProjection(nn.Module):
    """(n, in_dim) query token vectors -> (n, dim) unit vectors; identity at init when dims match."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, dim, bias=False)
        with torch.no_grad():
            if in_dim == dim:
                self.proj.weight.copy_(torch.eye(dim))
            else:  # a random semi-orthogonal map keeps angles as well as a linear map can
                nn.init.orthogonal_(self.proj.weight)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(vectors.to(self.proj.weight.dtype)).float(), dim=-1)

