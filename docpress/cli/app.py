"""The `docpress` Typer app: every command registered in one place."""

from __future__ import annotations

from typing import Annotated

import typer

from docpress.cli import index_cmds, search_cmds, serve_cmds, train_cmds, tune_cmds

app = typer.Typer(help="Search PDF corpora by meaning. Every command works on one index folder: "
                       "--index DIR, else $DOCPRESS_INDEX, else ./.docpress.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"docpress {version('docpress')}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False) -> None:
    pass

app.command()(index_cmds.ingest)
app.command()(index_cmds.compress)
app.command()(search_cmds.search)
app.command()(search_cmds.show)
app.command()(serve_cmds.serve)
app.command("ls")(index_cmds.list_documents)
app.command("rm")(index_cmds.remove)
app.command()(index_cmds.info)
app.command()(index_cmds.compact)
app.command()(index_cmds.check)
app.command()(index_cmds.repair)
app.command()(index_cmds.refit)
app.command("eval")(search_cmds.evaluate)
app.command()(train_cmds.train)
app.command()(train_cmds.distill)
app.command()(tune_cmds.tune)
app.command()(tune_cmds.calibrate)


def main() -> None:  # pragma: no cover - entry point for `python -m docpress`
    app()
