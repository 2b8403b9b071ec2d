"""Catalogue convergence: every solver, from a random start, to the known equilibrium.

The known answers come from closed forms or the LP (tests/catalogue.py names
each source). Tolerances are in the units of the certificate (duality gap);
the value check uses |x^T A y - v| <= gap, which holds for any profile.
"""

import functools

import jax
import numpy as np
import pytest

import nashax
from nashax import solvers
from nashax.core import metrics as metrics_lib

import catalogue

def _spectral(a):
  return float(np.linalg.norm(a, 2))


# (factory(payoff matrix) -> solver, tol on the certificate, step budget, last-iterate?)
SETTINGS = {
    "mwu": (lambda a: solvers.mwu(0.02 / np.abs(a).max()), 2e-2, 20_000, False),
    "optimistic_mwu": (lambda a: solvers.optimistic_mwu(0.5 / np.abs(a).max()), 1e-5, 50_000, True),
    "extragradient_entropic": (lambda a: solvers.extragradient(0.5 / np.abs(a).max()), 5e-3, 20_000, False),
    "extragradient_euclidean": (
        lambda a: solvers.extragradient(0.5 / _spectral(a), geometry="euclidean", iterate="last"),
        1e-5, 50_000, True),
    "fictitious_play": (lambda a: solvers.fictitious_play(), 2e-2, 50_000, False),
    "regret_matching_plus": (lambda a: solvers.regret_matching_plus(), 1e-3, 50_000, False),
    "replicator": (lambda a: solvers.replicator(0.02 / np.abs(a).max()), 2e-2, 20_000, False),
}


@pytest.mark.parametrize("case", sorted(catalogue.CASES))
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_converges_to_known_equilibrium(name, case):
  g, (x_star, y_star), value = catalogue.CASES[case]()
  a = catalogue.payoff(g)
  make, tol, budget, last = SETTINGS[name]
  state, info = nashax.solve(make(a), g, jax.random.key(1), tol=tol, max_steps=budget, check_every=10)
  nashax.check(info)
  x, y = (np.asarray(p, np.float64) for p in metrics_lib.as_profile(g, state))
  gap = float(np.max(a @ y) - np.min(x @ a))
  assert gap <= tol * (1 + 1e-3) + 1e-6
  assert abs(x @ a @ y - value) <= gap + 1e-5
  if last:  # unique equilibria: a tight certificate pins the strategies down
    np.testing.assert_allclose(x, x_star, atol=2e-2)
    np.testing.assert_allclose(y, y_star, atol=2e-2)


def _qre(a, tau, iters=200_000):
  """Quantal response equilibrium by damped fixed-point iteration in float64 (a second algorithm)."""
  x = np.ones(a.shape[0]) / a.shape[0]
  y = np.ones(a.shape[1]) / a.shape[1]
  for _ in range(iters):
    bx = np.exp((a @ y - (a @ y).max()) / tau); bx /= bx.sum()
    by = np.exp((-(x @ a) + (x @ a).min()) / tau); by /= by.sum()
    x_new, y_new = 0.99 * x + 0.01 * bx, 0.99 * y + 0.01 * by
    if max(np.abs(x_new - x).max(), np.abs(y_new - y).max()) < 1e-15:
      break
    x, y = x_new, y_new
  return x, y


@pytest.mark.parametrize("case", ["random_5x7", "weighted_rps", "two_by_two"])
def test_mmd_converges_to_quantal_response_equilibrium(case):
  """MMD's last iterate reaches the QRE (Sokota et al. 2023, Thm 3.4), found independently by damping."""
  g, _, _ = catalogue.CASES[case]()
  a = catalogue.payoff(g)
  tau = 0.2
  res = functools.partial(metrics_lib.entropy_regularized_gap, tau=tau)
  eta = tau / np.abs(a).max() ** 2  # the theorem's step-size condition
  state, info = nashax.solve(solvers.mmd(eta, tau), g, jax.random.key(2), tol=1e-6,
                             max_steps=20_000, residual_fn=res)
  nashax.check(info)
  xq, yq = _qre(a, tau)
  x, y = metrics_lib.as_profile(g, state)
  np.testing.assert_allclose(x, xq, atol=1e-3)
  np.testing.assert_allclose(y, yq, atol=1e-3)
