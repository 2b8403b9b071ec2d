"""The solver protocol and the two drivers that loop: ``run`` and ``solve``.

A ``Solver`` is a frozen pytree: module-level ``init_fn``/``step_fn`` (static)
and numeric hyperparameters (traced), so a new step size never recompiles and
``jax.vmap`` can map over the solver itself.

Every solver state carries a common header the drivers rely on:
``step: int32[]``, ``oracle_calls: int32[]`` (in the units its paper counts),
``profile`` (the iterate its theorem bounds, valid right after ``init``) and,
for stochastic solvers, ``key``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import _struct, validate
from nashax.core.metrics import default_residual as _default_residual
from nashax.core.metrics import metrics as _metrics_fn

__all__ = [
    "Solver",
    "Info",
    "RESULTS",
    "SUCCESS",
    "MAX_STEPS",
    "NONFINITE",
    "DIVERGED",
    "run",
    "solve",
    "check",
]


@_struct.dataclass
class Solver:
  """An iterative solver: ``state = init(game, key)``, ``state = step(game, state)``.

  Attributes:
    init_fn: module-level ``(hparams, game, key) -> state`` (static).
    step_fn: module-level ``(hparams, game, state) -> state`` (static).
    hparams: pytree of traced numbers (plus static options).
    name: the factory's name (static).
  """

  init_fn: Callable = _struct.field(static=True)
  step_fn: Callable = _struct.field(static=True)
  hparams: Any = None
  name: str = _struct.field(static=True, default="")

  def init(self, game: Any, key: jax.Array) -> Any:
    """The initial state; its ``profile`` is already a valid profile."""
    return self.init_fn(self.hparams, game, key)

  def step(self, game: Any, state: Any) -> Any:
    """One iteration."""
    return self.step_fn(self.hparams, game, state)


SUCCESS, MAX_STEPS, NONFINITE, DIVERGED = 0, 1, 2, 3
RESULTS = {
    SUCCESS: "reached the tolerance",
    MAX_STEPS: "hit max_steps before reaching the tolerance",
    NONFINITE: "the residual became NaN or inf",
    DIVERGED: "the residual grew past the divergence cap",
}


class Info(NamedTuple):
  """What ``solve`` returns beside the state (arrays; batched under vmap).

  Attributes:
    num_steps: ``int32[]`` steps taken.
    residual: ``[]`` the certificate at the returned state.
    status: ``int32[]`` a key of ``RESULTS``.
    oracle_calls: ``int32[]`` from the state header.
    tol: ``[]`` the tolerance asked for.
    max_steps: ``int32[]`` the budget.
  """

  num_steps: jax.Array
  residual: jax.Array
  status: jax.Array
  oracle_calls: jax.Array
  tol: jax.Array
  max_steps: jax.Array


def _steps(solver: Solver, game: Any, state: Any, n: int) -> Any:
  if n == 1:
    return solver.step(game, state)
  return jax.lax.fori_loop(0, n, lambda _, s: solver.step(game, s), state)


def _check_concrete(name: str, value, *, integer: bool = False) -> None:
  """Raises ValueError for a concrete non-finite or non-positive driver argument."""
  if validate.traced(value):
    return
  if np.ndim(value) == 0 or isinstance(value, (str, bytes)):  # booleans, strings, complex numbers, in words
    validate._scalar(name, value, "a positive integer" if integer else "a finite number > 0")
  arr = np.asarray(value, np.float64)
  if arr.ndim != 0:
    raise ValueError(f"{name}: expected a scalar, got shape {arr.shape} (vmap over the call instead)")
  if not np.isfinite(arr) or arr <= 0 or (integer and arr != np.floor(arr)):
    kind = "a positive integer" if integer else "finite and > 0"
    raise ValueError(f"{name}: must be {kind}, got {value}")


def _default_metric(game: Any, state: Any) -> Any:
  """``metrics`` for games; the natural residual for operator problems; the
  total-variation distance for a ``TargetDistribution``."""
  from nashax.core import operators
  from nashax.core.games import TargetDistribution
  from nashax.core.metrics import target_distance

  if isinstance(game, (operators.Operator, operators.FiniteSumOperator)):
    return operators.residual(game, state)
  if isinstance(game, TargetDistribution):
    return target_distance(game, state)
  return _metrics_fn(game, state)


def run(solver: Solver, game: Any, key: jax.Array, *, num_steps: int, every: int = 1,
        metric_fn: Callable = _default_metric) -> tuple[Any, Any]:
  """Runs ``num_steps`` steps with a metric trace every ``every`` steps.

  Args:
    solver: a ``Solver``.
    game: one game (vmap for a batch).
    key: PRNG key for ``init`` (random start) and stochastic steps.
    num_steps: total steps (static); a multiple of ``every``.
    every: steps between two trace entries (static).
    metric_fn: ``(game, state) -> pytree`` recorded per chunk (static); default
      ``metrics`` for games, the natural residual for operator problems.

  Returns:
    ``(state, trace)``; the trace is ``metric_fn`` stacked to
    ``[num_steps // every]`` arrays, entry ``i`` taken after ``(i + 1) * every`` steps.

  >>> import jax
  >>> from nashax import games, solvers
  >>> state, trace = run(solvers.mwu(0.1), games.rock_paper_scissors(), jax.random.key(0),
  ...                    num_steps=100, every=10)
  >>> trace.duality_gap.shape, int(state.step)
  ((10,), 100)
  """
  _check_concrete("num_steps", num_steps, integer=True)
  _check_concrete("every", every, integer=True)
  validate.size("num_steps", num_steps)
  if num_steps % every:
    raise ValueError(f"num_steps: must be a multiple of every={every}, got {num_steps}")
  return _run(solver, game, key, num_steps=num_steps, every=every, metric_fn=metric_fn)


@functools.partial(jax.jit, static_argnames=("num_steps", "every", "metric_fn"))
def _run(
    solver: Solver,
    game: Any,
    key: jax.Array,
    *,
    num_steps: int,
    every: int = 1,
    metric_fn: Callable = _default_metric,
) -> tuple[Any, Any]:
  state = solver.init(game, key)

  def chunk(s, _):
    s = _steps(solver, game, s, every)
    return s, metric_fn(game, s)

  return jax.lax.scan(chunk, state, None, length=num_steps // every)


def solve(solver: Solver, game: Any, key: jax.Array, *, tol: jax.typing.ArrayLike,
          max_steps: jax.typing.ArrayLike, check_every: int = 1,
          residual_fn: Callable = _default_residual,
          divergence_cap: jax.typing.ArrayLike = 1e8) -> tuple[Any, Info]:
  """Iterates until the certificate of ``state.profile`` is ``<= tol``.

  The loop is a ``lax.while_loop`` with condition
  ``(r > tol) & (t < max_steps) & isfinite(r) & (r <= divergence_cap)``; under
  ``vmap`` finished elements are frozen. It never raises: the
  outcome is ``Info.status`` (see ``RESULTS``); call ``check(info)`` outside jit.

  Args:
    solver: a ``Solver``.
    game: one game.
    key: PRNG key.
    tol: tolerance on the residual (traced: sweepable).
    max_steps: step budget (traced).
    check_every: steps between residual evaluations (static).
    residual_fn: ``(game, state) -> []`` certificate (static); default: the
      duality gap, or NashConv for general-sum games.
    divergence_cap: a residual above ``divergence_cap * max(1, r0)``, with
      ``r0`` the initial residual (the problem's scale), stops with status
      DIVERGED.

  Returns:
    ``(state, info)``.

  >>> import jax
  >>> from nashax import games, solvers
  >>> g = games.random_zero_sum(jax.random.key(0), 8, 8)
  >>> solver = solvers.extragradient(0.2, geometry="euclidean", iterate="last")
  >>> state, info = solve(solver, g, jax.random.key(1), tol=1e-5, max_steps=100_000)
  >>> _ = check(info); bool(info.residual <= 1e-5)
  True
  """
  _check_concrete("tol", tol)
  _check_concrete("max_steps", max_steps, integer=True)
  _check_concrete("check_every", check_every, integer=True)
  _check_concrete("divergence_cap", divergence_cap)
  if not validate.traced(max_steps):
    validate.size("max_steps", max_steps)
  validate.size("check_every", check_every)
  return _solve(solver, game, key, tol=tol, max_steps=max_steps, check_every=check_every,
                residual_fn=residual_fn, divergence_cap=divergence_cap)


@functools.partial(jax.jit, static_argnames=("check_every", "residual_fn"))
def _solve(
    solver: Solver,
    game: Any,
    key: jax.Array,
    *,
    tol: jax.typing.ArrayLike,
    max_steps: jax.typing.ArrayLike,
    check_every: int = 1,
    residual_fn: Callable = _default_residual,
    divergence_cap: jax.typing.ArrayLike = 1e8,
) -> tuple[Any, Info]:
  state = solver.init(game, key)
  r0 = jnp.asarray(residual_fn(game, state))
  tol = jnp.asarray(tol, r0.dtype)
  # Relative to the problem's scale: the initial residual (a game with payoffs of 1e9 starts near 1e9).
  cap = jnp.asarray(divergence_cap, r0.dtype) * jnp.maximum(1.0, jnp.where(jnp.isfinite(r0), r0, 1.0))
  max_steps = jnp.asarray(max_steps, jnp.int32)

  def cond(carry):
    _, r, t = carry
    return (r > tol) & (t < max_steps) & jnp.isfinite(r) & (r <= cap)

  def body(carry):
    s, _, t = carry
    s = _steps(solver, game, s, check_every)
    return s, jnp.asarray(residual_fn(game, s), r0.dtype), t + check_every

  state, r, t = jax.lax.while_loop(cond, body, (state, r0, jnp.zeros((), jnp.int32)))
  status = jnp.where(
      ~jnp.isfinite(r),
      NONFINITE,
      jnp.where(r <= tol, SUCCESS, jnp.where(r > cap, DIVERGED, MAX_STEPS)),
  ).astype(jnp.int32)
  info = Info(t, r, status, jnp.asarray(state.oracle_calls, jnp.int32), tol, max_steps)
  return state, info


def check(info: Info) -> Info:
  """Raises ``RuntimeError`` in words if any (batched) solve did not succeed.

  Runs outside jit. Returns ``info`` unchanged when every status is SUCCESS.
  """
  status = np.asarray(info.status).reshape(-1)
  if status.size == 0 or (status == SUCCESS).all():
    return info
  resid = np.asarray(info.residual, np.float64).reshape(-1)
  tol = np.broadcast_to(np.asarray(info.tol, np.float64), np.asarray(info.status).shape).reshape(-1)
  max_steps = np.asarray(info.max_steps).reshape(-1)
  total = status.size
  what = "games" if total > 1 else "game"
  lines = []
  for code, msg in RESULTS.items():
    if code == SUCCESS:
      continue
    sel = status == code
    if not sel.any():
      continue
    worst = resid[sel]
    finite = worst[np.isfinite(worst)]
    detail = ""
    if code == MAX_STEPS:
      detail = (f" (max_steps={int(max_steps[sel].max())}); worst residual "
                f"{finite.max():.3g} > tol {tol[sel][np.argmax(finite)]:.3g}")
    elif code == DIVERGED and finite.size:
      detail = f"; worst residual {finite.max():.3g}"
    lines.append(f"{int(sel.sum())} of {total} {what} {msg}{detail}")
  raise RuntimeError("solve did not succeed: " + "; ".join(lines))
