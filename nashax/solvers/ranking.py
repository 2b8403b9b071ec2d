"""Rankings: Elo by maximum likelihood, Nash averaging, and ResponseGraphUCB for noisy outcomes.

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

from nashax.core import validate

__all__ = ["EloRatings", "elo", "NashAverage", "nash_averaging", "ResponseGraphEstimate", "response_graph_ucb",
           "sample_bound", "PolicyRanking", "rank_policies"]

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
  w = jnp.asarray(_check_win_rates(win_rates) if not validate.traced(win_rates) else win_rates)
  k = w.shape[0]
  prior = validate.number("prior", prior, lo=0.0)
  iters = validate.size("iters", iters, hi=1_000_000)
  if counts is not None and not validate.traced(counts):
    c = validate.finite_array(counts, "counts")
    if c.shape != (k, k):
      raise ValueError(f"counts: expected shape {(k, k)} like win_rates, got {c.shape}")
    off = ~np.eye(k, dtype=bool)
    if (c[off] < 0).any() or (c[off] > 1e12).any():
      bad = c[off][(c[off] < 0) | (c[off] > 1e12)][0]
      raise ValueError(f"counts: match counts must lie in [0, 1e12], got {bad}")
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
  w = jnp.asarray(_check_win_rates(win_rates) if not validate.traced(win_rates) else win_rates)
  eps = validate.number("eps", eps, lo=0.0, hi=0.5, lo_open=True, hi_open=True)
  steps = validate.size("steps", steps)
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


# ----------------------------------------------------------------------------- ResponseGraphUCB


class ResponseGraphEstimate(NamedTuple):
  """Result of ``response_graph_ucb``.

  Attributes:
    graph: ``bool[N, N]`` estimated response graph (``s -> s'`` when the deviator prefers ``s'``).
    resolved: ``bool[E]`` edges whose confidence intervals separated (all of them unless the budget ran out).
    edge_confidence: ``[E]`` ``1 - 2 delta'`` per resolved edge (its two Hoeffding intervals hold), 0 if unresolved.
    samples: ``int32[]`` profile samples drawn (each returns every player's outcome).
    counts: ``[N]`` samples per profile; means: ``[K, N]`` empirical payoffs.
    edges: ``int32[E, 3]`` (profile, deviation profile, deviating player).
  """

  graph: jax.Array
  resolved: jax.Array
  edge_confidence: jax.Array
  samples: jax.Array
  counts: jax.Array
  means: jax.Array
  edges: jax.Array


def _edges(shape):
  from nashax.solvers.alpharank import _deviations

  src, dst, pop = _deviations(shape)
  keep = src < dst  # each unordered pair once
  return np.stack([src[keep], dst[keep], pop[keep]], axis=1).astype(np.int32)


def _log_two_over_delta_n(cnt, log_term):
  """``log(2 / delta_n)`` with ``delta_n = delta' 6 / (pi^2 n^2)``: ``log(2 / delta') + log(pi^2 n^2 / 6)``."""
  return log_term + jnp.log(jnp.pi ** 2 * jnp.maximum(cnt, 1.0) ** 2 / 6.0)


def response_graph_ucb(key: jax.Array, means: jax.typing.ArrayLike, delta: float = 0.1, *,
                       max_samples: int = 10**6) -> ResponseGraphEstimate:
  r"""ResponseGraphUCB: adaptively sample noisy outcomes until the response graph is known w.p. ``1 - delta``.

  Outcomes are Bernoulli with the unknown ``means: [K, a_1, ..., a_K]`` in
  ``[0, 1]`` (a simulator). Every profile is sampled once; then, while an edge
  (a pair of profiles differing in one player ``k``) is unresolved, a
  uniformly random unresolved edge has both endpoints sampled. An edge is
  resolved when player ``k``'s confidence intervals at its endpoints separate.

  The intervals are time-uniform. The algorithm re-checks them after every
  sample and stops at a random time, so a fixed-``n`` Hoeffding interval
  (valid for one ``n`` chosen in advance) does not give the guarantee.
  Instead, an estimate after ``n`` samples gets
  ``mean +- w(n)``, ``w(n) = sqrt(log(2 / delta_n) / (2 n))``, with
  ``delta_n = delta' 6 / (pi^2 n^2)`` and ``delta' = delta / (K N)``:

  * by Hoeffding, ``P(|mean_n - mu| >= w(n)) <= delta_n`` for each fixed n;
  * a union bound over ``n >= 1`` gives
    ``P(exists n: |mean_n - mu| >= w(n)) <= delta' sum_n 6/(pi^2 n^2) = delta'``,
    whatever the (adaptive) times at which the estimate is read;
  * a union bound over the ``K N`` payoff estimates gives probability
    ``>= 1 - delta`` that every interval holds at every time. On that event
    a resolved edge is oriented correctly, so the returned graph is the true
    one with probability ``>= 1 - delta``.

  Samples on the same event: an edge with gap ``Delta`` is resolved once both
  endpoints' widths are below ``Delta / 4`` (then ``|m_a - m_b| >= Delta - w_a
  - w_b > w_a + w_b``), that is once ``n >= 8 log(2 / delta_n) / Delta^2``,
  whose least solution ``n*(Delta)`` (``log n`` grows slowly, so ``n*`` is
  ``~ 8 log(2 K N / delta) / Delta^2`` up to a ``log log`` term) bounds how
  often it is picked (``sample_bound``). When the empirical gap is close to
  ``Delta`` an edge stops near ``n = 2 log(2 / delta_n) / Delta^2``, where
  ``2 w(n) = Delta`` (verifier ``response_graph_ucb_guarantees``).

  Returns:
    ``ResponseGraphEstimate``; ``counts`` are the samples of each profile.

  References:
    Rowland et al., "Multiagent Evaluation under Incomplete Information",
    NeurIPS 2019, arXiv:1909.09849, Algorithm 1, Theorem 4.1 and the
    time-uniform confidence of its appendix (delta_n = delta' 6/(pi^2 n^2)).
  """
  if validate.traced(means):  # traced (a vmap over games): the values are the caller's to check
    mu = jnp.asarray(means, jnp.result_type(float))
  else:
    mu = np.asarray(means, np.float64)
  if mu.ndim < 2 or mu.shape[0] != mu.ndim - 1:
    raise ValueError(f"means: expected [K, a_1, ..., a_K] with the player axis first, got shape {mu.shape}")
  if isinstance(mu, np.ndarray) and (not np.isfinite(mu).all() or (mu < 0).any() or (mu > 1).any()):
    raise ValueError("means: outcomes are Bernoulli; means must lie in [0, 1]")
  delta = validate.number("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
  return _ucb(key, mu, float(delta), max_samples, _time_uniform_width)


def _time_uniform_width(cnt, log_term):
  """``w(n) = sqrt(log(2 / delta_n) / (2 n))``."""
  return jnp.sqrt(_log_two_over_delta_n(cnt, log_term) / (2.0 * jnp.maximum(cnt, 1.0)))


def _ucb(key, mu, delta: float, max_samples: int, width_fn) -> ResponseGraphEstimate:
  """The sampling loop of ``response_graph_ucb`` with the confidence width ``width_fn(counts, log(2 / delta'))``."""
  shape = mu.shape[1:]
  k_pop, n = len(shape), int(np.prod(shape))
  edges = _edges(shape)
  flat = jnp.asarray(mu.reshape(k_pop, n))
  log_term = float(np.log(2.0 * k_pop * n / delta))  # log(2 / delta')
  src, dst, pop = (jnp.asarray(edges[:, i]) for i in range(3))

  def width(cnt):
    return width_fn(cnt, log_term)

  def resolved_of(sums, cnt):
    m = sums / jnp.maximum(cnt, 1.0)[None, :]
    a, b = m[pop, src], m[pop, dst]
    wa, wb = width(cnt[src]), width(cnt[dst])
    return (a + wa < b - wb) | (b + wb < a - wa)

  k0, key = jax.random.split(key)
  sums0 = jax.random.bernoulli(k0, flat).astype(flat.dtype)  # one sample per profile
  cnt0 = jnp.ones(n, flat.dtype)

  def cond(c):
    sums, cnt, res, _, used = c
    return (~jnp.all(res)) & (used + 2 <= max_samples)

  def body(c):
    sums, cnt, res, key, used = c
    key, k_e, k_s = jax.random.split(key, 3)
    i = jax.random.categorical(k_e, jnp.where(res, -jnp.inf, 0.0))
    pair = jnp.stack([src[i], dst[i]])
    draw = jax.random.bernoulli(k_s, flat[:, pair]).astype(flat.dtype)  # [K, 2]
    sums = sums.at[:, pair].add(draw)
    cnt = cnt.at[pair].add(1.0)
    return sums, cnt, resolved_of(sums, cnt), key, used + 2

  init = (sums0, cnt0, resolved_of(sums0, cnt0), key, jnp.asarray(n, jnp.int32))
  sums, cnt, res, _, used = jax.lax.while_loop(cond, body, init)
  m = sums / cnt[None, :]
  better_dst = m[pop, dst] > m[pop, src]
  graph = jnp.zeros((n, n), bool).at[src, dst].set(better_dst).at[dst, src].set(~better_dst)
  conf = jnp.where(res, 1.0 - 2.0 * delta / (k_pop * n), 0.0)
  return ResponseGraphEstimate(graph, res, conf, used, cnt, m, jnp.asarray(edges))


def _least_n(c: float, gap: float, log_term: float) -> int:
  """The least integer ``n >= 1`` with ``n >= c log(2 / delta_n) / gap^2`` (fixed-point iteration from below)."""
  n = 1.0
  for _ in range(200):
    nxt = c * (log_term + np.log(np.pi ** 2 * n ** 2 / 6.0)) / gap ** 2
    if nxt <= n:
      break
    n = float(np.ceil(nxt))
  return int(n)


def sample_bound(means: jax.typing.ArrayLike, delta: float) -> float:
  """The samples ``response_graph_ucb`` can use on its good event:
  ``N + 2 sum_edges n*(Delta_e)``, ``n*`` the least ``n`` with ``n >= 8 log(2 / delta_n) / Delta^2``
  (each pick of an edge samples both endpoints; see ``response_graph_ucb`` for why ``8``)."""
  mu = np.asarray(means, np.float64)
  shape = mu.shape[1:]
  k_pop, n = len(shape), int(np.prod(shape))
  edges = _edges(shape)
  flat = mu.reshape(k_pop, n)
  gaps = np.abs(flat[edges[:, 2], edges[:, 1]] - flat[edges[:, 2], edges[:, 0]])
  log_term = float(np.log(2 * k_pop * n / delta))
  return float(n + 2 * sum(_least_n(8.0, float(g), log_term) for g in gaps))


# ----------------------------------------------------------------------------- ranking policies


class PolicyRanking(NamedTuple):
  """``rank_policies``: three rankings of ``K`` policies side by side, with bootstrap uncertainty.

  Attributes:
    win_rates: ``[K, K]`` exact or estimated ``P(pi_i > pi_j)``.
    win_rate_stderr: ``[K, K]`` binomial standard errors (0 when exact).
    alpharank: ``[K]`` single-population alpha-rank mass on the table ``W - 1/2``.
    nash_average: ``[K]`` maximum-entropy Nash equilibrium of ``logit(W)``.
    elo: ``[K]`` Elo ratings (mean 0).
    alpharank_std, nash_average_std, elo_std: ``[K]`` standard deviations over
      parametric-bootstrap tables (0 when exact).
  """

  win_rates: jax.Array
  win_rate_stderr: jax.Array
  alpharank: jax.Array
  nash_average: jax.Array
  elo: jax.Array
  alpharank_std: jax.Array
  nash_average_std: jax.Array
  elo_std: jax.Array


def rank_policies(key: jax.Array, game, policies: jax.typing.ArrayLike, *, num_samples: Optional[int] = None,
                  alpha: float = 10.0, m: int = 50, bootstrap: int = 50) -> PolicyRanking:
  """Ranks ``K`` policies of a preference game with alpha-rank, Nash averaging and Elo.

  ``W[i, j] = pi_i^T P pi_j`` exactly (``num_samples=None``), or estimated
  from ``num_samples`` preference queries per ordered pair (``y ~ pi_i``,
  ``y' ~ pi_j``, outcome ``~ Bernoulli(P[y, y'])``), symmetrised as
  ``(W + 1 - W^T) / 2``. With samples, each ranking's spread is the standard
  deviation over ``bootstrap`` tables redrawn from the binomial model at the
  estimate.

  Args:
    key: PRNG key (sampling and bootstrap).
    game: a ``PreferenceGame`` (the preference oracle).
    policies: ``[K, n]`` policies over the game's responses.
  """
  from nashax.core.games import PreferenceGame
  from nashax.solvers.alpharank import alpharank as _alpharank

  if not isinstance(game, PreferenceGame):
    raise ValueError(f"game: expected a PreferenceGame (the preference oracle), got {type(game).__name__}")
  pols = np.asarray(policies, np.float64)
  n = game.preference.shape[-1]
  if pols.ndim != 2 or pols.shape[1] != n or pols.shape[0] < 2:
    raise ValueError(f"policies: expected [K >= 2, {n}] distributions, got shape {pols.shape}")
  if (pols < -1e-9).any() or np.abs(pols.sum(1) - 1).max() > 1e-6:
    raise ValueError("policies: every row must be a probability distribution")
  p = game.preference
  x = jnp.asarray(np.clip(pols, 0, None), p.dtype)
  k = x.shape[0]
  exact = x @ p @ x.T

  def rankings(w):
    w = 0.5 * (w + 1.0 - w.T)
    w = jnp.where(jnp.eye(k, dtype=bool), 0.5, w)
    ar = _alpharank(w - 0.5, alpha, m, single_population=True).pi
    na = nash_averaging(w, steps=5000).equilibrium
    el = elo(w).ratings
    return ar, na, el

  if num_samples is None:
    ar, na, el = rankings(exact)
    zero = jnp.zeros(k, p.dtype)
    return PolicyRanking(exact, jnp.zeros_like(exact), ar, na, el, zero, zero, zero)
  if int(num_samples) < 1:
    raise ValueError(f"num_samples: must be None or >= 1, got {num_samples}")
  ns = int(num_samples)
  k_y, k_y2, k_o, k_b = jax.random.split(key, 4)
  ys = jax.random.categorical(k_y, jnp.log(x)[:, None, None, :], shape=(k, k, ns))
  y2 = jax.random.categorical(k_y2, jnp.log(x)[None, :, None, :], shape=(k, k, ns))
  wins = jax.random.bernoulli(k_o, p[ys, y2]).astype(p.dtype)
  w_hat = jnp.mean(wins, axis=-1)
  se = jnp.sqrt(w_hat * (1.0 - w_hat) / ns)
  ar, na, el = rankings(w_hat)
  boot = jax.random.binomial(k_b, ns, jnp.broadcast_to(w_hat, (bootstrap, k, k))).astype(p.dtype) / ns
  b_ar, b_na, b_el = jax.vmap(rankings)(boot)
  return PolicyRanking(w_hat, se, ar, na, el, jnp.std(b_ar, 0), jnp.std(b_na, 0), jnp.std(b_el, 0))
