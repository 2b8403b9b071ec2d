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


def test_response_graph_ucb_finds_the_graph_within_its_sample_bound():
  """OpenSpiel's 2x2 Bernoulli test case (means [[.5, .85], [.15, .5]] and 1 - that): every edge resolved, the
  graph equals alpharank.response_graph of the true means, samples within sample_bound, same key = same run."""
  from nashax.solvers import alpharank as A
  with jax.enable_x64(True):
    m = np.array([[0.5, 0.85], [0.15, 0.5]])
    mu = np.stack([m, 1 - m])
    out = R.response_graph_ucb(jax.random.key(0), mu, 0.1)
    assert bool(out.resolved.all())
    np.testing.assert_array_equal(np.asarray(out.graph), np.asarray(A.response_graph(mu)))
    assert int(out.samples) <= R.sample_bound(mu, 0.1)
    assert int(out.samples) == int(np.asarray(out.counts).sum())
    again = R.response_graph_ucb(jax.random.key(0), mu, 0.1)
    assert int(again.samples) == int(out.samples)
    np.testing.assert_allclose(np.asarray(out.edge_confidence), 1 - 2 * 0.1 / 8)
    # Traced means (a jit or vmap over games) give the same run as concrete ones.
    both = jax.jit(jax.vmap(lambda m: R.response_graph_ucb(jax.random.key(0), m, 0.1)))(np.stack([mu, mu[::-1]]))
    assert int(both.samples[0]) == int(out.samples)
    np.testing.assert_array_equal(np.asarray(both.graph[0]), np.asarray(out.graph))
    np.testing.assert_array_equal(np.asarray(both.graph[1]), np.asarray(A.response_graph(mu[::-1])))


def test_response_graph_ucb_reports_unresolved_edges_when_the_budget_runs_out():
  """A tiny gap (0.5 vs 0.51) and a budget of 200 samples: that edge stays unresolved with confidence 0."""
  with jax.enable_x64(True):
    m = np.array([[0.5, 0.51], [0.9, 0.1]])
    out = R.response_graph_ucb(jax.random.key(1), np.stack([m, 1 - m]), 0.1, max_samples=200)
    assert int(out.samples) <= 200 and not bool(out.resolved.all())
    assert (np.asarray(out.edge_confidence)[~np.asarray(out.resolved)] == 0).all()


def test_response_graph_ucb_refuses_bad_input():
  with pytest.raises(ValueError, match="means"):
    R.response_graph_ucb(jax.random.key(0), np.full((2, 2, 2), 1.5))
  with pytest.raises(ValueError, match="means"):
    R.response_graph_ucb(jax.random.key(0), np.zeros((3, 2, 2)))
  with pytest.raises(ValueError, match="delta"):
    R.response_graph_ucb(jax.random.key(0), np.full((2, 2, 2), 0.5), delta=1.0)


def test_rank_policies_side_by_side_exact_and_sampled():
  """On the intransitive dice game, the three dice as pure policies: the exact win table is the dice's 5/9
  cycle (each die beats the next on 5 of the 9 face pairs), alpha-rank and Nash averaging are uniform while
  Elo gives equal ratings.
  Sampled: the table is within 4 binomial standard errors of the exact one and the bootstrap spread is positive."""
  from nashax import games
  with jax.enable_x64(True):
    g = games.intransitive_dice()
    eye = np.eye(3)
    out = R.rank_policies(jax.random.key(0), g, eye)
    w = np.asarray(out.win_rates)
    np.testing.assert_allclose(w[0, 1] if w[0, 1] > 0.5 else w[1, 0], 5 / 9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(out.alpharank), np.full(3, 1 / 3), atol=1e-9)
    np.testing.assert_allclose(np.asarray(out.nash_average), np.full(3, 1 / 3), atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.elo), 0.0, atol=1e-6)
    s = R.rank_policies(jax.random.key(1), g, eye, num_samples=4000, bootstrap=20)
    assert (np.abs(np.asarray(s.win_rates) - w) <= 4 * np.maximum(np.asarray(s.win_rate_stderr), 1e-3)).all()
    assert (np.asarray(s.elo_std) > 0).all() and (np.asarray(s.alpharank_std) > 0).all()
  with pytest.raises(ValueError, match="policies"):
    R.rank_policies(jax.random.key(0), g, np.ones((2, 3)))
  with pytest.raises(ValueError, match="game"):
    R.rank_policies(jax.random.key(0), g.preference, eye)
