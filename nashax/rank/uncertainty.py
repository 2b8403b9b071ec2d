"""Uncertainty for every ranking: a batched bootstrap over battles and a Dirichlet posterior per pair.

Bootstrap (default: Poisson): every battle gets an independent ``Poisson(1)``
weight, so the count of a (pair, outcome) cell is ``Poisson(y_c)``, drawn with
one 32-bit word from a Walker alias table per distinct count (``O(C)`` work for
``C`` cells, not a 10^6-row gather). Given their total ``N*`` the Poisson counts
are ``Multinomial(N*, y / N)``, and every estimator here depends on the counts
only through their proportions, so this is the classical resample of ``N``
battles with ``N* ~ Poisson(N)`` battles instead. ``resampling="multinomial"``
draws exactly ``N`` battles, as a binary tree of binomial splits (``ceil(log2
C)`` levels of vectorised ``jax.random.binomial``; several times slower). Each
resample's Bradley-Terry fit is a few chord steps from the full-data fit with
its Hessian (a gradient and a mat-vec each), Newton where they fall short; ``B``
resamples are one jitted ``vmap`` of draw-and-fit.

Bayesian: each pair's outcome probabilities ``(p_win, p_loss, p_tie)`` get
the conjugate posterior ``Dirichlet(prior + counts)``; a draw gives the
win-rate matrix ``W = p_win + p_tie / 2`` (pairs never played draw from the
prior), pushed through alpha-rank, Nash averaging, Copeland and Borda.

Summaries of either sample: percentile rank intervals, ``P(i ranks above
j)`` and ``P(i in the top k)``.

References:
  Efron & Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile
  intervals, ch. 13); Hanley & MacGibbon, Comput. Methods Programs Biomed.
  83 (2006), and Chamandy et al. 2012 (the Poisson bootstrap); Walker, ACM
  TOMS 3 (1977) (alias tables); Chiang et al. 2024, arXiv:2403.04132 (bootstrap of BT
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

__all__ = ["multinomial_counts", "PoissonTables", "poisson_tables", "poisson_counts", "bootstrap",
           "posterior", "RankSummary", "summarize", "MATRIX_METHODS"]

MATRIX_METHODS = ("alpharank", "nash", "copeland", "borda")
_CACHE_CELLS = 2**18  # counts per bootstrap batch (default chunk): one float32 batch stays in a 1 MiB cache


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


class PoissonTables(NamedTuple):
  """Walker alias tables of ``Poisson(lam_c)`` for every cell ``c`` (built on the host by ``poisson_tables``).

  Attributes:
    cell: ``int32[C]`` the table of each cell (cells sharing a mean share a table); 0 for fallback cells.
    thresh: ``uint32[T, W]`` acceptance thresholds ``round(q_s 2^(32 - log2 W))`` of the ``W`` slots.
    value, alias: ``int32[T, W]`` the count a slot gives when accepted, and its alias's count.
    fallback: ``int32[F]`` cells whose mean is too large for a width-``W`` table (drawn by
      ``jax.random.poisson``); ``fallback_lam``: ``[F]`` their means.
  """

  cell: np.ndarray
  thresh: np.ndarray
  value: np.ndarray
  alias: np.ndarray
  fallback: np.ndarray
  fallback_lam: np.ndarray


def poisson_tables(lam, *, max_width: int = 1024, width: Optional[int] = None,
                   num_tables: Optional[int] = None) -> PoissonTables:
  """Alias tables for drawing ``Poisson(lam_c)`` independently per cell with one 32-bit word each.

  Each distinct mean gets a table over its support ``[lo, lo + W)``, the counts whose probability is at
  least ``1e-18`` (the mass left out is below ``1e-16``); the slots are filled by Vose's two-pointer
  construction on the sorted masses, run for all tables at once. A draw takes a random slot from the top
  ``log2 W`` bits and compares the other bits with the slot's threshold, so each count's probability is
  exact up to ``W 2^-32`` (the threshold's resolution). Means whose support needs more than ``max_width``
  slots (``lam`` above about 3,500) are left to ``jax.random.poisson`` (``fallback``).

  Args:
    lam: ``[C]`` nonnegative finite means (bootstrap: the observed counts).
    max_width: the largest table width (a power of 2).
    width, num_tables: pad the tables to this width and number (to stack the tables of several tables
      of counts with one shape); default: the smallest that fit.

  Returns:
    ``PoissonTables``.

  References:
    Walker, "An efficient method for generating discrete random variables with general distributions",
    ACM TOMS 3 (1977); Vose, "A linear algorithm for generating random numbers with a given
    distribution", IEEE TSE 17 (1991).
  """
  lam = np.asarray(lam, np.float64).reshape(-1)
  if not np.all(np.isfinite(lam) & (lam >= 0)):
    raise ValueError("lam: Poisson means must be finite and >= 0")
  uniq, inv = np.unique(lam, return_inverse=True)
  supports = []
  for mu in uniq:
    sd = math.sqrt(mu)
    k = np.arange(max(0, math.floor(mu - 14 * sd - 14)), math.ceil(mu + 14 * sd + 40), dtype=np.float64)
    if mu > 0:
      logp = k * math.log(mu) - mu - np.array([math.lgamma(v + 1) for v in k])
    else:
      logp = np.where(k == 0, 0.0, -np.inf)
    keep = np.flatnonzero(logp >= math.log(1e-18))
    supports.append((int(k[keep[0]]), np.exp(logp[keep[0]:keep[-1] + 1])))
  need = max(len(p) for _, p in supports)
  w = width or max(2, 1 << (min(need, max_width) - 1).bit_length())
  if w & (w - 1) or w > 2**16:
    raise ValueError(f"width: must be a power of 2 <= 65536, got {w}")
  ok = np.array([len(p) <= w for _, p in supports])
  tables = [(lo, p / p.sum()) for (lo, p), good in zip(supports, ok) if good]
  t = num_tables or max(len(tables), 1)
  if t < len(tables):
    raise ValueError(f"num_tables: {len(tables)} distinct means need {len(tables)} tables, got {t}")
  q = np.zeros((t, w))
  lo = np.zeros(t, np.int64)
  q[:, 0] = w  # padding tables: Poisson(0)
  for r, (l0, p) in enumerate(tables):
    q[r] = 0.0
    q[r, :len(p)] = p * w
    lo[r] = l0
  order = np.argsort(q, axis=1, kind="stable")
  q = np.take_along_axis(q, order, 1)
  thresh = np.ones((t, w))
  alias = np.tile(np.arange(w), (t, 1))
  rows = np.arange(t)
  s, g = np.zeros(t, np.int64), np.full(t, w - 1)
  for _ in range(w - 1):  # Vose's pairing, one slot finalised per table per pass
    act = s < g
    qs, qg = q[rows, s], q[rows, g]
    donor_done = qg < 1.0  # the donor fell below 1: it is finalised, with the next one as its alias
    slot = np.where(donor_done, g, s)
    thresh[rows[act], slot[act]] = np.where(donor_done, qg, qs)[act]
    alias[rows[act], slot[act]] = np.where(donor_done, g - 1, g)[act]
    tgt = np.where(donor_done, g - 1, g)
    q[rows[act], tgt[act]] -= np.where(donor_done, 1.0 - qg, 1.0 - qs)[act]
    s = s + (act & ~donor_done)
    g = g - (act & donor_done)
  shift = 32 - (w.bit_length() - 1)
  value = (lo[:, None] + order).astype(np.int32)
  table_of = np.full(len(uniq), 0, np.int64)
  table_of[ok] = np.arange(ok.sum())
  return PoissonTables(table_of[inv].astype(np.int32),
                       np.round(np.clip(thresh, 0.0, 1.0) * 2.0**shift).astype(np.uint32), value,
                       np.take_along_axis(value, alias, 1).astype(np.int32),
                       np.flatnonzero(~ok[inv]).astype(np.int32), lam[~ok[inv]])


def poisson_counts(key: jax.Array, tables: PoissonTables, dtype=jnp.float32) -> jax.Array:
  """``[C]`` independent ``Poisson(lam_c)`` counts from ``poisson_tables(lam)`` (jit; vmap over ``key``)."""
  w = tables.thresh.shape[-1]
  shift = 32 - (w.bit_length() - 1)
  cell, thresh, value, alias = (jnp.asarray(a) for a in tables[:4])
  k1, k2 = jax.random.split(key)
  bits = jax.random.bits(k1, cell.shape, jnp.uint32)
  flat = cell * w + (bits >> shift).astype(jnp.int32)
  low = bits & jnp.uint32(2**shift - 1) if shift < 32 else bits
  take = low < jnp.reshape(thresh, (-1,))[flat]
  out = jnp.where(take, jnp.reshape(value, (-1,))[flat], jnp.reshape(alias, (-1,))[flat])
  out = out.astype(dtype)
  if tables.fallback.shape[-1]:
    big = jax.random.poisson(k2, tables.fallback_lam, dtype=jnp.int32)
    out = out.at[tables.fallback].set(big.astype(dtype))
  return out


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


@functools.partial(jax.jit, static_argnames=("num_models", "steps", "methods", "m", "nash_steps", "chunk",
                                            "resampling", "newton_steps"))
def _bootstrap(keys, y, i, j, x, tables, *, num_models, steps, ridge, methods, alpha, m, nash_steps, chunk,
               resampling="poisson", newton_steps=10):
  """``B`` resamples in chunks of ``chunk``: each chunk's counts, chord refits, and (only when a fit in the
  chunk did not converge) Newton steps for those fits; ``tables`` are ``poisson_tables(y)`` (poisson only)."""
  shape = y.shape
  flat = y.reshape(-1)
  total = jnp.sum(flat)
  probs = flat / total
  bt = "bt" in methods
  if bt:
    full = core.fit_bt_cells(y, i, j, x, num_models=num_models, ridge=ridge, steps=40)
    hinv = core.bt_inverse_hessian(full, y, i, j, x, ridge)

  def draw(key):
    if resampling == "poisson":
      return poisson_counts(key, tables, y.dtype).reshape(shape)
    return multinomial_counts(key, total, probs).reshape(shape)

  def newton(counts, fit):
    start = jax.tree.map(lambda a, b: jnp.where(fit.status == 2, a, b), full, fit)
    return core.fit_bt_cells(counts, i, j, x, num_models=num_models, ridge=ridge, steps=newton_steps,
                             init=start)

  def one_chunk(ks):
    counts = jax.vmap(draw)(ks)
    out = {}
    if bt:
      fit = jax.vmap(lambda c: core.refit_bt_cells(c, i, j, x, full, hinv, ridge=ridge, steps=steps))(counts)
      polished = jax.lax.cond(jnp.any(fit.status != 0), jax.vmap(newton), lambda c, f: f, counts, fit)
      fit = jax.tree.map(lambda a, b: jnp.where((fit.status == 0).reshape((-1,) + (1,) * (a.ndim - 1)), a, b),
                         fit, polished)
      out.update(bt=fit.theta, bt_status=fit.status, log_nu=fit.log_nu)
      if x.shape[-1]:
        out["gamma"] = fit.gamma
    if any(mm in methods for mm in MATRIX_METHODS):
      def scores(c):
        w, n, _ = core.win_rates_from_cells(c, i, j, num_models)
        return _matrix_scores(w, n, alpha, m, nash_steps, methods)
      out.update(jax.vmap(scores)(counts))
    return out

  num = keys.shape[0]
  nchunks = -(-num // chunk)
  pad = jnp.concatenate([keys, keys[:nchunks * chunk - num]]) if nchunks * chunk > num else keys
  out = jax.lax.map(one_chunk, pad.reshape((nchunks, chunk) + keys.shape[1:]))
  return jax.tree.map(lambda a: a.reshape((nchunks * chunk,) + a.shape[2:])[:num], out)


def _check_methods(methods, allowed):
  methods = tuple(methods)
  bad = [mm for mm in methods if mm not in allowed]
  if bad or not methods:
    raise ValueError(f"methods: expected a non-empty subset of {allowed}, got {methods}")
  return methods


def bootstrap(comp: Comparisons, num: int = 1000, *, key: Optional[jax.Array] = None,
              methods: Sequence[str] = ("bt",) + MATRIX_METHODS, ridge: float = 0.0, steps: int = 6,
              alpha: float = 10.0, m: int = 50, nash_steps: int = 2000, chunk: Optional[int] = None,
              resampling: str = "poisson", dtype=None) -> dict:
  """Nonparametric bootstrap over battles, all resamples in one jitted ``vmap`` (chunked by ``chunk``).

  Args:
    comp: comparisons (battles or counts: a count row of ``n`` battles is ``n`` battles).
    num: resamples ``B``.
    key: PRNG key (default ``jax.random.key(0)``).
    methods: any of ``"bt"`` (Bradley-Terry-Davidson ``theta``) and ``MATRIX_METHODS``.
    ridge: as in ``core.fit_bt_cells``.
    steps: chord iterations per resample (``core.refit_bt_cells``, from the full-data fit with its
      Hessian); a chunk in which some fit has not converged then runs 10 Newton steps on those fits.
      ``bt_status`` certifies every fit.
    alpha, m: alpha-rank's selection intensity and population size.
    nash_steps: iterations of Nash averaging's dual solver per resample.
    chunk: resamples per vectorised batch (default: as many as keep a batch's counts near 2^18 numbers,
      so they stay in cache: 17 resamples of 14,850 cells, all ``B`` of a small table).
    resampling: ``"poisson"`` (default; each battle's weight ``Poisson(1)``, so each cell's count is
      ``Poisson(y_c)``, drawn from alias tables) or ``"multinomial"`` (the classical resample of exactly
      ``N`` battles). Every estimator here is invariant to scaling all counts (``ridge = 0``), and
      independent Poisson counts given their total ``N*`` are ``Multinomial(N*, y / N)``: the Poisson
      bootstrap is the multinomial one with ``N* ~ Poisson(N)`` battles instead of ``N``.
    dtype: float dtype (default: JAX's default float).

  Returns:
    dict of ``[B, ...]`` arrays: ``bt`` ``[B, K]`` (and ``bt_status``, ``log_nu``, ``gamma``), each
    matrix method's scores ``[B, K]`` (higher is better; ``nash`` is the Nash-averaging rating
    ``A p``, with the equilibrium mass in ``nash_mass``), ``triads`` ``[B]`` (fraction of
    intransitive triads) and ``condorcet`` ``int32[B]`` (the Condorcet winner or -1).

  References:
    Hanley & MacGibbon, "Creating non-parametric bootstrap samples using Poisson frequencies", Computer
    Methods and Programs in Biomedicine 83 (2006); Chamandy et al., "Estimating uncertainty for massive
    data streams", Google technical report, 2012 (the Poisson bootstrap).
  """
  methods = _check_methods(methods, ("bt",) + MATRIX_METHODS)
  if isinstance(num, bool) or int(num) != num or num < 1:
    raise ValueError(f"num: number of resamples must be a positive integer, got {num!r}")
  if chunk is not None and (int(chunk) != chunk or chunk < 1):
    raise ValueError(f"chunk: must be a positive integer, got {chunk!r}")
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise ValueError(f"steps: chord iterations must be a positive integer, got {steps!r}")
  if resampling not in ("poisson", "multinomial"):
    raise ValueError(f"resampling: expected 'poisson' or 'multinomial', got {resampling!r}")
  dt = dtype or jnp.result_type(float)
  cells = core.cells_of(comp)
  tables = poisson_tables(cells.y.reshape(-1)) if resampling == "poisson" else None
  key = jax.random.key(0) if key is None else key
  keys = jax.random.split(key, int(num))
  out = _bootstrap(keys, jnp.asarray(cells.y, dt), jnp.asarray(cells.i), jnp.asarray(cells.j),
                   jnp.asarray(cells.x, dt), tables, num_models=cells.num_models, steps=int(steps),
                   ridge=float(ridge), methods=methods, alpha=float(alpha), m=int(m),
                   nash_steps=int(nash_steps),
                   chunk=min(int(chunk) if chunk else max(1, _CACHE_CELLS // cells.y.size), int(num)),
                   resampling=resampling)
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
