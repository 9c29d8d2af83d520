"""Fusion invariants: what z-score and reciprocal-rank fusion must keep whatever the signals."""

from __future__ import annotations

import numpy as np
import pytest

from retriever.fusion import (
    reciprocal_ranks,
    sparse_moments,
    sparse_top,
    top_of,
    sparse_values,
    standardize,
    top_indices,
    weighted_sum,
)

RNG = np.random.default_rng(3)
A, B = RNG.normal(size=50), RNG.normal(size=50)


def order(scores: np.ndarray) -> list[int]:
    return np.argsort(-scores, kind="stable").tolist()


@pytest.mark.parametrize("transform", [np.exp, lambda x: 3 * x + 7, lambda x: x ** 3, np.arctan])
def test_a_monotone_transform_of_a_signal_does_not_change_rank_fusion(transform):
    fused = weighted_sum({"a": A, "b": B}, {"a": 1.0, "b": 0.5}, reciprocal_ranks)
    again = weighted_sum({"a": transform(A), "b": B}, {"a": 1.0, "b": 0.5}, reciprocal_ranks)
    np.testing.assert_array_equal(fused, again)


@pytest.mark.parametrize("scale", [standardize, reciprocal_ranks])
def test_fusing_one_signal_ranks_as_that_signal(scale):
    assert order(weighted_sum({"a": A}, {"a": 2.0}, scale)) == order(A)
    # a signal with weight 0, or one not given, changes nothing
    assert order(weighted_sum({"a": A, "b": B}, {"a": 1.0, "b": 0.0}, scale)) == order(A)


def test_z_scores_are_invariant_to_affine_changes_and_pad_missing_scores():
    np.testing.assert_allclose(standardize(5 * A + 2), standardize(A))
    with_gap = np.r_[A, -np.inf]
    z = standardize(with_gap)
    assert z[-1] == -10.0 and order(z)[-1] == len(A)  # a page without the signal ranks last
    assert not standardize(np.ones(4)).any()  # a flat signal says nothing


def test_reciprocal_ranks_reward_the_first_ranks_most():
    rr = reciprocal_ranks(np.array([0.1, 0.9, 0.5]), k=60)
    assert rr.tolist() == pytest.approx([1 / 63, 1 / 61, 1 / 62])
    with pytest.raises(ValueError, match="no signal"):
        weighted_sum({"a": A}, {"b": 1.0})


@pytest.mark.parametrize("nonzero", [0, 1, 3, 40, 400])
def test_a_signal_given_by_its_nonzero_pages_scales_and_ranks_as_the_whole(nonzero):
    rng = np.random.default_rng(nonzero)
    n, k = 1000, 50
    dense = np.zeros(n)
    positions = np.sort(rng.choice(n, nonzero, replace=False))
    dense[positions] = rng.choice([0.5, 1.0, 2.5], nonzero)  # ties, as BM25 has
    values = dense[positions]
    at = np.sort(rng.choice(n, 200, replace=False))
    mean, std = sparse_moments(values, n)
    scaled = (sparse_values(positions, values, at) - mean) / std if std > 0 else np.zeros(len(at))
    np.testing.assert_allclose(scaled, standardize(dense)[at], atol=1e-9)
    shuffled = rng.permutation(len(positions))  # positions in any order: the same best k
    assert top_of(positions[shuffled], values[shuffled], n, k).tolist() == top_indices(dense, k).tolist()
    assert sparse_top(positions, values, n, k).tolist() == top_indices(dense, k).tolist()
    np.testing.assert_array_equal(sparse_values(positions, values, at), dense[at])
