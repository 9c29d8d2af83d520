"""The encoder protocol: pages and queries in, multi-vector embeddings out.

Everything a caller needs to know about an encoder is declared here, so ingest, search and the
manifest never probe for attributes: whether it reads page images and at what DPI, the options
that rebuild it, the record the manifest keeps, and whether it can borrow another encoder's
query tower.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod

from docpress.types import Page, PageVectors, QueryVectors

DEFAULT_RENDER_DPI = 150


class Encoder(ABC):
    """Turns pages and queries into vectors in one shared space."""

    id: str
    dim: int
    # True: encode_pages reads page.image, which ingest renders at render_dpi(page) first.
    needs_images: bool = False

    @abstractmethod
    def config(self) -> dict:
        """Everything that changes the vectors; recorded in the index manifest and hashed."""

    def options(self) -> dict:
        """What rebuilds this encoder beyond its config (e.g. a weights path); not hashed, so a
        moved weights folder changes the options, never what the vectors mean."""
        return {}

    @classmethod
    def from_record(cls, config: dict, options: dict) -> "Encoder":
        """Rebuild the encoder a manifest record describes (its config and options)."""
        return cls(**options)

    def config_hash(self) -> str:
        blob = json.dumps({"id": self.id, **self.config()}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def record(self) -> dict:
        """What an index manifest keeps of this encoder, and checks on every open."""
        return {"encoder_id": self.id, "encoder_config": self.config(),
                "encoder_hash": self.config_hash(), "encoder_options": self.options(),
                "dim": self.dim}

    def render_dpi(self, page: Page) -> int:
        """The DPI to render `page` at when needs_images."""
        return DEFAULT_RENDER_DPI

    def share_query_tower(self, main: "Encoder") -> bool:
        """Encode queries with `main`'s model where this encoder's query tower is the same model
        (saves loading it twice); True when it now does. Most encoders have nothing to share."""
        return False

    @abstractmethod
    def encode_pages(self, pages: list[Page]) -> list[PageVectors]:
        """One PageVectors per page, in order."""

    @abstractmethod
    def encode_queries(self, texts: list[str]) -> list[QueryVectors]:
        """One QueryVectors per query text, in order."""
