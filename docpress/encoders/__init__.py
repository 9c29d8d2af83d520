"""Page and query encoders behind one protocol; the registry builds one by name or from a record."""

from docpress.encoders.base import Encoder
from docpress.encoders.registry import (
                                        ENCODERS,
                                        check_encoder,
                                        encoder_class,
                                        encoder_from_record,
                                        load_encoder,
)

__all__ = ["Encoder", "ENCODERS", "check_encoder", "encoder_class", "encoder_from_record",
           "load_encoder"]
