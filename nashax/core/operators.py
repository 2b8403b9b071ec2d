"""Monotone operators, finite sums of them, constraint sets and residuals.

An equilibrium problem is the monotone inclusion ``0 in F(z) + N_C(z)``: find
``z`` in the closed convex set ``C`` with ``<F(z), z' - z> >= 0`` for all
``z'`` in ``C``. For a min-max problem
``min_x max_y f(x, y)``, ``F(x, y) = (grad_x f, -grad_y f)``. Points ``z`` are
flat ``[d]`` vectors; a matrix game's ``z`` is ``concat(x, y)``.

* ``Constraint``: a product of blocks, each free, a box, or a (padded,
  optionally floored) probability simplex, with ``project``.
* ``Operator``: ``F`` as a pytree (``fn`` static, ``data`` traced) with its
  constraint and, where they follow from the data, its Lipschitz constant
  ``L`` (``|F u - F v| <= L |u - v|``) and cocoercivity constant ``L_c``
  (``<F u - F v, u - v> >= |F u - F v|^2 / L_c``).
* ``FiniteSumOperator``: ``F = (1/n) sum_i F_i`` with components evaluated one
  at a time or in minibatches, and the "on average" constants of Cai,
  Alacaoglu & Diakonikolas (2024): ``E_i |F_i u - F_i v|^2 <= L^2 |u - v|^2``
  (Lipschitz) and ``E_i |F_i u - F_i v|^2 <= L_c <F u - F v, u - v>``
  (cocoercive).
* Residuals: ``operator_norm`` ``|F(z)|``, ``natural_residual``
  ``|z - Pi_C(z - F z)|`` and ``tangent_residual`` ``dist(-F(z), N_C(z))``;
  each is zero exactly at a solution.
* ``check_constants`` estimates the constants from the operator itself
  (Jacobian power iteration and random pairs) and refuses a stated constant
  that is too small.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import _struct
from nashax.core import simplex
from nashax.core import validate
from nashax.core.games import MatrixGame, PreferenceGame

__all__ = [
    "Constraint",
    "Operator",
    "FiniteSumOperator",
    "free",
    "box",
    "simplices",
    "product",
    "from_matrix_game",
    "from_preference_game",
    "from_saddle",
    "finite_sum_from_saddle",
    "bilinear_finite_sum",
    "least_squares_finite_sum",
    "matrix_game_rows",
    "as_operator",
    "as_finite_sum",
    "operator_norm",
    "natural_residual",
    "tangent_residual",
    "residual",
    "ConstantsReport",
    "check_constants",
]

_KINDS = ("free", "box", "simplex")


# ------------------------------------------------------------------ constraint sets


@_struct.dataclass
class Constraint:
  """A product of blocks ``C = C_1 x ... x C_m`` over a flat ``[d]`` vector.

  Attributes:
    kinds: per block, ``"free"``, ``"box"`` or ``"simplex"`` (static).
    sizes: per block, its length (static).
    lower: ``[d]`` box lower bounds; for a simplex block, the floor of each
      entry (0 for the probability simplex); ``-inf`` on free blocks.
    upper: ``[d]`` box upper bounds (``+inf`` elsewhere).
    mask: ``bool[d]``; False marks a padding entry of a simplex block, held at 0.
  """

  kinds: tuple = _struct.field(static=True)
  sizes: tuple = _struct.field(static=True)
  lower: jax.Array
  upper: jax.Array
  mask: jax.Array

  @property
  def dim(self) -> int:
    return int(sum(self.sizes))

  def blocks(self, z: jax.Array) -> list:
    """``z`` split into its blocks."""
    out, start = [], 0
    for s in self.sizes:
      out.append(z[..., start:start + s])
      start += s
    return out

  def project(self, z: jax.Array) -> jax.Array:
    """Euclidean projection onto ``C`` (blockwise)."""
    parts = []
    for kind, zb, lo, hi, m in zip(self.kinds, self.blocks(z), self.blocks(self.lower),
                                   self.blocks(self.upper), self.blocks(self.mask)):
      if kind == "free":
        parts.append(zb)
      elif kind == "box":
        parts.append(jnp.clip(zb, lo, hi))
      else:
        # {x >= lo, sum x = 1} = lo + s * simplex with s = 1 - sum(lo).
        lo = jnp.where(m, lo, 0.0)
        s = 1.0 - jnp.sum(lo)
        parts.append(jnp.where(m, lo + s * simplex.project_simplex((zb - lo) / s, m), 0.0))
    return jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

  @property
  def is_free(self) -> bool:
    return all(k == "free" for k in self.kinds)


def free(dim: int, dtype: Any = None) -> Constraint:
  """No constraint: ``C = R^dim``."""
  dtype = dtype or jnp.result_type(float)
  return Constraint(("free",), (int(dim),), jnp.full((dim,), -jnp.inf, dtype),
                    jnp.full((dim,), jnp.inf, dtype), jnp.ones((dim,), bool))


def box(lower: jax.typing.ArrayLike, upper: jax.typing.ArrayLike) -> Constraint:
  """The box ``{lower <= z <= upper}`` (``[d]`` bounds, ``lower <= upper``)."""
  lo, hi = jnp.asarray(lower), jnp.asarray(upper)
  if lo.ndim != 1 or hi.shape != lo.shape:
    raise ValueError(f"upper: must have the shape of lower (a [d] vector), got {lo.shape} and {hi.shape}")
  if not validate.traced(lo) and not validate.traced(hi):
    if np.any(np.asarray(lo) > np.asarray(hi)) or np.any(np.isnan(np.asarray(lo))) or np.any(np.isnan(np.asarray(hi))):
      raise ValueError("lower: must be <= upper entrywise and not NaN")
  dtype = jnp.result_type(lo, hi, float)
  return Constraint(("box",), (lo.shape[0],), lo.astype(dtype), hi.astype(dtype), jnp.ones(lo.shape, bool))


def simplices(*sizes: int, masks: Optional[Sequence] = None, floor: Any = 0.0, dtype: Any = None) -> Constraint:
  """A product of probability simplices (a game's strategy sets).

  Args:
    *sizes: the number of actions of each player.
    masks: optional per-player ``bool[n]`` (None for all legal); padding is held at 0.
    floor: a lower bound on every legal probability (a truncated simplex, as
      for KL-regularised games whose equilibrium is interior).
    dtype: floating dtype.
  """
  dtype = dtype or jnp.result_type(float)
  masks = masks or (None,) * len(sizes)
  _check_floor(floor, sizes, masks)
  mask = jnp.concatenate([jnp.ones((n,), bool) if m is None else jnp.asarray(m, bool)
                          for n, m in zip(sizes, masks)])
  d = int(sum(sizes))
  lower = jnp.where(mask, jnp.broadcast_to(jnp.asarray(floor, dtype), (d,)), 0.0).astype(dtype)
  return Constraint(("simplex",) * len(sizes), tuple(int(n) for n in sizes), lower,
                    jnp.full((d,), jnp.inf, dtype), mask)


def _check_floor(floor, sizes, masks) -> None:
  """A simplex floor must be finite, >= 0 and leave room: sum over legal entries < 1."""
  if validate.traced(floor) or any(validate.traced(m) for m in masks):
    return
  fl = np.asarray(floor, np.float64)
  if not np.isfinite(fl).all() or (fl < 0).any():
    raise ValueError(f"floor: must be finite and >= 0, got {floor}")
  start = 0
  for n, m in zip(sizes, masks):
    blk = np.broadcast_to(fl, (int(sum(sizes)),))[start:start + n] if fl.ndim else np.full(n, float(fl))
    legal = np.ones(n, bool) if m is None else np.asarray(m, bool)
    if blk[legal].sum() >= 1.0:
      raise ValueError(f"floor: the floors of a simplex block sum to {blk[legal].sum():.4g} >= 1 "
                       f"(no distribution is left)")
    start += n


def product(*constraints: Constraint) -> Constraint:
  """The product of constraint sets, in order."""
  return Constraint(
      sum((c.kinds for c in constraints), ()),
      sum((c.sizes for c in constraints), ()),
      jnp.concatenate([c.lower for c in constraints]),
      jnp.concatenate([c.upper for c in constraints]),
      jnp.concatenate([c.mask for c in constraints]),
  )


# ------------------------------------------------------------------ operators


@_struct.dataclass
class Operator:
  """A (monotone) operator ``F: R^d -> R^d`` with its constraint set.

  Attributes:
    fn: module-level ``(data, z) -> F(z)`` (static).
    data: pytree of arrays ``fn`` reads (traced).
    constraint: the set ``C``.
    lipschitz: ``L`` with ``|F u - F v| <= L |u - v|`` on ``C``, or None (unknown).
    cocoercivity: ``L_c`` with ``<F u - F v, u - v> >= |F u - F v|^2 / L_c``,
      or None when ``F`` is not known to be cocoercive.
    name: a label (static).
  """

  fn: Callable = _struct.field(static=True)
  data: Any
  constraint: Constraint
  lipschitz: Optional[jax.Array] = None
  cocoercivity: Optional[jax.Array] = None
  name: str = _struct.field(static=True, default="operator")

  def __call__(self, z: jax.Array) -> jax.Array:
    return self.fn(self.data, z)

  @property
  def dim(self) -> int:
    return self.constraint.dim


def _mean_of_components(component_fn, data, z):
  return jnp.mean(jax.vmap(component_fn, in_axes=(0, None))(data, z), axis=0)


@_struct.dataclass
class FiniteSumOperator:
  """``F = (1/n) sum_i F_i``, evaluated whole, one component, or a minibatch.

  Attributes:
    component_fn: module-level ``(data_i, z) -> F_i(z)`` (static), where
      ``data_i`` is ``data`` with its leading axis indexed.
    data: pytree whose leaves all have the leading axis ``n``.
    constraint: the set ``C``.
    lipschitz: average Lipschitz ``L``: ``E_i |F_i u - F_i v|^2 <= L^2 |u - v|^2``.
    cocoercivity: average cocoercivity ``L``: ``E_i |F_i u - F_i v|^2 <= L <F u - F v, u - v>``
      (None when not cocoercive).
    full_lipschitz: Lipschitz constant of the mean ``F``.
    full_cocoercivity: cocoercivity constant of the mean ``F`` (None if not cocoercive).
    mean_fn: optional module-level ``(mean_data, z) -> F(z)`` (static) for a
      fast full evaluation when ``F`` is affine in the data (then
      ``mean_data`` is the average of ``data``).
    mean_data: the data ``mean_fn`` reads.
    name: a label (static).
  """

  component_fn: Callable = _struct.field(static=True)
  data: Any
  constraint: Constraint
  lipschitz: Optional[jax.Array] = None
  cocoercivity: Optional[jax.Array] = None
  full_lipschitz: Optional[jax.Array] = None
  full_cocoercivity: Optional[jax.Array] = None
  mean_fn: Optional[Callable] = _struct.field(static=True, default=None)
  mean_data: Any = None
  name: str = _struct.field(static=True, default="finite_sum")

  @property
  def num_components(self) -> int:
    return jax.tree.leaves(self.data)[0].shape[0]

  @property
  def dim(self) -> int:
    return self.constraint.dim

  def __call__(self, z: jax.Array) -> jax.Array:
    """The full operator ``F(z)`` (``n`` component evaluations)."""
    if self.mean_fn is not None:
      return self.mean_fn(self.mean_data, z)
    return _mean_of_components(self.component_fn, self.data, z)

  def component(self, i: jax.Array, z: jax.Array) -> jax.Array:
    """``F_i(z)`` for one index ``i``."""
    return self.component_fn(jax.tree.map(lambda a: a[i], self.data), z)

  def batch(self, idx: jax.Array, z: jax.Array) -> jax.Array:
    """``(1/b) sum_{i in idx} F_i(z)`` for an index vector ``idx: int[b]``."""
    return _mean_of_components(self.component_fn, jax.tree.map(lambda a: a[idx], self.data), z)

  def batch_difference(self, idx: jax.Array, z: jax.Array, z_prev: jax.Array) -> jax.Array:
    """``(1/b) sum_{i in idx} (F_i(z) - F_i(z_prev))`` (``2b`` component evaluations)."""
    data = jax.tree.map(lambda a: a[idx], self.data)
    diff = jax.vmap(lambda d: self.component_fn(d, z) - self.component_fn(d, z_prev))(data)
    return jnp.mean(diff, axis=0)

  def full(self) -> Operator:
    """The mean operator as an ``Operator`` with the full-operator constants."""
    return Operator(_full_apply, self, self.constraint, self.full_lipschitz, self.full_cocoercivity,
                    name=self.name)


def _full_apply(fs: FiniteSumOperator, z):
  return fs(z)


# ------------------------------------------------------------------ constructors


def _bilinear_apply(a, z):
  m = a.shape[-2]
  x, y = z[:m], z[m:]
  return jnp.concatenate([-(a @ y), x @ a])


def _spectral_norm(a: jax.Array) -> jax.Array:
  return jnp.linalg.norm(a, 2) if a.ndim == 2 else jnp.sqrt(jnp.max(jnp.linalg.eigvalsh(a)))


def from_matrix_game(game: Any, *, constants: bool = True) -> Operator:
  """``F(x, y) = (-A y, A^T x)`` on the product of simplices; ``L = |A|_2``.

  The row player maximises ``x^T A y``; a zero of ``F + N_C`` is a Nash
  equilibrium. A ``PreferenceGame`` without regularisation uses ``A = P - 1/2``.
  """
  if isinstance(game, PreferenceGame):
    if game.is_regularized:
      return from_preference_game(game, constants=constants)
    game = game.as_matrix_game()
  if not isinstance(game, MatrixGame):
    raise ValueError(f"game: expected a MatrixGame or PreferenceGame, got {type(game).__name__}")
  a = game.payoff
  m, k = a.shape
  c = simplices(m, k, masks=game.masks, dtype=a.dtype)
  lip = _spectral_norm(a) if constants else None
  return Operator(_bilinear_apply, a, c, lip, None, name="matrix_game")


def _kl_game_apply(data, z):
  a, log_ref, beta = data
  n = a.shape[-1]
  x, y = z[:n], z[n:]
  # Constants along each block (the "+1" of d KL) do not move a simplex VI; dropped.
  lx = jnp.log(jnp.maximum(x, jnp.finfo(z.dtype).tiny))
  ly = jnp.log(jnp.maximum(y, jnp.finfo(z.dtype).tiny))
  return jnp.concatenate([-(a @ y) + beta * (lx - log_ref), x @ a + beta * (ly - log_ref)])


def from_preference_game(game: PreferenceGame, *, floor: Any = None, constants: bool = True) -> Operator:
  """The operator of a (KL-regularised) preference game.

  For ``V(pi1, pi2) = pi1^T P pi2 - beta KL(pi1||ref) + beta KL(pi2||ref)``:
  ``F(pi1, pi2) = (-(P - 1/2) pi2 + beta log(pi1/ref), (P - 1/2)^T pi1 + beta log(pi2/ref))``
  (up to constants per block), strongly monotone with modulus ``beta``. Its
  log is not Lipschitz at the boundary, so the constraint is the truncated
  simplex ``{pi >= floor}``: the equilibrium ``pi* = softmax(log ref + P pi*/beta)``
  satisfies ``pi*(y) >= ref(y) e^{-1/beta}`` (``P pi`` lies in ``[0, 1]``), so the
  default ``floor = ref e^{-1/beta} / 2`` keeps it interior and the solution
  unchanged, and ``L <= |P - 1/2|_2 + beta / min(floor)``.
  """
  if not isinstance(game, PreferenceGame):
    raise ValueError(f"game: expected a PreferenceGame, got {type(game).__name__}")
  if not game.is_regularized:
    return from_matrix_game(game, constants=constants)
  a = game.preference - 0.5
  n = a.shape[-1]
  ref = jnp.exp(game.log_ref)
  if floor is not None:
    _check_floor(floor, (n,), (game.action_mask,))
  fl = 0.5 * ref * jnp.exp(-1.0 / game.beta) if floor is None else jnp.broadcast_to(jnp.asarray(floor, a.dtype), (n,))
  masks = (game.action_mask, game.action_mask)
  c = simplices(n, n, masks=masks, dtype=a.dtype)
  lower = jnp.where(c.mask, jnp.concatenate([fl, fl]), 0.0).astype(a.dtype)
  c = c.replace(lower=lower)
  lip = None
  if constants:
    lip = _spectral_norm(a) + game.beta / jnp.min(jnp.where(c.mask, lower, jnp.inf))
  log_ref = jnp.where(game.action_mask, game.log_ref, 0.0) if game.action_mask is not None else game.log_ref
  return Operator(_kl_game_apply, (a, log_ref, game.beta), c, lip, None, name="kl_preference_game")


def _saddle_field(f, x_dim):
  def field(data, z):
    gx, gy = jax.grad(lambda x, y: f(data, x, y), argnums=(0, 1))(z[:x_dim], z[x_dim:])
    return jnp.concatenate([gx, -gy])
  return field


class _SaddleFn(NamedTuple):
  f: Callable
  x_dim: int

  def __call__(self, data, z):
    return _saddle_field(self.f, self.x_dim)(data, z)


def from_saddle(f: Callable, data: Any, x_dim: int, constraint: Constraint, *,
                lipschitz: Any = None, cocoercivity: Any = None) -> Operator:
  """``F(x, y) = (grad_x f, -grad_y f)`` for ``min_x max_y f(data, x, y)`` by ``jax.grad``.

  Args:
    f: ``(data, x, y) -> []`` convex in ``x``, concave in ``y`` (hashable, e.g. a
      module-level function).
    data: pytree ``f`` reads (traced).
    x_dim: the length of ``x``; ``z = concat(x, y)``.
    constraint: the set ``C`` of ``z``.
    lipschitz, cocoercivity: the constants, when known (``check_constants`` tests them).
  """
  if not 0 < x_dim < constraint.dim:
    raise ValueError(f"x_dim: must be in (0, {constraint.dim}), got {x_dim}")
  return Operator(_SaddleFn(f, int(x_dim)), data, constraint,
                  None if lipschitz is None else jnp.asarray(lipschitz),
                  None if cocoercivity is None else jnp.asarray(cocoercivity), name="saddle")


def finite_sum_from_saddle(f_i: Callable, data: Any, x_dim: int, constraint: Constraint, *,
                           lipschitz: Any = None, full_lipschitz: Any = None) -> FiniteSumOperator:
  """``F_i = (grad_x f_i, -grad_y f_i)`` for ``min_x max_y (1/n) sum_i f_i(data_i, x, y)``."""
  n = jax.tree.leaves(data)[0].shape[0]
  if any(leaf.shape[:1] != (n,) for leaf in jax.tree.leaves(data)):
    raise ValueError("data: every leaf must have the same leading (component) axis")
  if not 0 < x_dim < constraint.dim:
    raise ValueError(f"x_dim: must be in (0, {constraint.dim}), got {x_dim}")
  return FiniteSumOperator(
      component_fn=_SaddleFn(f_i, int(x_dim)), data=data, constraint=constraint,
      lipschitz=None if lipschitz is None else jnp.asarray(lipschitz),
      full_lipschitz=None if full_lipschitz is None else jnp.asarray(full_lipschitz), name="saddle_sum")


def _finite_if_concrete(x, name):
  """``x`` unchanged; a concrete array with NaN or inf is refused (traced data passes: vmap)."""
  if validate.traced(x):
    return x
  validate.finite_array(x, name)
  return x


def _affine_bilinear_component(data, z):
  a, b, c = data
  m = a.shape[-2]
  x, y = z[:m], z[m:]
  return jnp.concatenate([a @ y + b, -(x @ a) + c])


def bilinear_finite_sum(a: jax.typing.ArrayLike, b: Any = None, c: Any = None,
                        constraint: Optional[Constraint] = None) -> FiniteSumOperator:
  """``min_x max_y (1/n) sum_i x^T A_i y + b_i^T x - c_i^T y``.

  ``F_i(x, y) = (A_i y + b_i, -A_i^T x + c_i)``. Each ``F_i`` is linear with
  ``|F_i u - F_i v| <= |A_i|_2 |u - v|``, so the average Lipschitz constant is
  ``L = sqrt(lambda_max(E_i blockdiag(A_i A_i^T, A_i^T A_i)))`` and the mean's
  is ``|mean_i A_i|_2``. Monotone (skew), not cocoercive.

  Args:
    a: ``[n, m, k]``.
    b: ``[n, m]`` (default 0).
    c: ``[n, k]`` (default 0).
    constraint: default free on ``R^{m+k}``.
  """
  a = jnp.asarray(_finite_if_concrete(a, "a"))
  if a.ndim != 3:
    raise ValueError(f"a: expected [n, m, k], got shape {a.shape}")
  n, m, k = a.shape
  b = jnp.zeros((n, m), a.dtype) if b is None else jnp.asarray(_finite_if_concrete(b, "b"), a.dtype)
  c = jnp.zeros((n, k), a.dtype) if c is None else jnp.asarray(_finite_if_concrete(c, "c"), a.dtype)
  if b.shape != (n, m) or c.shape != (n, k):
    raise ValueError(f"b, c: expected shapes {(n, m)} and {(n, k)}, got {b.shape} and {c.shape}")
  constraint = free(m + k, a.dtype) if constraint is None else constraint
  if constraint.dim != m + k:
    raise ValueError(f"constraint: dimension {constraint.dim} != m + k = {m + k}")
  avg = jnp.maximum(jnp.max(jnp.linalg.eigvalsh(jnp.mean(a @ jnp.swapaxes(a, 1, 2), 0))),
                    jnp.max(jnp.linalg.eigvalsh(jnp.mean(jnp.swapaxes(a, 1, 2) @ a, 0))))
  mean = (a.mean(0), b.mean(0), c.mean(0))
  return FiniteSumOperator(
      component_fn=_affine_bilinear_component, data=(a, b, c), constraint=constraint, lipschitz=jnp.sqrt(avg),
      full_lipschitz=jnp.linalg.norm(mean[0], 2), mean_fn=_affine_bilinear_component, mean_data=mean,
      name="bilinear_sum")


def _least_squares_component(data, x):
  a, b = data
  return (a @ x - b) @ a


def least_squares_finite_sum(a: jax.typing.ArrayLike, b: jax.typing.ArrayLike,
                             constraint: Optional[Constraint] = None) -> FiniteSumOperator:
  """``F_i(x) = A_i^T (A_i x - b_i)``: the gradient of ``(1/2n) sum_i |A_i x - b_i|^2``.

  Cocoercive on average: ``|F_i u - F_i v|^2 = |A_i^T A_i d|^2 <= |A_i|_2^2 <A_i^T A_i d, d>``,
  so ``L_c = max_i |A_i|_2^2``, and the mean is ``lambda_max(mean A_i^T A_i)``-cocoercive
  (Baillon-Haddad). ``L = L_c`` bounds the average Lipschitz constant too.

  Args:
    a: ``[n, r, d]`` (``r`` rows per component).
    b: ``[n, r]``.
    constraint: default free.
  """
  a = jnp.asarray(_finite_if_concrete(a, "a"))
  b = jnp.asarray(_finite_if_concrete(b, "b"), a.dtype)
  if a.ndim != 3 or b.shape != a.shape[:2]:
    raise ValueError(f"b: expected shape {a.shape[:2]} for a of shape {a.shape}, got {b.shape}")
  d = a.shape[-1]
  constraint = free(d, a.dtype) if constraint is None else constraint
  gram = jnp.swapaxes(a, 1, 2) @ a
  lc = jnp.max(jax.vmap(lambda g: jnp.max(jnp.linalg.eigvalsh(g)))(gram))
  lf = jnp.max(jnp.linalg.eigvalsh(gram.mean(0)))
  return FiniteSumOperator(
      component_fn=_least_squares_component, data=(a, b), constraint=constraint, lipschitz=lc,
      cocoercivity=lc, full_lipschitz=lf, full_cocoercivity=lf, mean_fn=_least_squares_mean,
      mean_data=(gram.mean(0), jnp.einsum("nrd,nr->d", a, b) / a.shape[0]), name="least_squares_sum")


def _least_squares_mean(data, x):
  gram, atb = data
  return gram @ x - atb


def _rows_component(data, z):
  a_row, onehot = data
  m = onehot.shape[0]
  x, y = z[:m], z[m:]
  # F = (-A y, A^T x) = mean_i m (-e_i a_i^T y, a_i x_i).
  return m * jnp.concatenate([-onehot * (a_row @ y), a_row * jnp.dot(onehot, x)])


def matrix_game_rows(game: Any) -> FiniteSumOperator:
  """A matrix game's operator as the finite sum over its ``m`` rows.

  ``F_i(x, y) = m (-e_i a_i^T y, a_i x_i)`` so that ``(1/m) sum_i F_i = (-A y, A^T x)``;
  ``E_i |F_i u - F_i v|^2 = m sum_i ((a_i^T dy)^2 + |a_i|^2 dx_i^2)``, so the
  average Lipschitz constant is ``L = sqrt(m) max(|A|_2, max_i |a_i|)``.
  """
  op = from_matrix_game(game)
  a = op.data
  m = a.shape[0]
  eye = jnp.eye(m, dtype=a.dtype)
  lip = jnp.sqrt(jnp.asarray(m, a.dtype)) * jnp.maximum(op.lipschitz, jnp.max(jnp.linalg.norm(a, axis=1)))
  return FiniteSumOperator(
      component_fn=_rows_component, data=(a, eye), constraint=op.constraint, lipschitz=lip,
      full_lipschitz=op.lipschitz, mean_fn=_bilinear_apply, mean_data=a, name="matrix_game_rows")


def as_operator(problem: Any, *, constants: bool = True) -> Operator:
  """The ``Operator`` of a problem: an operator, a finite sum (its mean) or a game."""
  if isinstance(problem, Operator):
    return problem
  if isinstance(problem, FiniteSumOperator):
    return problem.full()
  if isinstance(problem, (MatrixGame, PreferenceGame)):
    return from_matrix_game(problem, constants=constants)
  raise ValueError(f"problem: expected an Operator, FiniteSumOperator, MatrixGame or PreferenceGame, "
                   f"got {type(problem).__name__}")


def as_finite_sum(problem: Any) -> FiniteSumOperator:
  """A ``FiniteSumOperator``; a matrix game is split by rows (``matrix_game_rows``)."""
  if isinstance(problem, FiniteSumOperator):
    return problem
  if isinstance(problem, MatrixGame) or (isinstance(problem, PreferenceGame) and not problem.is_regularized):
    return matrix_game_rows(problem)
  raise ValueError(f"problem: a variance-reduced method needs a FiniteSumOperator (or a matrix game, split "
                   f"by rows), got {type(problem).__name__}")


# ------------------------------------------------------------------ residuals


def operator_norm(op: Any, z: jax.Array) -> jax.Array:
  """``|F(z)|``: the residual of an unconstrained problem."""
  return jnp.linalg.norm(as_operator(op, constants=False)(z))


def natural_residual(op: Any, z: jax.Array, eta: jax.typing.ArrayLike = 1.0) -> jax.Array:
  """``|z - Pi_C(z - eta F(z))| / eta``; equals ``|F(z)|`` when ``C = R^d``.

  Certificate: at ``zb = Pi_C(z - eta F z)``,
  ``F(zb) + (z - eta F z - zb)/eta`` lies in ``(F + N_C)(zb)``, so
  ``dist(0, (F + N_C)(zb)) <= (1 + eta L) r(z)``.
  """
  validate.number("eta", eta, lo=0.0, lo_open=True)
  op = as_operator(op, constants=False)
  return jnp.linalg.norm(z - op.constraint.project(z - eta * op(z))) / eta


def _simplex_tangent(g, z, lo, mask, iters):
  """``min_{c in N(z)} |g + c|`` on a (floored) simplex: c = lam 1 - mu, mu >= 0 on the active set."""
  active = (z <= lo) & mask

  def dh(lam):
    t = g + lam
    return jnp.sum(jnp.where(mask, jnp.where(active, jnp.minimum(t, 0.0), t), 0.0))

  gl = jnp.where(mask, g, jnp.inf)
  gh = jnp.where(mask, g, -jnp.inf)
  lo_l, hi_l = -jnp.max(gh), -jnp.min(gl)

  def body(_, b):
    a, c = b
    mid = 0.5 * (a + c)
    pos = dh(mid) > 0
    return jnp.where(pos, a, mid), jnp.where(pos, mid, c)

  a, c = jax.lax.fori_loop(0, iters, body, (lo_l, hi_l))
  lam = 0.5 * (a + c)
  t = g + lam
  return jnp.sum(jnp.where(mask, jnp.where(active, jnp.minimum(t, 0.0), t), 0.0) ** 2)


def tangent_residual(op: Any, z: jax.Array) -> jax.Array:
  """``dist(-F(z), N_C(z)) = min_{c in N_C(z)} |F(z) + c|`` (Cai, Oikonomou & Zheng 2022).

  Zero exactly at a solution of ``0 in F(z) + N_C(z)``; ``|F(z)|`` on free
  blocks; on a box, the outward part of ``F`` at active bounds is free; on a
  simplex, a one-dimensional convex problem in the multiplier of ``sum = 1``
  solved by bisection.
  """
  op = as_operator(op, constants=False)
  c = op.constraint
  g = op(z)
  iters = 80 if z.dtype == jnp.float64 else 40
  total = jnp.zeros((), g.dtype)
  for kind, gb, zb, lo, hi, m in zip(c.kinds, c.blocks(g), c.blocks(z), c.blocks(c.lower), c.blocks(c.upper),
                                     c.blocks(c.mask)):
    if kind == "free":
      total = total + jnp.sum(gb ** 2)
    elif kind == "box":
      # At z = lo the normal cone is -R_+ (so F + c can cancel F > 0); at z = hi, R_+.
      t = jnp.where(zb <= lo, jnp.minimum(gb, 0.0), jnp.where(zb >= hi, jnp.maximum(gb, 0.0), gb))
      total = total + jnp.sum(t ** 2)
    else:
      total = total + _simplex_tangent(gb, zb, jnp.where(m, lo, 0.0), m, iters)
  return jnp.sqrt(total)


def residual(problem: Any, state_or_z: Any) -> jax.Array:
  """The certificate ``solve`` stops on for an operator problem: the natural residual."""
  z = getattr(state_or_z, "z", state_or_z)
  return natural_residual(problem, z)


# ------------------------------------------------------------------ checking constants


class ConstantsReport(NamedTuple):
  """Lower estimates of an operator's constants, found by ``check_constants``.

  Attributes:
    lipschitz: the largest ``|J(z) v| / |v|`` (Jacobian power iteration) or
      ``|F u - F v| / |u - v|`` seen.
    monotonicity: the smallest ``<F u - F v, u - v> / |u - v|^2`` seen
      (negative: not monotone).
    cocoercivity: the largest ``|F u - F v|^2 / <F u - F v, u - v>`` seen
      (the smallest ``L_c`` consistent with the samples).
    average_lipschitz: for a finite sum, the largest ``sqrt(E_i |F_i u - F_i v|^2) / |u - v|``.
  """

  lipschitz: float
  monotonicity: float
  cocoercivity: float
  average_lipschitz: Optional[float] = None


def _power_norm(f, z, v, iters):
  """Spectral norm of the Jacobian of ``f`` at ``z`` by power iteration on ``J^T J``."""
  _, vjp = jax.vjp(f, z)

  def body(_, v):
    w = vjp(jax.jvp(f, (z,), (v,))[1])[0]
    return w / jnp.maximum(jnp.linalg.norm(w), 1e-30)

  v = jax.lax.fori_loop(0, iters, body, v / jnp.linalg.norm(v))
  return jnp.linalg.norm(jax.jvp(f, (z,), (v,))[1])


def check_constants(op: Any, key: jax.Array, *, num_points: int = 16, iters: int = 100,
                    rtol: float = 1e-3, radius: float = 1.0) -> ConstantsReport:
  """Tests an operator's stated constants against its own evaluations.

  Samples points of ``C`` (projections of Gaussian points of scale ``radius``),
  estimates the Lipschitz constant by power iteration on the Jacobian
  (``jax.jvp``/``jax.vjp``) and by random pairs, monotonicity and
  cocoercivity from pairs, and for a finite sum the average Lipschitz
  constant (power iteration on ``E_i J_i^T J_i``). Every estimate is a lower
  bound on the true constant, so a stated constant below an estimate (by
  more than ``rtol``) is wrong.

  Raises:
    ValueError: naming the constant, when a stated constant is smaller than
      what the operator does, or when ``F`` is not monotone.

  Returns:
    the ``ConstantsReport`` of the estimates.
  """
  fs = op if isinstance(op, FiniteSumOperator) else None
  full = as_operator(op)
  c = full.constraint
  k1, k2, k3 = jax.random.split(key, 3)
  d = c.dim
  pts = jax.vmap(c.project)(radius * jax.random.normal(k1, (num_points, d), c.lower.dtype))
  pts2 = jax.vmap(c.project)(radius * jax.random.normal(k2, (num_points, d), c.lower.dtype))
  vs = jax.random.normal(k3, (num_points, d), c.lower.dtype)
  f = full.__call__
  lip_j = float(jnp.max(jax.vmap(lambda z, v: _power_norm(f, z, v, iters))(pts, vs)))
  fu, fv = jax.vmap(f)(pts), jax.vmap(f)(pts2)
  du, df = pts - pts2, fu - fv
  nz = np.asarray(jnp.sum(du ** 2, -1)) > 1e-24
  dd = np.asarray(jnp.sum(du ** 2, -1), np.float64)[nz]
  ip = np.asarray(jnp.sum(du * df, -1), np.float64)[nz]
  ff = np.asarray(jnp.sum(df ** 2, -1), np.float64)[nz]
  lip_p = float(np.sqrt(np.max(ff / dd))) if dd.size else 0.0
  mono = float(np.min(ip / dd)) if dd.size else 0.0
  scale = max(1.0, lip_j)
  coco = float(np.max(np.where(ip > 1e-12 * dd * scale, ff / np.maximum(ip, 1e-300), np.where(ff > 1e-24, np.inf, 0.0)))) if dd.size else 0.0
  lip_est = max(lip_j, lip_p)
  avg = None
  if fs is not None:
    def avg_norm(z, v):
      def comp_sq(v):
        jv = jax.vmap(lambda dat: jax.jvp(lambda zz: fs.component_fn(dat, zz), (z,), (v,))[1])(fs.data)
        return jv
      def body(_, v):
        jv = comp_sq(v)
        w = jnp.mean(jax.vmap(lambda dat, u: jax.vjp(lambda zz: fs.component_fn(dat, zz), z)[1](u)[0])(fs.data, jv), 0)
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-30)
      v = jax.lax.fori_loop(0, iters, body, v / jnp.linalg.norm(v))
      return jnp.sqrt(jnp.mean(jnp.sum(comp_sq(v) ** 2, -1)))
    avg = float(jnp.max(jax.vmap(avg_norm)(pts[:4], vs[:4])))
    if fs.cocoercivity is not None:
      fiu = jax.vmap(lambda z: jax.vmap(fs.component_fn, in_axes=(0, None))(fs.data, z))(pts)
      fiv = jax.vmap(lambda z: jax.vmap(fs.component_fn, in_axes=(0, None))(fs.data, z))(pts2)
      eff = np.asarray(jnp.mean(jnp.sum((fiu - fiv) ** 2, -1), -1))[nz]
      need = float(np.max(np.where(ip > 0, eff / np.maximum(ip, 1e-300), np.where(eff > 1e-24, np.inf, 0.0))))
      if need > (1.0 + rtol) * float(fs.cocoercivity):
        raise ValueError(f"cocoercivity: stated average L_c = {float(fs.cocoercivity):.6g} but a pair needs "
                         f"E_i |F_i u - F_i v|^2 / <F u - F v, u - v> = {need:.6g}")
  report = ConstantsReport(lip_est, mono, coco, avg)
  tol = 1.0 + rtol
  if mono < -rtol * max(lip_est, 1e-12):
    raise ValueError(f"op: F is not monotone: <F u - F v, u - v> / |u - v|^2 = {mono:.4g} < 0 at a sampled pair")
  stated_l = full.lipschitz if fs is None else fs.full_lipschitz
  if stated_l is not None and lip_est > tol * float(stated_l):
    raise ValueError(f"lipschitz: stated L = {float(stated_l):.6g} but F stretches distances by {lip_est:.6g}")
  stated_c = full.cocoercivity if fs is None else fs.full_cocoercivity
  if stated_c is not None and coco > tol * float(stated_c):
    raise ValueError(f"cocoercivity: stated L_c = {float(stated_c):.6g} but a pair needs L_c >= {coco:.6g}")
  if fs is not None and fs.lipschitz is not None and avg > tol * float(fs.lipschitz):
    raise ValueError(f"lipschitz: stated average L = {float(fs.lipschitz):.6g} but E_i |J_i v|^2 needs "
                     f"L >= {avg:.6g}")
  return report

