"""The `docpress` command line: app (the Typer app), common (shared helpers), one module per
command group (index_cmds, search_cmds, train_cmds, tune_cmds)."""

from docpress.cli.app import app, main

__all__ = ["app", "main"]
