"""ConvCompressor: the 16x token compressor between SAM and CLIP, two 3x3 stride-2 convolutions.

256 -> 512 -> 1024 channels, no bias and no activation between (the reference's `net_2`, `net_3`):
a 64 x 64 SAM grid (1024 px) becomes 16 x 16 = 256 tokens, 16x fewer.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvCompressor(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, ceil(H/4), ceil(W/4)).

    DeepSeek-OCR's convolutional token compressor, not docpress.compress's vector codec.
    """

    def __init__(self, in_channels: int = 256, mid_channels: int = 512, out_channels: int = 1024):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, mid_channels, kernel_size=3, stride=2, padding=1, bias=False)
        self.conv2 = nn.Conv2d(mid_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(features))
