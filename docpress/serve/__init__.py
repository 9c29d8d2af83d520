"""`docpress serve`: the index over HTTP (FastAPI), for many readers at once."""

from docpress.serve.app import create_app

__all__ = ["create_app"]
