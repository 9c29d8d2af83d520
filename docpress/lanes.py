"""Extra lanes: a second page encoder (e.g. the optical lane beside the text lane) in one index.

Each extra lane has its own bf16 store under `lanes/NAME/` and its own row locations in the
catalog (table lane_pages, written in the same commit as the pages), and its own record in the
manifest, checked like the main encoder's. Hybrid search adds each lane's MaxSim on the
candidate pages as one more standardized signal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from docpress.encoders import Encoder, load_encoder
from docpress.errors import DocpressError, IndexMismatchError

if TYPE_CHECKING:  # the indexer modules import docpress: only types from them here
    from indexer.local import LocalStore
    from indexer.manifest import Manifest

LANES_FOLDER = "lanes"


@dataclass
class Lane:
    """One extra lane of an index: its name, store and (loaded on first use) encoder."""

    name: str
    record: dict
    store: "LocalStore"
    _encoder: Encoder | None = field(default=None, repr=False)
    tower_shared: bool = False  # search has tried to share the main model as its query tower

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            options = self.record.get("encoder_options") or {}
            encoder = load_encoder(self.record["encoder_id"], **options)
            check_lane_encoder(self.name, self.record, encoder)
            self._encoder = encoder
        return self._encoder


def lane_record(encoder: Encoder) -> dict:
    """What the manifest keeps of an extra lane's encoder."""
    options = encoder.options() if callable(getattr(encoder, "options", None)) else {}
    return {"encoder_id": encoder.id, "encoder_config": encoder.config(),
            "encoder_hash": encoder.config_hash(), "encoder_options": options, "dim": encoder.dim}


def check_lane_encoder(name: str, record: dict, encoder: Encoder) -> None:
    if (encoder.id, encoder.config_hash()) != (record["encoder_id"], record["encoder_hash"]):
        raise IndexMismatchError(
            f"lane {name!r} was built with encoder {record['encoder_id']} ({record['encoder_hash']}), "
            f"not {encoder.id} ({encoder.config_hash()}); open the index with the same lane model")


def open_lanes(manifest: "Manifest", directory: Path, encoders: dict[str, Encoder] | None = None) -> list[Lane]:
    """The index's extra lanes; `encoders` gives already loaded encoders by lane name."""
    from indexer.local import LocalStore

    lanes = []
    for name, record in sorted(manifest.lanes.items()):
        lane = Lane(name, record, LocalStore(Path(directory) / LANES_FOLDER / name, int(record["dim"])))
        encoder = (encoders or {}).get(name)
        if encoder is not None:
            check_lane_encoder(name, record, encoder)
            lane._encoder = encoder
        lanes.append(lane)
    return lanes


def new_lane_records(lanes: dict[str, Encoder | str], main: Encoder) -> tuple[dict, dict[str, Encoder]]:
    """Manifest records and loaded encoders for the lanes of a new index."""
    records, encoders = {}, {}
    for name, spec in lanes.items():
        encoder = spec if isinstance(spec, Encoder) else load_encoder(spec)
        if encoder.id == main.id and encoder.config_hash() == main.config_hash():
            raise DocpressError(f"lane {name!r} uses the index's main encoder; an extra lane "
                                "needs another model")
        records[name], encoders[name] = lane_record(encoder), encoder
    return records, encoders
