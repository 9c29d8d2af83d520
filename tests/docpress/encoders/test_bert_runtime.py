"""The bundled MiniLM loaded without transformers gives the same vectors as through it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import TOPICS

from docpress.encoders.bert import load_local_bert
from docpress.encoders.text import TextTokenEncoder, default_model_path
from docpress.types import Page, Word


def _page(text: str) -> Page:
    words = [Word(w, (10.0 * i, 10.0, 10.0 * i + 8, 20.0)) for i, w in enumerate(text.split(" "))]
    return Page(0, 600.0, 800.0, words, "pdf", False)


@pytest.fixture(scope="module")
def both():
    return TextTokenEncoder(), TextTokenEncoder(runtime="transformers")


def test_the_fast_runtime_is_used_for_the_bundled_model(both):
    fast, slow = both
    assert (fast.runtime, slow.runtime) == ("torch", "transformers")
    assert fast.record() == slow.record()  # same vectors, same identity: indexes open with either


def test_pages_and_queries_match_the_transformers_runtime(both):
    fast, slow = both
    long_text = " ".join(TOPICS.values()) * 4  # several 256-token windows, padding in a batch
    pages = [_page(long_text), _page(TOPICS["taxes"]), _page("Ünïcode — café résumé 2024, naïve façade.")]
    for a, b in zip(fast.encode_pages(pages), slow.encode_pages(pages)):
        assert a.vectors.shape == b.vectors.shape and (a.words == b.words).all()
        assert np.min((a.vectors * b.vectors).sum(1)) > 0.999
        assert np.min((a.pooled * b.pooled).sum(1)) > 0.999
    queries = ["what was the net income this quarter?", "Ünïcode café"]
    for a, b in zip(fast.encode_queries(queries), slow.encode_queries(queries)):
        assert a.tokens == b.tokens and np.min((a.vectors * b.vectors).sum(1)) > 0.999


def test_anything_but_a_plain_bert_folder_goes_through_transformers(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    assert load_local_bert(str(model)) is not None
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "model_type": "mpnet"}))
    assert load_local_bert(str(model)) is None
    (model / "config.json").write_text(json.dumps({**config, "hidden_act": "relu"}))
    assert load_local_bert(str(model)) is None
    (model / "config.json").write_text(json.dumps(config))
    (model / "model.safetensors").unlink()
    assert load_local_bert(str(model)) is None
    assert load_local_bert("sentence-transformers/all-MiniLM-L6-v2") is None  # a hub id
