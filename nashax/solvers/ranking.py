"""Rankings from a win-rate table: Elo by maximum likelihood and Nash averaging (partial; ResponseGraphUCB is to come).

``win_rates[i, j]`` is the probability (or empirical frequency) that agent
``i`` beats agent ``j``, with ``W + W^T = 1`` off the diagonal.

References:
  Elo, "The Rating of Chessplayers, Past and Present", 1978 (the logistic model,
  400 / ln 10 scale); Bradley & Terry, Biometrika 1952 (its maximum likelihood).
  Balduzzi, Tuyls, Perolat & Graepel, "Re-evaluating Evaluation", NeurIPS 2018,
  arXiv:1806.02643 (Nash averaging: the maximum-entropy Nash equilibrium of the
  antisymmetric game ``A = logit(W)``).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["EloRatings", "elo", "NashAverage", "nash_averaging"]

ELO_SCALE = 400.0 / math.log(10.0)  # rating points per unit of log-odds


class EloRatings(NamedTuple):
  """Elo ratings (mean 0) with standard errors when match counts are given (else NaN-free zeros)."""

  ratings: jax.Array
  stderr: jax.Array


def _check_win_rates(w) -> np.ndarray:
  a = np.asarray(w, np.float64)
  if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] < 2:
    raise ValueError(f"win_rates: expected a square [K, K] table with K >= 2, got shape {a.shape}")
  if not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
    raise ValueError("win_rates: entries must be finite probabilities in [0, 1]")
  off = ~np.eye(a.shape[0], dtype=bool)
  dev = np.abs((a + a.T - 1.0)[off])
  if dev.size and dev.max() > 1e-6:
    raise ValueError(f"win_rates: W + W^T must equal 1 off the diagonal (max deviation {dev.max():.3g})")
  return a


def elo(win_rates: jax.typing.ArrayLike, counts: Optional[jax.typing.ArrayLike] = None, *,
        prior: float = 1e-6, iters: int = 100) -> EloRatings:
  """Elo ratings by maximum likelihood: ``P(i > j) = sigmoid((r_i - r_j) / (400 / ln 10))``.

  Maximises ``sum_{i != j} n_ij [W_ij log s(d_ij) + (1 - W_ij) log s(-d_ij)]``
  (``n_ij = 1`` without counts) by Newton's method with a tiny ridge
  ``prior`` (which also fixes the mean at 0 and keeps ratings finite when an
  agent wins or loses everything). With counts, standard errors come from
  the inverse Fisher information. An intransitive table (rock-paper-scissors)
  gets equal ratings: Elo cannot represent cycles.
  """
  w = jnp.asarray(_check_win_rates(win_rates) if not isinstance(win_rates, jax.core.Tracer) else win_rates)
  k = w.shape[0]
  n = jnp.ones_like(w) if counts is None else jnp.asarray(counts, w.dtype)
  n = jnp.where(jnp.eye(k, dtype=bool), 0.0, n)

  def nll(r):
    d = r[:, None] - r[None, :]
    ll = n * (w * jax.nn.log_sigmoid(d) + (1.0 - w) * jax.nn.log_sigmoid(-d))
    return -jnp.sum(ll) + 0.5 * prior * jnp.sum(r * r) + 0.5 * jnp.square(jnp.sum(r))

  grad, hess = jax.grad(nll), jax.hessian(nll)

  def newton(_, r):
    return r - jnp.linalg.solve(hess(r), grad(r))

  r = jax.lax.fori_loop(0, iters, newton, jnp.zeros(k, w.dtype))
  r = r - jnp.mean(r)
  if counts is None:
    se = jnp.zeros_like(r)
  else:
    # Inverse Fisher information; the (sum r)^2 term pins the free shift, so this is the covariance
    # of mean-zero ratings.
    se = jnp.sqrt(jnp.clip(jnp.diag(jnp.linalg.inv(hess(r))), 0.0))
  return EloRatings(ELO_SCALE * r, ELO_SCALE * se)


class NashAverage(NamedTuple):
  """Nash averaging: the maximum-entropy equilibrium ``p`` of ``A`` and the ratings ``A p``.

  Attributes:
    equilibrium: ``[K]`` maximum-entropy Nash equilibrium of the symmetric zero-sum game ``A``.
    ratings: ``[K]`` ``A p`` (<= 0; 0 exactly on the equilibrium's support).
    gap: ``max_i (A p)_i`` (>= 0; 0 at an equilibrium), the certificate.
  """

  equilibrium: jax.Array
  ratings: jax.Array
  gap: jax.Array


def nash_averaging(win_rates: jax.typing.ArrayLike, *, eps: float = 1e-6, steps: int = 20_000) -> NashAverage:
  """Nash averaging of a win-rate table (Balduzzi et al. 2018).

  ``A = logit(W)`` (clipped to ``[eps, 1 - eps]``) is antisymmetric; among
  the Nash equilibria ``{p in simplex: A p <= 0}`` the maximum-entropy one is
  ``p = softmax(A lam)`` with ``lam >= 0`` minimising the dual
  ``log sum_i exp((A lam)_i)``, found by accelerated projected gradient.
  """
  w = jnp.asarray(_check_win_rates(win_rates) if not isinstance(win_rates, jax.core.Tracer) else win_rates)
  wc = jnp.clip(w, eps, 1.0 - eps)
  a = jnp.log(wc) - jnp.log1p(-wc)
  a = 0.5 * (a - a.T)  # exactly antisymmetric
  k = a.shape[0]
  lip = jnp.maximum(jnp.linalg.norm(a, 2) ** 2, 1e-12)  # Hessian of LSE(A lam) <= |A|^2
  step = 1.0 / lip

  def grad(lam):
    return -(a @ jax.nn.softmax(a @ lam))  # A^T softmax(A lam) = -A p

  def body(t, carry):
    lam, y, tk = carry
    lam_new = jnp.maximum(y - step * grad(y), 0.0)
    t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * tk * tk))
    y = lam_new + ((tk - 1.0) / t_new) * (lam_new - lam)
    return lam_new, y, t_new

  lam0 = jnp.zeros(k, a.dtype)
  lam, _, _ = jax.lax.fori_loop(0, steps, body, (lam0, lam0, jnp.ones((), a.dtype)))
  p = jax.nn.softmax(a @ lam)
  ratings = a @ p
  return NashAverage(p, ratings, jnp.max(ratings))
