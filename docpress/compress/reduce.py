"""Reduction: project vectors onto fewer dimensions (PCA fitted on a corpus sample).

Projected rows keep their input norms (unit page vectors stay unit, weighted query rows keep
their weights), so MaxSim on projected vectors is a cosine MaxSim in the smaller space.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from docpress.compress.stages import build_stage
from docpress.errors import DocpressError


def _renorm_like(y: np.ndarray, x_norms: np.ndarray) -> np.ndarray:
    """Rows of y rescaled to the given norms (zero rows stay zero)."""
    n = np.linalg.norm(y, axis=1, keepdims=True)
    return (y * (x_norms[:, None] / np.where(n > 0, n, 1.0))).astype(np.float32)


class Reducer(ABC):
    """Base of the reducers: public methods check shapes and fitting, `_fit`/`_project` do the work."""

    method: str
    in_dim: int | None = None

    def __init__(self, dims: int):
        if int(dims) < 1:
            raise DocpressError(f"reduce dims must be at least 1, not {dims}")
        self.dims = int(dims)

    @property
    def fitted(self) -> bool:
        return self.in_dim is not None

    def fit(self, x: np.ndarray) -> None:
        """Learn the projection from (n_vectors, in_dim) float32 rows."""
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or len(x) < 2:
            raise DocpressError("reduce: fit needs a (n_vectors, dim) sample with n_vectors >= 2")
        if self.dims > x.shape[1]:
            raise DocpressError(f"reduce dims {self.dims} exceed the vectors' {x.shape[1]} dims")
        self._fit(x)
        self.in_dim = x.shape[1]

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(n, in_dim) -> (n, dims) float32, each row keeping its norm."""
        x = self._check(x, self.in_dim, "transform")
        return _renorm_like(self._project(x), np.linalg.norm(x, axis=1))

    def inverse(self, y: np.ndarray) -> np.ndarray:
        """(n, dims) -> (n, in_dim) float32 in the original space, each row keeping its norm."""
        y = self._check(y, self.dims, "inverse")
        return _renorm_like(self._back(y), np.linalg.norm(y, axis=1))

    def _check(self, x: np.ndarray, width: int | None, what: str) -> np.ndarray:
        if not self.fitted:
            raise DocpressError(f"reduce: {what} before fit; fit the compressor on a sample first")
        x = np.asarray(x, np.float32)
        if x.ndim != 2 or x.shape[1] != width:
            raise DocpressError(f"reduce: {what} expects (n, {width}) vectors, got {x.shape}")
        return x

    @abstractmethod
    def _fit(self, x: np.ndarray) -> None: ...

    @abstractmethod
    def _project(self, x: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _back(self, y: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def config(self) -> dict: ...

    @abstractmethod
    def state(self) -> dict[str, np.ndarray]:
        """Fitted parameters as arrays (saved in the codec's npz)."""

    @abstractmethod
    def load_state(self, state: dict[str, np.ndarray]) -> None: ...


class PcaReducer(Reducer):
    """PCA: the top `dims` eigenvectors of the sample's second-moment (or covariance) matrix.

    center=False (the default) keeps dot products best: q.d ~ (Wq).(Wd) with W the top
    eigenvectors of E[x x^T]; center=True subtracts the sample mean first, scoring cosines of
    centred vectors instead. rotate=True turns the kept axes by a fixed random rotation, which
    spreads the variance evenly over the output dimensions (product and binary codes then spend
    their bits evenly); it spans the same subspace, so float scores do not change.
    components: (dims, in_dim) float32; mean: (in_dim,) float32 (zeros when not centred).
    """

    method = "pca"

    def __init__(self, dims: int = 128, center: bool = False, rotate: bool = False):
        super().__init__(dims)
        self.center = bool(center)
        self.rotate = bool(rotate)
        self.components: np.ndarray | None = None
        self.mean: np.ndarray | None = None
        self.explained: float = 0.0

    def _fit(self, x: np.ndarray) -> None:
        x64 = x.astype(np.float64)
        mean = x64.mean(0) if self.center else np.zeros(x.shape[1])
        xc = x64 - mean
        second = xc.T @ xc / len(xc)
        values, vectors = np.linalg.eigh(second)
        top = np.argsort(values)[::-1][:self.dims]
        comps = vectors[:, top].T
        # A fixed sign per component, so refits on the same data give the same codes.
        comps *= np.where(comps[np.arange(len(comps)), np.abs(comps).argmax(1)] < 0, -1.0, 1.0)[:, None]
        if self.rotate:
            q, r = np.linalg.qr(np.random.default_rng(0).standard_normal((self.dims, self.dims)))
            comps = (q * np.sign(np.diag(r))) @ comps
        self.components = comps.astype(np.float32)
        self.mean = mean.astype(np.float32)
        self.explained = float(values[top].sum() / max(values.sum(), 1e-12))

    def _project(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) @ self.components.T

    def _back(self, y: np.ndarray) -> np.ndarray:
        return y @ self.components + self.mean

    def config(self) -> dict:
        return {"method": self.method, "dims": self.dims, "center": self.center,
                "rotate": self.rotate}

    def state(self) -> dict[str, np.ndarray]:
        return {"components": self.components, "mean": self.mean,
                "explained": np.asarray(self.explained, np.float64)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.components = np.asarray(state["components"], np.float32)
        self.mean = np.asarray(state["mean"], np.float32)
        self.explained = float(state.get("explained", 0.0))
        if self.components.shape[0] != self.dims:
            raise DocpressError(f"reduce: saved PCA has {self.components.shape[0]} dims, "
                                f"the config says {self.dims}")
        self.in_dim = self.components.shape[1]


REDUCERS = {cls.method: cls for cls in (PcaReducer,)}


def reducer_from_config(config: dict) -> Reducer:
    """Build a reducer from its config dict ({"method": "pca", "dims": 128, "center": false})."""
    return build_stage("reduce", REDUCERS, config, "pca")
