"""Classic games: rock-paper-scissors and variants, matching pennies, Shapley,
Colonel Blotto, prisoner's dilemma, battle of the sexes, random zero-sum games.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import validate
from nashax.core.games import MatrixGame, NormalFormGame

__all__ = [
    "rock_paper_scissors",
    "weighted_rock_paper_scissors",
    "matching_pennies",
    "shapley",
    "colonel_blotto",
    "prisoners_dilemma",
    "battle_of_the_sexes",
    "random_zero_sum",
    "random_interior_zero_sum",
]


def _f(dtype):
  return validate.float_dtype("dtype", dtype) or jnp.result_type(float)


def weighted_rock_paper_scissors(
    rock_beats_scissors: float = 1.0,
    paper_beats_rock: float = 1.0,
    scissors_beats_paper: float = 1.0,
    dtype: Any = None,
) -> MatrixGame:
  """Rock-paper-scissors whose three wins pay different amounts.

  Actions (rock, paper, scissors). With win payoffs ``a`` (scissors beats
  paper), ``b`` (rock beats scissors), ``c`` (paper beats rock), all > 0, the
  unique equilibrium is ``(a, b, c) / (a + b + c)`` for both players and the
  value is 0 (the payoff is skew-symmetric).

  >>> g = weighted_rock_paper_scissors(1.0, 0.5, 0.1)
  >>> g.payoff.tolist()
  [[0.0, -0.5, 1.0], [0.5, 0.0, -0.10000000149011612], [-1.0, 0.10000000149011612, 0.0]]
  """
  for name, w in (("rock_beats_scissors", rock_beats_scissors),
                  ("paper_beats_rock", paper_beats_rock),
                  ("scissors_beats_paper", scissors_beats_paper)):
    validate.positive_scalar(w, name)
  b, c, a = rock_beats_scissors, paper_beats_rock, scissors_beats_paper
  payoff = np.array([[0.0, -c, b], [c, 0.0, -a], [-b, a, 0.0]])
  return MatrixGame(jnp.asarray(payoff, _f(dtype)))


def rock_paper_scissors(scale: float = 1.0, dtype: Any = None) -> MatrixGame:
  """Rock-paper-scissors with payoffs ``±scale``; equilibrium uniform, value 0."""
  return weighted_rock_paper_scissors(scale, scale, scale, dtype)


def matching_pennies(dtype: Any = None) -> MatrixGame:
  """Matching pennies ``[[1, -1], [-1, 1]]``; equilibrium ``(1/2, 1/2)``, value 0."""
  return MatrixGame(jnp.asarray([[1.0, -1.0], [-1.0, 1.0]], _f(dtype)))


def shapley(dtype: Any = None) -> NormalFormGame:
  """Shapley's 3x3 general-sum game: fictitious play cycles; unique NE uniform.

  References:
    Shapley, "Some topics in two-person games", Advances in Game Theory, 1964.
  """
  a = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
  b = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
  return NormalFormGame(jnp.asarray(np.stack([a, b]), _f(dtype)))


def colonel_blotto(soldiers: int, battlefields: int, dtype: Any = None) -> MatrixGame:
  """Symmetric Colonel Blotto: each side splits ``soldiers`` over ``battlefields``.

  Actions are all ordered allocations (compositions); the payoff is the number
  of battlefields won minus the number lost. The game is symmetric zero-sum,
  so its value is 0.

  References:
    Borel, "La théorie du jeu et les équations intégrales à noyau symétrique", 1921.

  >>> colonel_blotto(3, 2).payoff.shape
  (4, 4)
  """
  soldiers = validate.size("soldiers", soldiers, hi=4096)
  battlefields = validate.size("battlefields", battlefields, hi=64)
  import math

  if math.comb(soldiers + battlefields - 1, battlefields - 1) > 4096:
    raise ValueError(f"soldiers: {soldiers} soldiers on {battlefields} battlefields give "
                     f"{math.comb(soldiers + battlefields - 1, battlefields - 1)} actions (at most 4096)")
  allocs = [c for c in itertools.product(range(soldiers + 1), repeat=battlefields) if sum(c) == soldiers]
  s = np.array(allocs)
  payoff = np.sign(s[:, None, :] - s[None, :, :]).sum(-1)
  return MatrixGame(jnp.asarray(payoff, _f(dtype)))


def prisoners_dilemma(dtype: Any = None) -> NormalFormGame:
  """Prisoner's dilemma (cooperate, defect) with payoffs R=3, S=0, T=5, P=1.

  Defection strictly dominates; the unique equilibrium is (defect, defect).
  """
  a = np.array([[3.0, 0.0], [5.0, 1.0]])
  return NormalFormGame(jnp.asarray(np.stack([a, a.T]), _f(dtype)))


def battle_of_the_sexes(dtype: Any = None) -> NormalFormGame:
  """Battle of the sexes (opera, match): (O, O) pays (3, 2), (M, M) pays (2, 3).

  Two pure equilibria and a mixed one where the row player plays O with
  probability 3/5 and the column player with probability 2/5.
  """
  a = np.array([[3.0, 0.0], [0.0, 2.0]])
  b = np.array([[2.0, 0.0], [0.0, 3.0]])
  return NormalFormGame(jnp.asarray(np.stack([a, b]), _f(dtype)))


def random_zero_sum(key: jax.Array, n: int, m: int, dtype: Any = None) -> MatrixGame:
  """A zero-sum game with i.i.d. ``Uniform(-1, 1)`` payoffs ``[n, m]`` (vmap over keys).

  >>> import jax
  >>> random_zero_sum(jax.random.key(0), 3, 4).payoff.shape
  (3, 4)
  """
  n, m = validate.size("n", n), validate.size("m", m)
  return MatrixGame(jax.random.uniform(key, (n, m), _f(dtype), -1.0, 1.0))


def _dirichlet2(key: jax.Array, n: int, dtype: Any) -> jax.Array:
  """Dirichlet(2, ..., 2) as normalised Gamma(2) draws, each the sum of two Exp(1) = -log U.

  The same law as ``jax.random.dirichlet(key, 2 * ones)``, without its rejection
  sampler (which takes over a second to compile on a CPU).
  """
  u = jax.random.uniform(key, (2, n), dtype, minval=jnp.finfo(dtype).tiny, maxval=1.0)
  g = -jnp.sum(jnp.log(u), axis=0)
  return g / jnp.sum(g)


def random_interior_zero_sum(key: jax.Array, n: int, value: float = 0.0, dtype: Any = None) -> MatrixGame:
  """A random ``n x n`` zero-sum game with a known, fully mixed equilibrium.

  Draws ``x*, y*`` from a Dirichlet(2) and ``B`` with ``Uniform(-1, 1)`` entries,
  then removes the components that would let a pure deviation gain:
  ``M = B - (B y*) 1^T``, ``A = M - 1 (x*^T M) + value``. Then
  ``A y* = value 1`` and ``x*^T A = value 1^T``, so ``(x*, y*)`` is an
  equilibrium with full support; for a generic ``B`` it is the unique one.

  Returns:
    ``(game, (x*, y*))``.
  """
  n = validate.size("n", n)
  value = validate.number("value", value)
  kb, kx, ky = jax.random.split(key, 3)
  dt = _f(dtype)
  b = jax.random.uniform(kb, (n, n), dt, -1.0, 1.0)
  x, y = _dirichlet2(kx, n, dt), _dirichlet2(ky, n, dt)
  m = b - jnp.outer(b @ y, jnp.ones(n, dt))
  a = m - jnp.outer(jnp.ones(n, dt), x @ m) + value
  return MatrixGame(a), (x, y)
