"""docpress: search PDF corpora by meaning with late-interaction page embeddings."""

from docpress.errors import DocpressError, IndexMismatchError, IndexNotFoundError, PdfError
from docpress.index import Index
from docpress.ingest import IngestReport

__version__ = "0.1.0"

__all__ = ["Index", "IngestReport", "DocpressError", "PdfError", "IndexMismatchError",
           "IndexNotFoundError", "__version__"]
