"""CLIP-L stage of the DeepEncoder: transformers' CLIP encoder layers over the compressed tokens.

The compressor's grid takes the place of CLIP's patch embedding (which is not built); a CLS
token is prepended and CLIP's position table (16 x 16 + 1 for ViT-L/14 at 224 px) is resized to
the grid (bicubic, antialiased; CLS position kept), then pre-LayerNorm and 24 pre-norm
layers with quick-GELU MLPs. No post-LayerNorm, as in the reference.

Parameter names follow transformers' CLIPVisionModel without its `vision_model.` prefix
(`embeddings.class_embedding`, `embeddings.position_embedding.weight`, `pre_layrnorm`,
`encoder.layers.N.self_attn.q_proj`, ...).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.nn import functional as F


def clip_vision_config(hidden_size: int = 1024, num_layers: int = 24, num_heads: int = 16,
                       intermediate_size: int = 4096, image_size: int = 224, patch_size: int = 14,
                       layer_norm_eps: float = 1e-5):
    """A transformers CLIPVisionConfig for the DeepEncoder's CLIP (defaults: CLIP ViT-L/14)."""
    from transformers import CLIPVisionConfig

    config = CLIPVisionConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, image_size=image_size, patch_size=patch_size,
        layer_norm_eps=layer_norm_eps, hidden_act="quick_gelu", attention_dropout=0.0,
    )
    config._attn_implementation = "sdpa"
    return config


class ClipEmbeddings(nn.Module):
    """CLS token + position table; the patch tokens come from outside (the compressor)."""

    def __init__(self, hidden_size: int, num_positions: int):
        super().__init__()
        self.class_embedding = nn.Parameter(torch.randn(hidden_size))
        self.position_embedding = nn.Embedding(num_positions, hidden_size)

    def positions(self, height: int, width: int) -> torch.Tensor:
        """(1 + height * width, C) position vectors: CLS's, then the table resized to the grid."""
        table = self.position_embedding.weight
        side = int(round((table.shape[0] - 1) ** 0.5))
        cls_pos, grid = table[:1], table[1:]
        if (height, width) != (side, side):
            grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2).float()
            grid = F.interpolate(grid, size=(height, width), mode="bicubic", antialias=True,
                                 align_corners=False)
            grid = grid.to(table.dtype).permute(0, 2, 3, 1).reshape(height * width, -1)
        return torch.cat([cls_pos, grid], dim=0)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) grid -> (B, 1 + h*w, C)."""
        batch, _, height, width = tokens.shape
        patches = tokens.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(patches.dtype).expand(batch, 1, -1)
        return torch.cat([cls, patches], dim=1) + self.positions(height, width)[None]


class ClipEncoder(nn.Module):
    def __init__(self, config):
        super().__init__()
        from transformers.models.clip.modeling_clip import CLIPEncoderLayer

        self.layers = nn.ModuleList(CLIPEncoderLayer(config) for _ in range(config.num_hidden_layers))
        params = inspect.signature(CLIPEncoderLayer.forward).parameters
        self._extra = (None,) if "causal_attention_mask" in params else ()  # transformers 4.x

    def forward(self, hidden: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run layers[start:stop] (all by default); training caches the output of a frozen prefix."""
        for layer in self.layers[start:stop]:
            out = layer(hidden, None, *self._extra)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


class ClipStage(nn.Module):
    """(B, C, h, w) compressed tokens -> (B, 1 + h*w, C) CLIP hidden states (CLS first)."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        side = config.image_size // config.patch_size
        self.embeddings = ClipEmbeddings(config.hidden_size, side * side + 1)
        self.pre_layrnorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.encoder = ClipEncoder(config)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, 1 + h*w, C): CLS and positions added, pre-LayerNorm applied."""
        return self.pre_layrnorm(self.embeddings(tokens))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(tokens))
