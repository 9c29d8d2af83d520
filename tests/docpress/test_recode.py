"""Compression presets on a whole index: ingest, search, manifest records, refusals, crash safety."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import QUESTIONS, TOPICS, write_pdf

from docpress import Index, IndexMismatchError
from docpress.errors import DocpressError
from indexer.layout import VECTOR_FOLDER_KEY as FOLDER_KEY

# Filler pages: the codec fits on the index's own pages, and five topic pages are few.
FILLER = [f"Section {i}. The committee reviewed item {i} of the agenda, the schedule of works, "
          f"the supplier contracts and the minutes of meeting number {i}. No objections were "
          "raised and the chair closed the item." for i in range(12)]


def build(tmp_path: Path, encoder, compression: str | None = "balanced", name: str = "ix") -> Index:
    docs = tmp_path / "docs"
    if not docs.exists():
        for topic, text in TOPICS.items():
            write_pdf(docs / f"{topic}.pdf", [text], title=topic.title())
        write_pdf(docs / "filler.pdf", FILLER)
    index = Index.create(tmp_path / name, encoder=encoder)
    index.add([docs], compression=compression)
    return index


def ranked_first(index: Index, method: str) -> list[bool]:
    return [Path(index.search(q, k=1, method=method)[0].path).stem == topic
            for topic, q in QUESTIONS.items()]


@pytest.fixture(scope="module")
def compact_index(tmp_path_factory, encoder):
    index = build(tmp_path_factory.mktemp("compact"), encoder, "compact")
    yield index
    index.close()


@pytest.mark.parametrize("method", ["hybrid", "maxsim", "dense"])
def test_compressed_index_ranks_the_topic_page_first(compact_index, method):
    assert all(ranked_first(compact_index, method)), method


def test_compression_shrinks_the_vectors_and_is_recorded(compact_index, tmp_path, encoder):
    plain = build(tmp_path, encoder, compression=None)
    assert plain.compression == "none" and compact_index.compression == "compact"
    small, big = compact_index.info(), plain.info()
    assert small["pages"] == big["pages"] == len(TOPICS) + len(FILLER)
    assert small["vectors"] < big["vectors"] / 3  # pruned and merged
    codec = sum(p.stat().st_size for p in (compact_index.directory).glob("compressed-*/codec/*"))
    assert small["vector_bytes"] - codec < big["vector_bytes"] / 20
    record = json.loads((compact_index.directory / "manifest.json").read_text())["compression"]
    assert record["preset"] == "compact" and len(record["fingerprint"]) == 16
    assert record["config"]["quantize"]["kind"] == "binary"
    assert compact_index.catalog.state(FOLDER_KEY) == record["folder"]
    assert not (compact_index.directory / "vectors").exists()  # the bf16 rows are gone
    plain.close()


def test_reopened_compressed_index_scores_identically(tmp_path, encoder):
    index = build(tmp_path, encoder)
    before = [(h.path, h.page, h.score) for h in index.search("volcanic ash and lava", k=5)]
    index.close()
    again = Index.open(tmp_path / "ix", encoder=encoder)
    assert [(h.path, h.page, h.score) for h in again.search("volcanic ash and lava", k=5)] == before
    again.close()


def test_new_pages_of_a_compressed_index_are_coded_and_found(tmp_path, encoder):
    index = build(tmp_path, encoder)
    vectors = index.info()["vectors"]
    extra = write_pdf(tmp_path / "more" / "glaciers.pdf",
                      ["Glaciers carve U-shaped valleys as the ice grinds the bedrock and drops "
                       "moraines of gravel where it melts."])
    index.add([extra], compression="balanced")  # the same preset: accepted
    assert index.info()["vectors"] > vectors
    hit = index.search("how do glaciers shape valleys", k=1, method="maxsim")[0]
    assert Path(hit.path).stem == "glaciers"
    assert len(list(index.directory.glob("compressed-*"))) == 1
    index.close()


def test_another_preset_on_a_compressed_index_is_refused(tmp_path, encoder):
    index = build(tmp_path, encoder)
    with pytest.raises(IndexMismatchError, match="compressed with 'balanced', not 'tiny'.*docpress compress"):
        index.add([tmp_path / "docs"], compression="tiny")
    with pytest.raises(DocpressError, match="cannot be decompressed"):
        index.compress("none")
    # re-compressing explicitly is allowed: fitted on the decoded vectors
    index.compress("tiny")
    assert index.compression == "tiny" and all(ranked_first(index, "hybrid"))
    index.close()


def test_a_codec_that_differs_from_the_manifest_is_refused(tmp_path, encoder):
    index = build(tmp_path, encoder)
    index.close()
    path = tmp_path / "ix" / "manifest.json"
    data = json.loads(path.read_text())
    data["compression"]["fingerprint"] = "0" * 16
    path.write_text(json.dumps(data))
    with pytest.raises(IndexMismatchError, match="not the one the manifest records"):
        Index.open(tmp_path / "ix")


def test_crash_before_the_commit_leaves_the_index_as_it_was(tmp_path, encoder, monkeypatch):
    index = build(tmp_path, encoder, compression=None)
    before = [(h.path, h.score) for h in index.search("penalty shootout", k=3, method="maxsim")]
    import indexer.stores.compressed as compressed

    real = compressed.CompressedStore.add

    def add_then_die(self, pages):
        real(self, pages)
        raise KeyboardInterrupt  # as if killed while writing the new rows

    monkeypatch.setattr(compressed.CompressedStore, "add", add_then_die)
    with pytest.raises(KeyboardInterrupt):
        index.compress("balanced")
    monkeypatch.undo()
    index.close()
    again = Index.open(tmp_path / "ix", encoder=encoder)
    assert again.compression == "none"
    assert [(h.path, h.score) for h in again.search("penalty shootout", k=3, method="maxsim")] == before
    again.compress("balanced")  # the half-written folder is replaced
    assert again.compression == "balanced" and all(ranked_first(again, "maxsim"))
    again.close()


def test_crash_after_the_commit_repairs_the_manifest(tmp_path, encoder):
    index = build(tmp_path, encoder, compression=None)
    old_manifest = (tmp_path / "ix" / "manifest.json").read_text()
    index.compress("balanced")
    scores = [h.score for h in index.search("descaling the coffee machine", k=3)]
    index.close()
    (tmp_path / "ix" / "manifest.json").write_text(old_manifest)  # the manifest write was lost
    shutil.copytree(tmp_path / "ix", tmp_path / "copy")
    again = Index.open(tmp_path / "copy", encoder=encoder)
    assert again.compression == "balanced"
    assert [h.score for h in again.search("descaling the coffee machine", k=3)] == pytest.approx(scores)
    # readers never write the manifest; the next writer saves the corrected record
    assert json.loads((tmp_path / "copy" / "manifest.json").read_text()) == json.loads(old_manifest)
    again.remove("no-such-file.pdf")
    assert json.loads((tmp_path / "copy" / "manifest.json").read_text())["compression"]["preset"] == "balanced"
    again.close()


def test_qdrant_indexes_and_empty_indexes_are_refused(tmp_path, encoder):
    pytest.importorskip("qdrant_client")
    remote = Index.create(tmp_path / "q", encoder=encoder, store="qdrant+memory:pages")
    with pytest.raises(DocpressError, match="Qdrant"):
        remote.compress("balanced")
    remote.close()
    empty = Index.create(tmp_path / "e", encoder=encoder)
    with pytest.raises(DocpressError, match="no vectors"):
        empty.compress("balanced")
    empty.close()


def test_cli_compress_and_ingest_option(tmp_path, encoder):
    from typer.testing import CliRunner

    from docpress.cli import app

    build(tmp_path, encoder, compression=None).close()
    runner = CliRunner()
    result = runner.invoke(app, ["compress", "compact", "--index", str(tmp_path / "ix"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["compression"]["preset"] == "compact"
    assert summary["vectors"] < summary["vectors_before"] / 3  # (the codec outweighs 17 pages' bytes)
    bad = runner.invoke(app, ["ingest", str(tmp_path / "docs"), "--index", str(tmp_path / "ix"),
                              "--compression", "balanced"])
    assert bad.exit_code == 1 and "compressed with 'compact'" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
    unknown = runner.invoke(app, ["compress", "huge", "--index", str(tmp_path / "ix")])
    assert unknown.exit_code == 1 and "unknown compression preset 'huge'" in unknown.output
    scores = np.array([h.score for h in Index.open(tmp_path / "ix").search("lava", k=3)])
    assert np.all(np.diff(scores) <= 0)


def test_auto_compresses_once_the_index_is_large_enough(tmp_path, encoder, monkeypatch):
    import docpress.recode as ic

    monkeypatch.setattr(ic, "AUTO_MIN_PAGES", len(TOPICS) + len(FILLER) + 1)
    index = build(tmp_path, encoder, compression="auto")
    assert index.compression == "none"  # one page short
    extra = write_pdf(tmp_path / "more" / "one.pdf", [FILLER[0] + " One more page."])
    index.add([extra])  # "auto" is the default
    assert index.compression == ic.DEFAULT_PRESET and all(ranked_first(index, "hybrid"))
    index.close()


def test_auto_keeps_an_index_the_user_chose_not_to_compress(tmp_path, encoder, monkeypatch):
    import docpress.recode as ic

    monkeypatch.setattr(ic, "AUTO_MIN_PAGES", 1)
    index = build(tmp_path, encoder, compression="none")
    extra = write_pdf(tmp_path / "more" / "one.pdf", [FILLER[0] + " One more page."])
    index.add([extra])
    assert index.compression == "none"
    index.close()
    assert Index.open(tmp_path / "ix").compression == "none"


def test_an_index_compressed_when_the_presets_kept_first_windows_still_goes_by_its_preset(tmp_path, encoder):
    """Until the presets kept every window summary, `balanced` kept each page's first only. Such
    an index is still named `balanced` (also when its record is made again from the codec),
    takes more pages under `--compression balanced`, and reads its one window for dense."""
    from docpress.compress.pipeline import normalize_config, preset_of

    old = normalize_config("balanced")
    old["pooled"]["windows"] = "first"
    assert preset_of(old) == "balanced" and preset_of(normalize_config("balanced")) == "balanced"
    index = build(tmp_path, encoder, compression=None)
    index.compress(old)
    assert index.compression == "balanced"
    long_page = " ".join(f"Glaciers carve U-shaped valleys as the ice grinds bedrock {i} and drops "
                         f"moraines of gravel {i} where it melts." for i in range(22))
    extra = write_pdf(tmp_path / "more" / "glaciers.pdf", [long_page])
    index.add([extra], compression="balanced")  # the preset it was compressed with: accepted
    table = index.catalog.page_table()
    # new pages are coded with the index's own codec: a long page keeps its first window only
    assert (table.pool_count <= 1).all() and index.info()["pages"] == len(table)
    qv = index.encoder.encode_queries(["how do glaciers shape valleys"])[0]
    assert index.searcher.main.store.dense(qv.pooled, table).shape == (len(table), 1)
    assert Path(index.search("how do glaciers shape valleys", k=1, method="dense")[0].path).stem == "glaciers"
    with pytest.raises(IndexMismatchError, match="not 'tiny'"):
        index.add([extra], compression="tiny")
    index.close()
