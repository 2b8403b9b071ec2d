"""Elo and Nash averaging (solvers/ranking.py).

Independent sources: win rates generated from known Elo ratings (the model's
closed form), the Bradley-Terry Fisher information written out by hand, RPS
symmetry, and the closed-form maximum-entropy equilibrium of RPS with a
duplicated strategy (Balduzzi et al. 2018: Nash averaging is invariant to
copies).
"""

import jax
import numpy as np
import pytest

from nashax.solvers import ranking as R

RPS = np.array([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])


def test_elo_recovers_the_ratings_that_generated_the_table_and_its_standard_errors():
  """W = sigmoid((r_i - r_j) / (400 / ln 10)) gives back r (mean 0) to 1e-4 points; the standard errors are
  sqrt(diag((I + 11^T)^-1)) of the hand-written Fisher information I (Bradley-Terry)."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    r = rng.normal(size=6) * 300
    r -= r.mean()
    w = 1 / (1 + np.exp(-(r[:, None] - r[None, :]) / R.ELO_SCALE))
    np.fill_diagonal(w, 0.5)
    n = rng.integers(20, 200, size=(6, 6)).astype(float)
    n = n + n.T
    out = R.elo(w, counts=n)
    np.testing.assert_allclose(np.asarray(out.ratings), r, atol=1e-4)
    s = w * (1 - w)
    np.fill_diagonal(n, 0.0)
    info = -(n + n.T) * s
    np.fill_diagonal(info, 0.0)
    np.fill_diagonal(info, -info.sum(1))
    cov = np.linalg.inv(info + 1.0)  # + 11^T pins the mean
    np.testing.assert_allclose(np.asarray(out.stderr), R.ELO_SCALE * np.sqrt(np.diag(cov)), rtol=1e-4)


def test_elo_cannot_rank_a_cycle_but_nash_averaging_is_uniform_on_it():
  """Rock-paper-scissors win rates: equal Elo ratings; Nash averaging's equilibrium is uniform with zero ratings."""
  with jax.enable_x64(True):
    np.testing.assert_allclose(np.asarray(R.elo(RPS).ratings), 0.0, atol=1e-9)
    na = R.nash_averaging(RPS)
    np.testing.assert_allclose(np.asarray(na.equilibrium), np.full(3, 1 / 3), atol=1e-9)
    assert float(na.gap) < 1e-9


def test_nash_averaging_splits_a_duplicated_strategy_and_finds_a_dominant_one():
  """RPS with rock copied: the maximum-entropy equilibrium is (1/6, 1/3, 1/3, 1/6) and every rating is 0
  (invariance to copies); a transitive table puts all mass on the best agent (gap <= 1e-5)."""
  with jax.enable_x64(True):
    rps4 = np.array([[0.5, 0, 1, 0.5], [1, 0.5, 0, 1], [0, 1, 0.5, 0], [0.5, 0, 1, 0.5]])
    na = R.nash_averaging(rps4)
    np.testing.assert_allclose(np.asarray(na.equilibrium), [1 / 6, 1 / 3, 1 / 3, 1 / 6], atol=1e-8)
    np.testing.assert_allclose(np.asarray(na.ratings), 0.0, atol=1e-8)
    r = np.array([0.0, 100.0, 300.0, -50.0])
    w = 1 / (1 + np.exp(-(r[:, None] - r[None, :]) / R.ELO_SCALE))
    np.fill_diagonal(w, 0.5)
    na = R.nash_averaging(w)
    assert float(na.equilibrium[2]) > 1 - 1e-4 and float(na.gap) < 1e-5


def test_bad_win_rates_are_refused():
  with pytest.raises(ValueError, match="win_rates"):
    R.elo(np.array([[0.5, 0.7], [0.7, 0.5]]))  # W + W^T != 1
  with pytest.raises(ValueError, match="win_rates"):
    R.nash_averaging(np.zeros((3, 2)))
  with pytest.raises(ValueError, match="win_rates"):
    R.elo(np.array([[0.5, np.nan], [np.nan, 0.5]]))
