"""Shared pieces of the tabular equilibrium solvers (private)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import simplex
from nashax.core import validate
from nashax.core.games import MatrixGame, NormalFormGame, PreferenceGame
from nashax.core.metrics import utilities

STATIC_AVERAGES = ("uniform", "linear")


def player_view(game: Any) -> tuple[Any, tuple[int, ...], tuple]:
  """The game as seen by the no-regret solvers: (game, action counts, masks)."""
  if isinstance(game, PreferenceGame):
    if game.is_regularized:
      raise ValueError(
          "game: this solver solves unregularised games; a KL-regularised "
          "PreferenceGame needs a solver from nashax.solvers.nlhf"
      )
    game = game.as_matrix_game()
  if isinstance(game, MatrixGame):
    return game, tuple(game.payoff.shape[-2:]), game.masks
  if isinstance(game, NormalFormGame):
    return game, tuple(game.payoffs.shape[1:]), game.masks
  raise ValueError(f"game: unsupported game type {type(game).__name__}")


def random_log_probs(key: jax.Array, sizes: tuple[int, ...], masks: tuple, scale, dtype) -> tuple:
  """Random starting log-strategies ``log_softmax(scale * N(0, 1))`` per player.

  ``scale = 0`` gives the uniform start; tests use random starts.
  """
  keys = jax.random.split(key, len(sizes))
  return tuple(
      simplex.masked_log_softmax(scale * jax.random.normal(k, (n,), dtype), mask)
      for k, n, mask in zip(keys, sizes, masks)
  )


def payoff_dtype(game: Any):
  if isinstance(game, MatrixGame):
    return game.payoff.dtype
  return game.payoffs.dtype


def probs(log_probs: tuple) -> tuple:
  return tuple(jnp.exp(lp) for lp in log_probs)


def utils(game: Any, profile: tuple) -> tuple:
  return utilities(game, profile)


def running_mean(avg: tuple, comp: tuple, new: tuple, step, average: str) -> tuple[tuple, tuple]:
  """Average of iterates ``0..step+1`` given the average of ``0..step``.

  ``uniform`` weighs every iterate equally; ``linear`` weighs iterate ``k`` by
  ``k + 1`` (CFR+'s averaging). The update is Kahan-compensated (``comp``
  carries the rounding error): late increments ``(new - avg) / t`` fall below
  float32 resolution and a plain running mean freezes, long before the
  average has converged.

  Returns:
    ``(avg, comp)``.
  """
  t = jnp.asarray(step, avg[0].dtype)
  w = 1.0 / (t + 2.0) if average == "uniform" else 2.0 / (t + 3.0)
  return weighted_update(avg, comp, new, w)


def weighted_update(avg: tuple, comp: tuple, new: tuple, w) -> tuple[tuple, tuple]:
  """Kahan-compensated ``avg + w (new - avg)``; returns ``(avg, comp)``."""
  out_a, out_c = [], []
  for a, c_, n in zip(avg, comp, new):
    y = w * (n - a) - c_
    t = a + y
    out_c.append((t - a) - y)
    out_a.append(t)
  return tuple(out_a), tuple(out_c)


def zeros_like(xs: tuple) -> tuple:
  return tuple(jnp.zeros_like(x) for x in xs)


def check_option(name: str, value: str, allowed: tuple[str, ...]) -> str:
  if value not in allowed:
    raise ValueError(f"{name}: must be one of {allowed}, got {value!r}")
  return value


def hparam(name: str, value, *, strict: bool = True) -> jax.Array:
  """A numeric hyperparameter as an array, checked when it is concrete.

  Values must be finite and ``> 0`` (``strict``) or ``>= 0``; a bad value
  raises ``ValueError`` here instead of reaching jit and coming back as NaN or
  a silently wrong run. Traced values (a factory called under ``vmap``/``jit``)
  pass through unchecked.
  """
  if validate.traced(value):
    return value
  if value is None or isinstance(value, (bool, np.bool_, str, bytes)):
    raise ValueError(f"{name}: must be a real number, got {value!r}")
  try:
    raw = np.asarray(value)
  except Exception:  # ragged lists and other objects numpy cannot hold as an array
    raise ValueError(f"{name}: must be a real number or an array of them, got {value!r}") from None
  if raw.dtype.kind not in "iuf":
    raise ValueError(f"{name}: must be real numbers, got {value!r} (dtype {raw.dtype})")
  arr = raw.astype(np.float64)
  bad = ~np.isfinite(arr) | ((arr <= 0) if strict else (arr < 0))
  if bad.any():
    first = arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
    rule = "> 0" if strict else ">= 0"
    raise ValueError(f"{name}: must be finite and {rule}, got {first}")
  return jnp.asarray(value)
