"""Page and query encoders behind one protocol; `load_encoder` builds one by name."""

from docpress.encoders.base import Encoder, PageVectors, QueryVectors
from docpress.errors import DocpressError

ENCODERS = ("text",)


def load_encoder(name: str = "text", **options) -> Encoder:
    """Build the encoder called `name` ("text" is the offline default)."""
    if name == "text":
        from docpress.encoders.text import TextTokenEncoder

        return TextTokenEncoder(**options)
    raise DocpressError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")


__all__ = ["Encoder", "PageVectors", "QueryVectors", "load_encoder", "ENCODERS"]
