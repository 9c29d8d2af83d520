"""The tuned head's folder format: head.safetensors (the (out_dim, in_dim) float32 map) and
head.json (shape, provenance, and the weights' hash), written by `docpress tune`, read by search.

numpy only: search reads a head without loading the training code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from docpress.errors import DocpressError

WEIGHTS = "head.safetensors"
CONFIG = "head.json"


def weight_hash(weight: np.ndarray) -> str:
    """16 hex digits of the weights' bytes and shape: what the manifest pins."""
    weight = np.ascontiguousarray(weight, np.float32)
    return hashlib.sha256(np.asarray(weight.shape, np.int64).tobytes() + weight.tobytes()).hexdigest()[:16]


def write_head(directory: str | os.PathLike, weight: np.ndarray, info: dict) -> Path:
    """Write the folder (created), fsynced; head.json records `info`, the shape and the hash."""
    from safetensors.numpy import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weight = np.ascontiguousarray(weight, np.float32)
    save_file({"weight": weight}, str(directory / WEIGHTS))
    record = {**info, "in_dim": int(weight.shape[1]), "out_dim": int(weight.shape[0]),
              "hash": weight_hash(weight)}
    (directory / CONFIG).write_text(json.dumps(record, indent=2, sort_keys=True))
    for name in (WEIGHTS, CONFIG):
        with open(directory / name, "rb") as fh:
            os.fsync(fh.fileno())
    return directory


def read_head(directory: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """(weight (out_dim, in_dim) float32, head.json without its hash); refuses weights that do
    not match their recorded hash."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    try:
        record = json.loads((directory / CONFIG).read_text())
        weight = np.ascontiguousarray(load_file(str(directory / WEIGHTS))["weight"], np.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise DocpressError(f"cannot read the tuned head in {directory} ({exc}); run "
                            "`docpress tune` again") from None
    recorded = record.pop("hash", None)
    if recorded and recorded != weight_hash(weight):
        raise DocpressError(f"the tuned head in {directory} does not match its recorded hash; "
                            "run `docpress tune` again")
    return weight, record


def head_bytes(directory: str | os.PathLike) -> int:
    return sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())
