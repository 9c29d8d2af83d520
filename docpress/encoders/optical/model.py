"""The optical model's weights and shapes: DeepEncoderConfig and the torch modules.

DeepEncoder = SAM-base -> 16x ConvCompressor -> CLIP-L over the compressed tokens;
OpticalModel adds the page-side RetrievalHead and the QueryProjection, so one state dict holds
everything the optical encoder trains, saves and loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
from torch import nn

from docpress.encoders.optical.clip import ClipStage, clip_vision_config
from docpress.encoders.optical.compressor import ConvCompressor
from docpress.encoders.optical.head import QueryProjection, RetrievalHead
from docpress.encoders.optical.sam import SamEncoder, sam_vision_config
from docpress.errors import DocpressError


@dataclass
class DeepEncoderConfig:
    """Dims of the DeepEncoder; the defaults are DeepSeek-OCR's (SAM ViT-B, CLIP ViT-L/14)."""

    sam_hidden: int = 768
    sam_layers: int = 12
    sam_heads: int = 12
    sam_mlp_ratio: float = 4.0
    sam_window: int = 14
    sam_global: list[int] = field(default_factory=lambda: [2, 5, 8, 11])
    sam_image_size: int = 1024  # the size SAM's position table and global rel-pos were made for
    patch_size: int = 16
    sam_out: int = 256
    compress_channels: list[int] = field(default_factory=lambda: [512, 1024])
    clip_hidden: int = 1024
    clip_layers: int = 24
    clip_heads: int = 16
    clip_mlp: int = 4096
    clip_grid: int = 16  # CLIP-L/14 at 224 px: a 16 x 16 position table (+ CLS)
    projector_dim: int | None = 1280  # DeepSeek-OCR's projector to its language model

    def __post_init__(self) -> None:
        self.sam_global = [int(i) for i in self.sam_global]
        self.compress_channels = [int(c) for c in self.compress_channels]
        if self.compress_channels[-1] != self.clip_hidden:
            raise DocpressError(f"compressor output ({self.compress_channels[-1]}) must equal the "
                                f"CLIP width ({self.clip_hidden})")

    @classmethod
    def from_dict(cls, data: dict) -> "DeepEncoderConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def feature_dims(self) -> tuple[int, int]:
        """(CLIP token dim, SAM token dim) of the visual features."""
        return self.clip_hidden, self.compress_channels[-1]


class DeepEncoder(nn.Module):
    """(B, 3, S, S) pixels -> CLIP tokens (B, n, clip_dim), SAM tokens (B, n, sam_dim), (h, w)."""

    def __init__(self, cfg: DeepEncoderConfig):
        super().__init__()
        self.sam = SamEncoder(sam_vision_config(
            cfg.sam_hidden, cfg.sam_layers, cfg.sam_heads, cfg.sam_mlp_ratio, cfg.sam_window,
            tuple(cfg.sam_global), cfg.sam_image_size, cfg.patch_size, cfg.sam_out))
        self.compressor = ConvCompressor(cfg.sam_out, *cfg.compress_channels)
        self.clip = ClipStage(clip_vision_config(
            cfg.clip_hidden, cfg.clip_layers, cfg.clip_heads, cfg.clip_mlp,
            image_size=cfg.clip_grid * 14, patch_size=14))

    def forward(self, pixels: torch.Tensor):
        compressed = self.compressor(self.sam(pixels))  # (B, C, h, w)
        hidden = self.clip(compressed)  # (B, 1 + h*w, C)
        sam_tokens = compressed.flatten(2).transpose(1, 2)
        return hidden[:, 1:], sam_tokens, tuple(compressed.shape[-2:])


class OpticalModel(nn.Module):
    """Everything with weights: the DeepEncoder, the page head and the query projection."""

    def __init__(self, cfg: DeepEncoderConfig, dim: int, features: str, use_projector: bool,
                 query_dim: int):
        super().__init__()
        self.encoder = DeepEncoder(cfg)
        clip_dim, sam_dim = cfg.feature_dims
        self.head = RetrievalHead(clip_dim, sam_dim, dim, features, cfg.projector_dim, use_projector)
        self.query = QueryProjection(query_dim, dim)

    def forward(self, pixels: torch.Tensor):
        """(B, 3, S, S) -> (B, n, dim) unit vectors and the (h, w) token grid."""
        clip_tokens, sam_tokens, grid = self.encoder(pixels)
        return self.head(clip_tokens, sam_tokens), grid
