"""Estimators of nashax/rank/core.py: Bradley-Terry-Davidson, online Elo, win-rate rankings, alpha-rank.

Independent sources: the Davidson (1970) likelihood written out again here
in its strength form and maximised by scipy.optimize.minimize (complex-step
gradients); the arena's Elo update computed by hand; the fixture's win rates
counted by hand; OpenSpiel's alpha-rank (golden values made by
tests/fixtures/rank/make_openspiel_golden.py with open_spiel 2.0.2, and a live
comparison under the ``parity`` marker); closed-form equilibria of
rock-paper-scissors.
"""

import json
import math
import os

import jax
import numpy as np
import pytest
import scipy.optimize

from nashax.rank import core, io

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "rank")


def _davidson_nll(params, a, b, wins, losses, ties, x, k):
  """-log L of Davidson's model: P(a > b) = pi_a / Z, P(tie) = nu sqrt(pi_a pi_b) / Z, pi = exp(theta);
  theta_0 = 0 fixes the scale; covariates shift log(pi_a / pi_b) by gamma * x."""
  theta = np.concatenate([[0.0], params[:k - 1]])
  nu = np.exp(params[k - 1])
  gamma = params[k:]
  shift = x @ gamma if len(gamma) else 0.0
  pa = np.exp(theta[a] + shift / 2)
  pb = np.exp(theta[b] - shift / 2)
  z = pa + pb + nu * np.sqrt(pa * pb)
  return -np.sum(wins * np.log(pa / z) + losses * np.log(pb / z) + ties * np.log(nu * np.sqrt(pa * pb) / z))


def _scipy_fit(a, b, wins, losses, ties, x, k, with_ties=True):
  d = x.shape[1]
  if with_ties:
    f = lambda p: _davidson_nll(p, a, b, wins, losses, ties, x, k)
    p0 = np.zeros(k + d)
  else:  # no ties: nu -> 0 is plain Bradley-Terry
    f = lambda p: _davidson_nll(np.concatenate([p[:k - 1], [-60.0], p[k - 1:]]), a, b, wins, losses, ties, x, k)
    p0 = np.zeros(k - 1 + d)
  res = scipy.optimize.minimize(f, p0, jac="cs", method="BFGS", options=dict(gtol=1e-11, maxiter=10_000))
  p = res.x
  theta = np.concatenate([[0.0], p[:k - 1]])
  return theta - theta.mean(), (p[k - 1] if with_ties else None), p[k - (0 if with_ties else 1):]


def test_bradley_terry_davidson_matches_an_independent_scipy_mle():
  """float64, random pair counts (K = 6, all 15 pairs, ties): theta (mean 0) and log nu agree with
  scipy's minimiser of the likelihood written above to 1e-6; with the ties removed the fit is plain
  Bradley-Terry (nu pinned at 0) and agrees too; ties='half' agrees with scipy on the half-tie
  logistic likelihood."""
  rng = np.random.default_rng(7)
  k = 6
  a, b = np.triu_indices(k, 1)
  theta = rng.normal(size=k)
  p = 1 / (1 + np.exp(-(theta[a] - theta[b])))
  n = rng.integers(20, 80, size=len(a))
  t = rng.binomial(n, 0.25)
  w = rng.binomial(n - t, p)
  l = n - t - w
  with jax.enable_x64(True):
    for ties in (t, 0 * t):
      counts = np.stack([w, l, ties, 0 * t], 1).astype(float)
      comp = io.Comparisons(tuple("abcdef"), a.astype(np.int32), b.astype(np.int32), counts, ordered=False)
      fit = core.fit_bt(comp)
      th, lam, _ = _scipy_fit(a, b, w, l, ties, np.zeros((len(a), 0)), k, with_ties=ties.sum() > 0)
      assert int(fit.status) == 0
      np.testing.assert_allclose(np.asarray(fit.theta), th, atol=1e-6)
      if lam is not None:
        assert abs(float(fit.log_nu) - lam) < 1e-6
      else:
        assert float(fit.log_nu) == -30.0
    half = core.fit_bt(io.Comparisons(tuple("abcdef"), a.astype(np.int32), b.astype(np.int32),
                                      np.stack([w, l, t, 0 * t], 1).astype(float), ordered=False), ties="half")

    def nll_half(q):
      th = np.concatenate([[0.0], q])
      d = th[a] - th[b]
      return -np.sum((w + t / 2) * np.log(1 / (1 + np.exp(-d))) + (l + t / 2) * np.log(1 / (1 + np.exp(d))))

    q = scipy.optimize.minimize(nll_half, np.zeros(k - 1), jac="cs", method="BFGS", options=dict(gtol=1e-11)).x
    th = np.concatenate([[0.0], q])
    np.testing.assert_allclose(np.asarray(half.theta), th - th.mean(), atol=1e-6)


def test_style_covariate_fit_matches_scipy_and_recovers_the_effect():
  """float64, 600 battles of 4 models whose outcome depends on a length covariate: theta, log nu and
  gamma match scipy on the Davidson likelihood with the shift gamma x to 1e-6 (x scaled to unit RMS,
  as the fit does); the true effect (1.0 per unit RMS) is inside 4 standard errors of gamma (sd ~0.1)."""
  rng = np.random.default_rng(11)
  k, nb = 4, 600
  theta = np.array([0.5, 0.0, -0.3, -0.2])
  a = rng.integers(0, k, nb)
  b = (a + rng.integers(1, k, nb)) % k
  la, lb = rng.uniform(50, 500, nb), rng.uniform(50, 500, nb)
  raw = (la - lb) / (la + lb)
  xs = raw / np.sqrt(np.mean(raw**2))
  d = theta[a] - theta[b] + 1.0 * xs
  nu = 0.4
  z = np.exp(d / 2) + np.exp(-d / 2) + nu
  u = rng.uniform(size=nb)
  out = np.where(u < np.exp(d / 2) / z, "model_a", np.where(u < (np.exp(d / 2) + np.exp(-d / 2)) / z, "model_b", "tie"))
  recs = [dict(model_a=f"m{i}", model_b=f"m{j}", winner=o, len_a=p, len_b=q)
          for i, j, o, p, q in zip(a, b, out, la, lb)]
  comp = io.battles_from_records(recs, covariates=("len",))
  with jax.enable_x64(True):
    fit = core.fit_bt(comp)
  wins, losses, ties = (out == "model_a") * 1.0, (out == "model_b") * 1.0, (out == "tie") * 1.0
  th, lam, gam = _scipy_fit(a, b, wins, losses, ties, xs[:, None], k)
  np.testing.assert_allclose(np.asarray(fit.theta), th, atol=1e-6)
  assert abs(float(fit.log_nu) - lam) < 1e-6 and abs(float(fit.gamma[0]) - gam[0]) < 1e-6
  assert abs(float(fit.gamma[0]) - 1.0) < 0.4


def test_online_elo_matches_a_hand_computed_sequence():
  """K = 4, scale 400, base 10, start 1000 (the arena's constants). By hand:
  1. A beats B at 1000/1000: E = 0.5, A = 1002, B = 998.
  2. B ties C: E_B = 1 / (1 + 10^(2/400)) = 0.4971217..., B += 4 (0.5 - E_B) = 0.0115132.
  3. C beats A: E_C = 1 / (1 + 10^((1002 - 999.9884868) / 400)) = 0.4971052..., C += 4 (1 - E_C) = 2.0115792."""
  recs = [dict(model_a="A", model_b="B", winner="model_a"), dict(model_a="B", model_b="C", winner="tie"),
          dict(model_a="C", model_b="A", winner="model_a")]
  with jax.enable_x64(True):
    r = np.asarray(core.online_elo(io.battles_from_records(recs)))
  e_b = 1 / (1 + 10 ** (2 / 400))
  b = 998 + 4 * (0.5 - e_b)
  c = 1000 - 4 * (0.5 - e_b)
  e_c = 1 / (1 + 10 ** ((1002 - c) / 400))
  expected = [1002 - 4 * (1 - e_c), b, c + 4 * (1 - e_c)]
  np.testing.assert_allclose(r, expected, atol=1e-9)
  np.testing.assert_allclose(r, [999.9884208, 998.0115132, 1002.0000660], atol=1e-6)  # the digits by hand
  with pytest.raises(ValueError, match="online Elo needs battles in log order"):
    core.online_elo(io.read_counts(os.path.join(FIX, "counts.csv")))


def test_win_rates_copeland_borda_on_the_fixture_by_hand():
  """The fixture's 18 chat battles by hand (ties half): alpha-beta 1/2 (2 battles), alpha-gamma 2.5/4,
  alpha-delta 2.5/3, beta-gamma 2.5/3, beta-delta 1.5/3, gamma-delta 2.5/3. Copeland (win 1, draw 1/2):
  alpha 2.5, beta 2, gamma 1, delta 0.5; Borda = mean win rate."""
  comp = io.read_battles(os.path.join(FIX, "battles.jsonl"), category="chat")
  w, n, t = core.win_rate_matrix(comp)
  al, be, de, ga = 0, 1, 2, 3
  hand = {(al, be): (0.5, 2), (al, ga): (0.625, 4), (al, de): (2.5 / 3, 3), (be, ga): (2.5 / 3, 3),
          (be, de): (0.5, 3), (ga, de): (2.5 / 3, 3)}
  for (i, j), (rate, cnt) in hand.items():
    assert abs(w[i, j] - rate) < 1e-12 and abs(w[j, i] - (1 - rate)) < 1e-12 and n[i, j] == n[j, i] == cnt
  assert t.sum() / 2 == 5
  np.testing.assert_allclose(np.asarray(core.copeland(w, n)), [2.5, 2.0, 0.5, 1.0])
  np.testing.assert_allclose(np.asarray(core.borda(w, n)), [(0.5 + 0.625 + 2.5 / 3) / 3, (0.5 + 2.5 / 3 + 0.5) / 3,
                                                            (1 / 6 + 0.5 + 1 / 6) / 3, (0.375 + 1 / 6 + 2.5 / 3) / 3],
                             atol=1e-6)


def test_alpharank_on_estimated_matrices_matches_openspiel_golden_values():
  """OpenSpiel 2.0.2's alpharank.compute (single population on W - 1/2, local selection, m = 50) on the
  fixture's estimated matrix and on an 8-model synthetic estimate, alpha in {0.5, 2, 10}: the same
  stationary masses to 1e-8 (float64). The fixture matrix counted by the golden script (plain Python)
  equals nashax's win_rate_matrix."""
  gold = json.load(open(os.path.join(FIX, "openspiel_alpharank_golden.json")))
  comp = io.read_battles(os.path.join(FIX, "battles.jsonl"), category="chat")
  assert list(comp.models) == gold["fixture_models"]
  w, _, _ = core.win_rate_matrix(comp)
  with jax.enable_x64(True):
    for case in gold["cases"]:
      mat = np.array(case["win_rates"])
      if case["name"] == "fixture_chat":
        np.testing.assert_allclose(w, mat, atol=1e-12)
      pi = np.asarray(core.alpharank_scores(jax.numpy.asarray(mat), case["alpha"], case["m"]))
      np.testing.assert_allclose(pi, np.array(case["pi"]), atol=1e-8, err_msg=f"{case['name']} alpha={case['alpha']}")


@pytest.mark.parity
def test_alpharank_live_against_openspiel():
  """Live OpenSpiel (pip install open_spiel) on random estimated win-rate matrices: masses agree to 1e-8."""
  alpharank = pytest.importorskip("open_spiel.python.egt.alpharank")
  rng = np.random.default_rng(5)
  with jax.enable_x64(True):
    for k in (3, 6, 10):
      a, b = np.triu_indices(k, 1)
      w = np.full((k, k), 0.5)
      rates = rng.binomial(200, rng.uniform(0.2, 0.8, len(a))) / 200
      w[a, b], w[b, a] = rates, 1 - rates
      for alpha in (0.5, 5.0):
        _, _, pi, _, _ = alpharank.compute([w - 0.5], m=50, alpha=alpha, use_local_selection_model=True,
                                           verbose=False)
        np.testing.assert_allclose(np.asarray(core.alpharank_scores(jax.numpy.asarray(w), alpha, 50)), pi, atol=1e-8)


def test_nash_averaging_and_minimax_winner_on_rock_paper_scissors_with_a_dominated_model():
  """RPS among three models (each beats the next w.p. 0.8) plus a fourth that loses to all w.p. 0.7: the
  unique equilibrium, hence the maximum-entropy one and the minimax winner, is (1/3, 1/3, 1/3, 0)
  (closed form: RPS symmetry, and the fourth is strictly dominated)."""
  w = np.array([[0.5, 0.8, 0.2, 0.7], [0.2, 0.5, 0.8, 0.7], [0.8, 0.2, 0.5, 0.7], [0.3, 0.3, 0.3, 0.5]])
  expected = np.array([1, 1, 1, 0]) / 3
  eq, ratings = core.nash_scores(jax.numpy.asarray(w, jax.numpy.float32), 5000)
  np.testing.assert_allclose(np.asarray(eq), expected, atol=2e-3)
  np.testing.assert_allclose(core.minimax_winner(w), expected, atol=1e-9)
  assert math.isclose(float(np.max(ratings)), 0.0, abs_tol=1e-3)
