"""The index manifest: format version, encoder identity and store settings, checked on open."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from docpress.errors import CorruptIndexError, IndexMismatchError
from indexer.layout import MANIFEST, MANIFEST_BACKUP

FORMAT_VERSION = 1
NONE = "none"  # the compression preset name of plain bf16 vectors


@dataclass
class Manifest:
    encoder_id: str
    encoder_config: dict
    encoder_hash: str
    dim: int
    store: str = "local"  # "local", or a Qdrant location (qdrant://host:port/collection, path)
    compression: dict = field(default_factory=lambda: {"quantize": "bf16"})
    # How to rebuild the encoder (e.g. the optical lane's weights path and mode). Not part of
    # encoder_hash: a moved weights folder changes the options, never what the vectors mean.
    encoder_options: dict = field(default_factory=dict)
    # The tuned lane (docpress tune): its folder, head hash, dims, training-data hash and the
    # search methods that use it. Empty: not tuned.
    tuned: dict = field(default_factory=dict)
    # hybrid's fusion weights fitted on the index's own pages (`docpress calibrate`): {"bm25",
    # "maxsim", and how they were chosen}. Empty: the defaults.
    fusion: dict = field(default_factory=dict)
    # Extra lanes encoded beside the main encoder and fused into hybrid search: name ->
    # {encoder_id, encoder_config, encoder_hash, encoder_options, dim}.
    lanes: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    created_at: float = field(default_factory=time.time)

    def save(self, directory: Path) -> None:
        text = json.dumps(asdict(self), indent=2, sort_keys=True)
        for name in (MANIFEST, MANIFEST_BACKUP):  # the copy is what `docpress repair` falls back on
            path = Path(directory) / name
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)  # atomic: a reader never sees half a manifest

    @classmethod
    def load(cls, directory: Path) -> "Manifest":
        path = Path(directory) / MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CorruptIndexError(f"{path} is unreadable ({type(exc).__name__}); run "
                                    f"`docpress repair --index {directory}`") from None
        problem = schema_problem(data)
        if problem:
            raise CorruptIndexError(f"{path} is damaged ({problem}); run "
                                    f"`docpress repair --index {directory}`")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise IndexMismatchError(
                f"index at {directory} has format version {version}, this docpress reads "
                f"version {FORMAT_VERSION}; re-create it with `docpress ingest --index NEW_DIR`")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def encoder_record(self) -> dict:
        """The main encoder's record, in the shape of Encoder.record() (and of extra lanes')."""
        return {"encoder_id": self.encoder_id, "encoder_config": self.encoder_config,
                "encoder_hash": self.encoder_hash, "encoder_options": self.encoder_options,
                "dim": self.dim}


# The fields a manifest must have, with their JSON types; the rest have defaults.
REQUIRED = {"encoder_id": str, "encoder_config": dict, "encoder_hash": str, "dim": int,
            "format_version": int}
OPTIONAL = {"store": str, "compression": dict, "encoder_options": dict, "tuned": dict,
            "fusion": dict, "lanes": dict, "created_at": (int, float)}


def schema_problem(data) -> str | None:
    """What is wrong with a parsed manifest's shape, or None."""
    if not isinstance(data, dict):
        return "not a JSON object"
    for name, kind in REQUIRED.items():
        if name not in data:
            return f"no {name!r}"
        if not isinstance(data[name], kind) or isinstance(data[name], bool):
            return f"{name!r} is not a {kind.__name__}"
    for name, kind in OPTIONAL.items():
        if name in data and not isinstance(data[name], kind):
            return f"{name!r} has the wrong type"
    if data["dim"] <= 0:
        return "'dim' is not positive"
    return None


def preset_name(compression: dict | None) -> str:
    """The preset a manifest's compression record names ("none" for plain bf16)."""
    if not compression or "fingerprint" not in compression:
        return NONE
    return compression.get("preset") or "custom"
