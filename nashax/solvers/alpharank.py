"""alpha-rank: ranking strategies by the stationary distribution of an evolutionary Markov chain.

K populations of size ``m`` play a normal-form game ``payoffs: [K, a_1, ..., a_K]``
(the player axis first). Under small mutation at most one population holds a
mutant, so the chain lives on pure profiles ``s``; from ``s`` a mutant
``tau`` of population ``k`` fixates with probability ``rho`` (Fermi selection
with intensity ``alpha``), and

    C[s -> s'] = eta rho_k(s^k -> tau; s^-k),   eta = 1 / sum_k (|S^k| - 1),

for ``s'`` = ``s`` with ``s^k`` replaced by ``tau``; ``C[s -> s] = 1 - sum``.
The ranking is the stationary distribution ``pi = pi C``. A symmetric
two-player game can instead be read as one population (``single_population``):
its chain lives on the strategies themselves, with the fitness of a mixed
population of ``p`` mutants.

The rates are computed in log-space: ``log rho`` from stable ``expm1`` /
``logsumexp`` forms. ``pi`` is solved one of two ways (``stationary``):

* ``"linear"``: one LU solve (LAPACK ``getrf`` on a CPU, the vendor's batched
  LU on an accelerator) of the embedded jump chain ``P = C_off / out``, whose
  rows are normalised in log-space so that no rate underflows however large
  ``alpha`` is, then ``pi = (mu / out) / sum`` in log-space. ``O(N^3)`` flops
  in blocked BLAS-3, with an a-posteriori error estimate.
* ``"gth"``: the Grassmann-Taksar-Heyman state reduction on log-rates (only
  sums of positive terms, no subtraction): accurate to rounding for every
  irreducible chain, but ``N`` sequential rank-1 steps of ``logaddexp``.

``"auto"`` (the default) takes the linear solve when its error estimate is
within ``1e3`` units of rounding and the GTH otherwise (the rule is in
``stationary``). ``alpha = 1e4`` or more gives finite, correct answers whose
mass ratios are themselves exponentially small. ``alpha = inf`` is the
limit: mass on the sink strongly connected components of the response
graph, always solved by GTH on the limit chain.

References:
  Omidshafiei et al., "alpha-Rank: Multi-Agent Evaluation by Evolution",
  Scientific Reports 2019, arXiv:1903.01373 (eqs. 2-4, the infinite-alpha limit).
  Grassmann, Taksar & Heyman, "Regenerative analysis and steady state
  distributions for Markov chains", Operations Research 1985 (GTH).
  Hager, "Condition estimates", SIAM J. Sci. Stat. Comput. 5, 1984, and Higham,
  "Accuracy and Stability of Numerical Algorithms", 2nd ed., SIAM 2002, Alg. 15.4
  (the 1-norm condition estimate of the linear solve).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["AlphaRank", "alpharank", "fixation_log_prob", "single_population_log_rates",
           "multi_population_log_rates", "stationary_log", "profiles", "response_graph", "infinite_alpha_log_rates",
           "single_population_iterative", "stationary", "stationary_linear", "METHODS"]

# log of the epsilon of the infinite-alpha chain: exp(-1e4) underflows, its log does not, and GTH
# works on logs, so the eps -> 0 limit is reached to rounding.
_LOG_EPS = -1.0e4

METHODS = ("auto", "linear", "gth")
# "auto" accepts the linear solve when its first-order error bound (stationary_linear) is at most this many
# units of rounding in every pi_s; GTH's own error is ~N units of rounding, so 1e3 costs no accuracy.
MAX_AMPLIFICATION = 1.0e3


class AlphaRank(NamedTuple):
  """Result of ``alpharank``.

  Attributes:
    pi: ``[N]`` stationary distribution over the chain's states (pure profiles in
      C order of ``payoffs.shape[1:]``, or strategies for one population).
    log_rates: ``[N, N]`` ``log C[s -> s']`` off the diagonal (``-inf`` where no move).
    residual: ``|pi C - pi|_1``, the invariance certificate.
    linear: ``bool[]``, True where the linear solve gave ``pi`` (False: GTH); None from the iteration.
  """

  pi: jax.Array
  log_rates: jax.Array
  residual: jax.Array
  linear: jax.Array | None = None


def _log_ratio_expm1(x, m):
  """``log((1 - e^{-x}) / (1 - e^{-m x}))`` for any real ``x``; ``-log m`` at ``x = 0``."""
  small = jnp.abs(x) < 1e-12
  xs = jnp.where(small, 1.0, x)
  pos = xs > 0
  # x > 0: log(-expm1(-x)) - log(-expm1(-m x)); x < 0: (m - 1) x + log(expm1(x) / expm1(m x)).
  a = jnp.log(-jnp.expm1(-jnp.abs(xs))) - jnp.log(-jnp.expm1(-m * jnp.abs(xs)))
  val = jnp.where(pos, a, (m - 1.0) * xs + a)
  return jnp.where(small, -jnp.log(m), val)


def fixation_log_prob(delta_f: jax.typing.ArrayLike, alpha: jax.typing.ArrayLike, m: int) -> jax.Array:
  """``log rho = log[(1 - e^{-alpha df}) / (1 - e^{-m alpha df})]`` (``-log m`` when ``df = 0``)."""
  x = jnp.asarray(alpha) * jnp.asarray(delta_f)
  return _log_ratio_expm1(x, float(m))


def profiles(shape) -> np.ndarray:
  """``[N, K]`` all pure profiles of a game with ``shape = (a_1, ..., a_K)``, in C order."""
  return np.array(list(itertools.product(*[range(a) for a in shape])), dtype=np.int32).reshape(-1, len(shape))


def multi_population_log_rates(payoffs: jax.Array, alpha, m: int) -> jax.Array:
  """``[N, N]`` log transition rates of the multi-population chain (``-inf`` off single deviations)."""
  shape = payoffs.shape[1:]
  n = int(np.prod(shape))
  eta = 1.0 / sum(a - 1 for a in shape)
  src, dst, pop = _deviations(shape)
  flat = payoffs.reshape(len(shape), n)
  df = flat[pop, dst] - flat[pop, src]
  logr = jnp.log(eta) + fixation_log_prob(df, alpha, m)
  return jnp.full((n, n), -jnp.inf, logr.dtype).at[src, dst].set(logr)


def _single_rows(table: jax.Array, rows: jax.Array, alpha, m: int, local_selection: bool) -> jax.Array:
  """``[b, n]`` log rates ``log C[s -> r]`` for the residents ``s`` in ``rows`` (diagonal ``-inf``)."""
  n = table.shape[-1]
  m_sr = table[rows]  # [b, n]: M[s, r]
  m_rs = table[:, rows].T  # [b, n]: M[r, s]
  if local_selection:
    logrho = fixation_log_prob(m_rs - m_sr, alpha, m)
  else:
    # f_r(p) - f_s(m-p) = a + b p is linear in p, so the partial sums are the quadratic
    # c_l = -alpha (a l + b l (l+1)/2), c_0 = 0: one fused logsumexp over l, no [s, r, m] cumsum.
    d = jnp.diag(table)
    m_rr, m_ss = d[None, :], d[rows][:, None]
    b = (m_rr - m_rs + m_ss - m_sr) / (m - 1.0)
    a = (m * m_rs - m_rr - (m - 1.0) * m_ss) / (m - 1.0)
    l = jnp.arange(m, dtype=table.dtype)[None, None, :]
    c = -alpha * (a[..., None] * l + b[..., None] * (l * (l + 1.0) / 2.0))
    logrho = -jax.scipy.special.logsumexp(c, axis=-1)
  logr = jnp.log(1.0 / (n - 1)) + logrho
  return jnp.where(rows[:, None] == jnp.arange(n)[None, :], -jnp.inf, logr)


def single_population_log_rates(table: jax.Array, alpha, m: int, local_selection: bool = False) -> jax.Array:
  """``[n, n]`` log transition rates of the single-population chain for ``table[r, s]`` = payoff of r vs s.

  General model: ``rho_{s->r} = [1 + sum_{l=1}^{m-1} prod_{p=1}^{l} e^{-alpha (f_r(p) - f_s(m-p))}]^{-1}``,
  ``f_r(p) = ((p-1) M[r,r] + (m-p) M[r,s]) / (m-1)``, ``f_s(m-p) = ((m-p-1) M[s,s] + p M[s,r]) / (m-1)``;
  the local model uses ``rho`` of ``df = M[r,s] - M[s,r]``.
  """
  return _single_rows(table, jnp.arange(table.shape[-1]), alpha, m, local_selection)


def single_population_iterative(table: jax.typing.ArrayLike, alpha: jax.typing.ArrayLike = 1.0, m: int = 50, *,
                                local_selection: bool = False, block: int = 256, tol: float = 1e-10,
                                max_iters: int = 10_000, cache: bool = False) -> AlphaRank:
  """Matrix-free alpha-rank for large single populations (``n`` in the tens of thousands).

  The chain is never stored: rows of ``C`` are recomputed in blocks of
  ``block`` residents at every iteration (memory ``O(block n m)``). With
  ``out_s = sum_r C[s, r]`` and ``mu = pi * out``, stationarity is
  ``mu = mu P`` for the jump chain ``P = C_off / out``; the lazy power
  iteration ``mu <- (mu + mu P) / 2`` converges for every irreducible chain,
  at the jump chain's mixing rate (independent of ``eta = 1/(n-1)``). Stops
  when ``|mu_new - mu|_1 <= tol``. Works in linear space: for extreme
  ``alpha`` (rates below ``1e-300``) use the direct ``alpharank``.

  Args:
    table: ``[n, n]`` payoffs ``M[r, s]``; alpha, m, local_selection: as in ``alpharank``.
    block: residents per block of rows.
    tol: stop when ``|mu_new - mu|_1 <= tol``; max_iters: iteration cap.
    cache: compute the rates once and keep them (``n^2`` numbers: 400 MB at
      ``n = 10,000`` in float32), so an iteration is one matrix-vector product;
      the general selection model's rates cost ``m`` exponentials each, so this
      is what makes it take seconds rather than hours at that size.

  Returns:
    ``AlphaRank(pi, log_rates=None-shaped [0, 0], residual)``, the residual
    being the last step's ``|mu_new - mu|_1``.
  """
  x = jnp.asarray(table)
  _check(x, alpha, m, True)
  n = x.shape[-1]
  nb = -(-n // block)
  rows = jnp.arange(nb * block).reshape(nb, block)
  alpha = jnp.asarray(alpha, x.dtype)

  def rates(rb):
    valid = rb < n
    lr = _single_rows(x, jnp.minimum(rb, n - 1), alpha, m, local_selection)
    return jnp.where(valid[:, None], jnp.exp(lr), 0.0)

  if cache:
    table_c = jax.lax.map(rates, rows).reshape(nb * block, n)
    out = jnp.sum(table_c, axis=-1)[:n]
  else:
    out = jax.lax.map(lambda rb: jnp.sum(rates(rb), axis=-1), rows).reshape(-1)[:n]
  out_pad = jnp.concatenate([out, jnp.ones(nb * block - n, x.dtype)])

  def jump(mu):
    w = jnp.concatenate([mu, jnp.zeros(nb * block - n, x.dtype)]) / out_pad
    if cache:
      return w @ table_c

    def acc(total, rb_w):
      rb, wb = rb_w
      return total + wb @ rates(rb), None

    return jax.lax.scan(acc, jnp.zeros(n, x.dtype), (rows, w.reshape(nb, block)))[0]

  def cond(c):
    _, delta, it = c
    return (delta > tol) & (it < max_iters)

  def body(c):
    mu, _, it = c
    new = 0.5 * (mu + jump(mu))
    new = new / jnp.sum(new)
    return new, jnp.sum(jnp.abs(new - mu)), it + 1

  mu0 = jnp.full(n, 1.0 / n, x.dtype)
  mu, delta, _ = jax.lax.while_loop(cond, body, (mu0, jnp.asarray(jnp.inf, x.dtype), jnp.zeros((), jnp.int32)))
  pi = mu / out
  pi = pi / jnp.sum(pi)
  return AlphaRank(pi, jnp.zeros((0, 0), x.dtype), delta)


def _deviations(shape):
  """(src, dst, pop) of every single-population deviation between pure profiles, C order."""
  k_pop = len(shape)
  n = int(np.prod(shape))
  prof = profiles(shape)
  strides = np.array([int(np.prod(shape[i + 1:])) for i in range(k_pop)], np.int64)
  src, dst, pop = [], [], []
  for k in range(k_pop):
    for s in range(n):
      for tau in range(shape[k]):
        if tau != prof[s, k]:
          src.append(s); dst.append(s + (tau - prof[s, k]) * strides[k]); pop.append(k)
  return np.array(src), np.array(dst), np.array(pop)


def response_graph(payoffs: jax.typing.ArrayLike, single_population: bool = False, weak: bool = False) -> jax.Array:
  """``bool[N, N]``: ``s -> s'`` when ``s'`` is a single deviation of ``s`` strictly better for the deviator.

  ``weak=True`` adds ties (both directions), the graph whose sink strongly
  connected components carry the infinite-alpha mass. One population
  (``table[r, s]``): ``s -> r`` when ``M[r, s] > M[s, r]`` (the mutant beats the resident).
  """
  x = jnp.asarray(payoffs)
  if single_population:
    table = x if x.ndim == 2 else x[0]
    df = (table - table.T).T
    off = ~jnp.eye(table.shape[-1], dtype=bool)
    return off & ((df >= 0) if weak else (df > 0))
  shape = x.shape[1:]
  n = int(np.prod(shape))
  src, dst, pop = _deviations(shape)
  flat = x.reshape(len(shape), n)
  better = (flat[pop, dst] >= flat[pop, src]) if weak else (flat[pop, dst] > flat[pop, src])
  return jnp.zeros((n, n), bool).at[src, dst].set(better)


def infinite_alpha_log_rates(payoffs: jax.typing.ArrayLike, single_population: bool = False) -> jax.Array:
  """The alpha -> inf chain: ``eta (1 - eps)`` to strictly better deviations, ``eta eps`` to worse ones,
  ``eta / 2`` on ties, with ``log eps = -1e4`` (the eps -> 0 limit to rounding; Omidshafiei et al., Sec. 3.2)."""
  x = jnp.asarray(payoffs)
  if single_population:
    table = x if x.ndim == 2 else x[0]
    n = table.shape[-1]
    df = (table - table.T).T  # [s, r]: M[r, s] - M[s, r]
    eta = 1.0 / (n - 1)
    lr = jnp.log(eta) + jnp.where(df > 0, 0.0, jnp.where(df < 0, _LOG_EPS, -math.log(2.0)))
    return jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, lr)
  shape = x.shape[1:]
  n = int(np.prod(shape))
  src, dst, pop = _deviations(shape)
  flat = x.reshape(len(shape), n)
  df = flat[pop, dst] - flat[pop, src]
  eta = 1.0 / sum(a - 1 for a in shape)
  lr = jnp.log(eta) + jnp.where(df > 0, 0.0, jnp.where(df < 0, _LOG_EPS, -math.log(2.0)))
  return jnp.full((n, n), -jnp.inf, lr.dtype).at[src, dst].set(lr)


def stationary_log(log_rates: jax.Array) -> jax.Array:
  """``log pi`` of the chain with off-diagonal log-rates, by GTH state reduction in log-space.

  Exact up to rounding for any irreducible chain, however small its rates
  (every step adds and divides positive quantities); O(N^3), jit-able.
  """
  n = log_rates.shape[-1]
  q = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, log_rates)
  idx = jnp.arange(n)

  def reduce(i, carry):
    q, log_s = carry
    k = n - 1 - i
    keep = idx < k
    s = jax.scipy.special.logsumexp(jnp.where(keep, q[k], -jnp.inf))
    upd = q[:, k][:, None] + q[k][None, :] - s
    both = keep[:, None] & keep[None, :] & ~jnp.eye(n, dtype=bool)
    q = jnp.where(both, jnp.logaddexp(q, upd), q)
    return q, log_s.at[k].set(s)

  q, log_s = jax.lax.fori_loop(0, n - 1, reduce, (q, jnp.zeros(n, q.dtype)))

  def back(k, lp):
    keep = idx < k
    val = jax.scipy.special.logsumexp(jnp.where(keep, lp + q[:, k], -jnp.inf)) - log_s[k]
    return lp.at[k].set(val)

  lp = jax.lax.fori_loop(1, n, back, jnp.zeros(n, q.dtype).at[1:].set(-jnp.inf))
  return lp - jax.scipy.special.logsumexp(lp)


def _hager_inverse_norm1(lu_piv, n, dtype, iters: int = 5):
  """Hager's estimate of ``|M^{-1}|_1`` from the LU factors of ``M`` (``2 iters`` triangular solve pairs).

  A lower bound of the true norm, equal to it in practice (Higham 2002, Alg. 15.4 without its
  extra parity vector)."""
  solve = jax.scipy.linalg.lu_solve

  def body(_, carry):
    x, est, done = carry
    y = solve(lu_piv, x)
    z = solve(lu_piv, jnp.where(y >= 0, 1.0, -1.0).astype(dtype), trans=1)
    est_new = jnp.maximum(est, jnp.sum(jnp.abs(y)))
    j = jnp.argmax(jnp.abs(z))
    stop = done | (jnp.abs(z[j]) <= z @ x)
    x_new = jnp.where(stop, x, jax.nn.one_hot(j, n, dtype=dtype))
    return x_new, jnp.where(done, est, est_new), stop

  x0 = jnp.full(n, 1.0 / n, dtype)
  return jax.lax.fori_loop(0, iters, body, (x0, jnp.zeros((), dtype), jnp.zeros((), bool)))[1]


def stationary_linear(log_rates: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``log pi`` by one LU solve of the jump chain, and the solve's error amplification.

  With ``log out_s = logsumexp_r log C[s -> r]`` and ``P = exp(log C - log out)``
  (rows normalised in log-space: no underflow for any ``alpha``), ``mu`` solves
  ``mu (I - P) = 0``, ``sum mu = 1`` as ``M mu = e_N`` with ``M = (I - P)^T``
  whose last row is replaced by ones; ``log pi = log mu - log out``, normalised.

  The LU solve's normwise error is ``|d mu|_inf <~ kappa_1(M) u`` (``u`` the unit
  roundoff), a relative error ``e_s = kappa_1(M) / mu_s`` (in units of ``u``) of
  each ``mu_s``. ``pi = v / |v|_1`` with ``v_s = mu_s / out_s`` turns it, to first
  order, into ``|d pi_s| <= u pi_s ((1 - pi_s) e_s + sum_{j != s} pi_j e_j)``; the
  returned amplification is the maximum over ``s`` of that bound over ``u``
  (``kappa_1`` by Hager's estimate), ``inf`` when some ``mu_s <= 0`` or is not
  finite. It is large when the jump chain is nearly decomposable (``kappa``) or
  when a state the jump chain rarely visits holds mass (``pi_s / mu_s``).

  Args:
    log_rates: ``[N, N]`` off-diagonal log-rates (diagonal ignored).

  Returns:
    ``(log_pi[N], amplification[])``.
  """
  n = log_rates.shape[-1]
  dtype = log_rates.dtype
  q = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, log_rates)
  log_out = jax.scipy.special.logsumexp(q, axis=-1)
  p = jnp.exp(q - log_out[:, None])
  mat = (jnp.eye(n, dtype=dtype) - p).T.at[-1].set(1.0)
  lu_piv = jax.scipy.linalg.lu_factor(mat)
  mu = jax.scipy.linalg.lu_solve(lu_piv, jnp.zeros(n, dtype).at[-1].set(1.0))
  ok = jnp.all(mu > 0) & jnp.all(jnp.isfinite(mu)) & jnp.all(jnp.isfinite(log_out))
  lp = jnp.log(jnp.where(ok, mu, 1.0)) - log_out
  lp = lp - jax.scipy.special.logsumexp(lp)
  kappa = jnp.max(jnp.sum(jnp.abs(mat), axis=0)) * _hager_inverse_norm1(lu_piv, n, dtype)
  pi = jnp.exp(lp)
  e = kappa / jnp.where(ok, mu, 1.0)  # relative error bound of mu_s, in units of rounding
  amp = jnp.max(pi * ((1.0 - 2.0 * pi) * e + jnp.sum(pi * e)))
  return lp, jnp.where(ok & jnp.isfinite(amp), amp, jnp.inf)


def stationary(log_rates: jax.Array, method: str = "auto") -> tuple[jax.Array, jax.Array]:
  """``pi`` of the chain with off-diagonal log-rates, by the linear solve or GTH.

  The rule of ``"auto"``: take ``stationary_linear`` when its amplification
  (the first-order bound on ``max_s |d pi_s|`` in units of rounding) is at most
  ``MAX_AMPLIFICATION = 1e3`` (against GTH's ~``N`` units), else
  ``stationary_log`` (GTH). Concrete input decides in Python and runs only the
  chosen solve; traced input uses ``lax.cond`` (under ``vmap`` that evaluates
  both, so pass ``method="linear"`` there when the games are known to be safe,
  and check ``linear``).

  Args:
    log_rates: ``[N, N]`` off-diagonal log-rates.
    method: ``"auto"``, ``"linear"`` or ``"gth"``.

  Returns:
    ``(pi[N], linear)``: ``linear`` is True where the linear solve was used.
  """
  if method not in METHODS:
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
  if method == "gth":
    return jnp.exp(stationary_log(log_rates)), jnp.zeros((), bool)
  lp, amp = stationary_linear(log_rates)
  if method == "linear":
    return jnp.exp(lp), jnp.ones((), bool)
  safe = amp <= MAX_AMPLIFICATION
  if not isinstance(safe, jax.core.Tracer):
    return (jnp.exp(lp), safe) if bool(safe) else (jnp.exp(stationary_log(log_rates)), safe)
  return jnp.exp(jax.lax.cond(safe, lambda: lp, lambda: stationary_log(log_rates))), safe


def _residual(pi, log_rates):
  c = jnp.exp(log_rates)
  c = c + jnp.diag(1.0 - jnp.sum(c, axis=-1))
  return jnp.sum(jnp.abs(pi @ c - pi))


def alpharank(payoffs: jax.typing.ArrayLike, alpha: jax.typing.ArrayLike = 1.0, m: int = 50, *,
              single_population: bool = False, local_selection: bool = False, method: str = "auto") -> AlphaRank:
  """alpha-rank of a normal-form game: log-space rates, the linear or GTH solve chosen by ``stationary``.

  Args:
    payoffs: ``[K, a_1, ..., a_K]`` (player axis first); with
      ``single_population`` either ``[n, n]`` (``M[r, s]`` = payoff of ``r``
      against ``s``) or a symmetric two-player ``[2, n, n]`` (its row player's table is used).
    alpha: selection intensity ``>= 0`` (traced: vmap over it); ``inf`` gives the
      limit chain (``infinite_alpha_log_rates``), whose mass sits on the sink
      strongly connected components of ``response_graph``.
    m: population size ``>= 2`` (static).
    single_population: one population for a symmetric two-player game.
    local_selection: OpenSpiel's local selection model (single population).
    method: ``"auto"`` (default), ``"linear"`` or ``"gth"`` (see ``stationary``);
      ``alpha = inf`` always uses GTH on the limit chain.

  Returns:
    ``AlphaRank(pi, log_rates, residual, linear)``.
  """
  _check(payoffs, alpha, m, single_population)
  if method not in METHODS:
    raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
  x = jnp.asarray(payoffs)
  if not isinstance(alpha, jax.core.Tracer) and np.isinf(np.asarray(alpha, np.float64)).any():
    lr = infinite_alpha_log_rates(x, single_population)
    pi = jnp.exp(stationary_log(lr))
    return AlphaRank(pi, lr, _residual(pi, lr), jnp.zeros((), bool))
  if single_population:
    table = x if x.ndim == 2 else x[0]
    lr = single_population_log_rates(table, jnp.asarray(alpha, table.dtype), m, local_selection)
  else:
    lr = multi_population_log_rates(x, jnp.asarray(alpha, x.dtype), m)
  pi, linear = stationary(lr, method)
  return AlphaRank(pi, lr, _residual(pi, lr), linear)


def _check(payoffs, alpha, m, single_population):
  if isinstance(payoffs, jax.core.Tracer):
    return
  a = np.asarray(payoffs, np.float64)
  if not np.isfinite(a).all():
    raise ValueError("payoffs: contain NaN or inf")
  if single_population:
    if not (a.ndim == 2 and a.shape[0] == a.shape[1]) and not (a.ndim == 3 and a.shape[0] == 2 and a.shape[1] == a.shape[2]):
      raise ValueError(f"payoffs: a single population needs [n, n] or [2, n, n], got shape {a.shape}")
  elif a.ndim < 2 or a.shape[0] != a.ndim - 1:
    raise ValueError(f"payoffs: expected [K, a_1, ..., a_K] with the player axis first (K = ndim - 1), "
                     f"got shape {a.shape}")
  if single_population and a.shape[-1] < 2:
    raise ValueError(f"payoffs: alpha-rank needs at least 2 strategies to rank, got shape {a.shape}")
  if not single_population and max(a.shape[1:]) < 2:
    raise ValueError(f"payoffs: alpha-rank needs a player with at least 2 strategies, got shape {a.shape}")
  if isinstance(m, bool) or int(m) != m or m < 2:
    raise ValueError(f"m: population size must be an integer >= 2, got {m!r}")
  if not isinstance(alpha, jax.core.Tracer):
    al = np.asarray(alpha, np.float64)
    if np.isnan(al).any() or (al < 0).any() or al.ndim != 0:
      raise ValueError(f"alpha: must be a scalar >= 0 (inf for the limit), got {alpha!r}")

