"""The `docpress` Typer app: every command registered in one place."""

from __future__ import annotations

import typer

from docpress.cli import index_cmds, search_cmds, train_cmds, tune_cmds

app = typer.Typer(help="Search PDF corpora by meaning.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)

app.command()(index_cmds.ingest)
app.command()(index_cmds.compress)
app.command()(search_cmds.search)
app.command("ls")(index_cmds.list_documents)
app.command("rm")(index_cmds.remove)
app.command()(index_cmds.info)
app.command()(index_cmds.compact)
app.command()(index_cmds.check)
app.command()(index_cmds.repair)
app.command("eval")(search_cmds.evaluate)
app.command()(train_cmds.train)
app.command()(train_cmds.distill)
app.command()(tune_cmds.tune)
app.command()(tune_cmds.calibrate)


def main() -> None:  # pragma: no cover - entry point for `python -m docpress`
    app()
