"""Reading JSONL files of records (queries, training pairs) with one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, TypeVar

from docpress.errors import DocpressError

T = TypeVar("T")


def read_jsonl(path: str | Path, parse: Callable[[dict, int], T], what: str, expected: str) -> list[T]:
    """parse(row, line number) of every non-blank line; `what` names one record ("query"),
    `expected` shows a valid line. A bad line or an empty file is one DocpressError naming it."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DocpressError(f"cannot read {what} file {path}: {exc.strerror}") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(parse(json.loads(line), n))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DocpressError(f"{path}:{n}: not a {what} line ({exc}); expected {expected}") from None
    if not records:
        raise DocpressError(f"{path} holds no {what} lines")
    return records
