"""What every command shares: consoles, option types, one-line errors, opening the index."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from docpress.errors import DocpressError

# Lines (summaries, errors) never wrap: a script reads one line per result. Tables fit the
# terminal; piped, they take $COLUMNS or 160 columns instead of rich's 80.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
if not out.is_terminal and "COLUMNS" not in os.environ:
    out.width = 160

IndexOpt = Annotated[Optional[Path], typer.Option(
    "--index", "-i", help="Index folder [default: $DOCPRESS_INDEX or ./.docpress].",
    show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
CompressionOpt = Annotated[str, typer.Option(
    help="Vector compression: auto (bf16 until the index holds 1,000 pages, then balanced), "
         "none, balanced, compact or tiny (see `docpress compress`).")]
NoWaitOpt = Annotated[bool, typer.Option(
    "--no-wait", help="Fail at once (exit 1) if another process is writing the index, instead of waiting.")]
MethodOpt = Annotated[str, typer.Option(
    "--method", "-m", help="Ranking: hybrid (default), rrf, maxsim, dense or bm25.")]


def fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=1)


def parse_meta(pairs: list[str] | None) -> dict:
    meta = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--meta takes KEY=VALUE, got {pair!r}")
        meta[key] = value
    return meta


def parse_compression(text: str | None):
    """A preset name, or a JSON object of explicit stages."""
    if text is None or not text.lstrip().startswith("{"):
        return text
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--compression: not a preset name or JSON object ({exc.msg})")


def run(fn):
    """Call fn, turning DocpressError (and a damaged catalog's SQLite error) into one line on
    stderr and exit code 1."""
    try:
        return fn()
    except DocpressError as exc:
        fail(str(exc))
    except sqlite3.DatabaseError as exc:
        fail(f"the index's catalog is damaged ({exc}); run `docpress repair`")
    except KeyboardInterrupt:
        err.print("interrupted: documents committed so far are kept")
        raise typer.Exit(code=130)


def open_index(index: Path | None, no_wait: bool = False):
    """Open the index for a command; as a writer it waits for another writer (saying so) or,
    with no_wait, refuses."""
    from docpress.index import Index

    idx = Index.open(index)
    idx.wait_for_writer = not no_wait
    idx.on_wait = say_waiting(idx.directory)
    return idx


def say_waiting(directory: Path):
    def on_wait(holder: str) -> None:
        err.print(f"waiting: {holder} is writing the index at {directory} ...", highlight=False)
    return on_wait
