"""Optical lane: page images -> DeepSeek-OCR's DeepEncoder -> retrieval vectors with page boxes.

OpticalEncoder is the Encoder protocol over the optical model: it finds and loads the weights
(weights.py), builds the model (model.py: DeepEncoder = SAM-base -> 16x compressor -> CLIP-L,
whose per-cell features go through a linear retrieval head), cuts page images into views
(modes.py) and maps each view's grid cells back to page boxes. Queries go through a text tower
(query.py: MiniLM token vectors by default) and the model's own linear map into the same space.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Callable, Sequence

import numpy as np
import torch

from docpress.encoders.base import Encoder
from docpress.encoders.dtypes import pick_dtype
from docpress.encoders.optical import weights as W
from docpress.encoders.optical.model import DeepEncoderConfig, OpticalModel
from docpress.encoders.optical.modes import Mode, View, get_mode, grid_side, make_views, render_dpi
from docpress.encoders.optical.query import QueryTokens, QueryTower
from docpress.errors import BackendUnavailableError, DocpressError
from docpress.types import Page, PageVectors, QueryVectors

DEFAULT_DIM = 128


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
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.query_tower = QueryTower(query_encoder, clip_text, text_model, query_dim, stored.get("query"),
                                      self.device, local_files_only)
        self._saved = saved is not None

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
            W.load_saved(self.model, path)
        self.loaded: dict[str, str] = {}  # parameter -> the checkpoint layout it came from
        for checkpoint in mapped:
            self.loaded.update(dict.fromkeys(W.load_mapped(self.model, checkpoint), checkpoint.layout))
        self.seed = seed
        self._component_sources = {"sam_weights": sam_weights and str(sam_weights),
                                   "clip_weights": clip_weights and str(clip_weights)}
        self.weights_source = source or ("random(seed=%d)" % seed if not mapped else "components")
        self.weights_hash = stored.get("weights_sha256") or W.state_hash(self.model.state_dict())

        self.dtype = pick_dtype(dtype, self.device)
        self.model.eval().to(self.device, dtype=self.dtype)
        # a GPU takes many views per call; on a CPU bigger batches only cost memory
        self.batch_size = batch_size or (16 if self.device.startswith("cuda") else 4)
        self.renderer = renderer

    # -- weights ----------------------------------------------------------------------------
    def rehash(self) -> str:
        """Recompute the weights hash after changing the weights in place (e.g. training)."""
        self.weights_hash = W.state_hash({k: v.float() for k, v in self.model.state_dict().items()})
        return self.weights_hash

    def coverage(self) -> dict[str, str]:
        """Where each part's weights came from: {part: 'saved' | layout names | 'random'}."""
        return W.coverage(self.model, self.loaded, self._saved)

    # -- protocol ---------------------------------------------------------------------------
    def config(self) -> dict:
        return {"mode": self.mode.name, "dim": self.dim, "features": self.features,
                "use_projector": self.use_projector, "drop_padding": self.drop_padding,
                "model": asdict(self.model_config), "weights": self.weights_hash,
                "query": self.query_tower.config()}

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
        opts.update(self.query_tower.options())
        return opts

    @classmethod
    def from_record(cls, config: dict, options: dict) -> "OpticalEncoder":
        # the weights path and mode live in the options; the config records only their hash
        if not options:
            raise DocpressError("this optical index records no encoder options (weights path); open "
                                "it with Index.open(DIR, encoder=load_encoder('optical', weights=...))")
        return cls(**options)

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
        views = self.page_views(images)
        vectors = self.map_views([v for _, v in views], self._view_vectors)
        per_page: list[list] = [[] for _ in images]
        for (p, view), vecs in zip(views, vectors):
            per_page[p].append((view, vecs))
        out = []
        for p, image in enumerate(images):
            size = sizes[p] if sizes else (image.size if image is not None else (0, 0))
            out.append(self._assemble(per_page[p], image, size))
        return out

    def page_views(self, images: list) -> list[tuple[int, View]]:
        """The mode's views of every image, each with its image's index (None images have none)."""
        views: list[tuple[int, View]] = []
        for p, image in enumerate(images):
            if image is not None:
                views.extend((p, v) for v in make_views(image, self.mode)[0])
        return views

    def map_views(self, views: list[View], forward: Callable[[torch.Tensor], Sequence]) -> list:
        """forward's result for each view, in view order: views of one size go through
        `forward` together, at most batch_size at a time, as (b, 3, S, S) float32 CPU pixels,
        and forward returns the batch's b per-view results (training runs its own forward)."""
        out: list = [None] * len(views)
        by_size: dict[int, list[int]] = {}
        for i, view in enumerate(views):
            by_size.setdefault(view.size, []).append(i)
        for indices in by_size.values():
            for b in range(0, len(indices), self.batch_size):
                chunk = indices[b:b + self.batch_size]
                pixels = torch.from_numpy(np.stack([views[i].pixels for i in chunk]))
                for i, result in zip(chunk, forward(pixels)):
                    out[i] = result
        return out

    def _view_vectors(self, pixels: torch.Tensor) -> np.ndarray:
        """(b, n, dim) float32 vectors of a batch of views."""
        with torch.inference_mode():
            vecs, _ = self.model(pixels.to(self.device, self.dtype))
        return vecs.float().cpu().numpy()

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

    # -- queries ------------------------------------------------------------------------------
    @property
    def query_dim(self) -> int:
        """The query tower's width (the query projection's input)."""
        return self.query_tower.dim

    @property
    def clip_text(self) -> str | None:
        return self.query_tower.clip_text

    @property
    def text_model(self) -> str | None:
        return self.query_tower.text_model

    def encode_queries(self, texts: list[str]) -> list[QueryVectors]:
        out = []
        for vectors, tokens, pooled in self.query_tower.tokens(texts):
            both = torch.from_numpy(np.vstack([vectors.reshape(-1, self.query_dim), pooled[None]]))
            with torch.inference_mode():
                projected = self.model.query(both.to(self.device)).cpu().numpy().astype(np.float32)
            out.append(QueryVectors(projected[:-1], list(tokens), projected[-1]))
        return out

    def query_tokens(self, texts: list[str]) -> list[QueryTokens]:
        """The query tower's output before this model's projection, per text: token vectors
        (n, query_dim) float32, token strings, pooled (query_dim,). Training feeds these to
        the projection it trains."""
        return self.query_tower.tokens(texts)

    def use_query_tower(self, tower: Encoder) -> None:
        """Share an already loaded text lane as this encoder's query tower (saves loading it twice).

        Only the very model the config names is accepted, so the config and vectors do not change.
        """
        self.query_tower.share(tower)

    def share_query_tower(self, main: Encoder) -> bool:
        try:
            self.use_query_tower(main)
        except DocpressError:
            return False  # another query model: keep its own
        return True

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
                  "model": asdict(self.model_config), "query": self.query_tower.config(),
                  "weights_sha256": digest, "source": self.weights_source}
        path = W.save_model_dir(directory, config, state)
        if adopt:
            self.weights_source, self._saved, self.loaded = str(path), True, {}
            self._component_sources = {}
        return path


def _absolute(source: str) -> str:
    """A local path made absolute (an index may be opened from another folder); hub ids as given."""
    return os.path.abspath(source) if os.path.exists(source) else source
