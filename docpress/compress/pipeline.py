"""The compression pipeline: prune -> merge -> reduce -> quantize, as one fitted, saved codec.

A `Compressor` is built from a JSON-able config (or a preset name), fitted once on a corpus
sample, saved beside the vectors it coded and loaded back to code new pages and queries the
same way. Its config is what an index manifest records; its fitted parameters (IDF counts, PCA
axes, codebooks) live in the codec folder.

>>> Compressor.from_config("compact").config()["quantize"]
{'kind': 'binary', 'asymmetric': True, 'center': True, 'scaled': True}
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from docpress.compress.merge import Merger, merger_from_config
from docpress.compress.prune import LexicalPruner, Pruner, pruner_from_config
from docpress.compress.quantize import Quantizer, quantizer_from_config
from docpress.compress.reduce import Reducer, reducer_from_config
from docpress.errors import DocpressError, IndexMismatchError
from docpress.types import PageVectors

CONFIG_VERSION = 1
CONFIG_FILE = "codec.json"
PARAMS_FILE = "codec.npz"

# Chosen on FinanceBench (benchmarks/compression.py; 8,946 pages of ~680 MiniLM token vectors).
_TEXT_PRUNE = {"method": "lexical"}  # stopwords and punctuation out: helped MaxSim, never hurt
_SMALL_META = {"boxes": "u8", "words": "u16"}
# Window summaries, every window of a page (dense search reads the first and any clearly
# better later one: retriever.signals.page_dense), as 192 PCA axes in int8 (~200 bytes a
# window). Binary codes of the summaries cost dense nDCG@5 3 points within documents
# (measured on the previous presets). Indexes compressed when the presets kept only the first
# window ("windows": "first") keep their codec and are searched on that window.
_POOLED = {"reduce": {"method": "pca", "dims": 192}, "quantize": {"kind": "int8"}}
PRESETS: dict[str, dict] = {
    # As the embedded store keeps vectors today: bf16, nothing dropped (~540 KB a page).
    "none": {"quantize": {"kind": "bf16"}},
    # Quality first (~9 KB a page): a third of the vectors, 1 bit a dimension, no projection.
    "balanced": {
        "prune": _TEXT_PRUNE,
        "merge": {"method": "ward", "pool_factor": 3.0},
        "quantize": {"kind": "binary", "asymmetric": True},
        "pooled": _POOLED,
        "meta": _SMALL_META,
    },
    # Under 4 KB a page: a quarter of the vectors, 192 rotated PCA axes, 1 bit each.
    "compact": {
        "prune": _TEXT_PRUNE,
        "merge": {"method": "ward", "pool_factor": 4.0},
        "reduce": {"method": "pca", "dims": 192, "rotate": True},
        "quantize": {"kind": "binary", "asymmetric": True, "scaled": True},
        "pooled": _POOLED,
        "meta": _SMALL_META,
    },
    # Smallest (~2.5 KB a page): for searches filtered to a document, where it loses nothing.
    "tiny": {
        "prune": _TEXT_PRUNE,
        "merge": {"method": "ward", "pool_factor": 5.0},
        "reduce": {"method": "pca", "dims": 128, "rotate": True},
        "quantize": {"kind": "binary", "asymmetric": True, "scaled": True},
        "pooled": _POOLED,
        "meta": _SMALL_META,
    },
}

_DEFAULTS = {
    "version": CONFIG_VERSION,
    "prune": None,
    "merge": None,
    "reduce": None,
    "quantize": {"kind": "bf16"},
    "pooled": {"reduce": None, "quantize": {"kind": "bf16"}},
    "meta": {"boxes": "f16", "words": "i32"},
    "rerank": 0,
}
_META = {"boxes": ("f16", "u8"), "words": ("i32", "u16")}


@dataclass
class CompressedPage:
    """One page after compression.

    codes:  (n_kept, code_bytes) uint8, the quantized token vectors.
    boxes:  (n_kept, 4) float32, page regions (unions of the merged members' boxes).
    words:  (n_kept,) int32, word index of each kept vector (-1: none).
    pooled: (n_pooled, pooled_bytes) uint8, the quantized window summaries.
    n_in:   vectors the page had before compression.
    """

    codes: np.ndarray
    boxes: np.ndarray
    words: np.ndarray
    pooled: np.ndarray
    n_in: int

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class FitReport:
    """What fitting saw: sample pages, their vectors before and after prune/merge, PCA variance."""

    pages: int
    vectors_in: int
    vectors_kept: int
    vectors_fitted: int
    explained_variance: float | None


def normalize_config(config: dict | str | None) -> dict:
    """A preset name or partial config -> the full config dict (every key, defaults filled).

    {"preset": "compact", "reduce": {...}} starts from the preset and overrides its keys.
    """
    if config is None:
        config = "none"
    if isinstance(config, str):
        config = {"preset": config}
    if not isinstance(config, dict):
        raise DocpressError(f"compression config must be a preset name or a dict, not {type(config).__name__}")
    config = copy.deepcopy(config)
    out = copy.deepcopy(_DEFAULTS)
    preset = config.pop("preset", None)
    if preset is not None:
        if preset not in PRESETS:
            raise DocpressError(f"unknown compression preset {preset!r}; choose one of "
                                f"{', '.join(PRESETS)} or give explicit stages")
        out.update(copy.deepcopy(PRESETS[preset]))
    unknown = set(config) - set(_DEFAULTS)
    if unknown:
        raise DocpressError(f"unknown compression settings {sorted(unknown)}; known: "
                            f"{', '.join(sorted(_DEFAULTS))}")
    out.update(config)
    if isinstance(out["quantize"], str):  # {"quantize": "bf16"}: today's manifests
        out["quantize"] = {"kind": out["quantize"]}
    if out["version"] != CONFIG_VERSION:
        raise IndexMismatchError(f"compression config version {out['version']} is not "
                                 f"{CONFIG_VERSION}; re-compress the index")
    pooled = {**_DEFAULTS["pooled"], **(out["pooled"] or {})}
    if isinstance(pooled.get("quantize"), str):  # the short form, as for the token codes
        pooled["quantize"] = {"kind": pooled["quantize"]}
    if not set(pooled) <= {"reduce", "quantize", "windows"}:
        raise DocpressError(f"compression pooled takes reduce, quantize and windows, not {sorted(pooled)}")
    if pooled.get("windows", "all") not in ("all", "first"):
        raise DocpressError(f"compression pooled windows must be 'all' or 'first', not {pooled['windows']!r}")
    if pooled.get("windows") == "all":
        del pooled["windows"]  # the default, left out so older codecs keep their fingerprints
    meta = {**_DEFAULTS["meta"], **(out["meta"] or {})}
    for key, allowed in _META.items():
        if meta[key] not in allowed:
            raise DocpressError(f"compression meta {key} must be one of {allowed}, not {meta[key]!r}")
    out["pooled"], out["meta"] = pooled, meta
    out["rerank"] = int(out["rerank"] or 0)
    # Round-trip through the stage classes so defaults appear and bad options fail now.
    out["prune"] = pruner_from_config(out["prune"]).config() if out["prune"] else None
    out["merge"] = merger_from_config(out["merge"]).config() if out["merge"] else None
    out["reduce"] = reducer_from_config(out["reduce"]).config() if out["reduce"] else None
    if not out["quantize"]:
        raise DocpressError("compression needs a quantize stage (bf16 keeps vectors as they are)")
    out["quantize"] = quantizer_from_config(out["quantize"]).config()
    out["pooled"]["quantize"] = quantizer_from_config(out["pooled"]["quantize"]).config()
    if out["pooled"]["reduce"]:
        out["pooled"]["reduce"] = reducer_from_config(out["pooled"]["reduce"]).config()
    return out


def preset_of(config: dict) -> str:
    """The name of the preset that normalizes to `config`, else "custom". A preset as it was
    when it kept only each page's first window summary still goes by its name."""
    candidates = [config]
    if config["pooled"].get("windows") == "first" and config["pooled"].get("reduce"):
        legacy = copy.deepcopy(config)
        del legacy["pooled"]["windows"]
        candidates.append(legacy)
    return next((name for name in PRESETS if normalize_config(name) in candidates), "custom")


class Compressor:
    """prune -> merge -> reduce -> quantize for page vectors; reduce for queries; one config.

    Token vectors and pooled window vectors are coded separately: tokens go through every
    stage, pooled vectors only through their own (optional) PCA and quantizer.
    """

    def __init__(self, config: dict | str | None = None):
        self._config = normalize_config(config)
        c = self._config
        self.pruner: Pruner | None = pruner_from_config(c["prune"]) if c["prune"] else None
        self.merger: Merger | None = merger_from_config(c["merge"]) if c["merge"] else None
        self.reducer: Reducer | None = reducer_from_config(c["reduce"]) if c["reduce"] else None
        self.quantizer: Quantizer = quantizer_from_config(c["quantize"])
        pooled_reduce = c["pooled"]["reduce"]
        self.pooled_reducer: Reducer | None = reducer_from_config(pooled_reduce) if pooled_reduce else None
        self.pooled_quantizer: Quantizer = quantizer_from_config(c["pooled"]["quantize"])
        # "first": keep only a page's first window summary (the presets before every window was kept)
        self.first_window_only: bool = c["pooled"].get("windows") == "first"
        self.boxes_format: str = c["meta"]["boxes"]
        self.words_format: str = c["meta"]["words"]
        self.rerank: int = c["rerank"]
        self.dim: int | None = None  # the encoder's dimension, known once fitted
        self._fingerprint: str | None = None  # kept: searches ask for it (1 ms a hash)

    # -- config -------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict | str | None) -> "Compressor":
        """From a preset name ("none", "balanced", "compact", "tiny") or a config dict."""
        return cls(config)

    def config(self) -> dict:
        """The full JSON-able config (what the manifest records); from_config(it) is equal."""
        return copy.deepcopy(self._config)

    def check_config(self, expected: dict | str, where: str = "the index") -> None:
        """Raise IndexMismatchError unless `expected` normalizes to this compressor's config."""
        if normalize_config(expected) != self._config:
            raise IndexMismatchError(
                f"{where} was compressed with {json.dumps(normalize_config(expected), sort_keys=True)}, "
                f"not {json.dumps(self._config, sort_keys=True)}; open it with its own codec or "
                "re-compress it")

    @property
    def fitted(self) -> bool:
        return self.dim is not None

    @property
    def reduced_dim(self) -> int:
        self._need_fit()
        return self.reducer.dims if self.reducer else self.dim

    @property
    def code_bytes(self) -> int:
        return self.quantizer.code_bytes

    @property
    def pooled_bytes(self) -> int:
        return self.pooled_quantizer.code_bytes

    def _need_fit(self) -> None:
        if not self.fitted:
            raise DocpressError("the compressor is not fitted: fit it on a sample of pages, or "
                                "load a saved codec")

    # -- fitting ------------------------------------------------------------------------
    def fit(self, pages: list[PageVectors], words: list[list[str] | None] | None = None,
            vocabulary: Iterable[list[str]] | None = None, max_vectors: int = 200_000,
            seed: int = 0, pooled_sample: np.ndarray | None = None) -> FitReport:
        """Fit every stage on sample pages.

        pages: sample PageVectors; words: each page's text split on " " (None: no text);
        vocabulary: word lists of more pages for the IDF counts (default: the sample's words);
        max_vectors: at most this many (pruned, merged) vectors train PCA and codebooks;
        pooled_sample: (n, dim) pooled vectors of more pages (pages have only a few each, and
        the pooled codec fitted on a few thousand moved dense nDCG@5 by points).
        """
        if not pages:
            raise DocpressError("fit needs at least one sample page")
        words = list(words) if words is not None else [None] * len(pages)
        if len(words) != len(pages):
            raise DocpressError("fit: give one word list (or None) per sample page")
        dims = {p.vectors.shape[1] for p in pages if p.vectors.ndim == 2 and len(p.vectors)}
        if len(dims) != 1:
            raise DocpressError(f"fit: sample pages must share one vector dimension, got {sorted(dims)}")
        dim = dims.pop()
        if isinstance(self.pruner, LexicalPruner):
            self.pruner.fit(vocabulary if vocabulary is not None else [w for w in words if w])
        shrunk = [self.shrink(p, w) for p, w in zip(pages, words)]
        kept = [s.vectors for s in shrunk if len(s)]
        if not kept:
            raise DocpressError("fit: the sample pages hold no vectors")
        x = np.concatenate(kept).astype(np.float32)
        rng = np.random.default_rng(seed)
        if len(x) > max_vectors:
            x = x[np.sort(rng.choice(len(x), max_vectors, replace=False))]
        explained = None
        if self.reducer:
            self.reducer.fit(x)
            x = self.reducer.transform(x)
            explained = getattr(self.reducer, "explained", None)
        self.quantizer.fit(x)
        pooled = [p.pooled for p in pages if len(p.pooled)]
        if pooled_sample is not None and len(pooled_sample):
            pooled.append(np.asarray(pooled_sample, np.float32).reshape(-1, dim))
        px = np.concatenate(pooled).astype(np.float32) if pooled else np.zeros((1, dim), np.float32)
        if len(px) > max_vectors:
            px = px[np.sort(rng.choice(len(px), max_vectors, replace=False))]
        if self.pooled_reducer:
            if len(px) < 2:
                raise DocpressError("fit: pooled PCA needs at least 2 pooled vectors in the sample")
            self.pooled_reducer.fit(px)
            px = self.pooled_reducer.transform(px)
        self.pooled_quantizer.fit(px)
        self.dim, self._fingerprint = dim, None
        return FitReport(len(pages), sum(len(p) for p in pages), sum(len(s) for s in shrunk),
                         len(x), explained)

    # -- pages --------------------------------------------------------------------------
    def shrink(self, page: PageVectors, words: list[str] | None = None) -> PageVectors:
        """Prune then merge: fewer float vectors (n_kept, dim), their boxes, words and weights."""
        if self.pruner and len(page):
            page = self.pruner.prune(page, words).apply(page)
        if self.merger and len(page) > 1:
            page = self.merger.merge(page).page
        return page

    def compress_page(self, page: PageVectors, words: list[str] | None = None) -> CompressedPage:
        """Every stage on one page. words: the page text split on " " (text lane) or None."""
        self._need_fit()
        if page.vectors.ndim != 2 or (len(page) and page.vectors.shape[1] != self.dim):
            raise DocpressError(f"compress: expected (n, {self.dim}) page vectors, got {page.vectors.shape}")
        n_in = len(page)
        page = self.shrink(page, words)
        codes = self.quantizer.encode(self.reduce_vectors(page.vectors))
        return CompressedPage(codes, np.asarray(page.boxes, np.float32).reshape(-1, 4),
                              np.asarray(page.words, np.int32).reshape(-1),
                              self.encode_pooled(page.pooled[:1] if self.first_window_only
                                                 else page.pooled), n_in)

    def reduce_vectors(self, vectors: np.ndarray) -> np.ndarray:
        """(n, dim) -> (n, reduced_dim) float32, norms kept (identity without a reduce stage)."""
        self._need_fit()
        vectors = np.asarray(vectors, np.float32).reshape(-1, self.dim)
        return self.reducer.transform(vectors) if self.reducer else vectors

    def transform_query(self, query: np.ndarray) -> np.ndarray:
        """(n_query_tokens, dim) weighted query rows -> (n_query_tokens, reduced_dim), weights kept."""
        self._need_fit()
        query = np.asarray(query, np.float32)
        if query.ndim != 2 or query.shape[1] != self.dim:
            raise DocpressError(f"query vectors must be (n, {self.dim}), got {query.shape}")
        return self.reduce_vectors(query)

    def transform_pooled(self, pooled: np.ndarray) -> np.ndarray:
        """(n, dim) pooled vectors (a page's or a query's) -> the pooled codes' space."""
        self._need_fit()
        pooled = np.asarray(pooled, np.float32).reshape(-1, self.dim)
        return self.pooled_reducer.transform(pooled) if self.pooled_reducer else pooled

    def encode_pooled(self, pooled: np.ndarray) -> np.ndarray:
        """(n, dim) pooled vectors -> (n, pooled_bytes) uint8."""
        return self.pooled_quantizer.encode(self.transform_pooled(pooled))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_bytes) uint8 -> (n, reduced_dim) float32 (the space queries are scored in)."""
        self._need_fit()
        return self.quantizer.decode(codes)

    def restore(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_bytes) -> (n, dim) float32, unit rows, back in the encoder's space."""
        x = self.decode(codes)
        if self.reducer:
            return self.reducer.inverse(x)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(n > 0, n, 1.0)

    def restore_pooled(self, codes: np.ndarray) -> np.ndarray:
        """(n, pooled_bytes) -> (n, dim) float32 pooled vectors in the encoder's space."""
        x = self.pooled_quantizer.decode(codes)
        if self.pooled_reducer:
            return self.pooled_reducer.inverse(x)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(n > 0, n, 1.0)

    def decode_page(self, page: CompressedPage) -> PageVectors:
        """A CompressedPage back as PageVectors in the encoder's space (for snippets and boxes)."""
        return self.decode_pages([page])[0]

    def decode_pages(self, pages: list[CompressedPage]) -> list[PageVectors]:
        """decode_page of each page, their codes decoded in one call (a search's 10 hits)."""
        if not pages:
            return []
        vectors = np.split(self.restore(np.concatenate([p.codes for p in pages])),
                           np.cumsum([len(p.codes) for p in pages])[:-1])
        pooled = np.split(self.restore_pooled(np.concatenate([p.pooled for p in pages])),
                          np.cumsum([len(p.pooled) for p in pages])[:-1])
        return [PageVectors(v, p.boxes, p.words, np.ones(len(p), np.float32), w)
                for v, w, p in zip(vectors, pooled, pages)]

    # -- persistence --------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"dim": np.asarray(self.dim)}
        for name, stage in (("reduce", self.reducer), ("quantize", self.quantizer),
                            ("pooled_reduce", self.pooled_reducer),
                            ("pooled_quantize", self.pooled_quantizer)):
            if stage is not None:
                arrays.update({f"{name}.{k}": np.asarray(v) for k, v in stage.state().items()})
        return arrays

    def fingerprint(self) -> str:
        """A short hash of the config and every fitted parameter (two codecs that code alike
        share it). Fitting and loading are what set the parameters, so it is computed once."""
        self._need_fit()
        if self._fingerprint is None:
            self._fingerprint = self._digest()
        return self._fingerprint

    def _digest(self) -> str:
        h = hashlib.sha256(json.dumps(self._config, sort_keys=True).encode())
        for key, value in sorted(self._arrays().items()):
            h.update(key.encode())
            h.update(np.ascontiguousarray(value).tobytes())
        if self.pruner:
            h.update(json.dumps(self.pruner.state(), sort_keys=True).encode())
        return h.hexdigest()[:16]

    def save(self, directory: str | Path) -> None:
        """Write codec.json (config, IDF counts, fingerprint) and codec.npz (arrays) to a folder."""
        self._need_fit()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / (PARAMS_FILE + ".tmp.npz")
        np.savez(tmp, **self._arrays())
        os.replace(tmp, directory / PARAMS_FILE)
        meta = {"config": self._config, "fingerprint": self.fingerprint(),
                "prune_state": self.pruner.state() if self.pruner else {}}
        tmp = directory / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(meta, sort_keys=True))
        os.replace(tmp, directory / CONFIG_FILE)  # last: a folder without it holds no codec

    @classmethod
    def load(cls, directory: str | Path, expected: dict | str | None = None) -> "Compressor":
        """Load a saved codec; with `expected` (a manifest's config), refuse a different one."""
        directory = Path(directory)
        if not (directory / CONFIG_FILE).exists():
            raise DocpressError(f"no compression codec in {directory}; compress the index first")
        meta = json.loads((directory / CONFIG_FILE).read_text())
        comp = cls(meta["config"])
        if expected is not None:
            comp.check_config(expected, str(directory))
        with np.load(directory / PARAMS_FILE) as data:
            arrays = {k: data[k] for k in data.files}
        for name, stage in (("reduce", comp.reducer), ("quantize", comp.quantizer),
                            ("pooled_reduce", comp.pooled_reducer),
                            ("pooled_quantize", comp.pooled_quantizer)):
            if stage is not None:
                prefix = name + "."
                stage.load_state({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
        if comp.pruner:
            comp.pruner.load_state(meta.get("prune_state", {}))
        comp.dim = int(arrays["dim"])
        if comp.fingerprint() != meta.get("fingerprint"):
            raise IndexMismatchError(f"the codec in {directory} is damaged (its fingerprint does "
                                     "not match); re-compress the index")
        return comp
