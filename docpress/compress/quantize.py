"""Quantization: vectors to compact byte codes, decoded back, and scored on the codes.

Every quantizer turns (n, dim) float32 rows into (n, code_bytes) uint8 codes and scores a
prepared query against codes without decoding them:
- fp16 / bf16: half-precision floats (a matmul on the codes);
- int8: one signed byte per dimension plus an fp16 scale per vector (dim + 2 bytes);
- pq: product quantization, one byte per sub-vector (k-means codebooks of 256 centroids);
  scored from lookup tables: per query token a (m, 256) table of sub-vector dot products;
- binary: sign bits of the centred vector (dim / 8 bytes); scored by Hamming similarity
  (popcount of XOR, through per-byte tables), or, with asymmetric=True, as the float query's dot
  product with the +-1 vector. Hamming scores are not dot products of decoded vectors, so the
  store reranks its best pages on decoded codes (`exact` is False).
"""

from __future__ import annotations

import math
import warnings
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from docpress.errors import DocpressError

# torch is imported inside the functions that use it: opening an index to list or remove
# documents loads no torch.

# Rows handled per block inside encode (bounds temporary (rows, m, 256) distance tensors).
ENCODE_BLOCK = 8192


def as_tensor(x: np.ndarray) -> torch.Tensor:
    """A tensor sharing memory with an array (a read-only memmap is fine: it is only read)."""
    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(x))


def lut_scores(codes: np.ndarray, lut: torch.Tensor) -> np.ndarray:
    """Sum of table lookups: codes (rows, m) uint8, lut (m * 256, n_query) float32 ->
    (rows, n_query) float32 with out[r, j] = sum_i lut[i * 256 + codes[r, i], j]."""
    import torch
    m = codes.shape[1]
    idx = as_tensor(codes).to(torch.int32)
    idx += torch.arange(m, dtype=torch.int32) * 256
    return torch.nn.functional.embedding_bag(idx, lut, mode="sum").numpy()


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distances between bit codes: a (na, nbytes), b (nb, nbytes) uint8 -> (na, nb) int32.

    >>> hamming(np.array([[0b1010]], np.uint8), np.array([[0b0110], [0b1010]], np.uint8)).tolist()
    [[2, 0]]
    """
    x = np.bitwise_xor(np.asarray(a, np.uint8)[:, None, :], np.asarray(b, np.uint8)[None, :, :])
    return np.bitwise_count(x).sum(-1, dtype=np.int32)


class Quantizer(ABC):
    """Base of the quantizers: public methods validate shapes, `_`-hooks do the work."""

    kind: str
    exact = True  # code scores equal the dot products of the query with decoded vectors

    def __init__(self) -> None:
        self.dim: int | None = None

    # -- public -------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.dim is not None

    @property
    def code_bytes(self) -> int:
        self._need_fit("code_bytes")
        return self._code_bytes()

    def fit(self, x: np.ndarray) -> None:
        """Learn codebooks (if any) from a (n_vectors, dim) float32 sample."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or len(x) == 0:
            raise DocpressError("quantize: fit needs a non-empty (n_vectors, dim) sample")
        self._fit(np.ascontiguousarray(x))
        self.dim = x.shape[1]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) float32 -> (n, code_bytes) uint8."""
        x = self._rows(x, "encode")
        if len(x) == 0:
            return np.zeros((0, self.code_bytes), np.uint8)
        return np.ascontiguousarray(self._encode(x), dtype=np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_bytes) uint8 -> (n, dim) float32."""
        codes = self._codes(codes, "decode")
        if len(codes) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self._decode(codes), np.float32)

    def prepare(self, query: np.ndarray) -> Any:
        """Whatever `score` needs from a (n_query_tokens, dim) float32 query (weighted rows)."""
        return self._prepare(self._rows(query, "prepare"))

    def prepare_exact(self, query: np.ndarray) -> Any:
        """Like `prepare`, for scores that equal the query's dot products with decoded vectors
        (the same as `prepare` when `exact`; binary's Hamming codes get the float query)."""
        return self._prepare_exact(self._rows(query, "prepare"))

    def score(self, prepared: Any, codes: np.ndarray) -> np.ndarray:
        """(rows, n_query_tokens) float32 similarity of every query token with every code row."""
        return self._score(prepared, self._codes(codes, "score"))

    def table(self, codes: np.ndarray) -> Any:
        """`codes` in the form `score_table` reads fastest, made once for a file read by every
        query (the pooled windows); by default the codes themselves, in memory."""
        return np.array(self._codes(codes, "table"))

    def score_table(self, prepared: Any, table: Any) -> np.ndarray:
        """`score` on a `table` of codes."""
        return self._score(prepared, table)

    def config(self) -> dict:
        return {"kind": self.kind}

    def state(self) -> dict[str, np.ndarray]:
        """Fitted parameters as arrays (saved in the codec's npz)."""
        return {"dim": np.asarray(self.dim if self.dim is not None else -1)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        dim = int(state["dim"])
        self.dim = dim if dim >= 0 else None

    # -- checks -------------------------------------------------------------------------
    def _need_fit(self, what: str) -> None:
        if not self.fitted:
            raise DocpressError(f"quantize: {what} before fit; fit the compressor on a sample first")

    def _rows(self, x: np.ndarray, what: str) -> np.ndarray:
        self._need_fit(what)
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise DocpressError(f"quantize: {what} expects (n, {self.dim}) vectors, got {x.shape}")
        return np.ascontiguousarray(x)

    def _codes(self, codes: np.ndarray, what: str) -> np.ndarray:
        self._need_fit(what)
        codes = np.asarray(codes)
        if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != self._code_bytes():
            raise DocpressError(f"quantize: {what} expects (n, {self._code_bytes()}) uint8 codes, "
                                f"got {codes.shape} {codes.dtype}")
        return codes

    # -- hooks --------------------------------------------------------------------------
    def _fit(self, x: np.ndarray) -> None:
        pass

    @abstractmethod
    def _code_bytes(self) -> int: ...

    @abstractmethod
    def _encode(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _decode(self, codes: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _prepare(self, query: np.ndarray) -> Any: ...

    @abstractmethod
    def _score(self, prepared: Any, codes: np.ndarray) -> np.ndarray: ...

    def _prepare_exact(self, query: np.ndarray) -> Any:
        return self._prepare(query)


class HalfQuantizer(Quantizer):
    """fp16 or bf16 values (2 bytes a dimension). fp16 is scored in fp32, bf16 in bf16 matmuls."""

    def __init__(self, kind: str = "fp16"):
        super().__init__()
        if kind not in ("fp16", "bf16"):
            raise DocpressError(f"half-precision kind must be fp16 or bf16, not {kind!r}")
        self.kind = kind

    def _code_bytes(self) -> int:
        return 2 * self.dim

    def _encode(self, x: np.ndarray) -> np.ndarray:
        import torch
        if self.kind == "fp16":
            return x.astype(np.float16).view(np.uint8)
        return torch.from_numpy(x).bfloat16().view(torch.uint8).numpy()

    def _tensor(self, codes: np.ndarray) -> torch.Tensor:
        import torch
        t = as_tensor(np.ascontiguousarray(codes))
        return t.view(torch.float16).float() if self.kind == "fp16" else t.view(torch.bfloat16)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        return self._tensor(codes).float().numpy()

    def _prepare(self, query: np.ndarray) -> torch.Tensor:
        import torch
        q = torch.from_numpy(query)
        return q if self.kind == "fp16" else q.bfloat16()

    def _score(self, prepared: torch.Tensor, codes: np.ndarray) -> np.ndarray:
        return (self._tensor(codes) @ prepared.T).float().numpy()


class Int8Quantizer(Quantizer):
    """One signed byte per dimension and an fp16 scale per vector: x ~ scale * code."""

    kind = "int8"

    def _code_bytes(self) -> int:
        return self.dim + 2

    def _encode(self, x: np.ndarray) -> np.ndarray:
        scale = (np.abs(x).max(1) / 127.0).astype(np.float16)
        safe = np.where(scale > 0, scale.astype(np.float32), 1.0)
        q = np.clip(np.rint(x / safe[:, None]), -127, 127).astype(np.int8)
        return np.concatenate([q.view(np.uint8), scale.reshape(-1, 1).view(np.uint8)], axis=1)

    def _split(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = codes[:, :self.dim].view(np.int8)
        scale = np.ascontiguousarray(codes[:, self.dim:]).view(np.float16).reshape(-1)
        return q, scale.astype(np.float32)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        q, scale = self._split(codes)
        return q.astype(np.float32) * scale[:, None]

    def _prepare(self, query: np.ndarray) -> torch.Tensor:
        import torch
        return torch.from_numpy(np.ascontiguousarray(query, np.float32))

    def _score(self, prepared: torch.Tensor, codes: np.ndarray) -> np.ndarray:
        import torch
        if len(prepared) == 1:  # a pooled query: the float16 product (score_table)
            return self.score_table(prepared, self.table(codes))
        # query tokens: one bfloat16 matrix product (float16's is slow on CPUs for many columns)
        q, scale = self._split(codes)
        return (as_tensor(q).to(torch.bfloat16) @ prepared.bfloat16().T).float().numpy() * scale[:, None]

    def table(self, codes: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        # int8 values are exact in fp16: converted once, not on every query (20 ms at 100k rows)
        import torch
        q, scale = self._split(self._codes(codes, "table"))
        return as_tensor(q).to(torch.float16), scale

    def score_table(self, prepared: torch.Tensor, table: tuple[torch.Tensor, np.ndarray]) -> np.ndarray:
        # A float16 matrix-vector product a query row, then each code row's scale. On AVX-512
        # CPUs it is twice as fast as bfloat16's and 8 times as precise (100k x 192: 2.2 against
        # 4.8 ms). The row is made unit first: an int8 row's dot product with it stays under
        # 127 sqrt(dim), far inside float16's range.
        import torch
        values, scale = table
        out = np.zeros((len(values), len(prepared)), np.float32)
        for j, row in enumerate(prepared):
            norm = float(torch.linalg.vector_norm(row))
            if norm > 0:
                out[:, j] = (values @ (row / norm).half()).float().numpy()
                out[:, j] *= scale * norm
        return out


class PqQuantizer(Quantizer):
    """Product quantization: `m` sub-vectors of dim / m dims, each coded by one of 256 centroids.

    centroids: (m, 256, dim / m) float32, trained by k-means (faiss) on the sample.
    """

    kind = "pq"

    def __init__(self, m: int = 16):
        super().__init__()
        if int(m) < 1:
            raise DocpressError(f"pq m must be at least 1, not {m}")
        self.m = int(m)
        self.centroids: np.ndarray | None = None

    def _code_bytes(self) -> int:
        return self.m

    def _fit(self, x: np.ndarray) -> None:
        import faiss

        if x.shape[1] % self.m:
            raise DocpressError(f"pq m={self.m} must divide the vectors' {x.shape[1]} dims")
        if len(x) < 256:
            raise DocpressError(f"pq needs at least 256 sample vectors to train, got {len(x)}")
        pq = faiss.ProductQuantizer(x.shape[1], self.m, 8)
        pq.cp.min_points_per_centroid = 1  # small samples are the caller's choice, not a warning
        pq.verbose = False
        pq.train(x)
        self.centroids = faiss.vector_to_array(pq.centroids).reshape(self.m, 256, -1).astype(np.float32)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        import torch
        cents = torch.from_numpy(self.centroids)  # (m, 256, dsub)
        half_norms = 0.5 * (cents * cents).sum(-1)  # (m, 256)
        out = np.empty((len(x), self.m), np.uint8)
        for s in range(0, len(x), ENCODE_BLOCK):
            sub = torch.from_numpy(x[s:s + ENCODE_BLOCK]).reshape(-1, self.m, cents.shape[2])
            # nearest centroid = argmax of x.c - |c|^2 / 2
            sims = torch.einsum("nmd,mkd->nmk", sub, cents) - half_norms
            out[s:s + len(sub)] = sims.argmax(-1).numpy().astype(np.uint8)
        return out

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        parts = self.centroids[np.arange(self.m)[None, :], codes.astype(np.int64)]  # (n, m, dsub)
        return parts.reshape(len(codes), -1)

    def _prepare(self, query: np.ndarray) -> torch.Tensor:
        import torch
        sub = torch.from_numpy(query).reshape(len(query), self.m, -1)
        lut = torch.einsum("qmd,mkd->mkq", sub, torch.from_numpy(self.centroids))
        return lut.reshape(self.m * 256, len(query)).contiguous()

    def _score(self, prepared: torch.Tensor, codes: np.ndarray) -> np.ndarray:
        return lut_scores(codes, prepared)

    def config(self) -> dict:
        return {"kind": self.kind, "m": self.m}

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "centroids": self.centroids}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        super().load_state(state)
        self.centroids = np.asarray(state["centroids"], np.float32)
        if self.centroids.shape[0] != self.m:
            raise DocpressError(f"pq: saved codebooks have m={self.centroids.shape[0]}, "
                                f"the config says {self.m}")


# Bit patterns of every byte value as +-1, most significant bit first (np.packbits' order).
_SIGNS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).astype(np.float32) * 2 - 1


class BinaryQuantizer(Quantizer):
    """Sign bits of (x - mean): dim / 8 bytes a vector; decoded as +-scale / |scale|.

    Scored by Hamming similarity w * (dim - 2 * hamming) / dim per query token (w: the row's
    weight, its norm), or with asymmetric=True as the float query's dot product with the decoded
    vector. mean: (dim,) float32 from the sample (centring makes every bit carry information);
    scale: (dim,) float32, each dimension's mean |x - mean| with scaled=True (after PCA the
    dimensions differ in spread), else ones.
    """

    kind = "binary"

    def __init__(self, asymmetric: bool = False, center: bool = True, scaled: bool = False):
        super().__init__()
        self.asymmetric = bool(asymmetric)
        self.center = bool(center)
        self.scaled = bool(scaled)
        self.exact = self.asymmetric
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None

    def _code_bytes(self) -> int:
        return math.ceil(self.dim / 8)

    def _fit(self, x: np.ndarray) -> None:
        self.mean = x.mean(0).astype(np.float32) if self.center else np.zeros(x.shape[1], np.float32)
        spread = np.abs(x - self.mean).mean(0) if self.scaled else np.ones(x.shape[1])
        self.scale = np.maximum(spread, 1e-12).astype(np.float32)

    def bits(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) float32 -> (n, code_bytes) uint8 sign bits of the centred rows."""
        x = self._rows(x, "bits")
        return np.packbits(x - self.mean > 0, axis=1)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return np.packbits(x - self.mean > 0, axis=1)

    def _unit_scale(self) -> np.ndarray:
        return self.scale / np.linalg.norm(self.scale)

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        signs = np.unpackbits(codes, axis=1, count=self.dim).astype(np.float32) * 2 - 1
        return signs * self._unit_scale()

    def _byte_queries(self, values: np.ndarray) -> np.ndarray:
        """(nq, dim) -> (nq, code_bytes, 8), zero-padded to whole bytes."""
        pad = self._code_bytes() * 8 - self.dim
        return np.pad(values, ((0, 0), (0, pad))).reshape(len(values), -1, 8)

    def _prepare(self, query: np.ndarray) -> torch.Tensor:
        return self._prepare_exact(query) if self.asymmetric else self._hamming_lut(query)

    def _prepare_exact(self, query: np.ndarray) -> torch.Tensor:
        """Per byte and byte value, the query's dot product with the decoded +-scale bits."""
        import torch
        # per byte, the (256, 8) signs times its (8, query tokens) values: the table comes out
        # in the (bytes * 256, query tokens) order lut_scores reads, with no transposing copy
        # (0.08 ms for 20 tokens; one product then a transpose took 0.33, einsum 2.0)
        parts = self._byte_queries((query * self._unit_scale()).astype(np.float32))
        lut = np.matmul(_SIGNS, np.ascontiguousarray(parts.transpose(1, 2, 0)))  # (bytes, 256, tokens)
        return torch.from_numpy(lut.reshape(-1, len(query)))

    def _hamming_lut(self, query: np.ndarray) -> torch.Tensor:
        """Per byte and byte value, w * (matching - differing bits) / dim against the query's bits."""
        import torch
        w = np.linalg.norm(query, axis=1)
        unit = query / np.where(w > 0, w, 1.0)[:, None]
        qsigns = self._byte_queries(np.where(unit - self.mean > 0, 1.0, -1.0).astype(np.float32))
        real = self._byte_queries(np.ones((1, self.dim), np.float32))[0]  # (code_bytes, 8)
        agree = np.einsum("qmt,kt,mt->mkq", qsigns, _SIGNS, real)
        lut = agree * (w / self.dim)[None, None, :]
        return torch.from_numpy(np.ascontiguousarray(lut.reshape(-1, len(query)), np.float32))

    def _score(self, prepared: torch.Tensor, codes: np.ndarray) -> np.ndarray:
        return lut_scores(codes, prepared)

    def config(self) -> dict:
        return {"kind": self.kind, "asymmetric": self.asymmetric, "center": self.center,
                "scaled": self.scaled}

    def state(self) -> dict[str, np.ndarray]:
        return {**super().state(), "mean": self.mean, "scale": self.scale}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        super().load_state(state)
        self.mean = np.asarray(state["mean"], np.float32)
        self.scale = np.asarray(state["scale"], np.float32)


def quantizer_from_config(config: dict) -> Quantizer:
    """Build a quantizer from its config dict ({"kind": "fp16" | "bf16" | "int8" | "pq" | "binary"})."""
    if not isinstance(config, dict):
        raise DocpressError(f"a quantize stage is a dict like {{\"kind\": \"int8\"}}, not {config!r}")
    options = dict(config)
    kind = options.pop("kind", "fp16")
    try:
        if kind in ("fp16", "bf16"):
            return HalfQuantizer(kind, **options)
        if kind == "int8":
            return Int8Quantizer(**options)
        if kind == "pq":
            return PqQuantizer(**options)
        if kind == "binary":
            return BinaryQuantizer(**options)
    except TypeError as exc:
        raise DocpressError(f"bad quantize options {options}: {exc}") from None
    raise DocpressError(f"unknown quantize kind {kind!r}; choose fp16, bf16, int8, pq or binary")
