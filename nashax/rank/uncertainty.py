"""Uncertainty for every ranking: a batched bootstrap over battles and a Dirichlet posterior per pair.

Bootstrap: resampling ``N`` battles with replacement is the same in law as
drawing the cell counts from ``Multinomial(N, y / N)``. The multinomial is
drawn as a binary tree of binomial splits (``ceil(log2 C)`` levels of
vectorised ``jax.random.binomial``), so a resample of 10^6 battles costs
``O(C)`` work for ``C`` distinct (pair, outcome) cells, not a 10^6-row gather,
and ``B`` resamples are one jitted ``vmap`` of draw-and-fit.

Bayesian: each pair's outcome probabilities ``(p_win, p_loss, p_tie)`` get
the conjugate posterior ``Dirichlet(prior + counts)``; a draw gives the
win-rate matrix ``W = p_win + p_tie / 2`` (pairs never played draw from the
prior), pushed through alpha-rank, Nash averaging, Copeland and Borda.

Summaries of either sample: percentile rank intervals, ``P(i ranks above
j)`` and ``P(i in the top k)``.

References:
  Efron & Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile
  intervals, ch. 13); Chiang et al. 2024, arXiv:2403.04132 (bootstrap of BT
  ratings); Gelman et al., "Bayesian Data Analysis", 3rd ed. (Dirichlet-
  multinomial conjugacy, Sec. 3.4).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nashax.rank import core, diagnostics
from nashax.rank.io import Comparisons

__all__ = ["multinomial_counts", "bootstrap", "posterior", "RankSummary", "summarize", "MATRIX_METHODS"]

MATRIX_METHODS = ("alpharank", "nash", "copeland", "borda")


def multinomial_counts(key: jax.Array, n, probs: jax.Array) -> jax.Array:
  """``[C]`` counts ``~ Multinomial(n, probs)`` by binary splits (``ceil(log2 C)`` binomial levels).

  Each node of a binary tree over the cells sends ``Binomial(count, p_left / (p_left + p_right))``
  of its count to the left child, which gives the multinomial law exactly. The upper levels run in
  one ``lax.scan`` over a count vector of fixed width ``2^(L - 3)`` (one binomial sampler compiled
  for all of them), the last three at their own widths (most of the work is there).
  """
  c = probs.shape[-1]
  levels = max(1, math.ceil(math.log2(max(c, 2))))
  width = 2**levels
  p = jnp.zeros(width, probs.dtype).at[:c].set(probs)
  masses = [p]
  for _ in range(levels):
    masses.append(masses[-1].reshape(-1, 2).sum(1))

  def p_left_of(lev):  # level lev splits its 2^lev nodes
    kids = masses[levels - 1 - lev].reshape(-1, 2)
    tot = kids.sum(1)
    return jnp.clip(jnp.where(tot > 0, kids[:, 0] / jnp.where(tot > 0, tot, 1.0), 0.0), 0.0, 1.0)

  def split(k, counts, pl):
    left = jnp.clip(jnp.round(jax.random.binomial(k, counts, pl, dtype=probs.dtype)), 0.0, counts)
    return jnp.stack([left, counts - left], 1).reshape(-1)

  keys = jax.random.split(key, levels)
  top = max(levels - 3, 0)
  counts = jnp.reshape(jnp.asarray(n, probs.dtype), (1,))
  if top:
    w_top = 2 ** (top - 1)  # nodes at the last scanned level
    p_top = jnp.stack([jnp.zeros(w_top, probs.dtype).at[:2**lev].set(p_left_of(lev)) for lev in range(top)])
    c0 = jnp.zeros(w_top, probs.dtype).at[0].set(counts[0])

    def body(cnt, xs):
      k, pl = xs
      out = split(k, cnt, pl)  # [2 w_top]: children of every slot
      return out[:w_top], out

    cnt, outs = jax.lax.scan(body, c0, (keys[:top], p_top))
    counts = outs[-1]  # the last scanned level's children, 2^top nodes
  for lev in range(top, levels):
    counts = split(keys[lev], counts, p_left_of(lev))
  return counts[:c]


def _matrix_scores(w, n, alpha, m, nash_steps, methods):
  out = {}
  if "alpharank" in methods:
    out["alpharank"] = core.alpharank_scores(w, alpha, m)
  if "nash" in methods:
    eq, ratings = core.nash_scores(w, nash_steps)
    out["nash"] = ratings
    out["nash_mass"] = eq
  if "copeland" in methods:
    out["copeland"] = core.copeland(w, n)
  if "borda" in methods:
    out["borda"] = core.borda(w, n)
  out["triads"] = diagnostics.intransitive_triads(w, n)
  out["condorcet"] = diagnostics.condorcet_winner(w, n)
  return out


@functools.partial(jax.jit, static_argnames=("num_models", "steps", "methods", "m", "nash_steps", "chunk"))
def _bootstrap(keys, y, i, j, x, *, num_models, steps, ridge, methods, alpha, m, nash_steps, chunk):
  shape = y.shape
  flat = y.reshape(-1)
  total = jnp.sum(flat)
  probs = flat / total

  full = core.fit_bt_cells(y, i, j, x, num_models=num_models, ridge=ridge, steps=40) if "bt" in methods else None

  def one(key):
    counts = multinomial_counts(key, total, probs).reshape(shape)
    out = {}
    if "bt" in methods:
      fit = core.fit_bt_cells(counts, i, j, x, num_models=num_models, ridge=ridge, steps=steps, init=full)
      out.update(bt=fit.theta, bt_status=fit.status, log_nu=fit.log_nu)
      if x.shape[-1]:
        out["gamma"] = fit.gamma
    if any(mm in methods for mm in MATRIX_METHODS):
      w, n, _ = core.win_rates_from_cells(counts, i, j, num_models)
      out.update(_matrix_scores(w, n, alpha, m, nash_steps, methods))
    return out

  return jax.lax.map(one, keys, batch_size=chunk)


def _check_methods(methods, allowed):
  methods = tuple(methods)
  bad = [mm for mm in methods if mm not in allowed]
  if bad or not methods:
    raise ValueError(f"methods: expected a non-empty subset of {allowed}, got {methods}")
  return methods


def bootstrap(comp: Comparisons, num: int = 1000, *, key: Optional[jax.Array] = None,
              methods: Sequence[str] = ("bt",) + MATRIX_METHODS, ridge: float = 0.0, steps: int = 10,
              alpha: float = 10.0, m: int = 50, nash_steps: int = 2000, chunk: Optional[int] = None,
              dtype=None) -> dict:
  """Nonparametric bootstrap over battles, all resamples in one jitted ``vmap`` (chunked by ``chunk``).

  Args:
    comp: comparisons (battles or counts: a count row of ``n`` battles is ``n`` battles).
    num: resamples ``B``.
    key: PRNG key (default ``jax.random.key(0)``).
    methods: any of ``"bt"`` (Bradley-Terry-Davidson ``theta``) and ``MATRIX_METHODS``.
    ridge, steps: as in ``core.fit_bt_cells``; each resample starts at the full-data fit, so ``steps``
      Newton steps (default 10; quadratic convergence) suffice: ``bt_status`` says whether they did.
    alpha, m: alpha-rank's selection intensity and population size.
    nash_steps: iterations of Nash averaging's dual solver per resample.
    chunk: resamples per vectorised batch (default: all ``B`` at once).

  Returns:
    dict of ``[B, ...]`` arrays: ``bt`` ``[B, K]`` (and ``bt_status``, ``log_nu``, ``gamma``), each
    matrix method's scores ``[B, K]`` (higher is better; ``nash`` is the Nash-averaging rating
    ``A p``, with the equilibrium mass in ``nash_mass``), ``triads`` ``[B]`` (fraction of
    intransitive triads) and ``condorcet`` ``int32[B]`` (the Condorcet winner or -1).
  """
  methods = _check_methods(methods, ("bt",) + MATRIX_METHODS)
  if isinstance(num, bool) or int(num) != num or num < 1:
    raise ValueError(f"num: number of resamples must be a positive integer, got {num!r}")
  if chunk is not None and (int(chunk) != chunk or chunk < 1):
    raise ValueError(f"chunk: must be a positive integer, got {chunk!r}")
  dt = dtype or jnp.result_type(float)
  cells = core.cells_of(comp)
  key = jax.random.key(0) if key is None else key
  keys = jax.random.split(key, int(num))
  out = _bootstrap(keys, jnp.asarray(cells.y, dt), jnp.asarray(cells.i), jnp.asarray(cells.j),
                   jnp.asarray(cells.x, dt), num_models=cells.num_models, steps=int(steps), ridge=float(ridge),
                   methods=methods, alpha=float(alpha), m=int(m), nash_steps=int(nash_steps),
                   chunk=int(chunk) if chunk else int(num))
  return dict(out)


@functools.partial(jax.jit, static_argnames=("num_models", "num", "methods", "m", "nash_steps", "chunk"))
def _posterior(key, y, i, j, prior, *, num_models, num, methods, alpha, m, nash_steps, chunk):
  k = num_models
  conc = jnp.full((k * (k - 1) // 2, 3), prior, y.dtype)
  iu, ju = np.triu_indices(k, 1)
  pair = jnp.asarray(np.full((k, k), -1, np.int64)).at[iu, ju].set(jnp.arange(len(iu)))
  conc = conc.at[pair[i, j]].add(y)
  n = jnp.zeros((k, k), y.dtype).at[i, j].add(jnp.sum(y, -1)).at[j, i].add(jnp.sum(y, -1))
  keys = jax.random.split(key, num)

  def one(kk):
    p = jax.random.dirichlet(kk, conc)
    wij = p[:, 0] + 0.5 * p[:, 2]
    w = jnp.full((k, k), 0.5, y.dtype).at[iu, ju].set(wij).at[ju, iu].set(1.0 - wij)
    # Pairs never played are drawn from the prior, so every pair counts as played here.
    return _matrix_scores(w, jnp.ones((k, k), y.dtype) - jnp.eye(k, dtype=y.dtype), alpha, m, nash_steps, methods)

  return jax.lax.map(one, keys, batch_size=chunk), n


def posterior(comp: Comparisons, num: int = 1000, *, key: Optional[jax.Array] = None, prior: float = 1.0,
              methods: Sequence[str] = MATRIX_METHODS, alpha: float = 10.0, m: int = 50, nash_steps: int = 2000,
              chunk: Optional[int] = None, dtype=None) -> dict:
  """Posterior draws of the matrix rankings under independent ``Dirichlet(prior + counts)`` per pair.

  Returns:
    dict of ``[S, K]`` scores per method (as in ``bootstrap``), ``triads`` ``[S]``, ``condorcet``
    ``int32[S]``.
  """
  methods = _check_methods(methods, MATRIX_METHODS)
  if isinstance(num, bool) or int(num) != num or num < 1:
    raise ValueError(f"num: number of posterior draws must be a positive integer, got {num!r}")
  if not (prior > 0 and np.isfinite(prior)):
    raise ValueError(f"prior: Dirichlet concentration must be finite and > 0, got {prior!r}")
  dt = dtype or jnp.result_type(float)
  cells = core.cells_of(Comparisons(comp.models, comp.a, comp.b, comp.counts, None, (), comp.ordered, comp.summary))
  key = jax.random.key(1) if key is None else key
  out, _ = _posterior(key, jnp.asarray(cells.y, dt), jnp.asarray(cells.i), jnp.asarray(cells.j), float(prior),
                      num_models=cells.num_models, num=int(num), methods=methods, alpha=float(alpha), m=int(m),
                      nash_steps=int(nash_steps), chunk=int(chunk) if chunk else int(num))
  return dict(out)


class RankSummary(NamedTuple):
  """Rank uncertainty of one method.

  Attributes:
    point: ``[K]`` the point estimate's scores; rank: ``[K]`` its ranks (1 best).
    score_lo, score_hi: ``[K]`` percentile interval of the score.
    rank_lo, rank_hi: ``[K]`` percentile interval of the rank.
    p_above: ``[K, K]`` ``P(rank_i < rank_j)`` (strictly above).
    p_top: ``[K]`` ``P(rank_i <= top_k)``.
    top_k: the ``k`` of ``p_top``.
  """

  point: np.ndarray
  rank: np.ndarray
  score_lo: np.ndarray
  score_hi: np.ndarray
  rank_lo: np.ndarray
  rank_hi: np.ndarray
  p_above: np.ndarray
  p_top: np.ndarray
  top_k: int


def summarize(samples, point, *, level: float = 0.95, top_k: int = 1, valid=None) -> RankSummary:
  """Percentile intervals of scores and ranks, ``P(i above j)`` and ``P(top k)`` from ``[S, K]`` samples.

  ``valid`` (``bool[S]``) drops samples whose fit failed (their number is the caller's to report).
  """
  s = np.asarray(samples, np.float64)
  if valid is not None:
    s = s[np.asarray(valid, bool)]
  if s.ndim != 2 or s.shape[0] < 1:
    raise ValueError(f"samples: expected [S >= 1, K] valid samples, got shape {np.shape(samples)}")
  if not 0 < level < 1:
    raise ValueError(f"level: must be in (0, 1), got {level}")
  k = s.shape[1]
  if not 1 <= top_k <= k:
    raise ValueError(f"top_k: must be in [1, {k}], got {top_k}")
  q = (1 - level) / 2
  ranks = np.asarray(core.ranks_of(jnp.asarray(s)))
  pt = np.asarray(point, np.float64)
  return RankSummary(pt, np.asarray(core.ranks_of(jnp.asarray(pt))), np.quantile(s, q, 0), np.quantile(s, 1 - q, 0),
                     np.quantile(ranks, q, 0, method="lower"), np.quantile(ranks, 1 - q, 0, method="higher"),
                     (ranks[:, :, None] < ranks[:, None, :]).mean(0), (ranks <= top_k).mean(0), int(top_k))
