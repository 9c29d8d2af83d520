"""Vector stores behind one contract (base): bf16 rows, compressed codes, projected rows, Qdrant."""

from indexer.stores.base import Capabilities, Location, StoredPage, VectorStore, location_of

__all__ = ["Capabilities", "Location", "StoredPage", "VectorStore", "location_of"]
