"""The encoders by name: build one from options, or rebuild one from a manifest record.

Each encoder module is imported only when asked for, so a text index never loads the optical
lane's model code.
"""

from __future__ import annotations

from importlib import import_module

from docpress.encoders.base import Encoder
from docpress.errors import DocpressError, IndexMismatchError

# name -> "module:class"
ENCODERS = {
    "text": "docpress.encoders.text:TextTokenEncoder",
    "optical": "docpress.encoders.optical.encoder:OpticalEncoder",
}


def encoder_class(name: str) -> type[Encoder]:
    target = ENCODERS.get(name)
    if target is None:
        raise DocpressError(f"unknown encoder {name!r}; choose one of: {', '.join(ENCODERS)}")
    module, cls = target.split(":")
    return getattr(import_module(module), cls)


def load_encoder(name: str = "text", **options) -> Encoder:
    """Build the encoder called `name` ("text" is the offline default; "optical" needs weights=DIR)."""
    return encoder_class(name)(**options)


def encoder_from_record(record: dict) -> Encoder:
    """Rebuild the encoder a manifest record (Encoder.record()) describes, and check it is the
    same one: same id and config hash."""
    encoder = encoder_class(record["encoder_id"]).from_record(record.get("encoder_config") or {},
                                                              record.get("encoder_options") or {})
    check_encoder(record, encoder, "index")
    return encoder


def check_encoder(record: dict, encoder: Encoder, what: str) -> None:
    """Refuse an encoder that is not the one `record` was built with."""
    if (encoder.id, encoder.config_hash()) != (record["encoder_id"], record["encoder_hash"]):
        raise IndexMismatchError(
            f"{what} was built with encoder {record['encoder_id']} ({record['encoder_hash']}), "
            f"not {encoder.id} ({encoder.config_hash()}); open it with the same encoder or ingest "
            "into a new --index folder")
