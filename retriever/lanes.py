"""Lanes: each way an index scores pages by late interaction, behind one abstraction.

A lane is a query encoder, an optional map of the query vectors, a store of page vectors and
the way the catalog locates a page's rows in it. An index has
- the main lane: the index's encoder and its store (bf16, compressed or Qdrant);
- extra lanes: another encoder (e.g. the optical lane) with its own bf16 store under
  lanes/NAME and its own row locations (catalog table lane_pages), fused into hybrid search;
- the tuned lane (`docpress tune`): the main encoder's vectors through a learned head, on
  projected copies of the main store's rows (decoded, on a compressed index); it stands in for
  the main lane in the methods its record names.
Ingest writes to the lanes that own their rows, search loops over the lanes a method uses,
and each lane describes itself for the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from docpress.encoders import Encoder, check_encoder, encoder_from_record, load_encoder
from docpress.errors import DocpressError
from docpress.tokens import token_weights
from docpress.types import QueryVectors
from indexer.catalog import Catalog, PageTable
from indexer.head_files import head_bytes, read_head, weight_hash
from indexer.layout import HEAD_FOLDER, default_lane_folder
from indexer.manifest import Manifest
from indexer.stores.base import Location, VectorStore
from indexer.stores.bf16 import Bf16Store
from indexer.stores.projected import ProjectedStore

MAIN = "main"
TUNED = "tuned"
# Weight of a lane's standardized MaxSim in hybrid. The main lane's was chosen on the three dev
# sets (README, "How hybrid ranks"); an extra lane's is set as much as the main lane's: not
# measured with a trained optical model (none exists offline here; README).
MAXSIM_WEIGHT = 1.0
LANE_WEIGHT = MAXSIM_WEIGHT


@dataclass
class Lane:
    """One lane of an index.

    name:     MAIN, TUNED, or the extra lane's name.
    record:   what the manifest keeps of it (describe()).
    store:    its page vectors.
    encoder:  loads the query (and page) encoder on first use.
    methods:  search methods whose MaxSim this lane gives.
    weight:   its MaxSim's weight in hybrid.
    replaces: the lane it stands in for where both would serve a method.
    owns_rows: ingest encodes pages into it (False: its rows derive from another lane's).
    own_locations: its rows are located by the catalog's lane_pages table, not the pages table.
    transform: maps the encoder's query vectors into the store's space (the tuned head).
    """

    name: str
    record: dict
    store: VectorStore
    encoder_loader: Callable[[], Encoder] = field(repr=False)
    methods: frozenset[str] = frozenset()
    weight: float = MAXSIM_WEIGHT
    replaces: str | None = None
    owns_rows: bool = True
    own_locations: bool = False
    transform: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)
    directory: Path | None = None
    _encoder: Encoder | None = field(default=None, repr=False)

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = self.encoder_loader()
        return self._encoder

    def serves(self, method: str) -> bool:
        return method in self.methods

    def describe(self) -> dict:
        """The manifest's record of this lane."""
        return dict(self.record)

    # -- rows ---------------------------------------------------------------------------
    def locate(self, catalog: Catalog, table: PageTable) -> PageTable:
        """`table`'s pages located in this lane's store (same order)."""
        return catalog.lane_table(self.name, table) if self.own_locations else table

    def place(self, catalog: Catalog, locations: dict[int, Location]) -> None:
        """Record where this lane's store put pages ({page id: Location}), inside the commit."""
        if self.own_locations:
            catalog.insert_lane_pages(self.name, locations)
        else:
            catalog.move_pages(locations)

    # -- scoring ------------------------------------------------------------------------
    def query_matrix(self, qv: QueryVectors) -> np.ndarray:
        """(n_tokens, store dim) float32: the query's vectors as this lane scores them, each
        weighted (punctuation tokens 0)."""
        vectors = qv.vectors if self.transform is None else self.transform(qv.vectors)
        return vectors * token_weights(qv.tokens)[:, None]

    def maxsim(self, catalog: Catalog, qv: QueryVectors, table: PageTable) -> np.ndarray:
        """(n_pages,) MaxSim of the query (encoded by this lane's encoder) on `table`'s pages."""
        query = self.query_matrix(qv)
        # tokens weighted 0 ([CLS], [SEP], punctuation: 12% of a question's) add 0 to every
        # page: not scored (the sum is the same)
        scored = np.abs(query).sum(1) > 0
        if scored.any() and not scored.all():
            query = query[scored]
        return self.store.maxsim(query, self.locate(catalog, table))

    def nbytes(self) -> int:
        extra = head_bytes(self.directory / HEAD_FOLDER) if self.name == TUNED and self.directory else 0
        return self.store.nbytes() + extra

    def close(self) -> None:
        self.store.close()


def main_lane(manifest: Manifest, store: VectorStore, encoder: Callable[[], Encoder]) -> Lane:
    return Lane(MAIN, manifest.encoder_record(), store, encoder, frozenset({"maxsim", "hybrid", "rrf"}),
                weight=maxsim_weight(manifest))


def maxsim_weight(manifest: Manifest) -> float:
    """The main (or tuned) lane's MaxSim weight in hybrid: calibrated, else the default."""
    return float(manifest.fusion.get("maxsim", MAXSIM_WEIGHT))


def extra_lane(index_dir: Path, name: str, record: dict, main: Lane,
               encoder: Encoder | None = None, folder: str | None = None) -> Lane:
    """An extra lane; its encoder shares the main encoder as its query tower where it can.
    folder: its live store folder relative to the index (the catalog's state names it)."""
    if encoder is not None:
        check_encoder(record, encoder, f"lane {name!r}")

    def load() -> Encoder:
        enc = encoder or encoder_from_record(record)
        enc.share_query_tower(main.encoder)
        return enc

    store = Bf16Store(Path(index_dir) / (folder or default_lane_folder(name)), int(record["dim"]))
    return Lane(name, record, store, load,
                frozenset({"hybrid", "rrf"}), weight=LANE_WEIGHT, own_locations=True)


def tuned_lane(index_dir: Path, record: dict, main: Lane) -> Lane | None:
    """The tuned lane, or None when there is none or the main store has no rows to project from
    (a Qdrant collection). Its rows follow the main store's, re-projected when it is re-coded."""
    if not record or not main.store.capabilities.float_rows:
        return None
    directory = Path(index_dir) / record["folder"]
    weight, _ = read_head(directory / HEAD_FOLDER)
    if weight_hash(weight) != record.get("head_hash"):
        raise DocpressError(f"the tuned head in {directory} is not the one the manifest "
                            "records; run `docpress tune` again")
    store = ProjectedStore(directory, main.store, weight)
    return Lane(TUNED, record, store, lambda: main.encoder, frozenset(record.get("methods", ())),
                weight=main.weight, replaces=MAIN, owns_rows=False, transform=store.project, directory=directory)


def open_lanes(index_dir: Path, manifest: Manifest, store: VectorStore,
               main_encoder: Callable[[], Encoder],
               extra_encoders: dict[str, Encoder] | None = None,
               lane_folders: dict[str, str] | None = None) -> list[Lane]:
    """Every lane of an index: main first, then extra lanes by name, then the tuned lane.
    lane_folders: each extra lane's live folder (default lanes/NAME)."""
    main = main_lane(manifest, store, main_encoder)
    lanes = [main]
    for name, record in sorted(manifest.lanes.items()):
        lanes.append(extra_lane(index_dir, name, record, main, (extra_encoders or {}).get(name),
                                (lane_folders or {}).get(name)))
    tuned = tuned_lane(index_dir, manifest.tuned, main)
    if tuned is not None:
        lanes.append(tuned)
    return lanes


def lanes_for(lanes: list[Lane], method: str) -> list[Lane]:
    """The lanes whose MaxSim a method uses (a lane that stands in for another removes it)."""
    active = [lane for lane in lanes if lane.serves(method)]
    replaced = {lane.replaces for lane in active if lane.replaces}
    return [lane for lane in active if lane.name not in replaced]


def new_lane_records(lanes: dict[str, Encoder | str], main: Encoder) -> tuple[dict, dict[str, Encoder]]:
    """Manifest records and loaded encoders for the extra lanes of a new index."""
    records, encoders = {}, {}
    for name, spec in lanes.items():
        encoder = spec if isinstance(spec, Encoder) else load_encoder(spec)
        if encoder.id == main.id and encoder.config_hash() == main.config_hash():
            raise DocpressError(f"lane {name!r} uses the index's main encoder; an extra lane "
                                "needs another model")
        records[name], encoders[name] = encoder.record(), encoder
    return records, encoders
