"""TokenHead: a linear projection of token vectors for late interaction, PCA-initialised, saved as a folder.

One head maps both the queries' and the pages' MiniLM token vectors (384-d) to a smaller
space (128-d by default), outputs L2-normalised: a shared map keeps queries and pages in one
space. It starts as the PCA of the corpus's token vectors (uncentred, so an untrained head
keeps dot products as well as any rank-k map can) and training moves it from there.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from docpress.compress.reduce import PcaReducer
from docpress.errors import DocpressError
from indexer.head_files import read_head, weight_hash, write_head


@dataclass
class HeadInfo:
    """What head.json records next to the weights: shape, provenance and the training run."""

    in_dim: int
    out_dim: int
    seed: int = 0
    data_hash: str = ""  # hash of the pages and pseudo-queries trained on
    pages: int = 0
    queries: int = 0
    steps: int = 0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class TokenHead(nn.Module):
    """x (..., in_dim) -> normalize(x W^T) (..., out_dim); no bias, so a zero vector stays zero."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        if not 0 < out_dim <= in_dim:
            raise DocpressError(f"the head projects {in_dim}-d vectors to 1..{in_dim} dims, not {out_dim}")
        self.weight = nn.Parameter(torch.zeros(out_dim, in_dim))
        self.info = HeadInfo(in_dim, out_dim)

    @property
    def in_dim(self) -> int:
        return self.weight.shape[1]

    @property
    def out_dim(self) -> int:
        return self.weight.shape[0]

    @classmethod
    def from_pca(cls, sample: np.ndarray, out_dim: int) -> "TokenHead":
        """A head whose rows are the top principal axes of `sample` ((n, in_dim) token vectors).

        Uncentred (second-moment) axes, computed by docpress.compress's PcaReducer: the rank-k
        map that best keeps the vectors' dot products, which is what MaxSim reads. Each axis's
        sign is fixed (largest entry positive) so the same sample always gives the same head.
        """
        sample = np.asarray(sample, np.float32)
        if len(sample) < out_dim:
            raise DocpressError(f"the head needs at least {out_dim} token vectors to start from, "
                                f"the corpus gave {len(sample)}")
        head = cls(sample.shape[1], out_dim)
        pca = PcaReducer(out_dim, center=False)  # the compression stage's PCA, uncentred
        pca.fit(sample)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(pca.components))  # (out_dim, in_dim), orthonormal rows
        return head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x @ self.weight.T, dim=-1)

    def project(self, x: np.ndarray) -> np.ndarray:
        """numpy in, numpy out, float32, no gradient: (n, in_dim) -> (n, out_dim) unit rows."""
        with torch.no_grad():
            return self(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()

    def orthogonality(self) -> torch.Tensor:
        """||W W^T - I||^2 / out_dim: 0 for a PCA head; keeps the map close to a rotation."""
        w = self.weight
        gram = w @ w.T
        return ((gram - torch.eye(len(w), device=w.device)) ** 2).sum() / len(w)

    def content_hash(self) -> str:
        """16 hex digits of the weights' bytes and shape: what the manifest pins."""
        return weight_hash(self.weight.detach().cpu().numpy())

    # -- folder ---------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike) -> Path:
        """Write head.safetensors and head.json into `directory` (created), fsynced."""
        return write_head(directory, self.weight.detach().cpu().numpy(), asdict(self.info))

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TokenHead":
        """Read a folder written by save(); refuses weights that do not match their recorded hash."""
        weight, record = read_head(directory)
        info = HeadInfo(**{k: v for k, v in record.items() if k in HeadInfo.__dataclass_fields__})
        head = cls(info.in_dim, info.out_dim)
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weight))
        head.info = info
        return head
