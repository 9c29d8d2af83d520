"""The HTTP service: JSON endpoints, highlighted page images, a small web page, OpenAPI at /docs.

Safe by construction:
- a page image is addressed by its page id in the catalog; the file it renders is the path
  the catalog holds for that page's document, so nothing from a request reaches the file
  system;
- k, the query's length, the image DPI and the number of searches at once are bounded (more
  searches wait for a free reader, then get 503);
- bad input is a 4xx with {"error": "one line"};
- with an API key (--api-key or $DOCPRESS_API_KEY) every endpoint but /health wants it, in
  the X-API-Key header or a `key` query parameter (for <img> tags and the web page's link).
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
import io
from urllib.parse import quote
from pathlib import Path
from typing import Annotated, Optional

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from docpress.errors import DocpressError
from docpress.serve.page import PAGE
from docpress.serve.readers import BusyError, ReaderPool

MAX_K = 50
MAX_QUERY_CHARS = 1000
METHODS = ("hybrid", "rrf", "maxsim", "dense", "bm25")


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K)
    method: str = Field("hybrid", pattern="^(" + "|".join(METHODS) + ")$")
    doc: Optional[str] = Field(None, max_length=500, description="only documents whose path or name matches")
    metadata: dict[str, str] = Field(default_factory=dict, description="only documents with these metadata")


def create_app(index: Path, api_key: str | None = None, readers: int = 4) -> FastAPI:
    """The app over one index; the model loads now, once."""
    pool = ReaderPool(index, size=readers)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.close()

    app = FastAPI(title="docpress", description="Search PDF corpora by meaning.", version="1", lifespan=lifespan)
    app.state.pool = pool

    def check_key(request: Request) -> None:
        if not api_key:
            return
        given = request.headers.get("x-api-key") or request.query_params.get("key") or ""
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (X-API-Key header or key= parameter)")

    guarded = [Depends(check_key)]

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body"))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid')}"}, status_code=422)

    def answer(fn):
        """Run fn on a free reader: user errors are 400, a full pool 503."""
        try:
            with pool.reader() as reader:
                return fn(reader)
        except BusyError as exc:
            raise HTTPException(503, str(exc)) from None
        except DocpressError as exc:
            raise HTTPException(400, str(exc).splitlines()[0]) from None

    def hits_json(hits, query: str) -> list[dict]:
        return [{**hit.as_dict(), "image_url": f"/api/pages/{hit.page_id}/image?q={quote(query)}"}
                for hit in hits]

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/api/search", dependencies=guarded)
    def search_post(body: SearchRequest) -> dict:
        hits = answer(lambda r: r.search(body.query, k=body.k, method=body.method, path=body.doc,
                                         metadata=body.metadata or None))
        return {"query": body.query, "method": body.method, "hits": hits_json(hits, body.query)}

    @app.get("/api/search", dependencies=guarded)
    def search_get(q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
                   k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
                   method: Annotated[str, Query(pattern="^(" + "|".join(METHODS) + ")$")] = "hybrid",
                   doc: Annotated[Optional[str], Query(max_length=500)] = None,
                   meta: Annotated[list[str], Query(description="KEY=VALUE, repeatable")] = []) -> dict:
        metadata = {}
        for pair in meta:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise HTTPException(422, f"meta: takes KEY=VALUE, got {pair!r}")
            metadata[key] = value
        return search_post(SearchRequest(query=q, k=k, method=method, doc=doc, metadata=metadata))

    @app.get("/api/documents", dependencies=guarded)
    def documents() -> list[dict]:
        def listing(reader):
            copies = reader.aliases()
            return [{"path": d.path, "other_paths": copies.get(d.id, []), "pages": d.page_count,
                     "title": d.title, "metadata": d.metadata} for d in reader.documents()]
        return answer(listing)

    @app.get("/api/info", dependencies=guarded)
    def info() -> dict:
        return answer(lambda r: r.info())

    @app.get("/api/pages/{page_id}/image", dependencies=guarded,
             responses={200: {"content": {"image/png": {}}}}, response_class=Response)
    def page_image(page_id: int, q: Annotated[Optional[str], Query(max_length=MAX_QUERY_CHARS)] = None,
                   dpi: Annotated[int, Query(ge=30, le=200)] = 80) -> Response:
        def draw(reader):
            if q:
                hit = reader.page_hit(page_id, q)
                if hit is None:
                    raise HTTPException(404, f"no page {page_id} in the index (or no words in q)")
                return hit.highlight(dpi=dpi)
            located = reader.page_file(page_id)
            if located is None:
                raise HTTPException(404, f"no page {page_id} in the index")
            from docpress.pdf.reader import render_page

            return render_page(located[0], located[1], dpi=dpi)
        image = answer(draw)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return Response(buffer.getvalue(), media_type="image/png")

    @app.get("/", response_class=HTMLResponse, dependencies=guarded, include_in_schema=False)
    def web_page() -> str:
        return PAGE

    return app
