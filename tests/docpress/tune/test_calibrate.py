"""Label-free calibration of hybrid's weights: deterministic for a seed, fitted on one half of
the pseudo-queries only, stored in the manifest and used by search after reopening."""

from __future__ import annotations

import json
import shutil
from itertools import permutations

import numpy as np
import pytest
from conftest import TOPICS, write_pdf
from typer.testing import CliRunner

from docpress.cli import app
from docpress.tune.calibrate import (
    BM25_GRID,
    MAXSIM_GRID,
    CalibrateOptions,
    calibrate_fusion,
    choose,
    split_rows,
)

pytestmark = pytest.mark.slow  # encodes pseudo-queries and answer pages


@pytest.fixture(scope="module")
def corpus_index(tmp_path_factory, encoder):
    """24 pages, each two topic paragraphs: enough text to cut pseudo-queries from."""
    from docpress import Index

    folder = tmp_path_factory.mktemp("calibrate")
    texts = [f"{TOPICS[a]} {TOPICS[b]}" for a, b in permutations(TOPICS, 2)][:24]
    for i in range(0, len(texts), 4):
        write_pdf(folder / "pdfs" / f"part{i // 4}.pdf", texts[i:i + 4])
    index = Index.create(folder / "ix", encoder=encoder)
    index.add([folder / "pdfs"])
    index.close()
    return folder / "ix"


def _copy(src, tmp_path, name):
    shutil.copytree(src, tmp_path / name)
    return tmp_path / name


def test_same_seed_same_calibration_and_nothing_kept_below_the_gain(corpus_index, tmp_path, encoder):
    from docpress import Index

    reports = []
    for name in ("a", "b"):
        with Index.open(_copy(corpus_index, tmp_path, name), encoder=encoder) as index:
            reports.append(calibrate_fusion(index, CalibrateOptions(queries=40, seed=5, min_gain=1000)))
            assert index.manifest.fusion == {}  # a gain of 1000 points is never reached
    first, second = (r.to_dict() for r in reports)
    for r in (first, second):
        r.pop("seconds")
    assert first == second and first["applied"] is False
    assert len(first["fit"]) == len(BM25_GRID) * len(MAXSIM_GRID)


def test_a_kept_calibration_is_stored_and_used_after_reopening(corpus_index, tmp_path, encoder):
    from docpress import Index
    from retriever.lanes import MAIN

    folder = _copy(corpus_index, tmp_path, "kept")
    with Index.open(folder, encoder=encoder) as index:
        report = calibrate_fusion(index, CalibrateOptions(queries=40, seed=1, min_gain=-1000))
    assert report.applied
    with Index.open(folder, encoder=encoder) as index:
        record = index.manifest.fusion
        assert (record["bm25"], record["maxsim"]) == (report.chosen["bm25"], report.chosen["maxsim"])
        assert index.searcher.page_weights["bm25"] == report.chosen["bm25"]
        assert index.lane(MAIN).weight == report.chosen["maxsim"]
        assert index.search("volcanic eruption lava", k=3)  # searches with them
    result = CliRunner().invoke(app, ["calibrate", "--index", str(folder), "--reset"])
    assert result.exit_code == 0
    with Index.open(folder) as index:
        assert index.manifest.fusion == {} and index.searcher.page_weights["bm25"] == 0.75


def test_the_choice_never_looks_at_the_held_out_half():
    settings = [(b, m) for b in BM25_GRID for m in MAXSIM_GRID]
    rng = np.random.default_rng(0)
    ndcg = rng.random((60, len(settings)))
    fit, held = split_rows(60, seed=2)
    assert not set(fit) & set(held) and len(fit) + len(held) == 60
    chosen = choose(ndcg, fit, settings, (0.75, 1.0))
    scrambled = ndcg.copy()
    scrambled[held] = rng.random((len(held), len(settings)))  # anything at all on the other half
    scrambled[held, 0] = 10.0
    assert choose(scrambled, fit, settings, (0.75, 1.0)) == chosen
    assert chosen == int(np.argmax(ndcg[fit].mean(0)))


def test_cli_calibrate_json_and_refusal(corpus_index, tmp_path):
    folder = _copy(corpus_index, tmp_path, "cli")
    result = CliRunner().invoke(app, ["calibrate", "--index", str(folder), "--queries", "30", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["queries"] >= 20 and set(data["held_out"]) == {"chosen", "default"}
    missing = CliRunner().invoke(app, ["calibrate", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no docpress index" in missing.output
