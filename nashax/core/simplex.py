"""Simplex helpers: masked (log-)softmax, Euclidean projection, entropy, KL.

Entropic solvers keep log-probabilities as their state and call these to get
probabilities (probability-space updates underflow in float32).
Every function is written for one vector and broadcasts over leading axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

__all__ = [
    "masked_log_softmax",
    "masked_softmax",
    "project_simplex",
    "entropy",
    "kl",
    "kl_from_logs",
]


def _neg_inf_where_masked(logits: jax.Array, mask) -> jax.Array:
  if mask is None:
    return logits
  return jnp.where(mask, logits, -jnp.inf)


def masked_log_softmax(logits: jax.typing.ArrayLike, mask=None) -> jax.Array:
  """Log-probabilities ``log softmax(logits)`` over the legal actions.

  Args:
    logits: ``[..., n]`` unnormalised log-weights.
    mask: optional ``bool[..., n]``; False marks an illegal (padding) action,
      whose log-probability is ``-inf``.

  Returns:
    ``[..., n]`` log-probabilities (logsumexp over legal actions is 0).
  """
  return jax.nn.log_softmax(_neg_inf_where_masked(jnp.asarray(logits), mask), axis=-1)


def masked_softmax(logits: jax.typing.ArrayLike, mask=None) -> jax.Array:
  """``softmax(logits)`` over the legal actions; illegal actions get 0.

  >>> import jax.numpy as jnp
  >>> masked_softmax(jnp.zeros(3), jnp.array([True, True, False]))
  Array([0.5, 0.5, 0. ], dtype=float32)
  """
  return jax.nn.softmax(_neg_inf_where_masked(jnp.asarray(logits), mask), axis=-1)


def project_simplex(v: jax.typing.ArrayLike, mask=None) -> jax.Array:
  r"""Euclidean projection onto the probability simplex (sort-based).

  .. math:: \Pi(v) = \max(v - \theta, 0), \quad \sum_i \max(v_i - \theta, 0) = 1.

  Args:
    v: ``[..., n]`` points.
    mask: optional ``bool[..., n]``; illegal coordinates are projected to 0 and
      excluded from the simplex.

  Returns:
    ``[..., n]`` the closest probability vectors.

  For ``n <= 64`` the threshold is ``theta = max_k (sum of the k largest - 1) / k``
  computed by pairwise comparisons (no sort, vectorises well); above, by sorting.

  References:
    Duchi, Shalev-Shwartz, Singer, Chandra, "Efficient Projections onto the
    l1-Ball for Learning in High Dimensions", ICML 2008, Fig. 1.
    Condat, "Fast projection onto the simplex and the l1 ball", Math.
    Program. 158, 2016 (theta as the maximum of the partial thresholds).

  >>> import jax.numpy as jnp
  >>> project_simplex(jnp.array([0.0, 0.5, 1.0]))
  Array([0.  , 0.25, 0.75], dtype=float32)
  """
  v = jnp.asarray(v)
  n = v.shape[-1]
  legal = jnp.ones(v.shape, bool) if mask is None else jnp.broadcast_to(mask, v.shape)
  if n <= _PAIRWISE_MAX:
    theta = _threshold_pairwise(v, legal)
  else:
    theta = _threshold_sort(v, legal)
  return jnp.where(legal, jnp.maximum(v - theta, 0.0), 0.0)


# Below this size the O(n^2) sort-free threshold is faster (it vectorises; sort does not).
_PAIRWISE_MAX = 64


def _threshold_pairwise(v: jax.Array, legal: jax.Array) -> jax.Array:
  """theta = max_i (sum_{v_j >= v_i} v_j - 1) / #{v_j >= v_i} over legal i, j."""
  ge = (v[..., None, :] >= v[..., :, None]) & legal[..., None, :]  # [..., i, j]: v_j >= v_i
  cnt = jnp.sum(ge, axis=-1).astype(v.dtype)
  css = jnp.sum(jnp.where(ge, v[..., None, :], 0.0), axis=-1)
  cand = jnp.where(legal, (css - 1.0) / jnp.maximum(cnt, 1.0), -jnp.inf)
  return jnp.max(cand, axis=-1, keepdims=True)


def _threshold_sort(v: jax.Array, legal: jax.Array) -> jax.Array:
  n = v.shape[-1]
  u = jnp.sort(jnp.where(legal, v, -jnp.inf), axis=-1)[..., ::-1]
  finite = jnp.isfinite(u)
  u0 = jnp.where(finite, u, 0.0)
  css = jnp.cumsum(u0, axis=-1)
  k = jnp.arange(1, n + 1, dtype=v.dtype).reshape((1,) * (v.ndim - 1) + (n,))
  cond = finite & (u0 - (css - 1.0) / k > 0)
  rho = jnp.sum(cond, axis=-1, keepdims=True)  # >= 1 when any action is legal
  css_rho = jnp.take_along_axis(css, rho - 1, axis=-1)
  return (css_rho - 1.0) / rho.astype(v.dtype)


def entropy(p: jax.typing.ArrayLike) -> jax.Array:
  """Shannon entropy ``-sum p log p`` (0 log 0 = 0) over the last axis."""
  p = jnp.asarray(p)
  return -jnp.sum(xlogy(p, p), axis=-1)


def kl(p: jax.typing.ArrayLike, q: jax.typing.ArrayLike) -> jax.Array:
  """``KL(p || q) = sum p log(p / q)`` for probability vectors (0 log 0 = 0)."""
  p, q = jnp.asarray(p), jnp.asarray(q)
  return jnp.sum(xlogy(p, p) - xlogy(p, q), axis=-1)


def kl_from_logs(log_p: jax.typing.ArrayLike, log_q: jax.typing.ArrayLike) -> jax.Array:
  """``KL(p || q)`` from log-probabilities; entries with ``p = 0`` add 0."""
  log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
  p = jnp.exp(log_p)
  diff = jnp.where(p > 0, log_p - log_q, 0.0)
  return jnp.sum(p * diff, axis=-1)
