"""Training the optical lane: the ColPali loss, distillation from the text lane, checkpoints,
and the optical lane end to end (index, reopen, CLI).

One tiny random DeepEncoder (real patch size and compression, tiny widths) is distilled once
per module on 16 one-topic pages the tests draw; every other test reads that model.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from docpress.encoders.optical.encoder import DeepEncoderConfig, OpticalEncoder
from docpress.maxsim import padded_maxsim
from docpress.train import (
    DistillOptions,
    OpticalLearner,
    TrainConfig,
    colpali_loss,
    distill_set,
    fit,
    retrieval_metrics,
    score_matrix,
)

pytestmark = pytest.mark.slow  # trains models

runner = CliRunner()

# Four short sentences per topic, set large so the tiny model's 512-px view still shows words.
TOPICS = {
    "photosynthesis": ["Green plants turn sunlight into sugar.", "Chlorophyll absorbs red and blue light.",
                       "Leaves release oxygen into the air.", "The Calvin cycle fixes carbon dioxide."],
    "volcanoes": ["Magma rises through cracks in the crust.", "Sticky lava traps gas and explodes.",
                  "Ash clouds drift from steep volcanoes.", "Basalt flows build broad shield volcanoes."],
    "football": ["The goalkeeper saved two penalty kicks.", "The striker scored the winning goal.",
                 "Supporters sang in the home stadium.", "The club won the league title."],
    "espresso": ["Descale the espresso machine every month.", "Fill the tank with descaling solution.",
                 "Rinse the steam wand with fresh water.", "Grind the coffee beans very finely."],
    "taxes": ["Revenue rose to four hundred million dollars.", "Net income was seventy one million.",
              "Operating costs fell during the quarter.", "Capital spending reached thirty eight million."],
    "astronomy": ["Telescopes reveal distant spiral galaxies.", "The moon orbits the earth monthly.",
                  "Stars fuse hydrogen into helium.", "Comets grow bright tails near the sun."],
    "baking": ["Knead the bread dough for ten minutes.", "Yeast makes the dough rise slowly.",
               "Bake the loaf in a hot oven.", "Flour, water and salt form the base."],
    "sailing": ["The sailors hoisted the main sail.", "Strong winds pushed the boat across the bay.",
                "The captain checked the nautical charts.", "Waves splashed over the wooden deck."],
    "medicine": ["The doctor prescribed antibiotics for the infection.", "Nurses measured the blood pressure.",
                 "Vaccines train the immune system.", "The surgeon repaired a broken bone."],
    "chess": ["The knight jumps over other pieces.", "White opened with the queen's gambit.",
              "Checkmate ends the game at once.", "Bishops move along the diagonals."],
    "gardening": ["Water the tomato plants every morning.", "Compost makes the soil rich and dark.",
                  "Prune the roses in early spring.", "Earthworms loosen the garden beds."],
    "railways": ["The steam locomotive pulled twelve carriages.", "Passengers waited on the station platform.",
                 "Signals control trains on the track.", "Fast trains reach three hundred kilometres an hour."],
    "music": ["The orchestra played a Beethoven symphony.", "Violins carried the slow melody.",
              "The drummer kept a steady rhythm.", "The choir sang in four parts."],
    "weather": ["Heavy rain flooded the river valley.", "Thunderstorms brought lightning and hail.",
                "A cold front lowered the temperature.", "Forecasters predicted snow for the weekend."],
    "computing": ["The processor executes billions of instructions.", "Memory stores programs and data.",
                  "Compilers translate source code into machine code.", "Networks connect servers worldwide."],
    "oceans": ["Coral reefs shelter colourful fish.", "Whales migrate across the cold ocean.",
               "Tides rise and fall twice a day.", "Deep trenches hide strange creatures."],
}
PAGES_PER_PDF = 4


def write_topic_pdfs(folder: Path) -> list[Path]:
    """Four PDFs of four pages, one topic a page, 24-pt text."""
    import pymupdf

    folder.mkdir(parents=True, exist_ok=True)
    names = list(TOPICS)
    paths = []
    for d in range(len(names) // PAGES_PER_PDF):
        doc = pymupdf.open()
        for name in names[d * PAGES_PER_PDF:(d + 1) * PAGES_PER_PDF]:
            page = doc.new_page()
            text = name.upper() + "\n\n" + "\n\n".join(TOPICS[name])
            page.insert_textbox(pymupdf.Rect(50, 50, 560, 780), text, fontsize=24)
        paths.append(folder / f"topics{d}.pdf")
        doc.save(paths[-1])
        doc.close()
    return paths


def topic_page(name: str) -> tuple[str, int]:
    i = list(TOPICS).index(name)
    return f"topics{i // PAGES_PER_PDF}.pdf", i % PAGES_PER_PDF


def tiny_config() -> DeepEncoderConfig:
    return DeepEncoderConfig(sam_hidden=32, sam_layers=2, sam_heads=2, sam_global=[1], sam_out=32,
                             compress_channels=[48, 64], clip_hidden=64, clip_layers=2, clip_heads=2,
                             clip_mlp=128, projector_dim=None)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A random-init tiny optical model directory (tiny mode, MiniLM query tower, 64-d)."""
    path = tmp_path_factory.mktemp("tiny") / "optical-tiny"
    OpticalEncoder(model_config=tiny_config(), dim=64, random_init=True, mode="tiny", dtype="float32").save(path)
    return path


@pytest.fixture(scope="module")
def pdfs(tmp_path_factory) -> list[Path]:
    return write_topic_pdfs(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dir, pdfs, encoder):
    """The tiny model distilled from the text encoder (the session's `encoder`) on the corpus."""
    optical = OpticalEncoder(tiny_dir, dtype="float32")
    learner = OpticalLearner(optical, query_tower=encoder)
    data = distill_set(pdfs, learner, encoder, DistillOptions(queries_per_page=12, holdout=1, min_words=5))
    before = retrieval_metrics(score_matrix(learner, data.eval_queries, data.pages), data.eval_positives)
    # a softer temperature and a strong cell term suit a random-init model (measured: held-out
    # R@1 ~90% over 3 corpus seeds, against ~70% at ColPali's 0.02 with cell weight 1)
    report = fit(learner, data, TrainConfig(steps=250, batch_size=16, temperature=0.05, cell_weight=3.0,
                                            seed=0))
    after = retrieval_metrics(score_matrix(learner, data.eval_queries, data.pages), data.eval_positives)
    out = learner.save(tmp_path_factory.mktemp("trained") / "optical-distilled")
    return SimpleNamespace(encoder=optical, learner=learner, data=data, before=before, after=after,
                           report=report, dir=out)


# -- the objective --------------------------------------------------------------------------------
def test_colpali_loss_on_a_hand_made_batch():
    """Queries whose tokens equal their own page's vectors: ~0 loss; pages permuted: much higher."""
    eye = torch.eye(4)
    queries = torch.stack([eye[[i, i]] for i in range(4)])  # (4 queries, 2 tokens, 4-d)
    pages = torch.stack([eye[[i, (i + 1) % 4, (i + 2) % 4]] * torch.tensor([[1.0], [0.5], [0.5]])
                         for i in range(4)])  # page i: its own axis at 1, two others at 0.5
    q_mask = torch.ones(4, 2, dtype=torch.bool)
    p_mask = torch.ones(4, 3, dtype=torch.bool)
    scores = padded_maxsim(queries, q_mask, pages, p_mask)
    assert torch.allclose(scores.diagonal(), torch.ones(4))
    assert (scores - torch.eye(4) * scores).max() <= 0.5  # other pages match at most half as well
    perfect = colpali_loss(scores, temperature=0.02)
    assert float(perfect) < 1e-6
    permuted = colpali_loss(scores[:, [1, 2, 3, 0]], temperature=0.02)
    assert float(permuted) > 10.0
    # the loss is softmax cross-entropy over pages at the given temperature
    expected = torch.nn.functional.cross_entropy(scores[:, [1, 2, 3, 0]] / 0.02, torch.arange(4))
    assert torch.isclose(permuted, expected)
    assert float(colpali_loss(scores, temperature=1.0)) > float(perfect)  # softer, less sure


def test_maxsim_scores_ignore_padding_and_match_a_loop():
    gen = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(3, 5, 8, generator=gen), dim=-1)
    pages = torch.nn.functional.normalize(torch.randn(4, 7, 8, generator=gen), dim=-1)
    q_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    p_mask = torch.ones(4, 7, dtype=torch.bool)
    p_mask[2, 3:] = False
    scores = padded_maxsim(queries, q_mask, pages, p_mask)
    for q in range(3):
        for p in range(4):
            sims = queries[q][q_mask[q]] @ pages[p][p_mask[p]].T
            assert torch.isclose(scores[q, p], sims.max(1).values.mean(), atol=1e-6)


# -- distillation ---------------------------------------------------------------------------------
def test_distilled_model_retrieves_held_out_queries_much_better(trained):
    """Held-out sentences (never cut into training queries) find their page after distillation."""
    data = trained.data
    assert len(data.pages) == len(TOPICS) and len(data.eval_queries) == len(TOPICS)
    assert not set(data.eval_texts) & set(data.query_texts)
    assert trained.report.losses[-1] < trained.report.losses[0]
    assert trained.before["R@1"] <= 25.0  # random: about 1 in 16
    assert trained.after["R@1"] >= trained.before["R@1"] + 40.0, (trained.before, trained.after)
    assert trained.after["MRR"] >= trained.before["MRR"] + 30.0, (trained.before, trained.after)


def test_training_is_deterministic_on_cpu(trained, tiny_dir):
    runs = []
    for _ in range(2):
        learner = OpticalLearner(OpticalEncoder(tiny_dir, dtype="float32"),
                                 query_tower=trained.learner.encoder.query_tower.encoder)
        report = fit(learner, trained.data, TrainConfig(steps=4, batch_size=8, cell_weight=1.0, seed=3))
        runs.append((report.losses, [p.detach().clone() for p in learner.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    stopped = fit(learner, trained.data, TrainConfig(steps=1000, batch_size=8, max_seconds=0.0))
    assert stopped.stopped == "time" and stopped.steps == 0


def test_only_the_head_and_query_projection_train_by_default(tiny_dir, trained):
    learner = OpticalLearner(OpticalEncoder(tiny_dir, dtype="float32"))
    names = {n for n, p in learner.model.named_parameters() if p.requires_grad}
    assert names and all(n.startswith(("head.proj.", "query.")) for n in names)
    deeper = OpticalLearner(OpticalEncoder(tiny_dir, dtype="float32"), train_clip_layers=1)
    names = {n for n, p in deeper.model.named_parameters() if p.requires_grad}
    assert any(n.startswith("encoder.clip.encoder.layers.1.") for n in names)
    assert not any(n.startswith(("encoder.clip.encoder.layers.0.", "encoder.sam.")) for n in names)


def test_learner_vectors_equal_the_encoders(trained, pdfs):
    """What training scores is what the index stores and searches."""
    from docpress.pdf.reader import read_pages, render_pages

    learner, enc = trained.learner, trained.encoder
    page = next(read_pages(pdfs[0]))
    item = learner.prepare_pages(pdfs[0], [page])[0]
    with torch.no_grad():
        vectors, mask = learner.page_vectors([item])
        queries, q_mask = learner.query_vectors(learner.prepare_queries(["leaves release oxygen"]))
    page.image = render_pages(pdfs[0], [0], enc.render_dpi(page))[0]
    expected = enc.encode_pages([page])[0]
    assert np.allclose(vectors[0][mask[0]].numpy(), expected.vectors, atol=1e-5)
    assert np.allclose(item.boxes, expected.boxes)
    assert np.allclose(queries[0][q_mask[0]].numpy(), enc.encode_queries(["leaves release oxygen"])[0].vectors,
                       atol=1e-5)


# -- checkpoints ----------------------------------------------------------------------------------
def test_checkpoint_round_trip_gives_identical_vectors(trained, pdfs):
    from docpress.encoders import load_encoder
    from docpress.pdf.reader import read_pages, render_pages

    again = load_encoder("optical", weights=str(trained.dir), dtype="float32")
    again.use_query_tower(trained.learner.encoder.query_tower.encoder)
    assert again.config_hash() == trained.encoder.config_hash()
    assert again.options()["weights"] == str(trained.dir)  # the trained encoder now stands for its folder
    assert trained.encoder.options()["weights"] == str(trained.dir)
    page = list(read_pages(pdfs[1]))[2]
    page.image = render_pages(pdfs[1], [2], trained.encoder.render_dpi(page))[0]
    a, b = trained.encoder.encode_pages([page])[0], again.encode_pages([page])[0]
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.boxes, b.boxes)
    qa, qb = trained.encoder.encode_queries(["tides"])[0], again.encode_queries(["tides"])[0]
    assert np.array_equal(qa.vectors, qb.vectors)


# -- end to end -----------------------------------------------------------------------------------
def test_optical_index_end_to_end_and_reopen(trained, pdfs, tmp_path):
    from docpress import Index
    from docpress.encoders import load_encoder

    optical = load_encoder("optical", weights=str(trained.dir))  # as a user would: dtype auto
    index = Index.create(tmp_path / "ix", encoder=optical)
    report = index.add(pdfs)
    assert len(report.added) == len(pdfs) and report.pages == len(TOPICS)
    assert index.manifest.encoder_options["weights"] == str(trained.dir)
    held = dict(zip(trained.data.eval_texts, trained.data.eval_positives))
    names = trained.data.names
    right = 0
    for text, page_index in held.items():
        hit = index.search(text, k=3, method="maxsim")[0]
        right += f"{Path(hit.path).name}:{hit.page}" == names[page_index]
    assert right >= 0.75 * len(held), (right, len(held))
    hit = index.search("Whales migrate across the cold ocean.", k=1, method="maxsim")[0]
    assert (Path(hit.path).name, hit.page) == topic_page("oceans")
    # optical vectors carry no word: the snippet is the page's opening, the boxes where it matched
    assert hit.snippet.startswith("OCEANS") and hit.boxes and all(len(b) == 4 for b in hit.boxes)
    index.close()

    reopened = Index.open(tmp_path / "ix")  # the encoder is rebuilt from the manifest's options
    assert reopened.encoder.id == "optical" and reopened.encoder.config_hash() == optical.config_hash()
    reopened.encoder.use_query_tower(trained.learner.encoder.query_tower.encoder)
    hit = reopened.search("Whales migrate across the cold ocean.", k=1)[0]  # hybrid
    assert (Path(hit.path).name, hit.page) == topic_page("oceans")
    reopened.close()


def test_ingest_renders_only_for_encoders_that_need_images(tmp_path, pdfs, encoder):
    from docpress import Index

    index = Index.create(tmp_path / "text-ix", encoder=encoder)
    seen = []
    original = encoder.encode_pages

    def spy(pages):
        seen.extend(p.image is not None or p.render_failed for p in pages)
        return original(pages)

    encoder.encode_pages = spy
    try:
        index.add(pdfs[:1])
    finally:
        del encoder.encode_pages
    assert seen and not any(seen)
    index.close()


def test_render_pages_opens_once_and_follows_dpis(pdfs):
    from docpress.errors import PdfError
    from docpress.pdf.reader import render_pages

    small, large = render_pages(pdfs[0], [0, 3], [36, 72])
    assert small.size == (298, 421) and large.size == (595, 842)
    with pytest.raises(PdfError, match="out of range"):
        render_pages(pdfs[0], [4], 72)


def test_snippet_does_not_map_wordless_vectors_to_the_first_word():
    from docpress.types import PageVectors
    from retriever.snippets import snippet

    words = " ".join(f"w{i}" for i in range(100))
    vectors = np.eye(3, dtype=np.float32)
    page = PageVectors(vectors, np.array([[0, 0, 1, 1], [5, 5, 9, 9], [2, 2, 3, 3]], np.float32),
                       np.array([-1, -1, 60], np.int32), np.ones(3, np.float32), vectors[:1])
    text, boxes = snippet(words, page, vectors[[1]])  # matches a grid cell only
    assert text.startswith("w0 w1") and boxes == [(5.0, 5.0, 9.0, 9.0)]
    text, boxes = snippet(words, page, vectors[[1, 2]])  # and a word: the window goes to the word
    assert "w60" in text and not text.startswith("w0") and (5.0, 5.0, 9.0, 9.0) in boxes


# -- the command line -----------------------------------------------------------------------------
@pytest.fixture
def shared_text_lane(monkeypatch, encoder):
    """The CLI loads the text lane by name: hand it the session's instead of a second copy."""
    import docpress.encoders as encoders

    real = encoders.load_encoder
    monkeypatch.setattr(encoders, "load_encoder",
                        lambda name="text", **kw: encoder if name == "text" and not kw else real(name, **kw))


def test_cli_ingest_with_the_optical_encoder(trained, pdfs, tmp_path, shared_text_lane):
    from docpress.cli import app

    ix = str(tmp_path / "ix")
    result = runner.invoke(app, ["ingest", *map(str, pdfs[:2]), "--index", ix, "--encoder", "optical",
                                 "--weights", str(trained.dir), "--mode", "tiny", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pages"] == 2 * PAGES_PER_PDF
    result = runner.invoke(app, ["info", "--index", ix, "--json"])
    info = json.loads(result.stdout)
    assert info["encoder"] == "optical" and info["encoder_config"]["mode"] == "tiny"
    # more files into the existing index: no --encoder needed, the manifest rebuilds it
    result = runner.invoke(app, ["ingest", str(pdfs[2]), "--index", ix, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["pages"] == PAGES_PER_PDF
    result = runner.invoke(app, ["ingest", str(pdfs[3]), "--index", ix, "--weights", str(trained.dir)])
    assert result.exit_code == 1 and "--encoder optical" in result.stderr
    result = runner.invoke(app, ["ingest", str(pdfs[3]), "--index", ix, "--encoder", "optical", "--json"])
    assert result.exit_code == 0, result.output  # named, without --weights: rebuilt from the manifest
    assert json.loads(result.stdout)["pages"] == PAGES_PER_PDF
    result = runner.invoke(app, ["ingest", str(pdfs[3]), "--index", ix, "--encoder", "text"])
    assert result.exit_code == 1 and "built with encoder optical" in result.stderr
    result = runner.invoke(app, ["ingest", str(pdfs[3]), "--index", str(tmp_path / "new"), "--encoder",
                                 "optical", "--weights", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "--weights" in result.stderr


def test_cli_distill_and_train(tiny_dir, pdfs, tmp_path, shared_text_lane):
    from docpress.cli import app
    from docpress.encoders import load_encoder

    out = tmp_path / "distilled"
    result = runner.invoke(app, ["distill", str(pdfs[0]), "--weights", str(tiny_dir), "--out", str(out),
                                 "--steps", "8", "--batch-size", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["steps"] == 8 and report["pages"] == PAGES_PER_PDF and report["held_out"]["queries"] == 4
    assert load_encoder("optical", weights=str(out)).mode.name == "tiny"

    pairs = tmp_path / "pairs.jsonl"
    rows = [{"query": TOPICS[name][0], "doc": str(pdfs[0]), "page": i}
            for i, name in enumerate(list(TOPICS)[:PAGES_PER_PDF])]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = runner.invoke(app, ["train", str(pairs), "--weights", str(out), "--out", str(tmp_path / "trained"),
                                 "--steps", "3", "--clip-layers", "1"])
    assert result.exit_code == 0, result.output
    assert "3 steps" in result.stdout and (tmp_path / "trained" / "model.safetensors").exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "x"}\n')
    result = runner.invoke(app, ["train", str(bad), "--weights", str(out), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "not a pair line" in result.stderr


# -- the optical lane beside the text lane (one index, fused in hybrid) ------------------------------
def test_text_index_with_an_optical_lane_fuses_both(trained, pdfs, tmp_path, encoder):
    from docpress import Index
    from docpress.encoders import load_encoder
    from docpress.ingest import _encode
    from docpress.pdf.reader import read_pages
    from docpress.tokens import token_weights
    from indexer.stores.base import Location
    from retriever.fusion import standardize
    from retriever.lanes import LANE_WEIGHT

    optical = load_encoder("optical", weights=str(trained.dir))
    fused = Index.create(tmp_path / "fused", encoder=encoder, lanes={"optical": optical})
    plain = Index.create(tmp_path / "plain", encoder=encoder)
    assert fused.add(pdfs).pages == plain.add(pdfs).pages == len(TOPICS)
    record = fused.manifest.lanes["optical"]
    assert (record["encoder_id"], record["encoder_hash"]) == ("optical", optical.config_hash())
    # every page has its lane vectors, equal to the optical encoder's own
    table = fused.catalog.page_table()
    located = fused.catalog.lane_table("optical", table)
    assert (located.vec_count > 0).all()
    lane = fused.lane("optical")
    expected = _encode(pdfs[0], list(read_pages(pdfs[0]))[:1], optical)[0]
    row = next(i for i in range(len(table)) if table.numbers[i] == 0 and table.doc_ids[i] == table.doc_ids.min())
    stored = lane.store.page_vectors(int(table.page_ids[row]), Location(
        int(located.vec_start[row]), int(located.vec_count[row]), int(located.pool_start[row]),
        int(located.pool_count[row])))
    np.testing.assert_allclose(stored.vectors, expected.vectors, atol=1e-2)  # bf16 storage
    # hybrid = the text lane's hybrid + LANE_WEIGHT x the lane's standardized MaxSim on candidates
    query = "Whales migrate across the cold ocean."
    fused_hits = fused.search(query, k=len(TOPICS))
    plain_hits = {(h.path, h.page): h.score for h in plain.search(query, k=len(TOPICS))}
    lane_q = optical.encode_queries([query])[0]
    weights = token_weights(lane_q.tokens)
    lane_ms = lane.store.maxsim(lane_q.vectors * weights[:, None], located)
    lane_z = dict(zip(zip(table.doc_ids.tolist(), table.numbers.tolist()), standardize(lane_ms)))
    for hit in fused_hits:
        expected_score = plain_hits[(hit.path, hit.page)] + LANE_WEIGHT * lane_z[(hit.doc_id, hit.page)]
        assert hit.score == pytest.approx(expected_score, abs=1e-4)
    assert (Path(fused_hits[0].path).name, fused_hits[0].page) == topic_page("oceans")
    # removing a document removes its lane rows; the index reopens with its lane model
    fused.remove(pdfs[0].name)
    assert len(fused.catalog.lane_table("optical", fused.catalog.page_table()).page_ids) == len(TOPICS) - PAGES_PER_PDF
    count = fused.catalog.db.execute("SELECT COUNT(*) FROM lane_pages").fetchone()[0]
    assert count == len(TOPICS) - PAGES_PER_PDF
    scores = [h.score for h in fused.search(query, k=5)]
    fused.close()
    reopened = Index.open(tmp_path / "fused", encoder=encoder)
    assert [h.score for h in reopened.search(query, k=5)] == pytest.approx(scores, abs=1e-5)
    assert reopened.info()["lanes"] == ["optical"]
    reopened.close()
    plain.close()


def test_lane_mismatches_are_refused(trained, tiny_dir, pdfs, tmp_path, encoder):
    from docpress import Index, IndexMismatchError
    from docpress.encoders import check_encoder, load_encoder
    from docpress.errors import DocpressError

    index = Index.create(tmp_path / "ix", encoder=encoder,
                         lanes={"optical": load_encoder("optical", weights=str(trained.dir))})
    with pytest.raises(IndexMismatchError, match="lane 'optical' was built with encoder optical"):
        check_encoder(index.manifest.lanes["optical"], load_encoder("optical", weights=str(tiny_dir)),
                      "lane 'optical'")  # the untrained model
    index.close()
    Index.create(tmp_path / "plain", encoder=encoder).close()
    with pytest.raises(IndexMismatchError, match="lanes are chosen when an index is created"):
        Index.create(tmp_path / "plain", encoder=encoder,
                     lanes={"optical": load_encoder("optical", weights=str(trained.dir))})
    with pytest.raises(DocpressError, match="needs another model"):
        Index.create(tmp_path / "same", encoder=encoder, lanes={"text": encoder})
    with pytest.raises(DocpressError, match="embedded store"):
        Index.create(tmp_path / "q", encoder=encoder, store="qdrant+memory:x",
                     lanes={"optical": load_encoder("optical", weights=str(trained.dir))})


def test_cli_ingest_with_an_optical_lane(trained, pdfs, tmp_path, shared_text_lane):
    from docpress.cli import app

    ix = str(tmp_path / "ix")
    result = runner.invoke(app, ["ingest", *map(str, pdfs[:2]), "--index", ix, "--lane", "optical",
                                 "--weights", str(trained.dir), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["info", "--index", ix, "--json"]).stdout)
    assert info["encoder"] == "text" and info["lanes"] == ["optical"]
    result = runner.invoke(app, ["ingest", str(pdfs[2]), "--index", ix, "--json"])  # lane rebuilt
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["search", "Whales migrate across the cold ocean.", "--index", ix, "--json"])
    assert result.exit_code == 0, result.output
