"""Integrity: damaged indexes are named in one line and repaired; compaction; sync; copies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import QUESTIONS, TOPICS, write_pdf
from typer.testing import CliRunner

from docpress import Index
from docpress.cli import app

runner = CliRunner()
NAMES = ("photosynthesis", "volcanoes", "football", "espresso", "taxes")


def _docs(folder: Path) -> Path:
    for name in NAMES:
        write_pdf(folder / f"{name}.pdf", [TOPICS[name], f"{name} appendix. " + TOPICS[name][::-1]])
    return folder


def _build(tmp_path_factory, encoder, compression: str) -> Path:
    """An index of the five topics (two pages each), built once and copied by each test."""
    root = tmp_path_factory.mktemp(f"integrity-{compression}")
    with Index.create(root / "ix", encoder=encoder) as index:
        index.add([_docs(root / "docs")], compression=compression)
    return root


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, encoder):
    return _build(tmp_path_factory, encoder, "none")


@pytest.fixture(scope="module")
def pristine_compressed(tmp_path_factory, encoder):
    return _build(tmp_path_factory, encoder, "balanced")


def _copy(src: Path, tmp_path: Path) -> Path:
    shutil.copytree(src / "ix", tmp_path / "ix")
    return tmp_path / "ix"


def _top_names(index: Index, query: str, k: int = 3) -> list[str]:
    return [Path(h.path).stem for h in index.search(query, k=k)]


# -- the damage table ----------------------------------------------------------------------
def _garbage(path: Path, at: float = 0.5, size: int = 4096) -> None:
    data = bytearray(path.read_bytes())
    lo = int(len(data) * at)
    rng = np.random.default_rng(0)
    data[lo:lo + size] = rng.integers(0, 256, min(size, len(data) - lo), dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))


def _truncate(path: Path, share: float = 0.5) -> None:
    os.truncate(path, int(path.stat().st_size * share))


def _vectors(ix: Path) -> Path:
    return next(p for p in ix.iterdir() if p.is_dir() and p.name.startswith(("vectors", "compressed-")))


DAMAGE = {
    "catalog deleted": lambda ix: [p.unlink() for p in ix.glob("catalog.sqlite*")],
    "catalog emptied": lambda ix: (ix / "catalog.sqlite").write_bytes(b""),
    "catalog truncated": lambda ix: _truncate(ix / "catalog.sqlite", 0.3),
    "catalog garbage": lambda ix: _garbage(ix / "catalog.sqlite", 0.0, 2048),
    "tokens truncated": lambda ix: _truncate(_vectors(ix) / "tokens.bf16"),
    "tokens deleted": lambda ix: (_vectors(ix) / "tokens.bf16").unlink(),
    "tokens garbage": lambda ix: _garbage(_vectors(ix) / "tokens.bf16", 0.0, 1 << 20),
    "boxes zeroed": lambda ix: (_vectors(ix) / "boxes.f16").write_bytes(
        bytes((_vectors(ix) / "boxes.f16").stat().st_size)),
    "pooled truncated": lambda ix: _truncate(_vectors(ix) / "pooled.bf16", 0.2),
    "vector folder deleted": lambda ix: shutil.rmtree(_vectors(ix)),
    "manifest not JSON": lambda ix: (ix / "manifest.json").write_text("{ not json"),
    "manifest field missing": lambda ix: (ix / "manifest.json").write_text(json.dumps(
        {k: v for k, v in json.loads((ix / "manifest.json").read_text()).items() if k != "dim"})),
    "manifest wrong type": lambda ix: (ix / "manifest.json").write_text(json.dumps(
        {**json.loads((ix / "manifest.json").read_text()), "dim": "384"})),
}


def _invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"traceback for {args}: {result.exception!r}"
    return result


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damage_is_one_line_and_repair_brings_back_a_working_index(case, pristine, tmp_path, encoder):
    ix = _copy(pristine, tmp_path)
    DAMAGE[case](ix)
    checked = _invoke("check", "--deep", "--index", str(ix))
    assert checked.exit_code == 1, (case, checked.output)
    searched = _invoke("search", QUESTIONS["volcanoes"], "--index", str(ix))
    errors = searched.stderr.strip().splitlines() if searched.exit_code else []
    if case in ("tokens garbage", "boxes zeroed"):
        # cheap checks pass (the files have their length); the returned pages are verified
        assert searched.exit_code == 1 or "volcanoes" not in searched.stdout
    else:
        assert searched.exit_code == 1 and len(errors) == 1, (case, searched.output)
    if searched.exit_code:
        assert "repair" in searched.stderr and "Traceback" not in searched.output

    repaired = _invoke("repair", "--index", str(ix), "--json")
    assert repaired.exit_code == 0, (case, repaired.output)
    assert _invoke("check", "--deep", "--index", str(ix)).exit_code == 0
    # the next ingest adds back what repair dropped, and search answers again
    again = _invoke("ingest", str(pristine / "docs"), "--index", str(ix), "--json")
    assert again.exit_code == 0, again.output
    with Index.open(ix, encoder=encoder) as index:
        assert len(index.documents()) == len(NAMES)
        assert _top_names(index, QUESTIONS["volcanoes"], 1) == ["volcanoes"]


def test_repair_restores_the_catalog_from_its_backup(pristine, tmp_path, encoder):
    ix = _copy(pristine, tmp_path)
    _truncate(ix / "catalog.sqlite", 0.3)
    report = Index.repair(ix)
    assert any("backup" in a for a in report.actions) and report.dropped == []
    with Index.open(ix, encoder=encoder) as index:  # nothing lost: the backup was current
        assert len(index.documents()) == len(NAMES)
        assert _top_names(index, QUESTIONS["espresso"], 1) == ["espresso"]


def test_garbage_in_a_returned_page_is_refused_not_ranked(pristine, tmp_path, encoder):
    ix = _copy(pristine, tmp_path)
    with Index.open(ix, encoder=encoder) as index:
        hit = index.search(QUESTIONS["taxes"], k=1)[0]
        location = index.catalog.row_locations([hit.page_id])[hit.page_id]
    tokens = _vectors(ix) / "tokens.bf16"
    data = bytearray(tokens.read_bytes())
    row = 384 * 2
    data[location[0] * row:(location[0] + 2) * row] = b"\x7f" * (2 * row)  # huge values: it would rank first
    tokens.write_bytes(bytes(data))
    from docpress.errors import CorruptIndexError

    with Index.open(ix, encoder=encoder) as index, pytest.raises(CorruptIndexError, match="tokens|vectors"):
        index.search(QUESTIONS["taxes"], k=1)
    report = Index.repair(ix)
    assert [Path(p).stem for p in report.dropped] == ["taxes"]


@pytest.mark.parametrize("damage", ["garbage", "deleted"])
def test_compressed_index_damage_and_codec_restore(damage, pristine_compressed, tmp_path, encoder):
    ix = _copy(pristine_compressed, tmp_path)
    folder = _vectors(ix)
    assert folder.name.startswith("compressed-")
    if damage == "garbage":
        (folder / "codec" / "codec.npz").write_bytes(b"garbage")
    else:
        (folder / "codec" / "codec.json").unlink()
    result = _invoke("search", QUESTIONS["football"], "--index", str(ix))
    assert result.exit_code == 1 and "codec" in result.stderr and "repair" in result.stderr
    report = Index.repair(ix)
    assert any("codec" in a for a in report.actions) and report.dropped == []
    with Index.open(ix, encoder=encoder) as index:
        assert _top_names(index, QUESTIONS["football"], 1) == ["football"]


# -- compaction ------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture", ["pristine", "pristine_compressed"])
def test_compaction_keeps_results_and_shrinks_the_files(fixture, request, tmp_path, encoder):
    ix = _copy(request.getfixturevalue(fixture), tmp_path)
    docs = request.getfixturevalue(fixture) / "docs"
    with Index.open(ix, encoder=encoder) as index:
        for _ in range(3):  # remove and re-add: dead rows pile up (auto-compaction off here)
            index.remove("football.pdf")
            from docpress.ingest import ingest

            with index.writing():
                ingest([docs / "football.pdf"], index.catalog, index.lanes)
        index.remove("taxes.pdf")
        before = {q: [(h.path, h.page, round(h.score, 5)) for h in index.search(q, k=4)]
                  for q in QUESTIONS.values()}
        size = index.info()["vector_bytes"]
        crcs = dict(index.catalog.db.execute("SELECT id, crc FROM pages"))
        report = index.compact()
        assert report.bytes_after < report.bytes_before and report.rows_after < report.rows_before
        assert index.info()["vector_bytes"] < size and index.info()["dead_rows_share"] == 0
        after = {q: [(h.path, h.page, round(h.score, 5)) for h in index.search(q, k=4)]
                 for q in QUESTIONS.values()}
        assert after == before
        assert dict(index.catalog.db.execute("SELECT id, crc FROM pages")) == crcs  # rows byte for byte
        generations = [p.name for p in ix.iterdir() if p.name.startswith(("vectors", "compressed-"))]
        assert generations == [index.store.dir.name] and index.store.dir.name.endswith(tuple("0123456789"))
    assert _invoke("check", "--deep", "--index", str(ix)).exit_code == 0


def test_a_reader_on_the_old_generation_keeps_its_folder(pristine, tmp_path, encoder):
    ix = _copy(pristine, tmp_path)
    reader = Index.open(ix, encoder=encoder)
    first = _top_names(reader, QUESTIONS["espresso"])
    old = reader.store.dir
    with Index.open(ix, encoder=encoder) as writer:
        writer.remove("photosynthesis.pdf")
        report = writer.compact()
    assert old.exists() and str(old.name) in report.kept  # pinned by the open reader
    # the reader moves to the new generation at its next search, and sees the removal
    assert "photosynthesis" not in _top_names(reader, QUESTIONS["photosynthesis"], 5)
    assert _top_names(reader, QUESTIONS["espresso"])[0] == first[0]
    reader.close()
    with Index.open(ix, encoder=encoder) as writer:
        assert str(old.name) in writer.compact().removed  # no reader now: the dead folder goes
    assert not old.exists()


def test_ingest_compacts_on_its_own_past_the_dead_share(pristine, tmp_path, encoder):
    ix = _copy(pristine, tmp_path)
    changed = tmp_path / "changed"
    shutil.copytree(pristine / "docs", changed)
    with Index.open(ix, encoder=encoder) as index:
        index.add([changed], compression="none")  # other paths, identical files: copies only
        for name in NAMES[:3]:
            index.remove(f"{name}.pdf")
        for name in NAMES[:3]:
            write_pdf(changed / f"{name}.pdf", [TOPICS[name] + " Revised edition."])
        report = index.add([changed], compression="none")
        assert report.compacted is not None and report.compacted["bytes_reclaimed"] > 0
        assert index.info()["dead_rows_share"] == 0


# -- the corpus on disk ------------------------------------------------------------------------
def test_identical_files_are_indexed_once_with_all_their_paths(pristine, tmp_path, encoder):
    ix = _copy(pristine, tmp_path)
    copies = tmp_path / "copies"
    copies.mkdir()
    shutil.copy(pristine / "docs" / "espresso.pdf", copies / "espresso-copy.pdf")
    shutil.copy(pristine / "docs" / "espresso.pdf", copies / "again.pdf")
    with Index.open(ix, encoder=encoder) as index:
        report = index.add([copies])
        assert len(report.duplicates) == 2 and report.added == [] and report.pages == 0
        hits = index.search(QUESTIONS["espresso"], k=3)
        assert [Path(h.path).stem for h in hits].count("espresso") + \
            sum(Path(h.path).stem in ("espresso-copy", "again") for h in hits) <= 2  # one document's pages
        assert sorted(Path(p).name for p in hits[0].other_paths) == ["again.pdf", "espresso-copy.pdf"]
        # removing the original keeps the document under a copy's path
        assert [Path(p).name for p in index.remove(str(pristine / "docs" / "espresso.pdf"))] == ["espresso.pdf"]
        top = index.search(QUESTIONS["espresso"], k=1)[0]
        assert Path(top.path).name in ("again.pdf", "espresso-copy.pdf") and not top.missing


def test_sync_removes_documents_whose_files_are_gone(pristine, tmp_path, encoder):
    ix = _copy(pristine, tmp_path)
    docs = tmp_path / "docs"
    shutil.copytree(pristine / "docs", docs)
    runner.invoke(app, ["rm", "*.pdf", "--index", str(ix)])
    assert _invoke("ingest", str(docs), "--index", str(ix)).exit_code == 0
    (docs / "volcanoes.pdf").unlink()
    with Index.open(ix, encoder=encoder) as index:
        hit = index.search(QUESTIONS["volcanoes"], k=1)[0]
        assert Path(hit.path).name == "volcanoes.pdf" and hit.missing  # said, not hidden
        from docpress.errors import PdfError

        with pytest.raises(PdfError, match="gone from disk"):
            hit.image()
    searched = _invoke("search", QUESTIONS["volcanoes"], "--index", str(ix), "-k", "1")
    assert searched.exit_code == 0 and "(file gone)" in searched.stdout and "--sync" in searched.stderr
    result = _invoke("ingest", str(docs), "--sync", "--index", str(ix), "--json")
    assert result.exit_code == 0 and [Path(p).name for p in json.loads(result.stdout)["removed"]] == ["volcanoes.pdf"]
    with Index.open(ix, encoder=encoder) as index:
        assert "volcanoes" not in [Path(d.path).stem for d in index.documents()]


# -- exit codes ---------------------------------------------------------------------------------
def test_ingest_exit_codes_and_no_empty_index_left(tmp_path, encoder):
    ix = tmp_path / "ix"
    for args in (["no-such-folder"], [str(tmp_path / "empty")], ["*.pdf"]):
        (tmp_path / "empty").mkdir(exist_ok=True)
        result = _invoke("ingest", *args, "--index", str(ix))
        assert result.exit_code == 1 and "no PDF files" in result.stderr, result.output
        assert not ix.exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.pdf").write_text("%PDF-1.4 broken")
    (bad / "b.pdf").write_bytes(b"")
    result = _invoke("ingest", str(bad), "--index", str(ix))
    assert result.exit_code == 1 and "nothing was indexed" in result.stderr and not ix.exists()
    write_pdf(bad / "good.pdf", [TOPICS["taxes"]])
    result = _invoke("ingest", str(bad), "--index", str(ix))
    assert result.exit_code == 0 and "2 skipped" in result.stdout  # partial: says so, exit 0
    result = _invoke("ingest", str(bad), "--index", str(ix), "--strict")
    assert result.exit_code == 1 and "--strict" in result.stderr


@pytest.mark.parametrize("how", ["zero", "truncate"])
def test_damaged_frames_of_a_compressed_index_are_found_and_repaired(how, pristine_compressed, tmp_path, encoder):
    ix = _copy(pristine_compressed, tmp_path)
    frames = _vectors(ix) / "frames.f64"
    if how == "zero":
        frames.write_bytes(bytes(frames.stat().st_size))
    else:
        _truncate(frames, 0.5)
    assert _invoke("check", "--deep", "--index", str(ix)).exit_code == 1
    repaired = _invoke("repair", "--index", str(ix), "--json")
    assert repaired.exit_code == 0 and json.loads(repaired.stdout)["dropped"], repaired.output
    assert _invoke("check", "--deep", "--index", str(ix)).exit_code == 0
    assert _invoke("ingest", str(pristine_compressed / "docs"), "--index", str(ix)).exit_code == 0
    with Index.open(ix, encoder=encoder) as index:
        assert _top_names(index, QUESTIONS["taxes"], 1) == ["taxes"]
