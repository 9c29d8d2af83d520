"""Optical-lane resolution modes: sizes, token arithmetic, gundam tiling and pixel preprocessing.

Follows DeepSeek-OCR's `process/image_process.py` and `config.py`:
- tiny/small (<= 640 px, no crop): the page is stretched to a square, no padding;
- base/large: the page keeps its aspect ratio and is padded to a square with grey (127);
- gundam: 640-px tiles of the page stretched to a (cols x rows) grid picked by aspect ratio
  (2 to `max_crops` tiles), plus a padded 1024-px global view; a page no larger than 640 x 640
  pixels gets the global view only.
Pixels are scaled to [0, 1] and normalised with mean = std = 0.5, i.e. to [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PATCH_SIZE = 16  # SAM ViT-B/16
DOWNSAMPLE = 4  # two stride-2 convolutions
MEAN = STD = 0.5
PAD_GREY = int(MEAN * 255)  # 127, the reference's fill colour
MIN_CROPS, MAX_CROPS = 2, 6  # the reference config's defaults (it allows up to 9)


@dataclass(frozen=True)
class Mode:
    """A resolution mode: the global view's side, the tile side, and whether pages are tiled."""

    name: str
    base_size: int  # global view side in pixels
    image_size: int  # tile side in pixels (== base_size when not tiling)
    crop: bool = False
    min_crops: int = MIN_CROPS
    max_crops: int = MAX_CROPS

    @property
    def global_tokens(self) -> int:
        return grid_side(self.base_size) ** 2

    @property
    def tile_tokens(self) -> int:
        return grid_side(self.image_size) ** 2

    def tokens(self, n_tiles: int = 0) -> int:
        """Visual tokens for one page: the global view plus `n_tiles` tiles (gundam)."""
        return self.global_tokens + n_tiles * self.tile_tokens


MODES: dict[str, Mode] = {
    "tiny": Mode("tiny", 512, 512),
    "small": Mode("small", 640, 640),
    "base": Mode("base", 1024, 1024),
    "large": Mode("large", 1280, 1280),
    "gundam": Mode("gundam", 1024, 640, crop=True),
}


def get_mode(name: str | Mode) -> Mode:
    if isinstance(name, Mode):
        return name
    try:
        return MODES[name]
    except KeyError:
        from docpress.errors import DocpressError

        raise DocpressError(f"unknown optical mode {name!r}; choose one of: {', '.join(MODES)}") from None


def sam_side(size: int, patch: int = PATCH_SIZE) -> int:
    """SAM grid side for a `size`-px view: 1024 -> 64."""
    return size // patch


def conv_s2_side(n: int) -> int:
    """Output side of a 3x3, stride-2, padding-1 convolution: floor((n + 2 - 3) / 2) + 1."""
    return (n - 1) // 2 + 1


def grid_side(size: int, patch: int = PATCH_SIZE) -> int:
    """Visual-token grid side after the 16x compressor: 1024 px -> 64 -> 32 -> 16.

    >>> [grid_side(s) for s in (512, 640, 1024, 1280)]
    [8, 10, 16, 20]
    """
    return conv_s2_side(conv_s2_side(sam_side(size, patch)))


# -- gundam tiling --------------------------------------------------------------------------
def candidate_grids(min_num: int = MIN_CROPS, max_num: int = MAX_CROPS) -> list[tuple[int, int]]:
    """(cols, rows) grids with min_num <= cols * rows <= max_num, fewest tiles first.

    Built as a set and stably sorted by tile count, as the reference does, so that equal
    aspect-ratio distances resolve to the same grid.
    """
    grids = {(i, j) for n in range(min_num, max_num + 1)
             for i in range(1, n + 1) for j in range(1, n + 1) if min_num <= i * j <= max_num}
    return sorted(grids, key=lambda g: g[0] * g[1])


def choose_grid(width: int, height: int, image_size: int = 640, min_num: int = MIN_CROPS,
                max_num: int = MAX_CROPS) -> tuple[int, int]:
    """The (cols, rows) tile grid whose aspect ratio is closest to width / height.

    On a tie the later (larger) grid wins when the image has more than half its pixels.

    >>> choose_grid(1275, 1650)   # US letter at 150 dpi
    (2, 3)
    >>> choose_grid(2000, 1000)
    (2, 1)
    """
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(min_num, max_num):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def tile_grid(width: int, height: int, mode: Mode) -> tuple[int, int]:
    """(cols, rows) of tiles the mode cuts a width x height image into; (1, 1) means none."""
    if not mode.crop or (width <= 640 and height <= 640):
        return (1, 1)
    return choose_grid(width, height, mode.image_size, mode.min_crops, mode.max_crops)


def page_tokens(width: int, height: int, mode: Mode) -> int:
    """Visual tokens the encoder produces for a width x height image in this mode."""
    cols, rows = tile_grid(width, height, mode)
    return mode.tokens(0 if cols * rows == 1 else cols * rows)


# -- views ----------------------------------------------------------------------------------
@dataclass
class View:
    """One square model input cut from a page image, and where its pixels come from.

    pixels:  (3, size, size) float32 in [-1, 1].
    content: (x0, y0, x1, y1) the part of the view, in view pixels, that shows the image
             (the rest is padding).
    scale, offset: image_xy = (view_xy - content_xy0) * scale + offset, in image pixels.
    """

    pixels: np.ndarray
    content: tuple[float, float, float, float]
    scale: tuple[float, float]
    offset: tuple[float, float]
    kind: str  # "global" or "tile"

    @property
    def size(self) -> int:
        return self.pixels.shape[-1]

    def cell_boxes(self, side: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes in image pixels of a side x side grid's cells (row-major), and their coverage.

        Returns boxes (side*side, 4) float64 clipped to the content, and coverage
        (side*side,) the fraction of each cell that shows the image (0 for pure padding).
        """
        edges = np.arange(side + 1, dtype=np.float64) * (self.size / side)
        x0, x1 = edges[:-1][None, :], edges[1:][None, :]
        y0, y1 = edges[:-1][:, None], edges[1:][:, None]
        cx0, cy0, cx1, cy1 = self.content
        ix0, ix1 = np.clip(x0, cx0, cx1), np.clip(x1, cx0, cx1)
        iy0, iy1 = np.clip(y0, cy0, cy1), np.clip(y1, cy0, cy1)
        shape = (side, side)
        ix0, ix1 = np.broadcast_to(ix0, shape), np.broadcast_to(ix1, shape)
        iy0, iy1 = np.broadcast_to(iy0, shape), np.broadcast_to(iy1, shape)
        cover = (ix1 - ix0) * (iy1 - iy0) / (self.size / side) ** 2
        sx, sy = self.scale
        ox, oy = self.offset
        boxes = np.stack([(ix0 - cx0) * sx + ox, (iy0 - cy0) * sy + oy,
                          (ix1 - cx0) * sx + ox, (iy1 - cy0) * sy + oy], axis=-1)
        return boxes.reshape(-1, 4), cover.reshape(-1)


def to_pixels(image) -> np.ndarray:
    """PIL RGB image -> (3, H, W) float32 normalised with mean = std = 0.5."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return ((array - MEAN) / STD).transpose(2, 0, 1).copy()


def pad_to_square(image, size: int):
    """Fit `image` in size x size keeping its aspect ratio and centre it on grey.

    The same arithmetic as PIL's ImageOps.pad (contain with rounding, then centring) with the
    reference's fill colour, but returning where the content landed:
    (padded image, (x0, y0, x1, y1) content box in the padded image).
    """
    from PIL import Image, ImageOps

    resized = ImageOps.contain(image, (size, size), method=Image.Resampling.BICUBIC)
    if resized.size == (size, size):
        return resized, (0, 0, size, size)
    out = Image.new(image.mode, (size, size), (PAD_GREY,) * 3 if image.mode == "RGB" else PAD_GREY)
    if resized.width != size:
        x, y = round((size - resized.width) * 0.5), 0
    else:
        x, y = 0, round((size - resized.height) * 0.5)
    out.paste(resized, (x, y))
    return out, (x, y, x + resized.width, y + resized.height)


def make_views(image, mode: Mode) -> tuple[list[View], tuple[int, int]]:
    """The model inputs for one page image: tiles (row-major) then the global view.

    Returns (views, (cols, rows)); (1, 1) when the page is not tiled.
    """
    image = image.convert("RGB")
    width, height = image.size
    views: list[View] = []
    cols, rows = tile_grid(width, height, mode)
    if cols * rows > 1:
        s = mode.image_size
        stretched = image.resize((cols * s, rows * s))  # PIL's default filter (bicubic), as the reference
        sx, sy = width / (cols * s), height / (rows * s)
        for i in range(cols * rows):
            c, r = i % cols, i // cols
            tile = stretched.crop((c * s, r * s, (c + 1) * s, (r + 1) * s))
            views.append(View(to_pixels(tile), (0, 0, s, s), (sx, sy), (c * s * sx, r * s * sy), "tile"))
    if not mode.crop and mode.image_size <= 640:
        s = mode.image_size
        squashed = image.resize((s, s))
        views.append(View(to_pixels(squashed), (0, 0, s, s), (width / s, height / s), (0.0, 0.0), "global"))
    else:
        padded, (x0, y0, x1, y1) = pad_to_square(image, mode.base_size)
        scale = (width / (x1 - x0), height / (y1 - y0))
        views.append(View(to_pixels(padded), (x0, y0, x1, y1), scale, (0.0, 0.0), "global"))
    return views, (cols, rows)


def render_dpi(width_pt: float, height_pt: float, mode: Mode, max_dpi: int = 300) -> int:
    """A DPI at which a page of this size renders with at least the pixels the mode uses."""
    need = mode.base_size / max(width_pt, height_pt)
    if mode.crop:
        cols, rows = choose_grid(max(1, round(width_pt * 10)), max(1, round(height_pt * 10)),
                                 mode.image_size, mode.min_crops, mode.max_crops)
        need = max(need, cols * mode.image_size / width_pt, rows * mode.image_size / height_pt)
    return int(min(max_dpi, math.ceil(need * 72)))
