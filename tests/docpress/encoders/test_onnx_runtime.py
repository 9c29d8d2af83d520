"""The text encoder on ONNX Runtime: fp32 gives torch fp32's vectors, int8 is close and is
its own encoder identity, so an index never mixes the two."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TOPICS, write_pdf
from typer.testing import CliRunner

from docpress import Index
from docpress.cli import app
from docpress.encoders.text import TextTokenEncoder
from docpress.errors import IndexMismatchError
from docpress.types import Page, Word

pytest.importorskip("onnx")  # the export needs it: pip install 'docpress[onnx]'


def _page(text: str) -> Page:
    words = [Word(w, (10.0 * i, 10.0, 10.0 * i + 8, 20.0)) for i, w in enumerate(text.split(" "))]
    return Page(0, 600.0, 800.0, words, "pdf", False)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCPRESS_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def runtimes(cache):
    return {"torch": TextTokenEncoder(dtype="float32"), "onnx": TextTokenEncoder(runtime="onnx"),
            "onnx-int8": TextTokenEncoder(runtime="onnx-int8")}


PAGES = [_page(" ".join(TOPICS.values()) * 3),  # several windows, padded in a batch
         _page(TOPICS["taxes"]), _page("Net revenue 2022: $17.6 billion, up 12% year over year.")]


def _cosines(a, b) -> np.ndarray:
    return np.concatenate([(x.vectors * y.vectors).sum(1) for x, y in zip(a, b)])


def test_onnx_fp32_gives_torch_fp32_vectors_and_the_same_identity(runtimes):
    torch_out = runtimes["torch"].encode_pages(PAGES)
    onnx_out = runtimes["onnx"].encode_pages(PAGES)
    for a, b in zip(torch_out, onnx_out):
        assert a.vectors.shape == b.vectors.shape and (a.words == b.words).all()
    assert _cosines(torch_out, onnx_out).min() > 0.9999
    assert runtimes["onnx"].config_hash() == runtimes["torch"].config_hash()
    assert runtimes["onnx"].record()["encoder_options"] == {"runtime": "onnx"}


def test_int8_is_close_to_fp32_but_is_another_encoder(runtimes):
    cos = _cosines(runtimes["torch"].encode_pages(PAGES), runtimes["onnx-int8"].encode_pages(PAGES))
    assert cos.mean() > 0.97 and cos.min() > 0.85
    assert runtimes["onnx-int8"].config()["runtime"] == "onnx-int8"
    assert runtimes["onnx-int8"].config_hash() != runtimes["torch"].config_hash()
    query = runtimes["onnx-int8"].encode_queries(["how are taxes filed"])[0]
    assert query.vectors.shape[1] == 384 and query.tokens[:2] == ["how", "are"]


def test_the_export_is_cached_once_per_runtime(runtimes, cache):
    files = sorted(p.name for p in (cache / "onnx").iterdir())
    assert len(files) == 2 and all(f.endswith(".onnx") for f in files)
    TextTokenEncoder(runtime="onnx-int8")  # loads the cached file, exports nothing
    assert sorted(p.name for p in (cache / "onnx").iterdir()) == files


def test_an_int8_index_searches_with_int8_and_refuses_torch(tmp_path, runtimes, encoder):
    write_pdf(tmp_path / "docs" / "taxes.pdf", [TOPICS["taxes"]])
    write_pdf(tmp_path / "docs" / "espresso.pdf", [TOPICS["espresso"]])
    with Index.create(tmp_path / "ix", encoder=runtimes["onnx-int8"]) as index:
        assert len(index.add([tmp_path / "docs"]).added) == 2
    with Index.open(tmp_path / "ix") as index:
        assert index.encoder.runtime == "onnx-int8"  # rebuilt from the manifest, not torch
        assert index.search("descaling the coffee machine", k=1)[0].path.endswith("espresso.pdf")
    with pytest.raises(IndexMismatchError, match="was built with encoder"):
        Index.open(tmp_path / "ix", encoder=encoder)


def test_the_cli_refuses_a_runtime_whose_vectors_differ(tmp_path, runtimes):
    write_pdf(tmp_path / "a.pdf", [TOPICS["taxes"]])
    write_pdf(tmp_path / "b.pdf", [TOPICS["volcanoes"]])
    runner = CliRunner()
    ix = str(tmp_path / "ix")
    result = runner.invoke(app, ["ingest", str(tmp_path / "a.pdf"), "--index", ix, "--runtime", "onnx-int8"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ingest", str(tmp_path / "b.pdf"), "--index", ix, "--runtime", "torch"])
    assert result.exit_code == 1 and "was built with encoder" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, ["ingest", str(tmp_path / "b.pdf"), "--index", ix, "--runtime", "tpu"])
    assert result.exit_code == 1 and "unknown runtime 'tpu'" in result.output
