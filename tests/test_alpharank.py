"""alpha-rank: known values, limits, and the log-space solve.

Independent sources: the stationary distribution of Han et al.'s (2013)
five-strategy game published in OpenSpiel's test suite; the closed-form
fixation probability; RPS symmetry; the sink strongly connected components
of the response graph computed by scipy's graph routines; numpy's
eigen-solver on small chains.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nashax.solvers import alpharank as A
from nashax.theory.ranking import _sink_mask  # scipy's strong components
from _utils import x64 as _x64

RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


@_x64
def test_han_et_al_stationary_distribution():
  """Han et al. (2013) with r=1, t=2, p=0, s=-1, delta=4, eps=0.25, m=20, alpha=0.1 (general selection
  model): pi = (0.40966787, 0.07959841, 0.20506998, 0.08505983, 0.2206039), OpenSpiel's alpharank_test.py."""
  r, t, p, s, delta, eps = 1.0, 2.0, 0.0, -1.0, 4.0, 0.25
  m = np.array([[r - eps / 2, r - eps, 0, s + delta - eps, r - eps], [r, r, s, s, s], [0, t, p, p, p],
                [t - delta, t, p, p, p], [r, t, p, p, p]])
  res = A.alpharank(m, 0.1, 20, single_population=True)
  np.testing.assert_allclose(np.asarray(res.pi), [0.40966787, 0.07959841, 0.20506998, 0.08505983, 0.2206039],
                             atol=5e-9)
  assert float(res.residual) < 1e-14


@_x64
def test_fixation_probability_closed_form():
  """rho = (1 - e^{-alpha df}) / (1 - e^{-m alpha df}), the fixation probability of Omidshafiei et al.
  (arXiv:1903.01373): 0.8647 for alpha = 1, m = 50, df = 2; 1/m at df = 0; both signs and huge |alpha df|
  stay finite in log-space."""
  np.testing.assert_allclose(float(jnp.exp(A.fixation_log_prob(2.0, 1.0, 50))), (1 - np.exp(-2)) / (1 - np.exp(-100)),
                             rtol=1e-14)
  np.testing.assert_allclose(float(jnp.exp(A.fixation_log_prob(0.0, 1.0, 50))), 1 / 50, rtol=1e-14)
  for x in (-3.0, -0.01, 0.01, 3.0):
    want = (1 - np.exp(-x)) / (1 - np.exp(-50 * x))
    np.testing.assert_allclose(float(jnp.exp(A.fixation_log_prob(x, 1.0, 50))), want, rtol=1e-12)
  big = float(A.fixation_log_prob(-1.0, 1e5, 50))  # log rho = 49 * (-1e5) - ...: finite
  np.testing.assert_allclose(big, -49 * 1e5, rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.1, 1.0, 100.0, 1e4, np.inf])
@_x64
def test_rock_paper_scissors_is_uniform(alpha):
  """By symmetry the ranking of RPS is uniform for every alpha, one or two populations."""
  single = A.alpharank(RPS, alpha, 50, single_population=True).pi
  np.testing.assert_allclose(np.asarray(single), np.full(3, 1 / 3), atol=1e-12)
  multi = A.alpharank(np.stack([RPS, -RPS]), alpha, 50).pi
  np.testing.assert_allclose(np.asarray(multi), np.full(9, 1 / 9), atol=1e-12)


@_x64
def test_gth_matches_an_eigen_solve_on_moderate_chains():
  """The log-space GTH solve agrees with numpy's left eigenvector for eigenvalue 1 on random chains."""
  rng = np.random.default_rng(0)
  for _ in range(5):
    payoffs = rng.normal(size=(3, 3, 2, 4))
    res = A.alpharank(payoffs, 2.0, 10)
    c = np.exp(np.asarray(res.log_rates))
    c += np.diag(1 - c.sum(1))
    w, v = np.linalg.eig(c.T)
    ref = np.real(v[:, np.argmin(np.abs(w - 1))]); ref /= ref.sum()
    np.testing.assert_allclose(np.asarray(res.pi), ref, atol=1e-10)
    assert float(res.residual) < 1e-12


@_x64
def test_infinite_alpha_lives_on_the_sink_components():
  """On random 3x3x3 general-sum games (integer payoffs, so with ties) the alpha = inf mass is exactly on the
  sink SCCs of the weak response graph (scipy's strong components), and finite alpha = 1e4 in log-space is
  finite and already there."""
  rng = np.random.default_rng(1)
  for _ in range(10):
    payoffs = rng.integers(-3, 4, size=(3, 3, 3, 3)).astype(float)
    adj = np.asarray(A.response_graph(payoffs, weak=True))
    sink = _sink_mask(adj)
    pi = np.asarray(A.alpharank(payoffs, np.inf, 20).pi)
    assert pi[~sink].sum() < 1e-12 and (pi[sink] > 1e-12).all()
    big = A.alpharank(payoffs, 1e4, 20)
    assert np.isfinite(np.asarray(big.pi)).all() and float(big.residual) < 1e-10
    assert np.asarray(big.pi)[~sink].sum() < 1e-9


@_x64
def test_single_and_multi_population_agree_where_they_must():
  """Symmetric two-player games: the two-population ranking is symmetric (pi(i, j) = pi(j, i)); with a
  strictly dominant strategy both rankings concentrate on it (and on its diagonal profile)."""
  rng = np.random.default_rng(2)
  m = rng.normal(size=(4, 4))
  pi = np.asarray(A.alpharank(np.stack([m, m.T]), 3.0, 30).pi).reshape(4, 4)
  np.testing.assert_allclose(pi, pi.T, atol=1e-13)
  dom = rng.normal(size=(4, 4))
  dom[2] = dom.max() + 1.0  # strategy 2 beats everything against every opponent
  single = np.asarray(A.alpharank(dom, 50.0, 30, single_population=True).pi)
  multi = np.asarray(A.alpharank(np.stack([dom, dom.T]), 50.0, 30).pi).reshape(4, 4)
  assert single[2] > 1 - 1e-9 and multi[2, 2] > 1 - 1e-9


@_x64
def test_battle_of_the_sexes_splits_between_the_coordination_profiles():
  """Battle of the sexes (O,O) = (3,2), (M,M) = (2,3), mismatches 0: mass 1/2 on each coordination profile."""
  bos = np.stack([np.array([[3.0, 0.0], [0.0, 2.0]]), np.array([[2.0, 0.0], [0.0, 3.0]])])
  np.testing.assert_allclose(np.asarray(A.alpharank(bos, 10.0, 50).pi), [0.5, 0, 0, 0.5], atol=1e-9)


def test_jit_and_vmap_over_alpha_and_games():
  """alpha is traced and games batch: vmap equals the loop."""
  rng = np.random.default_rng(3)
  games = jnp.asarray(rng.normal(size=(4, 2, 3, 3)), jnp.float32)
  alphas = jnp.array([0.5, 1.0, 5.0, 20.0])
  f = jax.jit(jax.vmap(lambda g, a: A.alpharank(g, a, 10).pi))
  out = f(games, alphas)
  for i in range(4):
    np.testing.assert_allclose(np.asarray(out[i]), np.asarray(A.alpharank(games[i], float(alphas[i]), 10).pi),
                               rtol=1e-5, atol=1e-6)


def test_bad_input_is_refused():
  """Wrong player axis, NaN, m < 2, alpha < 0: ValueError naming the argument."""
  with pytest.raises(ValueError, match="payoffs"):
    A.alpharank(np.zeros((3, 3, 3)), 1.0, 10)  # 2 players need [2, a1, a2]
  with pytest.raises(ValueError, match="payoffs"):
    A.alpharank(np.full((2, 2, 2), np.nan), 1.0, 10)
  with pytest.raises(ValueError, match="payoffs"):
    A.alpharank(np.zeros((3, 4)), 1.0, 10, single_population=True)
  with pytest.raises(ValueError, match="m"):
    A.alpharank(np.zeros((2, 2, 2)), 1.0, 1)
  with pytest.raises(ValueError, match="alpha"):
    A.alpharank(np.zeros((2, 2, 2)), -1.0, 10)


# ----------------------------------------------------------------------------- the solve's method choice


@_x64
def test_automatic_method_equals_the_log_space_solve_on_random_games():
  """On random games (single population, both selection models, and three populations) at alpha from 0.1 to
  1e4, ``method="auto"`` gives the log-space GTH's pi to 1e-10; the linear solve is taken on most of them,
  so the comparison is not GTH against itself. Independent source: GTH (a second algorithm, checked against
  numpy's eigen-solver and OpenSpiel's published values above)."""
  rng = np.random.default_rng(11)
  linear = 0
  cases = 0
  for kind in ("general", "local", "multi"):
    kw = {} if kind == "multi" else dict(single_population=True, local_selection=kind == "local")
    auto = jax.jit(lambda g, a, kw=kw: A.alpharank(g, a, 20, **kw))  # alpha traced: the lax.cond path
    gth = jax.jit(lambda g, a, kw=kw: A.alpharank(g, a, 20, method="gth", **kw).pi)
    for alpha in (0.1, 1.0, 10.0, 100.0, 1e4):
      g = jnp.asarray(rng.normal(size=(3, 4, 3, 3)) if kind == "multi" else rng.normal(size=(30, 30)))
      res = auto(g, alpha)
      np.testing.assert_allclose(np.asarray(res.pi), np.asarray(gth(g, alpha)), rtol=0, atol=1e-10)
      linear += bool(res.linear)
      cases += 1
  concrete = A.alpharank(np.asarray(g), 1e4, 20)  # the Python-side choice
  np.testing.assert_allclose(np.asarray(concrete.pi), np.asarray(gth(g, 1e4)), rtol=0, atol=1e-10)
  assert linear >= cases - 2


@_x64
def test_nearly_decomposable_chain_is_left_to_gth():
  """Two fast pairs {0, 1}, {2, 3} joined by rates a = 1e-13 (0 -> 2) and b = 3e-13 (3 -> 1): balance of the
  flux between the pairs gives pi = (3/8, 3/8, 1/8, 1/8) exactly. The jump chain is nearly decomposable: the
  linear solve alone is off by more than 1e-6, its error estimate says so, and "auto" returns GTH's answer."""
  lr = np.full((4, 4), -np.inf)
  lr[0, 1] = lr[1, 0] = lr[2, 3] = lr[3, 2] = 0.0
  lr[0, 2], lr[3, 1] = np.log(1e-13), np.log(3e-13)
  want = np.array([3, 3, 1, 1]) / 8
  lp, amp = A.stationary_linear(jnp.asarray(lr))
  assert np.abs(np.exp(np.asarray(lp)) - want).max() > 1e-6 and float(amp) > A.MAX_AMPLIFICATION
  pi, used = A.stationary(jnp.asarray(lr))
  assert not bool(used)
  np.testing.assert_allclose(np.asarray(pi), want, rtol=1e-12)
  traced, used_t = jax.jit(A.stationary)(jnp.asarray(lr))  # the lax.cond path
  np.testing.assert_allclose(np.asarray(traced), want, rtol=1e-12)
  assert not bool(used_t)


@_x64
def test_infinite_alpha_defers_to_the_sink_component_solve():
  """At alpha = inf every method solves the limit chain by GTH: the same pi as ``stationary_log`` on
  ``infinite_alpha_log_rates``, its mass on the sink SCCs of the weak response graph (scipy)."""
  rng = np.random.default_rng(12)
  payoffs = rng.integers(-2, 3, size=(2, 4, 4)).astype(float)
  want = np.exp(np.asarray(A.stationary_log(A.infinite_alpha_log_rates(payoffs))))
  sink = _sink_mask(np.asarray(A.response_graph(payoffs, weak=True)))
  for method in A.METHODS:
    res = A.alpharank(payoffs, np.inf, 20, method=method)
    assert not bool(res.linear)
    np.testing.assert_allclose(np.asarray(res.pi), want, rtol=0, atol=1e-15)
  assert want[~sink].sum() < 1e-12 and (want[sink] > 1e-12).all()


def test_unknown_method_is_refused():
  """A misspelt method is a ValueError naming ``method``."""
  with pytest.raises(ValueError, match="method"):
    A.alpharank(RPS, 1.0, 10, single_population=True, method="lu")
  with pytest.raises(ValueError, match="method"):
    A.stationary(jnp.zeros((3, 3)), method="eig")


# ----------------------------------------------------------------------------- meta-games


def test_payoff_table_from_array_csv_and_its_errors(tmp_path):
  """A square table is the symmetric game (M, M^T); a long-format CSV round-trips to the same tensor;
  a missing profile, a duplicate, a wrong width or NaN are refused with the argument named."""
  from nashax import games
  m = np.arange(9.0).reshape(3, 3)
  g = games.payoff_table(m)
  np.testing.assert_array_equal(np.asarray(g.payoffs), np.stack([m, m.T]))
  rng = np.random.default_rng(5)
  t = rng.normal(size=(3, 2, 3, 2))
  path = tmp_path / "t.csv"
  with open(path, "w") as fh:
    fh.write("s1,s2,s3,u1,u2,u3\n")
    for idx in np.ndindex(2, 3, 2):
      fh.write(",".join(str(v) for v in list(idx) + [repr(float(x)) for x in t[(slice(None),) + idx]]) + "\n")
  with jax.enable_x64(True):
    np.testing.assert_array_equal(np.asarray(games.payoff_table(str(path)).payoffs), t)
  lines = path.read_text().splitlines()
  (tmp_path / "missing.csv").write_text("\n".join(lines[:-1]))
  with pytest.raises(ValueError, match="missing"):
    games.payoff_table(str(tmp_path / "missing.csv"))
  (tmp_path / "dup.csv").write_text("\n".join(lines + [lines[-1]]))
  with pytest.raises(ValueError, match="twice"):
    games.payoff_table(str(tmp_path / "dup.csv"))
  with pytest.raises(ValueError, match="columns"):
    games.payoff_table(str(path), num_players=2)
  with pytest.raises(ValueError, match="source"):
    games.payoff_table(np.full((2, 2), np.nan))
  with pytest.raises(ValueError, match="square"):
    games.payoff_table(np.zeros((2, 3)))


def test_bernoulli_games_and_their_samples():
  """Means in [0, 1] (constant-sum: the two tables sum to 1); sample means approach the payoffs at the
  Hoeffding rate (4 standard errors over 20,000 draws)."""
  from nashax import games
  g = games.bernoulli_game(jax.random.key(0), (3, 4), constant_sum=True)
  p = np.asarray(g.payoffs)
  assert p.shape == (2, 3, 4) and (p >= 0).all() and (p <= 1).all()
  np.testing.assert_allclose(p[0] + p[1], 1.0, atol=1e-6)
  x = np.asarray(games.sample_outcomes(jax.random.key(1), g, 20_000))
  assert set(np.unique(x)) <= {0.0, 1.0}
  assert np.abs(x.mean(0) - p).max() < 4 * 0.5 / np.sqrt(20_000)
  with pytest.raises(ValueError, match="constant_sum"):
    games.bernoulli_game(jax.random.key(0), (2, 2, 2), constant_sum=True)


@pytest.mark.parametrize("local", [False, True])
@_x64
def test_matrix_free_iteration_matches_the_direct_solve(local):
  """The blocked, matrix-free lazy power iteration (never storing C) reaches the GTH solution to 1e-12,
  with a block size that does not divide n."""
  rng = np.random.default_rng(6)
  for n in (7, 60):
    m = rng.normal(size=(n, n))
    direct = A.alpharank(m, 2.0, 20, single_population=True, local_selection=local).pi
    it = A.single_population_iterative(m, 2.0, 20, local_selection=local, block=16, tol=1e-15)
    np.testing.assert_allclose(np.asarray(it.pi), np.asarray(direct), atol=1e-12)
  cached = A.single_population_iterative(m, 2.0, 20, local_selection=local, block=16, tol=1e-15, cache=True)
  np.testing.assert_allclose(np.asarray(cached.pi), np.asarray(direct), atol=1e-12)


@_x64
def test_kuhn_poker_value_is_minus_one_eighteenth_and_the_meta_game_is_antisymmetric():
  """Kuhn (1950): the first player's equilibrium value is -1/18 for every alpha in [0, 1/3]; against the
  equilibrium no pure policy of either seat does better (all 64 pure policies enumerated)."""
  import itertools
  from nashax import games
  for a in (0.0, 0.1, 1 / 3):
    nash = games.kuhn_nash_policy(a)
    np.testing.assert_allclose(float(games.kuhn_poker_value(nash, nash)), -1 / 18, atol=1e-15)
    pures = [np.array(bits, float).reshape(2, 3) for bits in itertools.product([0, 1], repeat=6)]
    as_second = [float(games.kuhn_poker_value(nash, jnp.concatenate([jnp.zeros((2, 3)), jnp.asarray(p)])))
                 for p in pures]
    as_first = [float(games.kuhn_poker_value(jnp.concatenate([jnp.asarray(p), jnp.zeros((2, 3))]), nash))
                for p in pures]
    assert min(as_second) >= -1 / 18 - 1e-12 and max(as_first) <= -1 / 18 + 1e-12
  rng = np.random.default_rng(7)
  pols = np.concatenate([rng.uniform(size=(4, 4, 3)), np.asarray(games.kuhn_nash_policy(0.2))[None]])
  g = games.kuhn_meta_game(pols)
  m = np.asarray(g.payoffs[0])
  np.testing.assert_allclose(m, -m.T, atol=1e-15)
  assert (m[4, :4] >= -1e-12).all()  # the equilibrium policy loses to no one on average over seats
  with pytest.raises(ValueError, match="policies"):
    games.kuhn_meta_game(np.zeros((3, 4, 2)))
