"""User-facing errors: each says what went wrong and what to do, in one line."""


class DocpressError(Exception):
    """Base class for every error a user can cause; the CLI prints it in one line."""


class PdfError(DocpressError):
    """A file could not be read as a PDF (encrypted, broken, empty or not a PDF)."""

    def __init__(self, path: str, reason: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class IndexMismatchError(DocpressError):
    """The index was built with another encoder, compression or format version."""


class IndexNotFoundError(DocpressError):
    """No index exists at the given location."""


class BackendUnavailableError(DocpressError):
    """An optional dependency or a server is missing or unreachable."""


class IndexBusyError(DocpressError):
    """Another process is writing the index and the caller asked not to wait."""


class CorruptIndexError(DocpressError):
    """A part of the index is missing or damaged; the message names it and says what to do."""


class IndexWriteError(DocpressError):
    """Writing to the index failed (disk full, damaged files); nothing half-written is visible."""
