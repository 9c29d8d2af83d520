"""hybrid's page-vector first stage (indexer/page_first_stage.py): the nearest pages by page
id, in step with new and deleted pages, restricted to the pages searched."""

from __future__ import annotations

import numpy as np
import pytest

import indexer.page_first_stage as page_first_stage
from indexer.catalog import PageTable
from indexer.page_first_stage import PageIvf, positions, rows_of

DIM = 24


def _table(page_ids) -> PageTable:
    ids = np.asarray(page_ids, np.int64)
    zeros = np.zeros(len(ids), np.int64)
    return PageTable(ids, ids // 10, zeros, zeros, zeros, zeros, zeros)


@pytest.fixture
def vectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x  # page id i has vector x[i]


def test_nearest_pages_follow_adds_and_deletes(tmp_path, vectors, monkeypatch):
    monkeypatch.setattr(page_first_stage, "EXACT_PAGES", 0)
    table = _table(np.arange(0, 4000, 2))  # even ids: sparse, as a catalog's after deletes
    fetch = lambda t: vectors[t.page_ids]  # noqa: E731
    stage = PageIvf(tmp_path, "head", "v1").sync(table, fetch)
    nlist = stage.files.nlist
    for target in (10, 1234, 3998):
        rows = stage.nearest(vectors[target], 5, nlist, table)  # every list: exact but for SQ8
        assert table.page_ids[rows[0]] == target
    # new pages (higher ids) go to the delta and are found
    table = _table(np.concatenate([table.page_ids, np.arange(4001, 4200, 2)]))
    stage = stage.sync(table, fetch)
    assert stage.files.delta is not None and stage.files.delta.ntotal == 100
    assert table.page_ids[stage.nearest(vectors[4101], 3, nlist, table)[0]] == 4101
    # a deleted page is not in the table any more: it never comes back, with no write
    files = dict(stage.files.state["files"])
    smaller = _table(table.page_ids[table.page_ids != 4101])
    stage = stage.sync(smaller, fetch)
    assert stage.files.state["files"] == files
    assert 4101 not in smaller.page_ids[stage.nearest(vectors[4101], 50, nlist, smaller)].tolist()
    # deleting the newest page lowers the highest live id: still in step, nothing rebuilt
    newest = _table(smaller.page_ids[smaller.page_ids != smaller.page_ids.max()])
    assert stage.sync(newest, fetch).files.state["files"] == files
    # a filter: only the pages of the table asked about
    few = _table([4, 6, 8, 1234])
    assert few.page_ids[stage.nearest(vectors[1234], 2000, nlist, few)].tolist()[0] == 1234
    # below EXACT_PAGES there is no stage
    monkeypatch.setattr(page_first_stage, "EXACT_PAGES", len(table))
    assert PageIvf(tmp_path / "other", "head", "v1").sync(table, fetch) is None


def test_positions_find_ids_in_sorted_and_unsorted_tables():
    assert positions(np.array([3, 5, 9]), np.array([9, 3])).tolist() == [2, 0]
    assert positions(np.array([9, 3, 5]), np.array([5, 9])).tolist() == [2, 0]
    assert positions(np.array([3, 5, 9]), np.array([4, 9]), missing=-1).tolist() == [-1, 2]
    assert rows_of(_table([7, 2, 5]), np.array([5, 6, 7])).tolist() == [2, 0]
    assert rows_of(_table([]), np.array([1])).tolist() == []


def test_a_read_only_column_is_checked_once_and_other_arrays_every_time():
    """Whether a page-table column ascends is remembered for that (read-only) array only."""
    column = np.array([3, 5, 9])
    column.setflags(write=False)
    assert positions(column, np.array([9, 3])).tolist() == [2, 0]
    assert positions(column, np.array([5])).tolist() == [1]  # remembered
    other = np.array([9, 3, 5])  # same length, not sorted: checked again
    other.setflags(write=False)
    assert positions(other, np.array([5, 9])).tolist() == [2, 0]
    writable = np.array([3, 5, 9])
    assert positions(writable, np.array([9])).tolist() == [2]
    writable[:] = [9, 5, 3]  # changed in place: a writable array is never taken on trust
    assert positions(writable, np.array([9])).tolist() == [0]


def test_an_extension_reads_only_its_new_delta(tmp_path, vectors, monkeypatch):
    """A writer's extension, and a reader picking up another process's, read the new delta
    file alone: the base (13M rows for the token IVF at 100k pages) stays as loaded."""
    import faiss

    monkeypatch.setattr(page_first_stage, "EXACT_PAGES", 0)
    fetch = lambda t: vectors[t.page_ids]  # noqa: E731
    table = _table(np.arange(0, 3000))
    writer = PageIvf(tmp_path, "head", "v1").sync(table, fetch)
    reader = PageIvf(tmp_path, "head", "v1").sync(table, fetch, build=False)
    reads = []
    real = faiss.read_index
    monkeypatch.setattr(faiss, "read_index", lambda path, *a: reads.append(path) or real(path, *a))
    base = writer.files.base
    for hi in (3100, 3200):
        table = _table(np.arange(0, hi))
        writer = writer.sync(table, fetch)
        assert writer.files.base is base and writer.files.delta.ntotal == hi - 3000
        kinds = [p.split("/")[-1].split("-")[1] for p in reads]
        assert "base" not in kinds and kinds[-1] == "delta", kinds  # the old delta to add to, the new one
        reads.clear()
        reader = reader.sync(table, fetch, build=False)
        assert [p.split("/")[-1].split("-")[1] for p in reads] == ["delta"]
        assert reader.files.base is not None and table.page_ids[reader.nearest(vectors[hi - 1], 1, 64, table)[0]] == hi - 1
        reads.clear()
