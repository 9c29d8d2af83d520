"""Optical lane: page images -> DeepSeek-OCR's DeepEncoder -> retrieval vectors with page boxes.

DeepEncoder = SAM-base -> 16x compressor -> CLIP-L over the compressed tokens; its per-cell
features go through a linear retrieval head. Queries go through a text tower (MiniLM token
vectors by default) and their own linear map into the same space.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np
import torch
from torch import nn

from docpress.encoders.base import Encoder
from docpress.encoders.optical import weights as W
from docpress.encoders.optical.clip import ClipStage, clip_vision_config
from docpress.encoders.optical.compressor import Compressor
from docpress.encoders.optical.head import ClipTextTower, QueryProjection, RetrievalHead
from docpress.encoders.optical.modes import Mode, View, get_mode, grid_side, make_views, render_dpi
from docpress.encoders.optical.sam import SamEncoder, sam_vision_config
from docpress.encoders.text import DEFAULT_MODEL as DEFAULT_TEXT_MODEL
from docpress.errors import BackendUnavailableError, DocpressError
from docpress.types import Page, PageVectors, QueryVectors

DEFAULT_DIM = 128
TEXT_QUERY_DIM = 384  # all-MiniLM-L6-v2


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
        self.compressor = Compressor(cfg.sam_out, *cfg.compress_channels)
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


def _pick_dtype(dtype: str | torch.dtype, device: str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        from docpress.encoders.text import _pick_dtype as pick

        return pick("auto", device)
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class OpticalEncoder(Encoder):
    """The optical lane behind the Encoder protocol.

    weights: a docpress optical directory (see `save`), a DeepSeek-OCR checkpoint (directory,
      file or hub id), or None with random_init=True (tests, benchmarks).
    sam_weights / clip_weights: SAM ViT-B (transformers or segment-anything) and CLIP ViT-L/14
      (transformers) checkpoints loaded over the parts they cover.
    mode: tiny, small, base, large or gundam (see modes.MODES).
    dtype: "auto" runs bf16 on GPUs and on CPUs with AVX512-BF16/AMX (1.7-2x faster here, and
      the reference's own inference dtype), else float32; the config hash does not depend on it.
    batch_size: views per forward pass (default 16 on a GPU, 4 on a CPU).
    Pages reach the encoder as images: `page.image` (a PIL image) if the caller set one, else
    `renderer(page)`; `render_dpi(page)` says how finely to render for the mode. A page whose
    render failed (`page.render_failed`) gets no vectors.
    """

    id = "optical"
    needs_images = True

    def __init__(self, weights: str | os.PathLike | None = None, *, mode: str | Mode | None = None,
                 dim: int | None = None, features: str | None = None, use_projector: bool | None = None,
                 sam_weights: str | None = None, clip_weights: str | None = None,
                 model_config: DeepEncoderConfig | dict | None = None, query_encoder: Encoder | None = None,
                 text_model: str | None = None, clip_text: str | None = None, query_dim: int | None = None,
                 drop_padding: bool | None = None, device: str | None = None,
                 dtype: str | torch.dtype = "auto", batch_size: int | None = None, random_init: bool = False,
                 seed: int = 0, local_files_only: bool | None = None,
                 renderer: Callable[[Page], object] | None = None):
        saved, mapped, source = None, [], None
        if weights is not None:
            path = W.resolve(weights, "optical", local_files_only)
            saved = W.read_model_config(path)
            if saved is None:
                path, checkpoint = W.load_checkpoint(path, "DeepSeek-OCR", local_files_only)
                mapped.append(checkpoint)
            source = str(weights)
        for extra, what in ((sam_weights, "SAM"), (clip_weights, "CLIP")):
            if extra is not None:
                mapped.append(W.load_checkpoint(extra, what, local_files_only)[1])
        if saved is None and not mapped and not random_init:
            raise BackendUnavailableError(
                "the optical encoder needs weights: pass weights=DIR (a DeepSeek-OCR checkpoint or a "
                "docpress optical directory; CLI: --weights DIR), or random_init=True for tests")

        stored = saved or {}
        self.mode = get_mode(mode or stored.get("mode", "base"))
        self.drop_padding = bool(stored.get("drop_padding", True) if drop_padding is None else drop_padding)
        structural = {"dim": (dim, DEFAULT_DIM), "features": (features, "concat"),
                      "use_projector": (use_projector, False)}
        for name, (given, default) in structural.items():
            if saved is not None and given is not None and given != saved.get(name):
                raise DocpressError(f"{source} was saved with {name}={saved.get(name)!r}; "
                                    f"it cannot be loaded with {name}={given!r}")
            setattr(self, name, stored.get(name, default) if given is None else given)
        self.dim = int(self.dim)
        query = stored.get("query", {})
        self.clip_text = clip_text or (query.get("model") if query.get("tower") == "clip" else None)
        self._clip_text_path = (str(W.resolve(self.clip_text, "CLIP text tower", local_files_only))
                                if self.clip_text else None)
        saved_text = query.get("model") if query.get("tower") == "text" else None
        self.text_model = text_model or (saved_text if saved_text != DEFAULT_TEXT_MODEL else None)
        self._query_encoder = query_encoder
        self._external_query = query_encoder is not None
        self._saved = saved is not None
        self.query_dim = int(query_dim or query.get("dim") or self._guess_query_dim())

        if isinstance(model_config, dict):
            model_config = DeepEncoderConfig.from_dict(model_config)
        if model_config is None:
            inferred = {}
            for checkpoint in mapped:
                inferred.update(W.infer_dims(checkpoint.tensors))
            model_config = DeepEncoderConfig.from_dict({**stored.get("model", {}), **inferred})
        self.model_config = model_config

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = OpticalModel(model_config, self.dim, self.features, self.use_projector,
                                      self.query_dim)
        if saved is not None:
            self._load_saved(path)
        self.loaded: dict[str, str] = {}
        for checkpoint in mapped:
            self._load_mapped(checkpoint)
        self.seed = seed
        self._component_sources = {"sam_weights": sam_weights and str(sam_weights),
                                   "clip_weights": clip_weights and str(clip_weights)}
        self.weights_source = source or ("random(seed=%d)" % seed if not mapped else "components")
        self.weights_hash = stored.get("weights_sha256") or W.state_hash(self.model.state_dict())

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = _pick_dtype(dtype, self.device)
        self.model.eval().to(self.device, dtype=self.dtype)
        # a GPU takes many views per call; on a CPU bigger batches only cost memory
        self.batch_size = batch_size or (16 if self.device.startswith("cuda") else 4)
        self.renderer = renderer

    # -- weights ----------------------------------------------------------------------------
    def _guess_query_dim(self) -> int:
        if self._external_query:
            return int(self._query_encoder.dim)
        if self.clip_text:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(self._clip_text_path, local_files_only=True)
            return int(getattr(cfg, "text_config", cfg).hidden_size)
        return TEXT_QUERY_DIM

    def _load_saved(self, path) -> None:
        from safetensors.torch import load_file

        state = load_file(str(path / W.WEIGHTS_NAME))
        self._check_shapes(state, str(path))
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise DocpressError(f"{path}: weights do not match the saved config "
                                f"(missing {missing[:3]}, unexpected {unexpected[:3]})")

    def rehash(self) -> str:
        """Recompute the weights hash after changing the weights in place (e.g. training)."""
        self.weights_hash = W.state_hash({k: v.float() for k, v in self.model.state_dict().items()})
        return self.weights_hash

    def _check_shapes(self, tensors: dict, where: str) -> None:
        own = self.model.state_dict()
        for key, tensor in tensors.items():
            if key in own and tuple(own[key].shape) != tuple(tensor.shape):
                raise DocpressError(f"{where}: {key} has shape {tuple(tensor.shape)}, the model expects "
                                    f"{tuple(own[key].shape)}; pass a model_config that fits these weights")

    def _load_mapped(self, checkpoint: W.Mapped) -> None:
        self._check_shapes(checkpoint.tensors, checkpoint.layout)
        own = self.model.state_dict()
        unknown = [k for k in checkpoint.tensors if k not in own]
        if unknown:
            raise DocpressError(f"{checkpoint.layout} weights: no place for {unknown[:3]}")
        self.model.load_state_dict(checkpoint.tensors, strict=False)
        for key in checkpoint.tensors:
            self.loaded[key] = checkpoint.layout

    def coverage(self) -> dict[str, str]:
        """Where each part's weights came from: {part: 'saved' | layout names | 'random'}."""
        parts = {"sam": W.SAM, "compressor": W.COMPRESSOR, "clip": W.CLIP, "head": "head.proj.",
                 "projector": "head.projector.", "query": "query."}
        out = {}
        for name, prefix in parts.items():
            keys = [k for k in self.model.state_dict() if k.startswith(prefix)]
            if keys:
                sources = {self.loaded.get(k, "saved" if self._saved else "random") for k in keys}
                out[name] = "/".join(sorted(sources))
        return out

    # -- protocol ---------------------------------------------------------------------------
    def config(self) -> dict:
        return {"mode": self.mode.name, "dim": self.dim, "features": self.features,
                "use_projector": self.use_projector, "drop_padding": self.drop_padding,
                "model": asdict(self.model_config), "weights": self.weights_hash,
                "query": self._query_config()}

    def _query_config(self) -> dict:
        if self._external_query:
            return {"tower": self._query_encoder.id, "model": self._query_encoder.config_hash(),
                    "dim": self.query_dim}
        if self.clip_text:
            return {"tower": "clip", "model": str(self.clip_text), "dim": self.query_dim}
        return {"tower": "text", "model": self.text_model or DEFAULT_TEXT_MODEL, "dim": self.query_dim}

    def options(self) -> dict:
        """Constructor options that rebuild this encoder (JSON-able; for an index manifest).

        Unlike config(), they may name a path: a moved weights directory changes the options
        but not the config hash, so an index can be reopened with new options.
        """
        if self._saved or self.loaded:
            opts: dict = ({"weights": _absolute(self.weights_source)}
                          if self.weights_source != "components" else {})
            opts.update({k: _absolute(v) for k, v in self._component_sources.items() if v})
        else:
            opts = {"random_init": True, "seed": self.seed, "model_config": asdict(self.model_config),
                    "dim": self.dim, "query_dim": self.query_dim}
        opts.update(mode=self.mode.name, drop_padding=self.drop_padding)
        if self.clip_text:
            opts["clip_text"] = str(self.clip_text)
        elif self.text_model:
            opts["text_model"] = str(self.text_model)
        return opts

    def render_dpi(self, page: Page) -> int:
        """The DPI to render `page` at so the mode's views get full resolution."""
        return render_dpi(page.width, page.height, self.mode)

    def encode_pages(self, pages: list[Page]) -> list[PageVectors]:
        images = [self._page_image(page) for page in pages]
        return self.encode_images(images, [(p.width, p.height) for p in pages])

    def _page_image(self, page: Page):
        image = page.image
        if image is None and self.renderer is not None:
            image = self.renderer(page)
        if image is None and (not (page.width and page.height) or page.render_failed):
            return None  # an unreadable page, or one the caller could not render: no vectors
        if image is None:
            raise DocpressError("the optical encoder needs page images: set page.image or build it "
                                "with renderer=callable(page) -> PIL image")
        return image

    def encode_images(self, images: list, sizes: list[tuple[float, float]] | None = None) -> list[PageVectors]:
        """PageVectors for page images; sizes are the pages' (width, height) in PDF points
        (default: the image's pixel size). Views of equal size from all pages share batches."""
        views: list[tuple[int, View]] = []
        for p, image in enumerate(images):
            if image is not None:
                views.extend((p, v) for v in make_views(image, self.mode)[0])
        vectors = self._run([v for _, v in views])
        per_page: list[list] = [[] for _ in images]
        for (p, view), vecs in zip(views, vectors):
            per_page[p].append((view, vecs))
        out = []
        for p, image in enumerate(images):
            size = sizes[p] if sizes else (image.size if image is not None else (0, 0))
            out.append(self._assemble(per_page[p], image, size))
        return out

    def _run(self, views: list[View]) -> list[np.ndarray]:
        """(n, dim) float32 vectors per view, views of one size batched together."""
        out: list = [None] * len(views)
        by_size: dict[int, list[int]] = {}
        for i, view in enumerate(views):
            by_size.setdefault(view.size, []).append(i)
        for indices in by_size.values():
            for b in range(0, len(indices), self.batch_size):
                chunk = indices[b:b + self.batch_size]
                pixels = torch.from_numpy(np.stack([views[i].pixels for i in chunk]))
                with torch.inference_mode():
                    vecs, _ = self.model(pixels.to(self.device, self.dtype))
                vecs = vecs.float().cpu().numpy()
                for row, i in enumerate(chunk):
                    out[i] = vecs[row]
        return out

    def _assemble(self, parts: list, image, size: tuple[float, float]) -> PageVectors:
        dim = self.dim
        if not parts:
            empty = np.zeros((0, dim), np.float32)
            return PageVectors(empty, np.zeros((0, 4), np.float32), np.zeros(0, np.int32),
                               np.zeros(0, np.float32), empty)
        vecs, boxes, weights, pooled = [], [], [], []
        for view, vectors in parts:
            cell_boxes, cover, keep = self.view_cells(view, image, size)
            vecs.append(vectors[keep])
            boxes.append(cell_boxes[keep])
            weights.append(cover[keep])
            mean = vectors[keep].mean(0) if keep.any() else vectors.mean(0)
            pooled.append(mean / max(np.linalg.norm(mean), 1e-12))
        vectors = np.concatenate(vecs).astype(np.float32)
        return PageVectors(vectors, np.concatenate(boxes).astype(np.float32),
                           np.full(len(vectors), -1, np.int32),
                           np.concatenate(weights).astype(np.float32),
                           np.stack(pooled).astype(np.float32))

    def view_cells(self, view: View, image, size: tuple[float, float]):
        """A view's grid cells on the page: boxes (n, 4) in PDF points (page `size` = (width,
        height) in points, `image` the page image the view was cut from), coverage (n,) and the
        (n,) bool mask of cells that become vectors (padding cells dropped when drop_padding)."""
        side = grid_side(view.size, self.model_config.patch_size)
        cell_boxes, cover = view.cell_boxes(side)
        keep = cover > 0 if self.drop_padding else np.ones(len(cover), bool)
        to_pt = np.array([size[0] / image.width, size[1] / image.height] * 2)
        return cell_boxes * to_pt, cover, keep

    def use_query_tower(self, tower: Encoder) -> None:
        """Share an already loaded text lane as this encoder's query tower (saves loading it twice).

        Only the very model the config names is accepted, so the config and vectors do not change.
        """
        wanted = self.text_model or DEFAULT_TEXT_MODEL
        if self.clip_text or self._external_query or tower.id != "text" or \
                tower.config().get("model") != wanted or int(tower.dim) != self.query_dim:
            raise DocpressError(f"this optical encoder's query tower is {self._query_config()}; "
                                f"{tower.id!r} cannot stand in for it")
        self._query_encoder = tower

    def share_query_tower(self, main: Encoder) -> bool:
        try:
            self.use_query_tower(main)
        except DocpressError:
            return False  # another query model: keep its own
        return True

    @classmethod
    def from_record(cls, config: dict, options: dict) -> "OpticalEncoder":
        # the weights path and mode live in the options; the config records only their hash
        if not options:
            raise DocpressError("this optical index records no encoder options (weights path); open "
                                "it with Index.open(DIR, encoder=load_encoder('optical', weights=...))")
        return cls(**options)

    def encode_queries(self, texts: list[str]) -> list[QueryVectors]:
        encoded = self._encode_query_tokens(texts)
        out = []
        for vectors, tokens, pooled in encoded:
            both = torch.from_numpy(np.vstack([vectors.reshape(-1, self.query_dim), pooled[None]]))
            with torch.inference_mode():
                projected = self.model.query(both.to(self.device)).cpu().numpy().astype(np.float32)
            out.append(QueryVectors(projected[:-1], list(tokens), projected[-1]))
        return out

    def query_tokens(self, texts: list[str]) -> list[tuple[np.ndarray, list[str], np.ndarray]]:
        """The query tower's output before this model's projection, per text: token vectors
        (n, query_dim) float32, token strings, pooled (query_dim,). Training feeds these to
        the projection it trains."""
        return self._encode_query_tokens(texts)

    def _encode_query_tokens(self, texts: list[str]):
        if self.clip_text:
            if not isinstance(self._query_encoder, ClipTextTower):
                self._query_encoder = ClipTextTower(self._clip_text_path, self.device)
            return self._query_encoder.encode(texts)
        if self._query_encoder is None:
            from docpress.encoders.text import TextTokenEncoder

            self._query_encoder = TextTokenEncoder(model=self.text_model)
        if int(self._query_encoder.dim) != self.query_dim:
            raise DocpressError(f"the query tower gives {self._query_encoder.dim}-d vectors, the optical "
                                f"model's query projection expects {self.query_dim}")
        return [(q.vectors, q.tokens, q.pooled) for q in self._query_encoder.encode_queries(texts)]

    # -- persistence ------------------------------------------------------------------------
    def save(self, directory: str | os.PathLike, adopt: bool = False):
        """Write a docpress optical directory, loadable with load_encoder('optical', weights=DIR).

        The encoder must hold float32 weights, so the directory's weights hash is the one this
        encoder reports and an index built with it opens with the saved directory.
        adopt: from now on this encoder stands for the directory (options() name it), as after
        training, when the old weights source no longer describes it.
        """
        if self.dtype != torch.float32:
            raise DocpressError("save the optical model from a float32 encoder (dtype='float32'); "
                                f"this one holds {str(self.dtype).replace('torch.', '')} weights")
        state = dict(self.model.state_dict())
        digest = self.weights_hash
        config = {"mode": self.mode.name, "dim": self.dim, "features": self.features,
                  "use_projector": self.use_projector, "drop_padding": self.drop_padding,
                  "model": asdict(self.model_config), "query": self._query_config(),
                  "weights_sha256": digest, "source": self.weights_source}
        path = W.save_model_dir(directory, config, state)
        if adopt:
            self.weights_source, self._saved, self.loaded = str(path), True, {}
            self._component_sources = {}
        return path


def _absolute(source: str) -> str:
    """A local path made absolute (an index may be opened from another folder); hub ids as given."""
    return os.path.abspath(source) if os.path.exists(source) else source
