"""Uncertainty and diagnostics of nashax/rank: Poisson and multinomial resampling, chord refits, bootstrap
coverage, the Dirichlet posterior, rank summaries, and the intransitivity test's detection and false-alarm
rates.

Independent sources: the multinomial's closed-form mean and covariance; scipy.stats' Poisson pmf (chi-square
goodness of fit); Newton's method (for the chord refits); the known Bradley-Terry strengths
that generated the logs (coverage); the Beta law of p_win / (p_win + p_loss) under a Dirichlet (a closed
form via scipy.stats.beta); a hand count on a 3-sample rank table; Kendall and Babington Smith's count of
circular triads C(n, 3) - sum_i C(s_i, 2) of a tournament; the chi-square law of the likelihood ratio
under the null (Wilks) and a known cyclic preference.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from nashax.rank import core, diagnostics, io, uncertainty


@pytest.mark.slow
def test_multinomial_counts_have_the_multinomial_mean_covariance_and_total():
  """4,000 draws of Multinomial(5000, p) over 45 cells (p uneven, some zero): totals exactly 5000, zero cells
  stay 0, means within 5 standard errors of n p, and Cov(c_1, c_2) within 5 s.e. of -n p_1 p_2."""
  p = np.arange(45.0) ** 1.5
  p[[3, 17]] = 0
  p /= p.sum()
  draw = jax.jit(jax.vmap(lambda k: uncertainty.multinomial_counts(k, 5000.0, jnp.asarray(p, jnp.float32))))
  c = np.asarray(draw(jax.random.split(jax.random.key(0), 4000)), np.float64)
  assert (c.sum(1) == 5000).all() and (c[:, [3, 17]] == 0).all() and (c >= 0).all()
  se = np.sqrt(5000 * p * (1 - p) / 4000)
  assert (np.abs(c.mean(0) - 5000 * p) <= 5 * se + 1e-9).all()
  i, j = 44, 43
  cov = np.cov(c[:, i], c[:, j])[0, 1]
  sd_cov = math.sqrt(5000 * p[i] * (1 - p[i]) * 5000 * p[j] * (1 - p[j]) / 4000) * 1.5
  assert abs(cov - (-5000 * p[i] * p[j])) < 5 * sd_cov


def _pmf_chi2_pvalue(draws, mu):
  """Pearson chi-square p-value of integer draws against the Poisson(mu) pmf of scipy.stats, bins with
  expected count >= 5 (the tails pooled)."""
  n = len(draws)
  lo, hi = int(scipy.stats.poisson.ppf(1e-4, mu)), int(scipy.stats.poisson.isf(1e-4, mu))
  ks = np.arange(lo, hi + 1)
  pe = scipy.stats.poisson.pmf(ks, mu)
  pe[0] += scipy.stats.poisson.cdf(lo - 1, mu)
  pe[-1] += scipy.stats.poisson.sf(hi, mu)
  obs = np.array([(np.clip(draws, lo, hi) == v).sum() for v in ks], float)
  keep = pe * n >= 5
  e_keep, o_keep = pe[keep] * n, obs[keep]
  o_rest, e_rest = n - o_keep.sum(), n - e_keep.sum()
  stat = ((o_keep - e_keep) ** 2 / e_keep).sum() + ((o_rest - e_rest) ** 2 / e_rest if e_rest >= 5 else 0.0)
  return scipy.stats.chi2.sf(stat, keep.sum() - (0 if e_rest >= 5 else 1))


def test_poisson_counts_follow_the_poisson_pmf():
  """40,000 draws of each cell of poisson_tables(lam) (alias tables; the 1,500-mean cell forced to the
  jax.random.poisson fallback by max_width=256): every cell's draws fit scipy's Poisson(lam) pmf (Pearson
  chi-square p > 1e-3 each, 7 tests), means within 5 s.e. of lam, zero means give 0, and two cells
  sharing a mean are independent (correlation within 5 / sqrt(n) of 0)."""
  lam = np.array([0.0, 0.4, 3.0, 25.5, 67.0, 67.0, 180.0, 1500.0])
  tb = uncertainty.poisson_tables(lam, max_width=256)
  assert tb.fallback.tolist() == [7] and tb.thresh.shape[1] == 256
  n = 40_000
  c = np.asarray(jax.jit(jax.vmap(lambda kk: uncertainty.poisson_counts(kk, tb)))(
    jax.random.split(jax.random.key(5), n)), np.float64)
  assert (c[:, 0] == 0).all() and (c >= 0).all() and (c == np.round(c)).all()
  assert (np.abs(c.mean(0) - lam) <= 5 * np.sqrt(np.maximum(lam, 1e-12) / n) + 1e-12).all()
  for col in range(1, len(lam)):
    assert _pmf_chi2_pvalue(c[:, col], lam[col]) > 1e-3, (lam[col], _pmf_chi2_pvalue(c[:, col], lam[col]))
  assert abs(np.corrcoef(c[:, 4], c[:, 5])[0, 1]) < 5 / math.sqrt(n)


def test_poisson_tables_refuse_bad_means_and_sizes():
  """Negative or non-finite means, a width that is not a power of 2 and too few tables are refused by name."""
  for bad in ([1.0, -2.0], [np.nan]):
    with pytest.raises(ValueError, match="lam:"):
      uncertainty.poisson_tables(np.array(bad))
  with pytest.raises(ValueError, match="width:"):
    uncertainty.poisson_tables(np.array([3.0]), width=100)
  with pytest.raises(ValueError, match="num_tables:"):
    uncertainty.poisson_tables(np.array([3.0, 4.0, 5.0]), num_tables=2)
  comp = io.Comparisons(("a", "b"), np.array([0], np.int32), np.array([1], np.int32),
                        np.array([[14.0, 9.0, 5.0, 0.0]]), ordered=False)
  with pytest.raises(ValueError, match="resampling:"):
    uncertainty.bootstrap(comp, 10, methods=("bt",), resampling="bayes")
  with pytest.raises(ValueError, match="steps:"):
    uncertainty.bootstrap(comp, 10, methods=("bt",), steps=0)


def test_chord_refits_agree_with_newton_on_resamples():
  """12 models, all 66 pairs with 40-400 battles and ties, 64 Poisson resamples: the bootstrap's chord refits
  (6 steps from the full-data fit and its Hessian) agree with 8 Newton steps from the same start (the second
  algorithm) to 2e-5 in theta and log nu, and all are certified (status 0); 2 chord steps are not enough
  to pass the certificate on every resample at tol 1e-9 (the certificate can fail)."""
  rng = np.random.default_rng(11)
  k = 12
  i, j = np.triu_indices(k, 1)
  theta = rng.normal(size=k)
  d = theta[i] - theta[j]
  z = np.exp(d / 2) + np.exp(-d / 2) + 0.4
  n = rng.integers(40, 400, len(i))
  y = np.stack([rng.multinomial(nn, [np.exp(dd / 2) / zz, np.exp(-dd / 2) / zz, 0.4 / zz])
                for nn, dd, zz in zip(n, d, z)]).astype(np.float32)
  tb = uncertainty.poisson_tables(y.reshape(-1))
  draw = lambda kk: uncertainty.poisson_counts(kk, tb).reshape(y.shape)
  ys = jax.jit(jax.vmap(draw))(jax.random.split(jax.random.key(2), 64))
  yj, ij, jj, x = jnp.asarray(y), jnp.asarray(i), jnp.asarray(j), jnp.zeros((len(i), 0), jnp.float32)
  full = core.fit_bt_cells(yj, ij, jj, x, num_models=k)
  hinv = core.bt_inverse_hessian(full, yj, ij, jj, x)
  chord = jax.vmap(lambda c: core.refit_bt_cells(c, ij, jj, x, full, hinv, steps=6))(ys)
  newton = jax.vmap(lambda c: core.fit_bt_cells(c, ij, jj, x, num_models=k, steps=8, init=full))(ys)
  assert (np.asarray(chord.status) == 0).all() and (np.asarray(newton.status) == 0).all()
  np.testing.assert_allclose(np.asarray(chord.theta), np.asarray(newton.theta), atol=2e-5)
  np.testing.assert_allclose(np.asarray(chord.log_nu), np.asarray(newton.log_nu), atol=2e-5)
  short = jax.vmap(lambda c: core.refit_bt_cells(c, ij, jj, x, full, hinv, steps=1, tol=1e-9))(ys)
  assert (np.asarray(short.status) != 0).any()


@pytest.mark.slow
@pytest.mark.parametrize("resampling", ["poisson", "multinomial"])
def test_bootstrap_intervals_cover_the_true_strengths(resampling):
  """200 synthetic logs (4 models, Bradley-Terry-Davidson with known theta, 3,000 battles each, pairs
  uniform), 400 bootstrap resamples each (Poisson cell counts from each log's own alias tables, or the
  exact multinomial), all in one vmap: the 95% percentile intervals of theta (mean 0) contain the true
  theta in >= 93% of the 800 (log, model) cases (measured: Poisson 96.0%, multinomial 96.2%; binomial
  s.d. ~0.8%), and at most 99% (not trivially wide)."""
  rng = np.random.default_rng(0)
  k, reps, nb, nboot = 4, 200, 3000, 400
  theta = np.array([0.6, 0.1, -0.2, -0.5])
  nu = 0.5
  i, j = np.triu_indices(k, 1)
  d = theta[i] - theta[j]
  z = np.exp(d / 2) + np.exp(-d / 2) + nu
  probs = np.stack([np.exp(d / 2) / z, np.exp(-d / 2) / z, nu / z], 1) / len(i)  # [pairs, 3], pair uniform
  y = rng.multinomial(nb, probs.reshape(-1), size=reps).reshape(reps, len(i), 3).astype(np.float32)
  keys = jax.random.split(jax.random.key(1), reps * nboot).reshape(reps, nboot)
  tabs = [uncertainty.poisson_tables(yy.reshape(-1), width=512, num_tables=y.shape[1] * 3) for yy in y]
  assert all(t.fallback.size == 0 for t in tabs)
  tables = jax.tree.map(lambda *a: np.stack(a), *tabs)

  def one(ks, yy, tb):
    out = uncertainty._bootstrap(ks, yy, jnp.asarray(i), jnp.asarray(j), jnp.zeros((len(i), 0), jnp.float32),
                                 tb, num_models=k, steps=6, ridge=0.0, methods=("bt",), alpha=10.0, m=50,
                                 nash_steps=10, chunk=nboot, resampling=resampling)
    return out["bt"], out["bt_status"]

  th, status = jax.jit(jax.vmap(one))(keys, jnp.asarray(y), tables)  # [reps, B, K]
  th, status = np.asarray(th), np.asarray(status)
  assert (status == 0).mean() > 0.999
  lo, hi = np.quantile(th, 0.025, axis=1), np.quantile(th, 0.975, axis=1)
  truth = theta - theta.mean()
  rate = ((lo <= truth) & (truth <= hi)).mean()
  print(f"bootstrap coverage ({resampling}): {rate:.4f}")
  assert rate >= 0.93, rate
  assert rate <= 0.99, rate


def test_posterior_probability_of_ranking_above_is_the_beta_closed_form():
  """Two models, counts (w, l, t) = (14, 9, 5), Dirichlet(1 + counts): model 0 ranks above 1 by Copeland
  iff W_01 = p_w + p_t / 2 > 1/2 iff p_w > p_l, and p_w / (p_w + p_l) ~ Beta(15, 10), so
  P(0 above 1) = P(Beta(15, 10) > 1/2) = 0.8463...; 4,000 draws agree within 4 s.e.; with no draw tied
  the two probabilities sum to 1."""
  comp = io.Comparisons(("a", "b"), np.array([0], np.int32), np.array([1], np.int32),
                        np.array([[14.0, 9.0, 5.0, 0.0]]), ordered=False)
  ps = uncertainty.posterior(comp, 4000, key=jax.random.key(3), methods=("copeland",))
  s = uncertainty.summarize(ps["copeland"], ps["copeland"].mean(0), top_k=1)
  exact = scipy.stats.beta.sf(0.5, 15, 10)
  assert abs(s.p_above[0, 1] - exact) < 4 * math.sqrt(exact * (1 - exact) / 4000)
  assert abs(s.p_above[0, 1] + s.p_above[1, 0] - 1) < 1e-12


def test_summaries_on_a_hand_made_sample():
  """3 samples of 3 models' scores [[3, 2, 1], [1, 3, 2], [3, 1, 2]]: ranks [[1, 2, 3], [3, 1, 2], [1, 3, 2]] by
  hand, so P(0 above 1) = 2/3, P(2 above 1) = 1/3, P(top 1) = (2/3, 1/3, 0), rank of model 2 in [2, 3]."""
  s = uncertainty.summarize(np.array([[3.0, 2, 1], [1, 3, 2], [3, 1, 2]]), np.array([3.0, 2, 1]), level=0.5, top_k=1)
  np.testing.assert_allclose(s.p_above[0, 1], 2 / 3)
  np.testing.assert_allclose(s.p_above[2, 1], 1 / 3)
  np.testing.assert_allclose(s.p_top, [2 / 3, 1 / 3, 0])
  assert (s.rank_lo[2], s.rank_hi[2]) == (2, 3) and s.rank.tolist() == [1, 2, 3]


def test_triads_sinks_and_condorcet_on_tournaments():
  """Random tournaments (no ties, every pair played): the fraction of cyclic triads equals Kendall and
  Babington Smith's C(n,3) - sum C(s_i, 2) over C(n,3); a 3-cycle with a loser below has the cycle as its
  only sink component and no Condorcet winner; a transitive order has its top as Condorcet winner."""
  rng = np.random.default_rng(2)
  for n in (5, 8):
    for _ in range(3):
      up = rng.uniform(size=(n, n)) < 0.5
      w = np.where(np.triu(up, 1), 0.7, 0.0)
      w = w + np.where(np.triu(~up, 1), 0.3, 0.0)
      w = np.triu(w, 1) + np.tril(1 - w.T, -1) + 0.5 * np.eye(n)
      s = (w > 0.5).sum(1)
      kbs = (math.comb(n, 3) - sum(math.comb(int(v), 2) for v in s)) / math.comb(n, 3)
      assert abs(float(diagnostics.intransitive_triads(jnp.asarray(w))) - kbs) < 1e-6
  cyc = np.array([[0.5, 0.7, 0.3, 0.9], [0.3, 0.5, 0.7, 0.9], [0.7, 0.3, 0.5, 0.9], [0.1, 0.1, 0.1, 0.5]])
  assert diagnostics.sink_components(diagnostics.response_graph(cyc)) == [[0, 1, 2]]
  assert int(diagnostics.condorcet_winner(jnp.asarray(cyc))) == -1
  order = np.array([[0.5, 0.6, 0.8], [0.4, 0.5, 0.6], [0.2, 0.4, 0.5]])
  assert int(diagnostics.condorcet_winner(jnp.asarray(order))) == 0
  assert diagnostics.sink_components(diagnostics.response_graph(order)) == [[0]]


def test_lr_test_detects_a_cycle_and_rarely_fires_on_bradley_terry_logs():
  """200 logs each (4 models, ~330 battles per pair, 20% ties, float64): on Bradley-Terry-Davidson logs the
  test at 5% rejects in about 5% of them (chi-square null; asserted <= 10%, measured 6.5%); on logs from a
  rock-paper-scissors cycle among three models (0.65 around the cycle) plus a weaker fourth it rejects in
  >= 95% (measured 100%), and the estimated response graph's sink is the cycle in >= 95% (measured 100%)."""
  rng = np.random.default_rng(4)
  k, reps = 4, 200
  i, j = np.triu_indices(k, 1)
  theta = np.array([0.4, 0.2, -0.1, -0.5])
  p_bt = 1 / (1 + np.exp(-(theta[i] - theta[j])))
  pc = np.full((k, k), 0.5)
  pc[0, 1], pc[1, 2], pc[2, 0] = 0.65, 0.65, 0.65
  pc[1, 0], pc[2, 1], pc[0, 2] = 0.35, 0.35, 0.35
  pc[:3, 3], pc[3, :3] = 0.75, 0.25
  p_cyc = pc[i, j]

  def logs(p):
    n = rng.multinomial(2000, np.ones(len(i)) / len(i), size=reps)
    t = rng.binomial(n, 0.2)
    w = rng.binomial(n - t, p)
    return np.stack([w, n - t - w, t], -1).astype(np.float64)

  with jax.enable_x64(True):
    test = jax.jit(jax.vmap(lambda y: diagnostics.lr_test_cells(y, jnp.asarray(i), jnp.asarray(j), k).p_value))
    false_alarm = (np.asarray(test(jnp.asarray(logs(p_bt)))) < 0.05).mean()
    y_cyc = logs(p_cyc)
    power = (np.asarray(test(jnp.asarray(y_cyc))) < 0.05).mean()
  assert false_alarm <= 0.10, false_alarm
  assert power >= 0.95, power
  hits = 0
  for y in y_cyc:
    w = np.full((k, k), 0.5)
    rate = (y[:, 0] + y[:, 2] / 2) / y.sum(1)
    w[i, j], w[j, i] = rate, 1 - rate
    hits += diagnostics.sink_components(diagnostics.response_graph(w)) == [[0, 1, 2]]
  assert hits / reps >= 0.95
