"""`docpress serve`: the index over HTTP, the model loaded once."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated, Optional

import typer

from docpress.cli.common import IndexOpt, err, fail, run

API_KEY_ENV = "DOCPRESS_API_KEY"


def serve(
    index: IndexOpt = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you say otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", help=f"Require this key on every endpoint but /health [default: ${API_KEY_ENV}].",
        show_default=False)] = None,
    readers: Annotated[int, typer.Option(help="Searches answered at once (more wait for a free reader).")] = 4,
) -> None:
    """Serve search over HTTP: JSON API (OpenAPI at /docs), page images with highlights, a web page at /."""
    try:
        import uvicorn

        from docpress.serve import create_app
    except ImportError as exc:
        fail(f"serve needs the serve extra ({exc.name} is missing): pip install 'docpress[serve]'")
    from docpress.index import default_index_path

    key = api_key or os.environ.get(API_KEY_ENV) or None
    if readers < 1:
        fail("--readers must be at least 1")
    try:
        exposed = not ipaddress.ip_address(host).is_loopback
    except ValueError:
        exposed = host != "localhost"
    if exposed and not key:
        err.print(f"warning: serving {host} without an API key; anyone who can reach it can search "
                  "the index (set --api-key)", highlight=False)
    app = run(lambda: create_app(index or default_index_path(), api_key=key, readers=readers))
    err.print(f"docpress serving {index or default_index_path()} on http://{host}:{port}/ (docs at /docs)",
              highlight=False)
    uvicorn.run(app, host=host, port=port, log_level="warning")
