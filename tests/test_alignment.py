"""games.alignment: values from the papers, closed forms stated per test, Monte Carlo, second algorithms."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nashax import solvers
from nashax.games import alignment as A
from _utils import x64


@x64
def test_off_switch_known_values():
  """Delta(0.3, 1) = phi(0.3) - 0.3 Phi(-0.3) = 0.26676 for a rational human (the closed form
  sigma phi(mu/sigma) - |mu| Phi(-|mu|/sigma) of eq. 1, Hadfield-Menell et al., arXiv:1611.08219) and 0.1718
  for a Boltzmann human with beta_H = 0.5 (numpy Monte Carlo of eq. 1, E[sigmoid(U/0.5) U] - 0.3 over 10^8
  draws of U ~ N(0.3, 1): 0.17179, s.e. 6e-5)."""
  for method in ("quadrature", "stein", "closed_form"):
    assert abs(float(A.off_switch_incentive(0.3, 1.0, 0.0, method=method)) - 0.26676) < 5e-5
  for method in ("quadrature", "stein"):
    assert abs(float(A.off_switch_incentive(0.3, 1.0, 0.5, method=method)) - 0.1718) < 2e-4


@x64
def test_off_switch_stein_equals_quadrature_at_random_points():
  """Eq. 7 (Stein's identity) against direct quadrature of eq. 1, at random (mu, sigma, beta_H)."""
  rng = np.random.default_rng(0)
  mu, sigma, b = rng.uniform(-2, 2, 30), rng.uniform(0.1, 2, 30), rng.uniform(0, 2, 30)
  b[:5] = 0.0
  q = A.off_switch_incentive(mu, sigma, b)
  s = A.off_switch_incentive(mu, sigma, b, method="stein")
  np.testing.assert_allclose(q, s, atol=1e-7)


@x64
def test_off_switch_monte_carlo_with_a_simulated_human():
  """The Bernoulli-human simulation agrees with the closed form within 4 standard errors."""
  est, se = A.off_switch_monte_carlo(jax.random.key(1), -0.4, 0.8, 0.0, 400_000)
  ref = float(A.off_switch_incentive(-0.4, 0.8, 0.0, method="closed_form"))
  assert abs(float(est) - ref) < 4 * float(se)


def test_off_switch_rejects_unknown_method():
  with pytest.raises(ValueError, match="method"):
    A.off_switch_incentive(0.0, 1.0, 0.0, method="exact")


def _grid_best(block_payoff, log_init, lam, res=400):
  """Brute-force max over a 3-simplex grid of <pi, a> - lam KL(pi || init) (independent of the closed form)."""
  best = -np.inf
  init = np.exp(log_init)
  for i in range(res + 1):
    for j in range(res + 1 - i):
      p = np.array([i, j, res - i - j], float) / res
      nz = p > 0
      val = p @ block_payoff - lam * np.sum(p[nz] * np.log(p[nz] / init[nz]))
      best = max(best, val)
  return best


@x64
def test_consensus_exploitability_equals_brute_force_best_responses():
  """NashConv of a random profile (Y = 3) by grid search over each player's blocks."""
  g = A.random_consensus_game(jax.random.key(2), 3, 0.2)
  rng = np.random.default_rng(1)
  pg = rng.dirichlet(np.ones(3), 2)
  pd = rng.dirichlet(np.ones(2), 3)
  lam = 0.2
  u = 0.5 * np.sum(pg * pd.T)
  kl = lambda p, lq: np.sum(p * (np.log(p) - lq))
  cur_g = u - lam * sum(kl(pg[v], np.asarray(g.log_gen_init[v])) for v in range(2))
  cur_d = u - lam * sum(kl(pd[y], np.asarray(g.log_disc_init[y])) for y in range(3))
  best_g = sum(_grid_best(0.5 * pd[:, v], np.asarray(g.log_gen_init[v]), lam) for v in range(2))
  # The discriminator's blocks are 2-simplices: a fine 1-D grid.
  qs = np.linspace(1e-9, 1 - 1e-9, 200_001)
  best_d = 0.0
  for y in range(3):
    a = 0.5 * pg[:, y]
    li = np.asarray(g.log_disc_init[y])
    vals = qs * a[0] + (1 - qs) * a[1] - lam * (qs * (np.log(qs) - li[0]) + (1 - qs) * (np.log(1 - qs) - li[1]))
    best_d += vals.max()
  brute = (best_g - cur_g) + (best_d - cur_d)
  assert abs(float(A.consensus_exploitability(g, jnp.asarray(pg), jnp.asarray(pd))) - brute) < 2e-4


@x64
def test_pikl_matches_a_loop_over_the_papers_update():
  """A plain NumPy loop over the update of Jacob et al. (2024), sec. 3, gives the same last iterates."""
  g = A.random_consensus_game(jax.random.key(5), 4, 0.1)
  lg, ld, lam, eta = np.asarray(g.log_gen_init), np.asarray(g.log_disc_init), 0.1, 0.3
  pg, pd = np.exp(lg), np.exp(ld)
  sg, sd = np.zeros_like(pg), np.zeros_like(pd)
  for t in range(1, 51):
    sg += pg
    sd += pd
    zg = (sd.T / (2 * t) + lam * lg) / (1 / (eta * t) + lam)
    zd = (sg.T / (2 * t) + lam * ld) / (1 / (eta * t) + lam)
    pg = np.exp(zg - zg.max(-1, keepdims=True)); pg /= pg.sum(-1, keepdims=True)
    pd = np.exp(zd - zd.max(-1, keepdims=True)); pd /= pd.sum(-1, keepdims=True)
  tr = A.pikl(g, 50, eta, eta)
  np.testing.assert_allclose(tr.pi_g, pg, atol=1e-12)
  np.testing.assert_allclose(tr.pi_d, pd, atol=1e-12)


def test_consensus_game_validates():
  with pytest.raises(ValueError, match="disc_init"):
    A.consensus_game(np.full((2, 3), 1 / 3), np.full((2, 2), 0.5))
  with pytest.raises(ValueError, match="gen_init: rows must be distributions"):
    A.consensus_game(np.array([[1.0, 0.0], [0.5, 0.5]]), np.full((2, 2), 0.5))
  with pytest.raises(ValueError, match="lam_g"):
    A.consensus_game(np.full((2, 2), 0.5), np.full((2, 2), 0.5), lam_g=0.0)


@x64
def test_red_teaming_disguised_pair_has_the_closed_form_value():
  """One harmful (harm 1) and one benign prompt share an observation: refusing w.p. q costs
  max(1 - q, c q); the minimax q = 1/(1+c) gives value c/(1+c) (= 1/3 at c = 1/2). LP and payoffs."""
  g = A.red_teaming_game([1, 0], [1.0, 0.0], [0, 0], refusal_cost=0.5)
  np.testing.assert_allclose(g.payoff, [[1.0, 0.0], [0.0, 0.5]])
  ex = solvers.exact_equilibrium(g)
  assert abs(float(ex.value) - 1 / 3) < 1e-9
  np.testing.assert_allclose(ex.y, [1 / 3, 2 / 3], atol=1e-9)
  assert abs(float(A.defender_worst_case(g, jnp.asarray(ex.y))) - 1 / 3) < 1e-9


@x64
def test_safe_defense_exists_matches_brute_force():
  """The combinatorial test equals 'some pure defence has zero worst-case loss' over 200 random games."""
  for seed in range(200):
    g, spec = A.random_red_teaming_game(seed, 6, 3, 0.5, disguise=0.3)
    brute = bool(np.min(np.max(np.asarray(g.payoff), axis=0)) <= 1e-12)
    assert A.safe_defense_exists(spec["harmful"], spec["harm"], spec["observation"], 0.5) == brute


def test_red_teaming_game_validates():
  with pytest.raises(ValueError, match="harm: entries must lie in"):
    A.red_teaming_game([1, 0], [1.5, 0.0], [0, 0])
  with pytest.raises(ValueError, match="harmful: entries must be 0 or 1"):
    A.red_teaming_game([2, 0], [1.0, 0.0], [0, 0])
  with pytest.raises(ValueError, match="refusal_cost"):
    A.red_teaming_game([1, 0], [1.0, 0.0], [0, 1], refusal_cost=-1.0)


@x64
def test_best_of_n_and_tilt_known_values():
  """Closed forms for a calibrated reward c ~ Uniform(0, 1) under the reference: the best of 4 has
  c ~ Beta(4, 1), win rate E c = 4/5 (checked against 0.8004 within 1e-3); the tilt pi_t ∝ e^{t c}, t = 5,
  has win rate E_t c = 1/(1 - e^{-t}) - 1/t = 0.80678 and KL = t E_t c - log((e^t - 1)/t) = 0.65012
  (integrals of e^{tc} on [0, 1]); BoN KL = log n - (n - 1)/n (Beirami et al., arXiv:2401.01879) is 0 at
  N = 1."""
  assert abs(float(A.bon_win_rate(4)) - 0.8004) < 1e-3
  assert abs(float(A.tilted_win_rate(5.0)) - 0.80678) < 5e-6
  assert abs(float(A.tilted_kl(5.0)) - 0.65012) < 5e-6
  assert float(A.bon_kl(1)) == 0.0


@x64
def test_calibrated_reward_is_uniform_under_the_reference():
  """C_r of fresh reference samples is Uniform(0, 1): mean 1/2, variance 1/12 (continuous rewards)."""
  k1, k2 = jax.random.split(jax.random.key(0))
  ref = jax.random.normal(k1, (4000,))
  c = A.calibrated_reward(jax.random.normal(k2, (4000,)), ref)
  assert abs(float(c.mean()) - 0.5) < 0.02 and abs(float(c.var()) - 1 / 12) < 0.01


@x64
def test_lsc_sum_is_log_probability_all_good():
  """sum_i log sigmoid(r_i - ref_i) = log prod_i sigmoid(r_i - ref_i) (independent properties)."""
  r = np.random.default_rng(3).normal(size=(3, 10))
  ref = np.array([0.1, -0.2, 0.3])[:, None]
  lhs = np.asarray(A.lsc_transform(jnp.asarray(r), jnp.asarray(ref))).sum(0)
  np.testing.assert_allclose(lhs, np.log(np.prod(1 / (1 + np.exp(-(r - ref))), 0)), atol=1e-13)


@x64
def test_kl_optimal_policy_beats_random_policies():
  """Gibbs variational principle: no random policy has a higher E[u] - gamma KL(pi || pi_ref)."""
  rng = np.random.default_rng(4)
  u, lref = rng.normal(size=6), np.log(rng.dirichlet(np.ones(6)))
  obj = lambda p: p @ u - 0.7 * np.sum(p * (np.log(p) - lref))
  best = obj(np.asarray(A.kl_optimal_policy(jnp.asarray(u), jnp.asarray(lref), 0.7)))
  for _ in range(2000):
    assert obj(rng.dirichlet(np.ones(6) * 0.5) + 1e-300) <= best + 1e-12


@x64
def test_idealized_ranking_accuracy_equals_the_optimum_computed_directly():
  """Thm 3.1 of Chen et al. (2024) against the ranking accuracy of pi ∝ pi_ref e^{r/beta} built directly."""
  rng = np.random.default_rng(0)
  K, beta = 12, 0.3
  lref = np.log(rng.dirichlet(np.ones(K)))
  r = rng.normal(size=K)
  w, l = rng.integers(0, K, (2, 500))
  keep = w != l
  w, l = w[keep], l[keep]
  alpha = 1 / (1 + np.exp(-(r[w] - r[l])))
  lp = lref + r / beta
  direct = float(np.mean(lp[w] >= lp[l]))
  assert abs(float(A.idealized_ranking_accuracy(lref[w], lref[l], alpha, beta)) - direct) < 1e-12
  assert float(A.ranking_accuracy(jnp.asarray(lp[w]), jnp.asarray(lp[l]))) == direct


def test_dpo_threshold_worked_example():
  """Chen et al. (2024), Thm 4.1 example: beta = 0.1, c = 5 needs loss <= 0.474; c = 30 needs <= 0.049."""
  assert abs(float(A.dpo_correct_iff_threshold(0.0, 5.0, 0.1)) - 0.474) < 5e-4
  assert abs(float(A.dpo_correct_iff_threshold(0.0, 30.0, 0.1)) - 0.049) < 5e-4


@pytest.mark.parametrize("call,match", [
    (lambda: A.off_switch_incentive(0.3, 0.0, 0.5), "sigma: must be finite in \\(0.0, inf\\), got 0.0"),
    (lambda: A.off_switch_incentive(0.3, 1.0, -0.1), "beta_h"),
    (lambda: A.off_switch_incentive(0.3, 1.0, 0.5, method="closed_form"), "beta_h: the closed form"),
    (lambda: A.tilted_win_rate(0.0), "t: must be finite"),
    (lambda: A.tilted_kl(-1.0), "t: must be finite"),
    (lambda: A.bon_kl(0), "n: must be finite integers"),
    (lambda: A.bon_win_rate(2.5), "n: must be finite integers"),
    (lambda: A.idealized_ranking_accuracy(np.zeros(2), np.zeros(2), np.array([0.5, 1.0]), 0.1), "alpha"),
    (lambda: A.kl_optimal_policy(jnp.zeros(3), jnp.zeros(3), 0.0), "gamma"),
    (lambda: A.pikl(A.random_consensus_game(jax.random.key(0), 3), 10, eta_g=-1.0), "eta_g"),
])
def test_bad_input_is_refused_not_returned_as_nan(call, match):
  """Each of these used to return NaN, inf or a meaningless number; now a ValueError names the argument."""
  with pytest.raises(ValueError, match=match):
    call()


def test_traced_arguments_are_not_checked_so_vmap_works():
  out = jax.vmap(lambda t: A.tilted_win_rate(t))(jnp.array([1.0, 5.0]))
  assert out.shape == (2,) and np.isfinite(np.asarray(out)).all()
