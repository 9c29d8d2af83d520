"""docpress tune: pseudo-queries without leaks, a head that learns, save/load, the tuned index, the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_pdf
from typer.testing import CliRunner

from docpress.cli import app
from docpress.errors import DocpressError
from docpress.tune import TokenHead, TuneOptions, cut_queries, hard_negatives, tune_index
from docpress.tune.learner import page_input
from docpress.tune.pseudo import _normal

pytestmark = pytest.mark.slow  # trains models

runner = CliRunner()

# Pages about made-up entities in a few domains: a pseudo-query (a sentence, a line, a span)
# names its entity and domain, the rest of its page does too, other pages of the domain do not.
DOMAINS = {
    "observatory": ["The {n} observatory pointed its telescope at a distant spiral galaxy.",
                    "Astronomers at {n} measured the redshift of the quasar overnight.",
                    "The dome of {n} opens when the sky is clear and dark.",
                    "{n} catalogued three new comets during the winter survey.",
                    "A spectrograph at {n} splits starlight into its colours.",
                    "Funding for the {n} radio dish was renewed for five years."],
    "bakery": ["The {n} bakery proves its sourdough for eighteen hours.",
               "Bakers at {n} start the ovens before dawn every morning.",
               "{n} sells rye loaves, croissants and cinnamon buns.",
               "Flour for {n} comes from a mill two valleys away.",
               "The {n} pastry chef won a prize for her almond tart.",
               "Customers queue outside {n} on Saturday mornings."],
    "shipyard": ["The {n} shipyard launched a container vessel in March.",
                 "Welders at {n} repaired the hull of an old ferry.",
                 "{n} builds tugboats and small cargo ships for the coast.",
                 "A dry dock at {n} can lift ships of ninety thousand tonnes.",
                 "The {n} crane lifted the engine into the new freighter.",
                 "Orders at {n} doubled after the harbour was dredged."],
    "clinic": ["The {n} clinic vaccinated two thousand children last year.",
               "Nurses at {n} treat fractures, burns and fevers.",
               "{n} opened a new wing for cardiology patients.",
               "Doctors at {n} run a weekly diabetes screening.",
               "The {n} pharmacy stocks antibiotics and insulin.",
               "Patients at {n} wait less than an hour on average."],
    "railway": ["The {n} railway runs freight trains through the mountains.",
                "Engineers at {n} replaced the signals on the northern line.",
                "{n} bought twelve electric locomotives this spring.",
                "A tunnel on the {n} line was closed for repairs.",
                "Passengers on {n} trains rose by a fifth after the timetable change.",
                "The {n} depot services carriages overnight."],
}
SYLLABLES = ["val", "dor", "keth", "mir", "zan", "qua", "bel", "rith", "oss", "tur", "lim", "vex",
             "nor", "sab", "gral", "fen", "hux", "pel", "wyn", "cor"]
OPTIONS = dict(dims=64, steps=120, batch_size=16, eval_pages=30, eval_queries_per_page=3, seed=0)


def corpus_pages(n_pages: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    names: set[str] = set()
    while len(names) < n_pages:
        names.add("".join(rng.choice(SYLLABLES, int(rng.integers(2, 4)))).capitalize())
    domains = sorted(DOMAINS)
    pages = []
    for name in sorted(names):
        domain = domains[int(rng.integers(len(domains)))]
        body = [s.format(n=name) for s in rng.permutation(DOMAINS[domain])]
        pages.append(f"{name} {domain} report\n" + "\n".join(body))
    return pages


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, encoder):
    """(index folder, TuneReport): 100 pages in 4 PDFs, tuned once; tests that write use copies."""
    from docpress import Index

    root = tmp_path_factory.mktemp("tune")
    pages = corpus_pages(100)
    for d in range(4):
        write_pdf(root / "pdfs" / f"doc{d}.pdf", pages[d::4])
    with Index.create(root / "ix", encoder=encoder) as index:
        index.add([root / "pdfs"])
        report = tune_index(index, TuneOptions(**OPTIONS))
    return root / "ix", report


def _copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "copy"))


def _maxsim_scores(index, queries: list[str]) -> list[list[tuple[str, int, float]]]:
    return [[(Path(h.path).name, h.page, h.score) for h in hits]
            for hits in index.search_many(queries, k=5, method="maxsim")]


# -- pseudo-queries ----------------------------------------------------------------------------
def test_pseudo_queries_never_show_their_text_in_their_positive(tuned, encoder):
    from docpress import Index
    from indexer.stores.base import Location

    with Index.open(tuned[0], encoder=encoder) as index:
        table = index.catalog.page_table()
        ids, texts = index.catalog.page_texts(table.page_ids)
        text_of = dict(zip(ids.tolist(), texts))
        rng = np.random.default_rng(1)
        checked = 0
        for row in range(0, len(table), 7):
            page_id = int(table.page_ids[row])
            vectors = index.store.page_vectors(page_id, Location(int(table.vec_start[row]), int(table.vec_count[row])))
            words = text_of[page_id].split(" ")
            for q in cut_queries(0, text_of[page_id], vectors.words, vectors.boxes, 8, rng):
                positive = page_input(vectors.vectors, vectors.words, 0, q.cut)
                shown = positive.words[positive.keep()].numpy()
                lo, hi = q.cut
                assert not ((shown >= lo) & (shown < hi)).any()  # no vector of a cut word
                assert len(shown) == int(((vectors.words < lo) | (vectors.words >= hi)).sum())
                rest = " ".join(words[w] for w in sorted(set(shown.tolist())) if w >= 0)
                assert _normal(q.text) not in _normal(rest)
                checked += 1
        assert checked > 50


def test_a_piece_repeated_elsewhere_on_its_page_is_never_a_query():
    repeated = "Net sales of the lighting segment increased sharply."
    once = "Other income was flat in the year."
    text = " ".join([repeated, once, repeated, "Headcount grew in every region we serve today."])
    words = text.split(" ")
    boxes = np.asarray([[10 * i, 0, 10 * i + 8, 10] for i in range(len(words))], np.float32)  # one line
    queries = cut_queries(0, text, np.arange(len(words)), boxes, 50, np.random.default_rng(0))
    sentences = {q.text for q in queries if q.kind == "sentence"}
    assert once in sentences and repeated not in sentences
    for q in queries:
        rest = words[:q.cut[0]] + words[q.cut[1]:]
        assert _normal(q.text) not in _normal(" ".join(rest))


def test_hard_negatives_skip_the_own_page_copies_and_pages_that_answer():
    from docpress.tune.pseudo import PseudoQuery

    texts = ["the harbour crane lifted a freighter engine at dawn",
             "a crane lifted the freighter engine near the harbour wall",
             "the harbour crane lifted one freighter engine at dawn",  # near-copy of page 0
             "crane lifted a freighter engine while gulls circled",  # holds the query's words
             "bakers proved sourdough overnight"]
    query = PseudoQuery("crane lifted a freighter engine", 0, (2, 7), "span")
    assert hard_negatives([query], texts, near_duplicate=0.8).tolist() == [1]


def test_batches_keep_a_pages_copies_apart():
    from docpress.train.data import TrainSet

    groups = np.repeat(np.arange(6), 3)  # 6 pages, 3 cut copies each
    data = TrainSet(list(range(18)), list(range(18)), np.arange(18), groups=groups)
    batches = data.batches(6, np.random.default_rng(0))
    for _ in range(20):
        pages, queries = next(batches)
        assert len(set(groups[pages].tolist())) == len(pages) == 6
        assert (pages == queries).all()


# -- the head ------------------------------------------------------------------------------------
def test_tuned_head_beats_its_pca_start_on_held_out_pseudo_queries(tuned):
    report = tuned[1]
    before, after = report.held_out["before"], report.held_out["after"]
    assert report.eval_queries >= 45 and report.steps == OPTIONS["steps"]
    assert after["R@1"] >= before["R@1"] + 20, report.held_out
    assert after["MRR"] > before["MRR"]


def test_head_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    head = TokenHead.from_pca(rng.standard_normal((500, 48)).astype(np.float32), 16)
    assert torch.allclose(head.weight @ head.weight.T, torch.eye(16), atol=1e-5)  # PCA rows: orthonormal
    with torch.no_grad():
        head.weight.add_(0.01 * torch.randn(16, 48, generator=torch.Generator().manual_seed(0)))
    head.info.data_hash, head.info.steps = "abc", 7
    head.save(tmp_path / "head")
    loaded = TokenHead.load(tmp_path / "head")
    x = rng.standard_normal((10, 48)).astype(np.float32)
    assert np.array_equal(loaded.project(x), head.project(x))
    assert loaded.content_hash() == head.content_hash()
    assert (loaded.info.data_hash, loaded.info.steps, loaded.out_dim) == ("abc", 7, 16)
    np.testing.assert_allclose(np.linalg.norm(loaded.project(x), axis=1), 1, rtol=1e-5)

    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(16, 48)}, str(tmp_path / "head" / "head.safetensors"))
    with pytest.raises(DocpressError, match="hash"):
        TokenHead.load(tmp_path / "head")


# -- the tuned index -----------------------------------------------------------------------------
def test_tuned_index_reopened_scores_identically(tuned, encoder):
    from docpress import Index

    folder, report = tuned
    queries = ["which bakery sells rye loaves", "electric locomotives bought this spring", "telescope survey"]
    with Index.open(folder, encoder=encoder) as index:
        record = index.manifest.tuned
        assert record["head_hash"] == report.head_hash and record["data_hash"] == report.data_hash
        assert record["dims"] == 64 and record["methods"] == ["maxsim"]
        lane = index.tuned
        assert lane is not None and len(lane.store.tokens) == len(index.store.tokens)
        first = _maxsim_scores(index, queries)
        table = index.catalog.page_table()
        qv = index.encoder.encode_queries(queries[:1])[0]
        raw = index.store.maxsim(qv.vectors, table)
        assert not np.allclose(lane.maxsim(index.catalog, qv, table), raw)  # really the tuned lane
    with Index.open(folder, encoder=encoder) as index:
        assert _maxsim_scores(index, queries) == first
    assert report.bytes_per_page > 0 and report.head_bytes > 64 * 384 * 4


def test_pages_added_after_tuning_are_projected_on_the_next_search(tuned, encoder, tmp_path):
    from docpress import Index

    folder = _copy(tuned[0], tmp_path)
    write_pdf(tmp_path / "new" / "lighthouse.pdf", ["The Skerryvore lighthouse keeper trims the lamp wick "
                                                    "every evening and logs passing steamers."])
    with Index.open(folder, encoder=encoder) as index:
        rows_before = len(index.tuned.store.tokens)
        index.add([tmp_path / "new"])
        hits = index.search("lighthouse keeper trims the lamp", k=1, method="maxsim")
        assert Path(hits[0].path).name == "lighthouse.pdf"
        assert len(index.tuned.store.tokens) == len(index.store.tokens) > rows_before


def test_an_interrupted_install_leaves_the_index_as_it_was(tuned, encoder, tmp_path, monkeypatch):
    from docpress import Index
    from docpress.tune import run

    folder = _copy(tuned[0], tmp_path)
    queries = ["pastry chef almond tart"]
    with Index.open(folder, encoder=encoder) as index:
        before, record = _maxsim_scores(index, queries), dict(index.manifest.tuned)
        head = TokenHead.load(index.tuned.directory / "head")
        with torch.no_grad():
            head.weight.mul_(-1)

        def crash(path):
            raise KeyboardInterrupt

        monkeypatch.setattr(run, "_fsync_dir", crash)
        with pytest.raises(KeyboardInterrupt):
            run.install(index, head, {**record, "head_hash": head.content_hash()})
    with Index.open(folder, encoder=encoder) as index:
        assert index.manifest.tuned == record and _maxsim_scores(index, queries) == before
    monkeypatch.undo()
    with Index.open(folder, encoder=encoder) as index:  # the next install cleans up after the crash
        run.install(index, head, {**record, "head_hash": head.content_hash()})
        assert not list(folder.glob(run.TUNED_TMP_PREFIX + "*"))
        assert sorted(p.name for p in folder.glob("tuned-*")) == [f"tuned-{head.content_hash()}"]


# -- the command line ----------------------------------------------------------------------------
def test_cli_tune_json_and_same_seed_same_head(tuned, tmp_path):
    results = []
    for name in ("a", "b"):
        folder = Path(shutil.copytree(tuned[0], tmp_path / name))
        result = runner.invoke(app, ["tune", "--index", str(folder), "--steps", "15", "--dims", "32",
                                     "--seed", "3", "--json"])
        assert result.exit_code == 0, result.output
        results.append(json.loads(result.stdout))
    data = results[0]
    assert set(data) >= {"folder", "head_hash", "data_hash", "dims", "pages", "queries", "steps", "stopped",
                         "train_seconds", "held_out", "methods", "head_bytes", "tuned_bytes", "bytes_per_page"}
    assert data["dims"] == 32 and data["steps"] == 15 and set(data["held_out"]) == {"raw", "before", "after"}
    assert results[1]["head_hash"] == data["head_hash"] and results[1]["data_hash"] == data["data_hash"]
    assert sorted(p.name for p in (tmp_path / "a").glob("tuned-*")) == [data["folder"]]  # the old lane is gone

    result = runner.invoke(app, ["tune", "--index", str(tmp_path / "a"), "--steps", "5"])
    assert result.exit_code == 0 and "held-out Recall@1" in result.stdout


def test_cli_tune_refuses_empty_and_qdrant_indexes_in_one_line(tmp_path, encoder):
    from docpress import Index

    Index.create(tmp_path / "empty", encoder=encoder).close()
    Index.create(tmp_path / "qd", encoder=encoder, store="qdrant+path:qd/pages").close()
    for name, message in (("empty", "no pages"), ("qd", "needs the embedded store")):
        result = runner.invoke(app, ["tune", "--index", str(tmp_path / name)])
        assert result.exit_code == 1 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1


def test_compression_keeps_the_tuned_lane_projected_from_the_codes(tuned, encoder, tmp_path, monkeypatch):
    import docpress.recode as ic
    from docpress import Index
    from indexer.stores.projected import ROWS_PREFIX

    folder = _copy(tuned[0], tmp_path)
    queries = ["which bakery sells rye loaves", "electric locomotives bought this spring"]
    monkeypatch.setattr(ic, "AUTO_MIN_PAGES", 1)
    write_pdf(tmp_path / "new" / "extra.pdf", ["The ferry timetable changes in October; the last "
                                               "boat leaves the harbour at nine in the evening."])
    with Index.open(folder, encoder=encoder) as index:
        record = dict(index.manifest.tuned)
        index.add([tmp_path / "new"])  # "auto" compresses a tuned index too now
        assert index.compression == ic.DEFAULT_PRESET and index.manifest.tuned == record
        lane = index.tuned
        assert lane is not None and lane.store.base is index.store
        assert len(lane.store.tokens) == index.store.n_rows()  # every coded row projected again
        assert lane.store.rows_dir.name == ROWS_PREFIX + index.store.dir.name
        hits = index.search("when does the last ferry leave", k=1, method="maxsim")
        assert Path(hits[0].path).name == "extra.pdf"
        after = _maxsim_scores(index, queries)
        # the old questions still find pages that say what they ask (many pages tie on them,
        # so the order among those may move with the codes)
        for query, phrase in zip(queries, ("rye loaves", "electric locomotives")):
            top = index.search(query, k=1, method="maxsim")[0]
            assert phrase in index.catalog.page(top.page_id).text
        table = index.catalog.page_table()
        qv = index.encoder.encode_queries(queries[:1])[0]
        assert not np.allclose(lane.maxsim(index.catalog, qv, table),
                               index.lane("main").maxsim(index.catalog, qv, table))  # really tuned
    with Index.open(folder, encoder=encoder) as index:
        assert index.tuned is not None and _maxsim_scores(index, queries) == after


def test_rows_projected_from_another_base_are_never_read(tuned, encoder, tmp_path):
    from docpress import Index
    from indexer.stores.projected import ROWS_PREFIX, TOKENS

    folder = _copy(tuned[0], tmp_path)
    with Index.open(folder, encoder=encoder) as index:
        rows_dir, rows = index.tuned.store.rows_dir, len(index.tuned.store.tokens)
        first = _maxsim_scores(index, ["telescope survey"])
    # as if the rows had been projected from another generation of the base folder
    rows_dir.rename(rows_dir.with_name(ROWS_PREFIX + "compressed-999"))
    with Index.open(folder, encoder=encoder) as index:
        assert len(index.tuned.store.tokens) == 0  # this base's rows start empty, never borrowed
        assert _maxsim_scores(index, ["telescope survey"]) == first  # projected again on demand
        assert len(index.tuned.store.tokens) == rows


def test_rows_of_the_older_layout_are_adopted(tuned, encoder, tmp_path):
    from docpress import Index
    from indexer.stores.projected import LEGACY_SOURCE, TOKENS

    folder = _copy(tuned[0], tmp_path)
    with Index.open(folder, encoder=encoder) as index:
        rows_dir, rows = index.tuned.store.rows_dir, len(index.tuned.store.tokens)
        base = index.store.dir.name
        first = _maxsim_scores(index, ["telescope survey"])
    (rows_dir / TOKENS).rename(rows_dir.parent / TOKENS)  # where older versions kept them
    (rows_dir.parent / LEGACY_SOURCE).write_text(json.dumps({"base": base}))
    with Index.open(folder, encoder=encoder) as index:
        assert len(index.tuned.store.tokens) == rows  # moved, not projected again
        assert not (rows_dir.parent / TOKENS).exists()
        assert _maxsim_scores(index, ["telescope survey"]) == first
