"""Finite-sum equilibrium problems (each returns an ``operators.FiniteSumOperator``).

* ``annotator_preference_sum``: the preference game averaged over ``n``
  annotators, each with its own preference matrix; its equilibrium is the
  minimax winner of the mean preference (an LP; ``solvers.exact``).
* ``random_bilinear_sum``: ``min_x max_y (1/n) sum_i x^T A_i y + b_i^T x - c_i^T y``
  with the average Lipschitz constant set exactly to ``L``.
* ``robust_least_squares``: ``min_beta max_y (1/n) sum_i [(a_i^T beta - y_i)^2
  - lam (y_i - y0_i)^2]``, the penalised form of robust least squares where an
  adversary moves the targets; its solution is closed-form (see its docstring).
* ``random_least_squares``: a cocoercive finite sum with unit-norm rows (``L_c = 1``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import operators as ops
from nashax.core import validate

__all__ = [
    "annotator_preference_sum",
    "random_annotator_preference_sum",
    "random_bilinear_sum",
    "robust_least_squares",
    "robust_least_squares_solution",
    "random_least_squares",
]


def annotator_preference_sum(preferences: jax.typing.ArrayLike) -> ops.FiniteSumOperator:
  """The preference game averaged over annotators, as a finite sum over them.

  Annotator ``i`` has ``P_i`` (``P_i + P_i^T = 1``); the game is the zero-sum
  game with payoff ``mean_i P_i - 1/2`` on two simplices, and
  ``F_i(x, y) = (-(P_i - 1/2) y, (P_i - 1/2)^T x)``.

  Args:
    preferences: ``[n, K, K]`` (validated when concrete: each a preference
      matrix); a floating dtype is kept.
  """
  if np.ndim(preferences) != 3:
    raise ValueError(f"preferences: expected [n, K, K], got shape {np.shape(preferences)}")
  if not isinstance(preferences, jax.core.Tracer):  # traced (inside jit, a sweep): valid by construction
    p = np.asarray(preferences, np.float64)
    for i in range(p.shape[0]):
      validate.preference_matrix(p[i], f"preferences[{i}]")
  pj = jnp.asarray(preferences)
  a = -(pj.astype(pj.dtype if jnp.issubdtype(pj.dtype, jnp.floating) else jnp.result_type(float)) - 0.5)
  k = a.shape[-1]
  fs = ops.bilinear_finite_sum(a, constraint=ops.simplices(k, k, dtype=a.dtype))
  return fs.replace(name="annotator_preference_sum")


def random_annotator_preference_sum(key: jax.Array, n: int, k: int, dtype: Any = None) -> ops.FiniteSumOperator:
  """``n`` annotators with independent random preference matrices over ``k`` responses.

  Each ``P_i``: upper triangle Uniform(0, 1), lower triangle ``1 - P^T``
  (the generator of ``random_preference_game``).
  """
  n, k = validate.size("n", n), validate.size("k", k)
  u = jax.random.uniform(key, (n, k, k), validate.float_dtype("dtype", dtype) or jnp.result_type(float))
  upper = jnp.triu(u, 1)
  lower = jnp.broadcast_to(jnp.tril(jnp.ones((k, k), u.dtype), -1), (n, k, k))
  p = upper + jnp.swapaxes(1.0 - upper, 1, 2) * lower + 0.5 * jnp.broadcast_to(jnp.eye(k, dtype=u.dtype), (n, k, k))
  return annotator_preference_sum(p)


def random_bilinear_sum(key: jax.Array, n: int, dim: int, lipschitz: float = 1.0, *,
                        spread: float = 1.0, constrained: bool = False, dtype: Any = None) -> ops.FiniteSumOperator:
  """``F_i(x, y) = (A_i y + b_i, -A_i^T x + c_i)`` with average Lipschitz constant exactly ``lipschitz``.

  ``A_i = M + spread * N_i`` (``M``, ``N_i`` standard Gaussian ``dim x dim``),
  rescaled so that ``L = lipschitz``; ``b_i, c_i`` Gaussian (unconstrained) or
  zero (``constrained``: the matrix game on two simplices).
  """
  validate.number("lipschitz", lipschitz, lo=0.0, lo_open=True)
  n, dim = validate.size("n", n), validate.size("dim", dim)
  spread = validate.number("spread", spread)
  validate.boolean("constrained", constrained)
  dtype = validate.float_dtype("dtype", dtype) or jnp.result_type(float)
  k1, k2, k3, k4 = jax.random.split(key, 4)
  a = (jnp.broadcast_to(jax.random.normal(k1, (dim, dim), dtype), (n, dim, dim))
       + spread * jax.random.normal(k2, (n, dim, dim), dtype))
  if constrained:
    fs = ops.bilinear_finite_sum(a, constraint=ops.simplices(dim, dim, dtype=a.dtype))
  else:
    fs = ops.bilinear_finite_sum(a, jax.random.normal(k3, (n, dim), dtype), jax.random.normal(k4, (n, dim), dtype))
  s = lipschitz / fs.lipschitz
  a, b, c = fs.data
  return ops.bilinear_finite_sum(a * s, b * s, c * s, fs.constraint)


def _rls_component(data, z):
  a, y0, i, lam = data
  d = a.shape[0]
  beta, y = z[:d], z[d:]
  r = a @ beta - y[i]
  gy = jnp.zeros_like(y).at[i].set(2.0 * r + 2.0 * lam * (y[i] - y0))
  return jnp.concatenate([2.0 * r * a, gy])


def _rls_mean(data, z):
  a, y0, lam = data
  n, d = a.shape
  beta, y = z[:d], z[d:]
  r = a @ beta - y
  return jnp.concatenate([2.0 * (r @ a) / n, (2.0 * r + 2.0 * lam * (y - y0)) / n])


def robust_least_squares(a: jax.typing.ArrayLike, y0: jax.typing.ArrayLike, lam: float = 2.0) -> ops.FiniteSumOperator:
  """Robust least squares: ``min_beta max_y (1/n) sum_i (a_i^T beta - y_i)^2 - lam (y_i - y0_i)^2``.

  The adversary moves the targets ``y`` away from the data ``y0`` at a
  quadratic price ``lam > 1`` (the Lagrangian form of the constraint
  ``|y - y0|^2 <= delta`` of robust least squares). ``F_i`` touches ``beta``
  and ``y_i`` only; monotone for ``lam >= 1`` (symmetric Jacobian part
  ``diag(2 a_i a_i^T, 2(lam - 1) e_i e_i^T)``). Constants:
  ``|J_i| <= |J_i|_F = 2 sqrt(|a_i|^4 + 2|a_i|^2 + (lam - 1)^2)``.

  Args:
    a: ``[n, d]`` features.
    y0: ``[n]`` targets.
    lam: the adversary's price, ``> 1``.
  """
  a = jnp.asarray(validate.finite_array(a, "a"), jnp.result_type(float))
  y0 = jnp.asarray(validate.finite_array(y0, "y0"), a.dtype)
  if a.ndim != 2 or y0.shape != a.shape[:1]:
    raise ValueError(f"y0: expected shape {a.shape[:1]} for a of shape {a.shape}, got {y0.shape}")
  if not float(lam) > 1.0:
    raise ValueError(f"lam: must be > 1 (the problem is not concave in y otherwise), got {lam}")
  n, d = a.shape
  lam_arr = jnp.full((n,), lam, a.dtype)
  sq = jnp.sum(a ** 2, axis=1)
  avg = jnp.sqrt(jnp.mean(4.0 * (sq ** 2 + 2.0 * sq + (lam - 1.0) ** 2)))
  na = jnp.linalg.norm(a, 2)
  full = 2.0 / n * jnp.linalg.norm(jnp.array([[na ** 2, na], [na, abs(lam - 1.0)]]), 2)
  data = (a, y0, jnp.arange(n), lam_arr)
  return ops.FiniteSumOperator(
      component_fn=_rls_component, data=data, constraint=ops.free(d + n, a.dtype), lipschitz=avg,
      full_lipschitz=full, mean_fn=_rls_mean, mean_data=(a, y0, jnp.asarray(lam, a.dtype)),
      name="robust_least_squares")


def robust_least_squares_solution(a: Any, y0: Any, lam: float = 2.0) -> np.ndarray:
  """The closed-form saddle point of ``robust_least_squares`` (float64 numpy).

  Setting ``F = 0``: ``y_i`` equation gives ``r_i = -lam (y_i - y0_i)``, so
  ``r_i = lam/(lam-1) (a_i^T beta - y0_i)`` and the ``beta`` equation
  ``sum_i r_i a_i = 0`` makes ``beta*`` the ordinary least-squares fit of ``y0``;
  then ``y* = (lam y0 - A beta*)/(lam - 1)``.
  """
  a = np.asarray(a, np.float64)
  y0 = np.asarray(y0, np.float64)
  beta = np.linalg.lstsq(a, y0, rcond=None)[0]
  y = (lam * y0 - a @ beta) / (lam - 1.0)
  return np.concatenate([beta, y])


def random_least_squares(key: jax.Array, n: int, dim: int, *, noise: float = 0.5,
                         decay: float = 0.5, dtype: Any = None) -> ops.FiniteSumOperator:
  """``F_i(x) = a_i (a_i^T x - b_i)`` with unit rows: average cocoercivity ``L_c = 1`` for every ``n``.

  Rows are Gaussian with covariance ``diag(decay^j)``, normalised to unit
  length; ``b_i = a_i^T x_true + noise * N(0, 1)``; ``dtype`` defaults to JAX's float.
  """
  n, dim = validate.size("n", n), validate.size("dim", dim)
  noise = validate.number("noise", noise, lo=0.0)
  decay = validate.number("decay", decay, lo=0.0, lo_open=True)
  dtype = validate.float_dtype("dtype", dtype) or jnp.result_type(float)
  k1, k2, k3 = jax.random.split(key, 3)
  scales = decay ** (jnp.arange(dim, dtype=dtype) / 2.0)
  a = jax.random.normal(k1, (n, dim), dtype) * scales[None, :]
  a = a / jnp.linalg.norm(a, axis=1, keepdims=True)
  b = a @ jax.random.normal(k2, (dim,), dtype) + noise * jax.random.normal(k3, (n,), dtype)
  return ops.least_squares_finite_sum(a[:, None, :], b[:, None])
