"""Page and query encoders behind one protocol; `load_encoder` builds one by name."""

from docpress.encoders.base import Encoder, PageVectors, QueryVectors
from docpress.errors import DocpressError

ENCODERS = ("text", "optical")


def load_encoder(name: str = "text", **options) -> Encoder:
    """Build the encoder called `name` ("text" is the offline default; "optical" needs weights=DIR).

    Each lane is imported only when asked for: the optical lane's model code is not loaded
    for a text index.
    """
    if name == "text":
        from docpress.encoders.text import TextTokenEncoder

        return TextTokenEncoder(**options)
    if name == "optical":
        from docpress.encoders.optical.encoder import OpticalEncoder

        return OpticalEncoder(**options)
    raise DocpressError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")


__all__ = ["Encoder", "PageVectors", "QueryVectors", "load_encoder", "ENCODERS"]
