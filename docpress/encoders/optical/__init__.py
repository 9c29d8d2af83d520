"""Optical lane: DeepSeek-OCR's DeepEncoder (SAM-base -> 16x compressor -> CLIP-L) as a page encoder.

Heavy imports (torch, transformers) happen when the encoder is built, not on import of
`docpress.encoders`; segment-anything, open_clip and torchvision are never needed.
"""

from docpress.encoders.optical.modes import MODES, Mode, get_mode, grid_side, page_tokens

__all__ = ["MODES", "Mode", "get_mode", "grid_side", "page_tokens", "OpticalEncoder",
           "DeepEncoderConfig"]


def __getattr__(name: str):
    if name == "OpticalEncoder":
        from docpress.encoders.optical.encoder import OpticalEncoder

        return OpticalEncoder
    if name == "DeepEncoderConfig":
        from docpress.encoders.optical.model import DeepEncoderConfig

        return DeepEncoderConfig
    raise AttributeError(name)
