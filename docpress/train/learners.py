"""Learners: encoders as the trainer sees them, frozen work done once per page and query, trainable rest.

A learner splits an encoder into a frozen prefix, run once and cached (for the optical encoder:
rendering, SAM, the compressor and the first CLIP layers), and the trainable parts run at
every step (the retrieval head, the query projection, optionally the last CLIP layers). The
trainer only talks to the Learner protocol, so another encoder plugs into the same loop by
implementing it (docpress.tune.TextHeadLearner: a head over the text encoder's vectors).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from docpress.errors import DocpressError
from docpress.pdf.reader import render_pages
from docpress.train.loss import pad
from docpress.types import Page

# Pages rendered and pushed through the frozen prefix at a time: bounds the images in memory.
PAGES_PER_CHUNK = 8


class Learner(Protocol):
    """What the trainer needs from a learner.

    prepare_pages / prepare_queries do the frozen work (once); page_vectors / query_vectors
    run the trainable parts (every step) and return padded (B, n, dim) unit vectors with a
    (B, n) bool mask. A page input has `boxes` ((n, 4) PDF points, one per page vector).
    autocast() is the context steps run in; a learner may add regularizer() -> scalar tensor
    (the loop's reg_weight term).
    """

    dim: int
    device: str

    def autocast(self) -> contextlib.AbstractContextManager: ...

    def prepare_pages(self, path: Path, pages: list[Page]) -> list: ...

    def prepare_queries(self, texts: list[str]) -> list: ...

    def page_vectors(self, items: list) -> tuple[torch.Tensor, torch.Tensor]: ...

    def query_vectors(self, items: list) -> tuple[torch.Tensor, torch.Tensor]: ...

    def target_vectors(self, raw: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> list[nn.Parameter]: ...

    def train(self, mode: bool = True) -> None: ...

    def save(self, directory: str | os.PathLike) -> Path: ...


@dataclass
class OpticalPage:
    """One page through the optical learner's frozen prefix.

    views: per view (CLIP hidden, SAM tokens, keep): with no CLIP layer trained, the kept
           cells' final CLIP tokens (k, C) and SAM tokens (k, Cs) and keep None; else the
           hidden state after the frozen CLIP layers (1 + n, C) with CLS, SAM tokens (n, Cs)
           and the (n,) bool mask of cells that become vectors.
    boxes: (n_vectors, 4) float32 PDF points of the page's vectors, in vector order.
    """

    views: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


class OpticalLearner:
    """An OpticalEncoder prepared for training; its model is trained in place.

    train_clip_layers: how many of CLIP's last layers train with the head and the query
    projection (0: only those two, the default; the DeepEncoder stays as loaded).
    query_tower: an already loaded text encoder to share as the query tower (same model only).
    """

    def __init__(self, encoder, train_clip_layers: int = 0, query_tower=None):
        from docpress.encoders.optical.encoder import OpticalEncoder

        if not isinstance(encoder, OpticalEncoder):
            raise DocpressError("the optical learner trains an OpticalEncoder")
        if encoder.dtype != torch.float32:
            raise DocpressError("train a float32 optical encoder (dtype='float32'); GPUs still "
                                "run it in bf16 under autocast")
        self.encoder = encoder
        self.model = encoder.model
        self.device = encoder.device
        self.dim = encoder.dim
        layers = self.model.encoder.clip.encoder.layers
        if not 0 <= train_clip_layers <= len(layers):
            raise DocpressError(f"--clip-layers must be between 0 and {len(layers)} (the model's "
                                f"CLIP depth), got {train_clip_layers}")
        self.split = len(layers) - train_clip_layers
        if query_tower is not None:
            try:
                encoder.use_query_tower(query_tower)
            except DocpressError:
                pass  # another tower: the encoder loads its own
        head = self.model.head
        self._trainable: list[nn.Module] = [head.proj, self.model.query, *layers[self.split:]]
        if head.use_projector:
            self._trainable.append(head.projector)
        for p in self.model.parameters():
            p.requires_grad_(False)
        for module in self._trainable:
            for p in module.parameters():
                p.requires_grad_(True)
        self.model.eval()
        # frozen features kept on the CPU; bf16 halves them where the GPU computes in bf16
        self._cache_dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32

    # -- frozen work ----------------------------------------------------------------------
    def autocast(self):
        """bf16 autocast on a GPU; plain float32 on a CPU (deterministic)."""
        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _prefix(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) -> CLIP hidden after the frozen layers (B, 1 + n, C), SAM tokens (B, n, Cs)."""
        deep = self.model.encoder
        compressed = deep.compressor(deep.sam(pixels))
        hidden = deep.clip.encoder(deep.clip.embed(compressed), 0, self.split)
        return hidden, compressed.flatten(2).transpose(1, 2)

    def prepare_pages(self, path: Path, pages: list[Page]) -> list[OpticalPage]:
        """Render the pages at the mode's DPI and run the frozen prefix; images are not kept.

        Views are cut and batched as the encoder does (page_views, map_views), so training
        sees the vectors the encoder would make.
        """
        out: list[OpticalPage] = []
        for start in range(0, len(pages), PAGES_PER_CHUNK):
            chunk = pages[start:start + PAGES_PER_CHUNK]
            readable = [p for p in chunk if p.width and p.height]
            rendered = dict(zip((p.number for p in readable), render_pages(
                path, [p.number for p in readable], [self.encoder.render_dpi(p) for p in readable])))
            images = [rendered.get(page.number) for page in chunk]
            views, owners = [], []
            for i, view in self.encoder.page_views(images):
                page = chunk[i]
                boxes, _, keep = self.encoder.view_cells(view, images[i], (page.width, page.height))
                views.append(view)
                owners.append((i, boxes[keep], keep))
            features = self.encoder.map_views(views, self._prefix_features)
            per_page: list[list] = [[] for _ in chunk]
            for (i, boxes, keep), (hidden, sam) in zip(owners, features):
                per_page[i].append((hidden, sam, keep, boxes))
            for parts in per_page:
                out.append(self._page(parts))
        return out

    def _prefix_features(self, pixels: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per view of a batch: (CLIP hidden (1 + n, C), SAM tokens (n, Cs)), cached on the CPU."""
        with torch.no_grad(), self.autocast():
            hidden, sam = self._prefix(pixels.to(self.device))
        return [(h.to("cpu", self._cache_dtype), s.to("cpu", self._cache_dtype)) for h, s in zip(hidden, sam)]

    def _page(self, parts: list) -> OpticalPage:
        views, boxes = [], []
        for hidden, sam, keep, cell_boxes in parts:
            mask = torch.from_numpy(np.asarray(keep, bool))
            if self.split == len(self.model.encoder.clip.encoder.layers):
                views.append((hidden[1:][mask].clone(), sam[mask].clone(), None))  # only what the head reads
            else:
                views.append((hidden, sam, mask))
            boxes.append(cell_boxes)
        stacked = np.concatenate(boxes).astype(np.float32) if boxes else np.zeros((0, 4), np.float32)
        return OpticalPage(views, stacked)

    def prepare_queries(self, texts: list[str]) -> list[torch.Tensor]:
        """The frozen query tower's token vectors, (n_tokens, query_dim) float32 per text."""
        return [torch.from_numpy(np.asarray(v, np.float32).reshape(-1, self.encoder.query_dim))
                for v, _, _ in self.encoder.query_tokens(texts)]

    # -- trainable parts ----------------------------------------------------------------------
    def page_vectors(self, items: list[OpticalPage]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, dim) unit vectors of the pages (padded) and their (B, n) mask."""
        head = self.model.head
        if self.split == len(self.model.encoder.clip.encoder.layers):
            clip = torch.cat([v[0] for page in items for v in page.views]).to(self.device)
            sam = torch.cat([v[1] for page in items for v in page.views]).to(self.device)
            flat = head(clip, sam)
            sizes = [len(page) for page in items]
            return pad(list(torch.split(flat, sizes)))
        # some CLIP layers train: run them per view, views of one size together
        layers = self.model.encoder.clip.encoder
        slots = [(p, j) for p, page in enumerate(items) for j in range(len(page.views))]
        by_len: dict[int, list[tuple[int, int]]] = {}
        for p, j in slots:
            by_len.setdefault(items[p].views[j][0].shape[0], []).append((p, j))
        results: dict[tuple[int, int], torch.Tensor] = {}
        for group in by_len.values():
            hidden = torch.stack([items[p].views[j][0] for p, j in group]).to(self.device)
            sam = torch.stack([items[p].views[j][1] for p, j in group]).to(self.device)
            out = head(layers(hidden, self.split)[:, 1:], sam)
            for row, (p, j) in enumerate(group):
                results[(p, j)] = out[row][items[p].views[j][2].to(self.device)]
        per_page = [torch.cat([results[(p, j)] for j in range(len(page.views))]) if page.views
                    else torch.zeros((0, self.dim), device=self.device) for p, page in enumerate(items)]
        return pad(per_page)

    def query_vectors(self, items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n, dim) unit vectors of the queries' tokens (padded) and their (B, n) mask."""
        tokens, mask = pad([t.to(self.device) for t in items])
        return self.model.query(tokens), mask

    def target_vectors(self, raw: torch.Tensor) -> torch.Tensor:
        """Teacher token vectors (..., query_dim) mapped by the query projection, without gradient."""
        if raw.shape[-1] != self.encoder.query_dim:
            raise DocpressError(f"teacher vectors are {raw.shape[-1]}-d, the query tower's "
                                f"{self.encoder.query_dim}-d; cell targets need the same text model")
        with torch.no_grad():
            return self.model.query(raw.to(self.device))

    def parameters(self) -> list[nn.Parameter]:
        return [p for module in self._trainable for p in module.parameters()]

    def train(self, mode: bool = True) -> None:
        for module in self._trainable:
            module.train(mode)

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the trained model directory (loadable with --encoder optical --weights DIR)."""
        self.model.eval()
        self.encoder.rehash()
        return self.encoder.save(directory, adopt=True)
