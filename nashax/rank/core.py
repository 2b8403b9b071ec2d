"""The batched core: pair tables, Bradley-Terry-Davidson by Newton, online Elo, win-rate rankings.

Comparisons are reduced to *cells*: one row per unordered pair ``(i < j)``
(or per battle when there are covariates) with the counts ``y = (w, l, t)``
of ``i`` winning, ``j`` winning and ties (``tie (bothbad)`` is a tie). Every
estimator is a pure function of the cell counts, so a bootstrap resample is
a new ``[C, 3]`` count table and a batch of resamples is one ``vmap``.

Ties: Davidson's model (1970),

    P(i > j) = pi_i / Z,  P(j > i) = pi_j / Z,  P(tie) = nu sqrt(pi_i pi_j) / Z,
    Z = pi_i + pi_j + nu sqrt(pi_i pi_j),

chosen over Rao-Kupper's ``P(i > j) = pi_i / (pi_i + theta pi_j)`` because
(a) the odds of a win over a loss stay ``pi_i / pi_j``, so the strengths keep
the Bradley-Terry (and Elo) scale whatever the tie rate; (b) with
``d = log pi_i - log pi_j`` and ``lambda = log nu`` the log-likelihood of a
cell is ``(w - l) d / 2 + t lambda - n log(e^{d/2} + e^{-d/2} + e^lambda)``,
an exponential family in ``(d, lambda)``, hence jointly concave in all
parameters (Newton converges from any start and the Hessian is the negated
covariance of the sufficient statistics); Rao-Kupper's is not of this form.
Chatbot Arena instead counts a tie as half a win and half a loss;
``ties="half"`` gives that convention (by ``fit_bradley_terry``).

Covariates (style control): ``d = theta_i - theta_j + gamma^T x`` with ``x``
the per-battle feature difference scaled to unit root-mean-square, as in
the arena's style-controlled leaderboard.

References:
  Bradley & Terry, "Rank Analysis of Incomplete Block Designs", Biometrika 1952.
  Davidson, "On Extending the Bradley-Terry Model to Accommodate Ties in
  Paired Comparison Experiments", JASA 65 (1970), eq. 2.1.
  Rao & Kupper, "Ties in Paired-Comparison Experiments", JASA 62 (1967).
  Chiang et al., "Chatbot Arena", ICML 2024, arXiv:2403.04132 (Sec. 5: BT, the
  online Elo with K = 4, scale 400, base 10, initial 1000; style control in
  Li et al., "Does Style Matter? Disentangling style and substance in Chatbot
  Arena", LMSYS blog, 2024).
  Copeland, "A reasonable social welfare function", 1951; de Borda, 1781.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.rank.io import Comparisons

__all__ = ["Cells", "cells_of", "BTFit", "fit_bt", "fit_bt_cells", "refit_bt_cells", "bt_inverse_hessian",
           "online_elo", "win_rate_matrix", "win_rates_from_cells", "copeland", "borda", "alpharank_scores",
           "nash_scores", "minimax_winner", "ranks_of", "ELO_SCALE"]

ELO_SCALE = 400.0 / math.log(10.0)  # Elo points per unit of log-strength
_LOG_NU_OFF = -30.0  # log nu when a table has no ties (nu -> 0: plain Bradley-Terry)


class Cells(NamedTuple):
  """Unique comparison cells of ``K`` models (numpy; static structure of the batched fits).

  Attributes:
    i, j: ``int32[C]`` model indices (``i < j`` when aggregated by pair).
    y: ``[C, 3]`` counts of (i wins, j wins, tie).
    x: ``[C, d]`` covariate differences scaled to unit root-mean-square (``d = 0`` without covariates).
    num_models: ``K``.
    x_mean, x_std: ``[d]`` the scaling (``x = (raw - mean) / std``; ``mean`` is 0).
  """

  i: np.ndarray
  j: np.ndarray
  y: np.ndarray
  x: np.ndarray
  num_models: int
  x_mean: np.ndarray
  x_std: np.ndarray


def cells_of(comp: Comparisons) -> Cells:
  """Aggregates ``Comparisons`` into cells: by unordered pair, or one per battle with covariates."""
  a, b = np.asarray(comp.a), np.asarray(comp.b)
  c = np.asarray(comp.counts, np.float64)
  y = np.stack([c[:, 0], c[:, 1], c[:, 2] + c[:, 3]], axis=1)
  k = comp.num_models
  if comp.features is not None and comp.features.shape[1] > 0:
    raw = np.asarray(comp.features, np.float64)
    # Scaled to unit root-mean-square, not centred: a difference x_a - x_b must flip sign when a and b
    # swap, and centring would add a constant (a first-position advantage) to every battle.
    std = np.sqrt(np.mean(raw * raw, 0))
    std = np.where(std > 0, std, 1.0)
    return Cells(a.astype(np.int32), b.astype(np.int32), y, raw / std, k, np.zeros(raw.shape[1]), std)
  swap = a > b
  i, j = np.where(swap, b, a), np.where(swap, a, b)
  y = np.where(swap[:, None], y[:, [1, 0, 2]], y)
  key = i.astype(np.int64) * k + j
  uniq, inv = np.unique(key, return_inverse=True)
  agg = np.zeros((len(uniq), 3))
  np.add.at(agg, inv.reshape(-1), y)
  return Cells((uniq // k).astype(np.int32), (uniq % k).astype(np.int32), agg, np.zeros((len(uniq), 0)), k,
               np.zeros(0), np.ones(0))


class BTFit(NamedTuple):
  """A Bradley-Terry(-Davidson) fit.

  Attributes:
    theta: ``[..., K]`` log-strengths, mean 0 (``ELO_SCALE * theta`` is in Elo points).
    log_nu: ``[...]`` Davidson's tie parameter ``log nu`` (``-30`` when the data have no ties).
    gamma: ``[..., d]`` covariate coefficients (per unit-RMS feature).
    loglik: ``[...]`` the log-likelihood at the fit (without the ridge term).
    grad_norm: ``[...]`` max-norm of the penalised gradient at the fit (the convergence certificate).
    status: ``int32[...]`` 0 converged (``grad_norm <= tol``), 1 not converged, 2 non-finite.
  """

  theta: jax.Array
  log_nu: jax.Array
  gamma: jax.Array
  loglik: jax.Array
  grad_norm: jax.Array
  status: jax.Array


def _cell_terms(d, lam, y):
  """Per-cell log-likelihood, its gradient and Hessian in ``(d, lambda)`` (Davidson; see module doc)."""
  w, l, t = y[..., 0], y[..., 1], y[..., 2]
  n = w + l + t
  # Z e^{-|d|/2} = 1 + e^{-|d|} + nu e^{-|d|/2}: one exponential per cell, no overflow.
  a = 0.5 * jnp.abs(d)
  e = jnp.exp(-a)
  nu_e = jnp.exp(lam) * e
  zs = 1.0 + e * e + nu_e
  r = 1.0 / zs
  p_hi, p_lo, pt = r, e * e * r, nu_e * r
  pw, pl = jnp.where(d >= 0, p_hi, p_lo), jnp.where(d >= 0, p_lo, p_hi)
  log_z = a + jnp.log(zs)
  ll = 0.5 * (w - l) * d + t * lam - n * log_z
  m = 0.5 * (pw - pl)
  gd, gl = 0.5 * (w - l) - n * m, t - n * pt
  hdd = -n * (0.25 * (pw + pl) - m * m)
  hdl = n * m * pt
  hll = -n * pt * (1.0 - pt)
  return ll, gd, gl, hdd, hdl, hll


def _loglik(theta, lam, gamma, i, j, x, y):
  d = theta[i] - theta[j] + x @ gamma
  return jnp.sum(_cell_terms(d, lam, y)[0])


_INCIDENCE_MAX = 2**22  # cells x models up to which the per-model sums are a matmul (no scatter)


def _incidence(i, j, k, dt):
  """``[C, K]`` signed incidence (``+1`` at ``i``, ``-1`` at ``j``) when small enough, else ``None``."""
  c = i.shape[-1]
  if c * k > _INCIDENCE_MAX:
    return None
  return jnp.zeros((c, k), dt).at[jnp.arange(c), i].add(1.0).at[jnp.arange(c), j].add(-1.0)


def _bt_grad(theta, lam, gamma, y, i, j, x, ridge, has_ties, inc=None):
  """Gradient of the penalised log-likelihood in ``(theta, lambda, gamma)`` (``[K + 1 + d]``), and the
  per-cell Hessian terms ``(hdd, hdl, hll)`` of ``_cell_terms``; ``inc``: ``_incidence(i, j)`` or ``None``."""
  k = theta.shape[-1]
  d = theta[i] - theta[j] + x @ gamma
  _, gd, gl, hdd, hdl, hll = _cell_terms(d, lam, y)
  g_t = (jnp.zeros(k, y.dtype).at[i].add(gd).at[j].add(-gd) if inc is None else gd @ inc) - ridge * theta
  g_l = jnp.where(has_ties, jnp.sum(gl), 0.0)
  return jnp.concatenate([g_t, g_l[None], x.T @ gd]), (hdd, hdl, hll)


def _bt_grad_hess(theta, lam, gamma, y, i, j, x, ridge, has_ties):
  """``(g, H)``: the gradient of the log-likelihood and the Hessian of the negative log-likelihood,
  plus the gauge projector ``scale 1 1^T / K`` on the ``theta`` block (positive definite)."""
  k, dim, dt = theta.shape[-1], x.shape[-1], y.dtype
  q = k + 1 + dim
  g, (hdd, hdl, hll) = _bt_grad(theta, lam, gamma, y, i, j, x, ridge, has_ties)
  h_tt = (jnp.zeros((k, k), dt).at[i, i].add(hdd).at[j, j].add(hdd).at[i, j].add(-hdd).at[j, i].add(-hdd)
          - ridge * jnp.eye(k, dtype=dt))
  h_tl = jnp.zeros(k, dt).at[i].add(hdl).at[j].add(-hdl)
  h_tg = jnp.zeros((k, dim), dt).at[i].add(hdd[:, None] * x).at[j].add(-hdd[:, None] * x)
  h_ll = jnp.sum(hll)
  h_lg = x.T @ hdl
  h_gg = (x * hdd[:, None]).T @ x
  h = jnp.zeros((q, q), dt)
  h = h.at[:k, :k].set(h_tt).at[:k, k].set(h_tl).at[k, :k].set(h_tl).at[k, k].set(h_ll)
  h = h.at[:k, k + 1:].set(h_tg).at[k + 1:, :k].set(h_tg.T).at[k, k + 1:].set(h_lg).at[k + 1:, k].set(h_lg)
  h = h.at[k + 1:, k + 1:].set(h_gg)
  # No ties: lambda is pinned (identity row); the gauge (theta + c) is fixed by the projector term
  # (it leaves the Newton step on the mean-zero subspace unchanged, g_t sums to 0 there).
  h = jnp.where(has_ties, h, h.at[k, :].set(0.0).at[:, k].set(0.0).at[k, k].set(-1.0))
  scale = jnp.maximum(jnp.mean(-jnp.diagonal(h_tt)), 1e-12)
  proj = jnp.zeros((q, q), dt).at[:k, :k].set(jnp.full((k, k), scale / k, dt))
  return g, -h + proj


def _bt_step(carry, step, has_ties):
  """Applies a step clipped to 2 nats (max-norm), recentres ``theta`` and pins ``lambda`` without ties."""
  theta, lam, gamma = carry
  k = theta.shape[-1]
  size = jnp.max(jnp.abs(step))
  step = step * jnp.minimum(1.0, 2.0 / jnp.maximum(size, 1e-30))
  theta = theta + step[:k]
  return theta - jnp.mean(theta), jnp.where(has_ties, lam + step[k], _LOG_NU_OFF), gamma + step[k + 1:]


def _bt_start(y, init, dim, k, dt):
  total = jnp.maximum(jnp.sum(y), 1.0)
  has_ties = jnp.sum(y[:, 2]) > 0
  if init is None:
    ties_frac = jnp.sum(y[:, 2]) / total
    odds = 2.0 * ties_frac / jnp.maximum(1.0 - ties_frac, 1e-6)
    lam0 = jnp.where(has_ties, jnp.log(jnp.maximum(odds, 1e-6)), _LOG_NU_OFF)
    return (jnp.zeros(k, dt), lam0.astype(dt), jnp.zeros(dim, dt)), total, has_ties
  lam = jnp.where(has_ties, jnp.maximum(init.log_nu, -20.0), _LOG_NU_OFF).astype(dt)
  return (init.theta.astype(dt), lam, init.gamma.astype(dt)), total, has_ties


def _bt_finish(params, y, i, j, x, ridge, has_ties, total, tol, inc=None):
  theta, lam, gamma = params
  g, _ = _bt_grad(theta, lam, gamma, y, i, j, x, ridge, has_ties, inc)
  gn = jnp.max(jnp.abs(g)) / total
  ll = _loglik(theta, lam, gamma, i, j, x, y)
  finite = jnp.all(jnp.isfinite(theta)) & jnp.isfinite(lam) & jnp.all(jnp.isfinite(gamma)) & jnp.isfinite(gn)
  status = jnp.where(finite, jnp.where(gn <= tol, 0, 1), 2).astype(jnp.int32)
  return BTFit(theta, lam, gamma, ll, gn, status)


@functools.partial(jax.jit, static_argnames=("num_models", "steps"))
def fit_bt_cells(y: jax.Array, i: jax.Array, j: jax.Array, x: jax.Array, *, num_models: int, ridge=0.0,
                 steps: int = 40, tol=1e-6, init: Optional[BTFit] = None) -> BTFit:
  """Bradley-Terry-Davidson maximum likelihood on cell counts, by damped Newton steps (jit; vmap over ``y``).

  Maximises ``sum_c l_c(theta_i - theta_j + gamma^T x_c, lambda) - ridge |theta|^2 / 2`` over
  ``theta`` (mean 0), ``lambda = log nu`` (held at ``-30`` when ``y`` has no ties) and ``gamma``.

  Args:
    y: ``[C, 3]`` counts of (i wins, j wins, tie); a batch of tables under ``vmap``.
    i, j: ``int32[C]`` model indices of each cell.
    x: ``[C, d]`` covariates (``d`` may be 0).
    num_models: ``K`` (static).
    ridge: Gaussian prior precision on ``theta`` (0: the MLE, which is infinite when a model
      wins or loses every battle: then ``status`` says so).
    steps: Newton iterations (static); each is clipped to 2 nats.
    tol: gradient max-norm (per battle) below which ``status`` is 0.
    init: a fit to start from (default: strengths 0 and ``nu`` from the tie rate).

  Returns:
    ``BTFit``.
  """
  k, dim, dt = num_models, x.shape[-1], y.dtype
  i, j = jnp.asarray(i), jnp.asarray(j)
  x = jnp.asarray(x, dt)
  start, total, has_ties = _bt_start(y, init, dim, k, dt)
  q = k + 1 + dim

  def newton(carry, _):
    g, h = _bt_grad_hess(*carry, y, i, j, x, ridge, has_ties)
    step = jnp.linalg.solve(h + 1e-12 * total * jnp.eye(q, dtype=dt), g)
    return _bt_step(carry, step, has_ties), None

  params, _ = jax.lax.scan(newton, start, None, length=steps)
  return _bt_finish(params, y, i, j, x, ridge, has_ties, total, tol)


@jax.jit
def bt_inverse_hessian(fit: BTFit, y: jax.Array, i: jax.Array, j: jax.Array, x: jax.Array,
                       ridge=0.0) -> jax.Array:
  """``[K + 1 + d, K + 1 + d]`` inverse of the negative log-likelihood's Hessian (with the gauge term) at
  ``fit``, per battle (divided by the total count): the fixed matrix of ``refit_bt_cells``'s chord steps."""
  dt = y.dtype
  x = jnp.asarray(x, dt)
  total = jnp.maximum(jnp.sum(y), 1.0)
  _, h = _bt_grad_hess(fit.theta, fit.log_nu, fit.gamma, y, i, j, x, ridge, jnp.sum(y[:, 2]) > 0)
  return jnp.linalg.inv(h / total + 1e-12 * jnp.eye(h.shape[0], dtype=dt))


@functools.partial(jax.jit, static_argnames=("steps",))
def refit_bt_cells(y: jax.Array, i: jax.Array, j: jax.Array, x: jax.Array, init: BTFit, hinv: jax.Array, *,
                   ridge=0.0, steps: int = 6, tol=1e-6) -> BTFit:
  """Bradley-Terry-Davidson fit of a perturbed table (a bootstrap resample) by chord steps from ``init``.

  The chord (simplified Newton) method keeps the Hessian of the table ``init`` was fitted to, so each step
  is a gradient and a mat-vec, ``p <- p + hinv g(p) / n`` (``n`` the resample's count): it converges
  linearly with rate ``||I - H_0^{-1} H(p*)||``, small when the table is a resample of ``init``'s (the
  counts differ by ``O(sqrt(n))``). ``status`` certifies each fit as in ``fit_bt_cells``; a fit that did
  not converge is for the caller to finish by Newton (``fit_bt_cells(..., init=...)``).

  Args:
    y: ``[C, 3]`` counts (vmap over ``y``).
    i, j, x: as in ``fit_bt_cells``.
    init: the fit to start from (the full-data fit).
    hinv: ``bt_inverse_hessian`` at ``init`` on its own table.
    ridge, tol: as in ``fit_bt_cells``.
    steps: chord iterations (static).

  Returns:
    ``BTFit``.

  References:
    Kelley, "Iterative Methods for Linear and Nonlinear Equations", SIAM 1995, Sec. 5.4 (the chord method
    and its linear convergence).
  """
  dt = y.dtype
  x = jnp.asarray(x, dt)
  k = init.theta.shape[-1]
  start, total, has_ties = _bt_start(y, init, x.shape[-1], k, dt)
  inc = _incidence(jnp.asarray(i), jnp.asarray(j), k, dt)

  def chord(carry, _):
    g, _ = _bt_grad(*carry, y, i, j, x, ridge, has_ties, inc)
    return _bt_step(carry, hinv @ g / total, has_ties), None

  params, _ = jax.lax.scan(chord, start, None, length=steps)
  return _bt_finish(params, y, i, j, x, ridge, has_ties, total, tol, inc)


def fit_bt(comp: Comparisons, *, ties: str = "davidson", ridge: float = 0.0, steps: int = 40,
           dtype=None) -> BTFit:
  """Bradley-Terry strengths of the models in ``comp`` (see the module doc for the tie models).

  Args:
    comp: comparisons from ``nashax.rank.io``.
    ties: ``"davidson"`` (default) or ``"half"`` (a tie is half a win and half a loss, the arena's
      convention, fitted by ``solvers.fit_bradley_terry``; no covariates).
    ridge: prior precision on ``theta`` (0: maximum likelihood).
    steps: Newton iterations.
    dtype: float dtype (default: JAX's default float, float32 unless x64 is on).

  Returns:
    ``BTFit`` (``theta`` in nats; ``ELO_SCALE * theta`` in Elo points).
  """
  if ties not in ("davidson", "half"):
    raise ValueError(f"ties: expected 'davidson' or 'half', got {ties!r}")
  if not (ridge >= 0 and np.isfinite(ridge)):
    raise ValueError(f"ridge: must be finite and >= 0, got {ridge!r}")
  cells = cells_of(comp)
  dt = dtype or jnp.result_type(float)
  if ties == "half":
    if cells.x.shape[1]:
      raise ValueError("ties: 'half' has no covariates; use ties='davidson' with covariates")

    w, n = _pair_matrices(cells)
    p = np.where(n > 0, w / np.maximum(n, 1e-300), 0.5)
    y = np.stack([cells.y[:, 0] + cells.y[:, 2] / 2, cells.y[:, 1] + cells.y[:, 2] / 2, 0 * cells.y[:, 2]], 1)
    return _fit_half(jnp.asarray(p, dt), jnp.asarray(n, dt), jnp.asarray(y, dt), cells.i, cells.j, steps)
  return fit_bt_cells(jnp.asarray(cells.y, dt), cells.i, cells.j, jnp.asarray(cells.x, dt),
                      num_models=cells.num_models, ridge=ridge, steps=steps)


@functools.partial(jax.jit, static_argnums=(5,))
def _fit_half(p, n, y, i, j, steps):
  from nashax.solvers.baselines import fit_bradley_terry

  dt = p.dtype
  theta = fit_bradley_terry(p, n, steps=steps)
  lam = jnp.asarray(_LOG_NU_OFF, dt)
  ll = _loglik(theta, lam, jnp.zeros(0, dt), i, j, jnp.zeros((y.shape[0], 0), dt), y)
  return BTFit(theta, lam, jnp.zeros(0, dt), ll, jnp.zeros((), dt), jnp.zeros((), jnp.int32))


def _pair_matrices(cells: Cells):
  """``(wins + ties / 2, n)`` as ``[K, K]`` numpy matrices (row beats column)."""
  k = cells.num_models
  w = np.zeros((k, k))
  n = np.zeros((k, k))
  half = cells.y[:, 2] / 2
  np.add.at(w, (cells.i, cells.j), cells.y[:, 0] + half)
  np.add.at(w, (cells.j, cells.i), cells.y[:, 1] + half)
  tot = cells.y.sum(1)
  np.add.at(n, (cells.i, cells.j), tot)
  np.add.at(n, (cells.j, cells.i), tot)
  return w, n


def win_rates_from_cells(y: jax.Array, i, j, num_models: int):
  """``(W, N, T)``: ``W[a, b] = (wins + ties / 2) / n`` (0.5 where unplayed, and on the diagonal),
  ``N[a, b]`` battles and ``T[a, b]`` ties, from cell counts ``y: [C, 3]`` (jit/vmap-able)."""
  k = num_models
  half = 0.5 * y[:, 2]
  z = jnp.zeros((k, k), y.dtype)
  w = z.at[i, j].add(y[:, 0] + half).at[j, i].add(y[:, 1] + half)
  tot = jnp.sum(y, -1)
  n = z.at[i, j].add(tot).at[j, i].add(tot)
  t = z.at[i, j].add(y[:, 2]).at[j, i].add(y[:, 2])
  return jnp.where(n > 0, w / jnp.maximum(n, 1e-30), 0.5), n, t


def win_rate_matrix(comp: Comparisons):
  """``(W [K, K], N [K, K], T [K, K])`` numpy: win rates (ties count half), battle counts and tie counts."""
  cells = cells_of(comp)
  w, n = _pair_matrices(cells)
  t = np.zeros_like(n)
  np.add.at(t, (cells.i, cells.j), cells.y[:, 2])
  np.add.at(t, (cells.j, cells.i), cells.y[:, 2])
  return np.where(n > 0, w / np.maximum(n, 1e-300), 0.5), n, t


def online_elo(comp: Comparisons, *, k_factor: float = 4.0, scale: float = 400.0, base: float = 10.0,
               initial: float = 1000.0, dtype=None) -> jax.Array:
  """Online Elo over the battles in log order (``lax.scan``), the arena's sequential update.

  ``E_a = 1 / (1 + base^((r_b - r_a) / scale))``, ``S_a = 1, 0, 1/2`` for a win, a loss, a tie
  (both kinds); ``r_a += K (S_a - E_a)``, ``r_b += K ((1 - S_a) - (1 - E_a))``.

  Returns:
    ``[K]`` final ratings.
  """
  if not comp.ordered:
    raise ValueError("comp: online Elo needs battles in log order; these are aggregated counts")
  if not (k_factor > 0 and scale > 0 and base > 1):
    raise ValueError(f"k_factor, scale, base: need k_factor > 0, scale > 0, base > 1; got {k_factor}, {scale}, {base}")
  dt = dtype or jnp.result_type(float)
  c = np.asarray(comp.counts)
  s_a = jnp.asarray(c[:, 0] + 0.5 * (c[:, 2] + c[:, 3]), dt)
  return _online_elo(jnp.asarray(comp.a), jnp.asarray(comp.b), s_a, comp.num_models, jnp.asarray(k_factor, dt),
                     jnp.asarray(scale, dt), jnp.asarray(base, dt), jnp.asarray(initial, dt))


@functools.partial(jax.jit, static_argnums=(3,))
def _online_elo(a, b, s_a, k, kf, scale, base, initial):
  def step(r, battle):
    ia, ib, s = battle
    e_a = 1.0 / (1.0 + base ** ((r[ib] - r[ia]) / scale))
    delta = kf * (s - e_a)
    return r.at[ia].add(delta).at[ib].add(-delta), None

  r, _ = jax.lax.scan(step, jnp.full((k,), initial, s_a.dtype), (a, b, s_a))
  return r


# ----------------------------------------------------------------------------- rankings of a win-rate matrix


def copeland(w: jax.Array, n: Optional[jax.Array] = None) -> jax.Array:
  """Copeland score: pairwise wins (``W > 1/2``) plus half the draws (``W = 1/2``) over played pairs."""
  k = w.shape[-1]
  played = ~jnp.eye(k, dtype=bool) if n is None else (n > 0)
  return jnp.sum(jnp.where(played, (w > 0.5) + 0.5 * (w == 0.5), 0.0), -1)


def borda(w: jax.Array, n: Optional[jax.Array] = None) -> jax.Array:
  """Borda score: the mean win rate over the opponents played (0.5 if none)."""
  k = w.shape[-1]
  played = ~jnp.eye(k, dtype=bool) if n is None else (n > 0)
  cnt = jnp.sum(played, -1)
  return jnp.where(cnt > 0, jnp.sum(jnp.where(played, w, 0.0), -1) / jnp.maximum(cnt, 1), 0.5)


def alpharank_scores(w: jax.Array, alpha: float = 10.0, m: int = 50) -> jax.Array:
  """Single-population alpha-rank mass on the zero-sum table ``W - 1/2`` (``solvers.alpharank``,
  OpenSpiel's local selection model: the fixation of ``r`` against ``s`` depends on ``W[r, s] - W[s, r]``)."""
  return _alpharank_scores(w, alpha, m)


@functools.partial(jax.jit, static_argnums=(2,))
def _alpharank_scores(w, alpha, m):
  from nashax.solvers.alpharank import alpharank

  return alpharank(w - 0.5, alpha, m, single_population=True, local_selection=True).pi


def nash_scores(w: jax.Array, steps: int = 5000):
  """Nash averaging (``solvers.nash_averaging``): ``(maximum-entropy equilibrium [K], ratings A p [K])``."""
  return _nash_scores(w, steps)


@functools.partial(jax.jit, static_argnums=(1,))
def _nash_scores(w, steps):
  from nashax.solvers.ranking import nash_averaging

  res = nash_averaging(w, steps=steps)
  return res.equilibrium, res.ratings


def minimax_winner(w: np.ndarray) -> np.ndarray:
  """The minimax (von Neumann) winner of the win-rate matrix (``solvers.von_neumann_winner``, an LP)."""
  from nashax.solvers.exact import von_neumann_winner

  return von_neumann_winner(np.asarray(w, np.float64))


def ranks_of(scores: jax.Array) -> jax.Array:
  """Competition ranks ``1 + #{j: s_j > s_i}`` along the last axis (1 = best; ties share the better rank)."""
  return 1 + jnp.sum(scores[..., None, :] > scores[..., :, None], -1)
