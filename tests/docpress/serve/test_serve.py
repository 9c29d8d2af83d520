"""docpress serve: endpoints, filters, errors, the API key, file safety, the web page."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import QUESTIONS, TOPICS, write_pdf

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from docpress import Index  # noqa: E402
from docpress.serve import create_app  # noqa: E402

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("serve")
    with Index.create(root / "ix", encoder=encoder) as index:
        for name in ("volcanoes", "espresso", "football", "taxes"):
            write_pdf(root / "docs" / f"{name}.pdf", [TOPICS[name]])
        index.add([root / "docs"], metadata={"team": "ops"})
        write_pdf(root / "more" / "photosynthesis.pdf", [TOPICS["photosynthesis"]])
        index.add([root / "more"], metadata={"team": "lab"})
    app = create_app(root / "ix", api_key=KEY, readers=2)
    with TestClient(app) as client:
        client.headers["X-API-Key"] = KEY
        yield root, client


def test_search_finds_the_page_and_filters_pass_through(served):
    root, client = served
    response = client.get("/api/search", params={"q": QUESTIONS["espresso"], "k": 3})
    assert response.status_code == 200
    hits = response.json()["hits"]
    assert Path(hits[0]["path"]).name == "espresso.pdf" and hits[0]["page"] == 0 and hits[0]["page_label"] == 1
    assert hits[0]["text"].startswith("To descale") and hits[0]["regions"]
    assert client.get(hits[0]["image_url"]).headers["content-type"] == "image/png"
    only_lab = client.get("/api/search", params={"q": QUESTIONS["espresso"], "meta": "team=lab"}).json()["hits"]
    assert {Path(h["path"]).name for h in only_lab} == {"photosynthesis.pdf"}
    by_glob = client.post("/api/search", json={"query": QUESTIONS["espresso"], "doc": "*volcano*"}).json()["hits"]
    assert {Path(h["path"]).name for h in by_glob} == {"volcanoes.pdf"}
    assert len(client.get("/api/documents").json()) == 5
    assert client.get("/api/info").json()["pages"] == 5


@pytest.mark.parametrize("params, status", [
    ({"q": "x", "k": 0}, 422), ({"q": "x", "k": 1000}, 422), ({"q": "y" * 5000}, 422), ({"q": ""}, 422),
    ({"q": "???"}, 400), ({"q": "lava", "method": "nope"}, 422), ({"q": "lava", "meta": "novalue"}, 422)])
def test_bad_input_is_a_4xx_with_one_line(served, params, status):
    _, client = served
    response = client.get("/api/search", params=params)
    assert response.status_code == status
    error = response.json()["error"]
    assert error and "\n" not in error


def test_the_api_key_is_checked_everywhere_but_health(served):
    root, client = served
    bare = TestClient(client.app)
    assert bare.get("/health").json() == {"status": "ok"}
    for path in ("/", "/api/search?q=lava", "/api/documents", "/api/info", "/api/pages/1/image"):
        assert bare.get(path).status_code == 401, path
        assert bare.get(path, headers={"X-API-Key": "wrong"}).status_code == 401, path
    assert bare.get("/api/search?q=lava", headers={"X-API-Key": KEY}).status_code == 200
    assert bare.get(f"/api/search?q=lava&key={KEY}").status_code == 200


def test_requests_never_open_a_file_outside_the_index(served, monkeypatch):
    import docpress.pdf.reader as reader

    root, client = served
    opened = []
    original = reader.open_pdf
    monkeypatch.setattr(reader, "open_pdf", lambda path: (opened.append(str(path)), original(path))[1])
    for path in ("/api/pages/1/image", "/api/pages/3/image?q=lava", "/api/pages/999/image",
                 "/api/pages/-1/image", "/api/pages/..%2F..%2Fetc%2Fpasswd/image",
                 "/api/search?q=passwd&doc=/etc/passwd", "/api/pages/1/image?dpi=5000"):
        client.get(path)
    indexed = {str(p.resolve()) for p in root.rglob("*.pdf")}
    assert opened and set(opened) <= indexed
    assert client.get("/api/pages/999/image").status_code == 404
    assert client.get("/api/pages/1/image?dpi=5000").status_code == 422


def test_searches_answer_while_an_ingest_writes(served, encoder):
    root, client = served
    done, statuses = threading.Event(), []

    def load() -> None:
        while not done.is_set():
            statuses.append(client.get("/api/search", params={"q": QUESTIONS["volcanoes"], "k": 2}).status_code)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        with Index.open(root / "ix", encoder=encoder) as writer:
            write_pdf(root / "late" / "late-volcano.pdf", [TOPICS["volcanoes"] + " A later report."])
            writer.add([root / "late"])
            writer.remove("late-volcano.pdf")
    finally:
        done.set()
        for t in threads:
            t.join()
    assert len(statuses) > 3 and set(statuses) == {200}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_web_page_in_a_real_browser(served):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    import uvicorn

    root, client = served
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/?key={KEY}&q=" + QUESTIONS["football"].replace(" ", "+")
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
                              "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    first = dom.split('class="hit"')[1] if 'class="hit"' in dom else ""
    assert "football.pdf" in first, dom[-2000:]
