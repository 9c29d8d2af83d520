"""`python -m docpress` runs the command line."""

from docpress.cli import app

app()
