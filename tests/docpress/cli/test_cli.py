"""The command line: each command's output, JSON shape, exit codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TOPICS, write_pdf
from typer.testing import CliRunner

from docpress.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory, encoder):
    from docpress import Index

    folder = tmp_path_factory.mktemp("cli")
    for name in ("volcanoes", "espresso", "football"):
        write_pdf(folder / "docs" / f"{name}.pdf", [TOPICS[name]])
    (folder / "docs" / "broken.pdf").write_text("%PDF-1.7 nothing else")
    Index.create(folder / "ix", encoder=encoder).close()  # so the CLI reuses the model cache
    return folder


def test_ingest_search_ls_info_rm(cli_index):
    ix = str(cli_index / "ix")
    result = runner.invoke(app, ["ingest", str(cli_index / "docs"), "--index", ix, "--json",
                                 "--meta", "team=ops"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert len(report["added"]) == 3 and report["pages"] == 3
    assert [Path(s["path"]).name for s in report["skipped"]] == ["broken.pdf"]

    result = runner.invoke(app, ["search", "descaling the coffee machine", "--index", ix,
                                 "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["method"] == "hybrid" and len(data["hits"]) == 2
    top = data["hits"][0]
    assert set(top) >= {"path", "page", "score", "snippet", "title", "text_source", "metadata",
                        "boxes"}
    assert Path(top["path"]).name == "espresso.pdf" and top["page"] == 0
    assert top["metadata"] == {"team": "ops"}

    result = runner.invoke(app, ["search", "lava", "--index", ix, "--meta", "team=ops"])
    assert result.exit_code == 0 and "volcanoes.pdf" in result.stdout

    result = runner.invoke(app, ["ls", "--index", ix, "--json"])
    assert sorted(Path(d["path"]).name for d in json.loads(result.stdout)) == \
        ["espresso.pdf", "football.pdf", "volcanoes.pdf"]

    result = runner.invoke(app, ["info", "--index", ix, "--json"])
    info = json.loads(result.stdout)
    assert info["documents"] == 3 and info["pages"] == 3 and info["encoder"] == "text"

    result = runner.invoke(app, ["rm", "football.pdf", "--index", ix])
    assert result.exit_code == 0 and "football.pdf" in result.stdout
    result = runner.invoke(app, ["rm", "football.pdf", "--index", ix])
    assert result.exit_code == 1 and "no indexed document" in result.stderr


def test_eval_json(cli_index, tmp_path):
    ix = str(cli_index / "ix")
    runner.invoke(app, ["ingest", str(cli_index / "docs"), "--index", ix])
    queries = tmp_path / "q.jsonl"
    queries.write_text(json.dumps({"qid": "1", "query": "why do volcanoes explode",
                                   "relevant": [{"doc": "volcanoes.pdf", "page": 0}],
                                   "doc": "volcanoes.pdf"}) + "\n")
    result = runner.invoke(app, ["eval", str(queries), "--index", ix, "--json", "-m", "dense",
                                 "-m", "bm25"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["results"]) == {"dense", "bm25"}
    assert data["results"]["dense"]["R@1"] == 100.0
    assert {"R@1", "R@5", "R@10", "nDCG@5", "MRR@10", "p50_ms"} <= set(data["results"]["dense"])

    result = runner.invoke(app, ["eval", str(queries), "--index", ix, "--within-doc", "-m", "maxsim"])
    assert result.exit_code == 0 and "within-document" in result.stdout


def test_errors_are_one_line(tmp_path):
    result = runner.invoke(app, ["search", "x", "--index", str(tmp_path / "none")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "no docpress index" in result.stderr

    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    result = runner.invoke(app, ["eval", str(bad), "--index", str(tmp_path / "none")])
    assert result.exit_code == 1 and "not a query line" in result.stderr


def test_ingest_with_another_text_model_records_it_and_searches(tmp_path, topic_dir):
    from docpress import Index
    from docpress.encoders.text import default_model_path

    model = default_model_path()  # a local model folder, as a user's other model would be
    result = runner.invoke(app, ["ingest", str(topic_dir), "--index", str(tmp_path / "ix"), "--model", model])
    assert result.exit_code == 0, result.output
    with Index.open(tmp_path / "ix") as index:
        assert index.manifest.encoder_config["model"] == model
        assert index.search("volcanic eruption lava", k=1)[0].path.endswith("volcanoes.pdf")
    bad = runner.invoke(app, ["ingest", str(topic_dir), "--index", str(tmp_path / "ix2"), "--encoder",
                              "optical", "--model", model])
    assert bad.exit_code == 1 and "--model is the text encoder's model" in bad.output
