"""SAM ViT image encoder (DeepSeek-OCR's SAM-base stage) built from transformers' SAM layers.

Patch embedding (16 x 16 conv), an absolute position table resized to the input's grid
(bicubic, antialiased, as the reference's `get_abs_pos`), blocks with windowed attention
(window 14) except the global ones (2, 5, 8, 11), decomposed relative positions, and the
neck 768 -> 256 (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d).

Parameter names follow transformers' `SamVisionEncoder` (`patch_embed.projection`,
`layers.N.layer_norm1`, `layers.N.attn.qkv`, `neck.conv1`, ...), so a transformers SAM
checkpoint loads after dropping its `vision_encoder.` prefix.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def sam_vision_config(hidden_size: int = 768, num_layers: int = 12, num_heads: int = 12,
                      mlp_ratio: float = 4.0, window_size: int = 14,
                      global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11), image_size: int = 1024,
                      patch_size: int = 16, output_channels: int = 256):
    """A transformers SamVisionConfig for the DeepEncoder's SAM (defaults: SAM ViT-B)."""
    from transformers import SamVisionConfig

    config = SamVisionConfig(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        mlp_ratio=mlp_ratio, mlp_dim=int(hidden_size * mlp_ratio), window_size=window_size,
        global_attn_indexes=list(global_attn_indexes), image_size=image_size,
        patch_size=patch_size, output_channels=output_channels, use_abs_pos=True,
        use_rel_pos=True, qkv_bias=True, layer_norm_eps=1e-6, hidden_act="gelu",
    )
    config._attn_implementation = "sdpa"
    return config


class PatchEmbed(nn.Module):
    """(B, 3, H, W) -> (B, H/16, W/16, C); unlike transformers' version, any H and W."""

    def __init__(self, channels: int, hidden_size: int, patch_size: int):
        super().__init__()
        self.projection = nn.Conv2d(channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.projection(pixels).permute(0, 2, 3, 1)


def resize_pos_embed(table: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(1, h, w, C) position table -> (1, height, width, C), bicubic with antialiasing in fp32."""
    if table.shape[1] == height and table.shape[2] == width:
        return table
    resized = F.interpolate(table.permute(0, 3, 1, 2).float(), size=(height, width), mode="bicubic",
                            antialias=True, align_corners=False)
    return resized.to(table.dtype).permute(0, 2, 3, 1)


class SamEncoder(nn.Module):
    """SAM ViT: (B, 3, H, W) pixels in [-1, 1] -> (B, output_channels, H/16, W/16) features."""

    def __init__(self, config):
        super().__init__()
        from transformers.models.sam.modeling_sam import SamVisionLayer, SamVisionNeck

        self.config = config
        grid = config.image_size // config.patch_size
        self.patch_embed = PatchEmbed(config.num_channels, config.hidden_size, config.patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid, grid, config.hidden_size))
        self.layers = nn.ModuleList(
            SamVisionLayer(config, window_size=0 if i in config.global_attn_indexes else config.window_size)
            for i in range(config.num_hidden_layers))
        self.neck = SamVisionNeck(config)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.patch_embed(pixels)
        hidden = hidden + resize_pos_embed(self.pos_embed, hidden.shape[1], hidden.shape[2])
        for layer in self.layers:
            out = layer(hidden)
            hidden = out[0] if isinstance(out, tuple) else out  # older transformers return tuples
        return self.neck(hidden)
