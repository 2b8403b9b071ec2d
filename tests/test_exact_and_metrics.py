"""Known values for the LP reference, the metrics and the simplex helpers."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games, solvers
from nashax.core import metrics as M
from nashax.core import simplex

import catalogue
from _utils import x64


def test_lp_weighted_rps():
  """Biased RPS Nash (1/16, 5/8, 5/16), value 0: the closed form (a, b, c)/(a + b + c) of a skew-symmetric
  three-cycle, each action weighted by the win it is not part of (here (0.1, 1.0, 0.5) / 1.6)."""
  sol = solvers.solve_lp(games.weighted_rock_paper_scissors(1.0, 0.5, 0.1).payoff)
  np.testing.assert_allclose(sol.x, [1 / 16, 5 / 8, 5 / 16], atol=1e-6)
  np.testing.assert_allclose(sol.y, [1 / 16, 5 / 8, 5 / 16], atol=1e-6)
  assert abs(sol.value) < 1e-7


@pytest.mark.parametrize("a,b,c,d", [(3, -1, -2, 1), (2, -3, -1, 4), (0.5, -0.2, -0.7, 0.1)])
def test_lp_two_by_two_closed_form(a, b, c, d):
  """2x2 games without a saddle point: x1 = (d-c)/D, y1 = (d-b)/D, v = (ad-bc)/D, D = a+d-b-c."""
  sol = solvers.solve_lp([[a, b], [c, d]])
  den = a + d - b - c
  np.testing.assert_allclose(sol.x[0], (d - c) / den, atol=1e-9)
  np.testing.assert_allclose(sol.y[0], (d - b) / den, atol=1e-9)
  np.testing.assert_allclose(sol.value, (a * d - b * c) / den, atol=1e-9)


def test_lp_saddle_point_and_blotto():
  """A pure saddle point; symmetric Blotto has value 0 (skew-symmetric payoff)."""
  sol = solvers.solve_lp([[4.0, 2.0], [3.0, 1.0]])  # row 0 dominates; column 1 dominates: v = 2
  assert abs(sol.value - 2.0) < 1e-9 and sol.x[0] > 1 - 1e-9 and sol.y[1] > 1 - 1e-9
  assert abs(solvers.solve_lp(games.colonel_blotto(5, 3).payoff).value) < 1e-9


def test_von_neumann_winners():
  """BT preferences: the Condorcet winner (argmax reward); cycles and dice: uniform."""
  np.testing.assert_allclose(solvers.von_neumann_winner(games.bradley_terry([0.1, 2.0, -1.0]).preference),
                             [0, 1, 0], atol=1e-9)
  np.testing.assert_allclose(solvers.von_neumann_winner(games.condorcet_cycle(5, 0.8).preference),
                             np.ones(5) / 5, atol=1e-9)
  np.testing.assert_allclose(solvers.von_neumann_winner(games.intransitive_dice().preference),
                             np.ones(3) / 3, atol=1e-9)
  assert np.isclose(float(games.intransitive_dice().preference[0, 1]), 5 / 9)


@x64
def test_random_interior_zero_sum_has_its_stated_equilibrium_and_law():
  """Its (x*, y*) equalise every pure strategy (A y* = v 1, x*^T A = v 1^T) and the LP finds the value v;
  x* follows Dirichlet(2, ..., 2): mean 1/n and variance a (a0 - a) / (a0^2 (a0 + 1)) with a = 2, a0 = 2n
  (the Dirichlet moments), over 4,000 draws (tolerances about four standard errors)."""
  n, v = 4, 0.3
  g, (x, y) = games.random_interior_zero_sum(jax.random.key(5), n, value=v)
  a = np.asarray(g.payoff)
  np.testing.assert_allclose(a @ np.asarray(y), v, atol=1e-12)
  np.testing.assert_allclose(np.asarray(x) @ a, v, atol=1e-12)
  assert abs(solvers.solve_lp(a).value - v) < 1e-9
  _, (xs, _) = jax.vmap(lambda k: games.random_interior_zero_sum(k, n))(jax.random.split(jax.random.key(6), 4000))
  xs = np.asarray(xs)
  np.testing.assert_allclose(xs.sum(1), 1.0, atol=1e-12)
  assert (xs > 0).all()
  np.testing.assert_allclose(xs.mean(0), 1 / n, atol=0.01)
  np.testing.assert_allclose(xs.var(0), 2 * (2 * n - 2) / ((2 * n) ** 2 * (2 * n + 1)), rtol=0.08)


def test_exact_equilibrium_of_padded_game():
  g = games.random_zero_sum(jax.random.key(4), 3, 2)
  full = solvers.exact_equilibrium(g)
  padded = solvers.exact_equilibrium(games.pad(g, 5, 6))
  np.testing.assert_allclose(padded.x[:3], full.x, atol=1e-9)
  np.testing.assert_allclose(padded.x[3:], 0.0)
  np.testing.assert_allclose(padded.value, full.value, atol=1e-9)


def test_duality_gap_known_values():
  """RPS: (uniform, rock) gap = max(A e_R) - min(u^T A) = 1 - 0 = 1 by hand."""
  g = games.rock_paper_scissors()
  u = jnp.ones(3) / 3
  assert float(M.duality_gap(g, (u, u))) == pytest.approx(0.0, abs=1e-7)
  assert float(M.duality_gap(g, (u, jnp.array([1.0, 0, 0])))) == pytest.approx(1.0, abs=1e-6)
  assert float(M.duality_gap(g, (jnp.array([1.0, 0, 0]), jnp.array([1.0, 0, 0])))) == pytest.approx(2.0, abs=1e-6)


def test_nash_conv_prisoners_dilemma():
  """(C, C): each player gains T - R = 5 - 3 = 2 by defecting, NashConv 4; (D, D): 0."""
  g = games.prisoners_dilemma()
  c, d = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
  assert float(M.nash_conv(g, (c, c))) == pytest.approx(4.0)
  assert float(M.nash_conv(g, (d, d))) == pytest.approx(0.0)
  bos = games.battle_of_the_sexes()
  assert float(M.nash_conv(bos, (jnp.array([0.6, 0.4]), jnp.array([0.4, 0.6])))) == pytest.approx(0.0, abs=1e-6)


def test_nash_conv_three_players_against_enumeration():
  """Tensor contractions against a brute-force sum over pure profiles (numpy)."""
  rng = np.random.default_rng(0)
  pay = rng.normal(size=(3, 2, 3, 2))
  prof = [rng.dirichlet(np.ones(n)) for n in (2, 3, 2)]
  expected = 0.0
  for k in range(3):
    u = np.zeros(pay.shape[k + 1])
    val = 0.0
    for a in itertools.product(*(range(n) for n in (2, 3, 2))):
      pr_others = np.prod([prof[j][a[j]] for j in range(3) if j != k])
      u[a[k]] += pr_others * pay[(k,) + a]
      val += np.prod([prof[j][a[j]] for j in range(3)]) * pay[(k,) + a]
    expected += u.max() - val
  got = M.nash_conv(nashax.NormalFormGame(jnp.asarray(pay)), tuple(jnp.asarray(p) for p in prof))
  np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("beta", [None, 0.3])
def test_preference_gap_against_brute_force(beta):
  """Closed-form Gap (best responses in closed form: a vertex, or ref exp(P pi / beta) normalised when
  regularised, Munos et al. arXiv:2312.00886) vs max/min of V over 200k random strategies."""
  rng = np.random.default_rng(1)
  g = games.random_preference_game(jax.random.key(2), 3)
  ref = np.array([0.5, 0.3, 0.2])
  if beta is not None:
    g = g.regularized(beta, ref)
  p = np.asarray(g.preference, np.float64)
  pi = rng.dirichlet(np.ones(3))
  cand = np.vstack([rng.dirichlet(np.ones(3) * 0.3, 200_000), np.eye(3)])

  def kl(a, b):
    return np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1) / b), 0), -1)

  reg1 = 0 if beta is None else beta * kl(cand, ref)
  reg0 = 0 if beta is None else beta * kl(pi[None], ref)[0]
  best = np.max(cand @ p @ pi - reg1) + reg0            # max_{pi1} V(pi1, pi)
  worst = np.min(pi @ p @ cand.T + reg1) - reg0          # min_{pi2} V(pi, pi2)
  closed = float(M.preference_gap(g, jnp.asarray(pi, jnp.float32)))
  assert closed >= best - worst - 1e-5                 # the closed form is the sup
  assert closed <= best - worst + 2e-3                 # and sampling gets close to it


def test_regularized_equilibrium_has_zero_gap():
  """At the fixed point pi = softmax(log ref + P pi / beta) the gap vanishes: pi is then its own regularised
  best response, the regularised Nash equilibrium of Munos et al. (arXiv:2312.00886)."""
  with jax.enable_x64(True):
    g = games.random_preference_game(jax.random.key(3), 5, dtype=jnp.float64).regularized(0.5)
    pi = jnp.ones(5) / 5
    for _ in range(20_000):
      pi = 0.9 * pi + 0.1 * jax.nn.softmax(g.log_ref + g.preference @ pi / g.beta)
    assert float(M.preference_gap(g, pi)) < 1e-10
    assert float(M.preference_gap(g, jnp.ones(5) / 5)) > 1e-4


def test_metrics_kl_to_optimum_and_none_fields():
  g = games.matching_pennies()
  u = (jnp.ones(2) / 2, jnp.ones(2) / 2)
  m = nashax.metrics(g, (jnp.array([0.25, 0.75]), u[1]), optimum=u)
  assert float(m.kl_to_optimum) == pytest.approx(0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75), rel=1e-5)
  assert nashax.metrics(games.shapley(), (jnp.ones(3) / 3,) * 2).duality_gap is None


def test_projection_kkt():
  """Projection = argmin |p - v|^2 on the simplex: p = max(v - theta, 0) with sum 1 (KKT), both code paths."""
  rng = np.random.default_rng(0)
  for n in (5, 80):  # pairwise (n <= 64) and sort-based paths
    v = jnp.asarray(rng.normal(size=(50, n)) * 3, jnp.float32)
    p = np.asarray(simplex.project_simplex(v), np.float64)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    assert p.min() >= 0
    vv = np.asarray(v, np.float64)
    theta = (vv - p)[p > 0].reshape(-1)  # on the support, v - p is the common threshold
    for i in range(50):
      sup = p[i] > 0
      th = (vv[i] - p[i])[sup]
      np.testing.assert_allclose(th, th.mean(), atol=1e-5)
      assert (vv[i][~sup] <= th.mean() + 1e-5).all()


def test_masked_helpers():
  lp = simplex.masked_log_softmax(jnp.array([1.0, 2.0, 3.0]), jnp.array([True, False, True]))
  assert float(lp[1]) == -np.inf
  np.testing.assert_allclose(np.exp(np.asarray(lp)[[0, 2]]).sum(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(simplex.project_simplex(jnp.array([3.0, 9.0, 1.0]), jnp.array([True, False, True])),
                             [1.0, 0.0, 0.0], atol=1e-6)
  assert float(simplex.kl_from_logs(jnp.log(jnp.array([1.0, 0.0])), jnp.log(jnp.array([0.5, 0.5])))) == \
      pytest.approx(np.log(2), rel=1e-6)


# ----------------------------------------------------------------------------- the simplex method in JAX


@x64
def test_simplex_agrees_with_the_lp_on_random_games():
  """simplex_equilibrium against scipy's HiGHS (solve_lp, an independent LP code) on 60 random games of
  four shapes: the same value to 1e-12, a certified gap <= 1e-12, and the same (generically unique)
  strategies to 1e-9."""
  rng = np.random.default_rng(11)
  for n, m in [(1, 4), (5, 5), (7, 12), (16, 9)]:
    a = rng.uniform(-1, 1, (15, n, m))
    sol = solvers.simplex_equilibrium(jnp.asarray(a), chunk=4)  # 15 games: chunks of 4, one padded
    ref = solvers.solve_lp(a)
    assert sol.value.shape == (15,) and sol.x.shape == (15, n) and sol.y.shape == (15, m)
    assert np.all(np.asarray(sol.status) == nashax.SUCCESS)
    assert float(jnp.max(sol.gap)) <= 1e-12
    np.testing.assert_allclose(sol.value, ref.value, atol=1e-12)
    np.testing.assert_allclose(sol.x, ref.x, atol=1e-9)
    np.testing.assert_allclose(sol.y, ref.y, atol=1e-9)


@x64
def test_simplex_on_degenerate_games():
  """Games full of ties (where the ratio test and the reduced costs tie, and Dantzig's rule can stall):
  the catalogue with its known equilibria, Blotto, a constant matrix and 300 random {-1, 0, 1} games of
  sizes 2-6. Every one ends at an optimal basis with gap <= 1e-12 and the LP's value (HiGHS)."""
  for name, case in catalogue.CASES.items():
    g, eq, v = case()
    sol = solvers.simplex_equilibrium(g)
    assert int(sol.status) == nashax.SUCCESS and float(sol.gap) <= 1e-12, name
    assert abs(float(sol.value) - v) <= 1e-9, name
    if eq is not None:
      np.testing.assert_allclose(sol.x, eq[0], atol=1e-9, err_msg=name)
  blotto = games.colonel_blotto(5, 3).payoff
  assert abs(float(solvers.simplex_equilibrium(blotto).value)) <= 1e-12
  const = solvers.simplex_equilibrium(jnp.full((3, 4), 2.5))
  assert float(const.value) == 2.5 and float(const.gap) == 0.0
  rng = np.random.default_rng(3)
  small = [games.pad(nashax.MatrixGame.from_payoff(rng.integers(-1, 2, (s, s)).astype(np.float64)), 6, 6)
           for s in range(2, 7) for _ in range(60)]
  sol = solvers.simplex_equilibrium(jax.tree.map(lambda *z: jnp.stack(z), *small), chunk=32)  # one batch
  assert np.all(np.asarray(sol.status) == nashax.SUCCESS)
  assert float(jnp.max(sol.gap)) <= 1e-12
  lp = [solvers.exact_equilibrium(g).value for g in small]
  np.testing.assert_allclose(sol.value, lp, atol=1e-9)


@x64
def test_simplex_respects_padding_and_preference_games():
  """A padded game has the unpadded game's equilibrium and 0 on padding (games.pad); a preference game
  gives its von Neumann winner (HiGHS); a batch of padded games of different sizes solves in one call."""
  g = games.random_zero_sum(jax.random.key(4), 3, 5)
  ref = solvers.solve_lp(g.payoff)
  sol = solvers.simplex_equilibrium(games.pad(g, 6, 8))
  np.testing.assert_allclose(sol.x, np.r_[ref.x, np.zeros(3)], atol=1e-10)
  np.testing.assert_allclose(sol.y, np.r_[ref.y, np.zeros(3)], atol=1e-10)
  assert abs(float(sol.value) - ref.value) <= 1e-12 and float(sol.gap) <= 1e-12
  pg = games.random_preference_game(jax.random.key(2), 7)
  np.testing.assert_allclose(solvers.simplex_equilibrium(pg).x, solvers.von_neumann_winner(pg.preference),
                             atol=1e-9)
  small = [games.pad(games.random_zero_sum(jax.random.key(i), 2 + i, 4 - i), 5, 5) for i in range(3)]
  batch = jax.tree.map(lambda *z: jnp.stack(z), *small)
  sols = solvers.simplex_equilibrium(batch)
  for i, gi in enumerate(small):
    assert abs(float(sols.value[i]) - solvers.exact_equilibrium(gi).value) <= 1e-12


@x64
def test_simplex_under_jit_and_vmap_and_its_failures():
  """jit(vmap(simplex_equilibrium)) equals the batched call; NaN payoffs, or a traced mask that leaves a
  player no legal action, under jit give NONFINITE with NaN outputs (never SUCCESS); a pivot budget too small
  gives MAX_STEPS; concrete bad input is refused."""
  a = jax.random.uniform(jax.random.key(0), (6, 8, 8), jnp.float64, -1, 1)
  batched = solvers.simplex_equilibrium(a)
  vmapped = jax.jit(jax.vmap(solvers.simplex_equilibrium))(a)
  np.testing.assert_allclose(vmapped.value, batched.value, atol=1e-14)
  np.testing.assert_array_equal(vmapped.pivots, batched.pivots)
  bad = jax.jit(solvers.simplex_equilibrium)(a[0].at[2, 3].set(jnp.nan))
  assert int(bad.status) == nashax.NONFINITE and np.isnan(float(bad.value)) and np.isnan(float(bad.gap))
  no_move = jax.jit(lambda cm: solvers.simplex_equilibrium(nashax.MatrixGame(a[0], None, cm)))
  for cm in (jnp.zeros(8, bool), jnp.ones(8, bool).at[3].set(False)):  # no legal column; a legal game
    sol = no_move(cm)
    legal = bool(cm.any())
    assert (int(sol.status) == nashax.SUCCESS) == legal and (int(sol.status) == nashax.NONFINITE) == (not legal)
    assert bool(np.all(np.isnan(np.asarray(sol.y)))) == (not legal) and np.isnan(float(sol.gap)) == (not legal)
  short = solvers.simplex_equilibrium(a[0], max_pivots=1)
  assert int(short.status) == nashax.MAX_STEPS and int(batched.pivots[0]) > 1
  with pytest.raises(ValueError, match="game: 1 non-finite"):
    solvers.simplex_equilibrium(a[0].at[0, 0].set(jnp.inf))
  with pytest.raises(ValueError, match="max_pivots"):
    solvers.simplex_equilibrium(a[0], max_pivots=0)
  with pytest.raises(ValueError, match="chunk"):
    solvers.simplex_equilibrium(a, chunk=0)
  with pytest.raises(ValueError, match="row_mask"):
    solvers.simplex_equilibrium(nashax.MatrixGame(a[0], jnp.zeros(8, bool), None))
  with pytest.raises(ValueError, match="unregularised"):
    solvers.simplex_equilibrium(games.random_preference_game(jax.random.key(0), 3).regularized(0.1))
