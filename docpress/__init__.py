"""docpress: search PDF corpora by meaning with late-interaction page embeddings."""

from docpress.errors import DocpressError, IndexMismatchError, IndexNotFoundError, PdfError

__version__ = "0.1.0"

__all__ = ["Index", "IngestReport", "DocpressError", "PdfError", "IndexMismatchError",
           "IndexNotFoundError", "__version__"]


def __getattr__(name: str):
    # Index and IngestReport load on first use: the indexer modules import docpress.errors and
    # docpress.encoders, and an eager import of the index here would make that a cycle.
    if name == "Index":
        from docpress.index import Index

        return Index
    if name == "IngestReport":
        from docpress.ingest import IngestReport

        return IngestReport
    raise AttributeError(f"module 'docpress' has no attribute {name!r}")
