"""Preference games: random intransitive preferences, Condorcet cycles,
Bradley-Terry preferences from rewards, intransitive dice.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import validate
from nashax.core.games import PreferenceGame

__all__ = [
    "random_preference_game",
    "condorcet_cycle",
    "bradley_terry",
    "intransitive_dice",
]


def _f(dtype):
  return dtype or jnp.result_type(float)


def random_preference_game(key: jax.Array, n: int, dtype: Any = None) -> PreferenceGame:
  """A random (generically intransitive) preference game over ``n`` responses.

  The upper triangle is i.i.d. ``Uniform(0, 1)``, the lower triangle is
  ``1 - upper^T`` and the diagonal is 1/2 (THEORY.md section 0, the generator
  of the EGPO simulations). Valid by construction; vmap over keys for a batch.

  >>> import jax
  >>> g = random_preference_game(jax.random.key(0), 4)
  >>> bool(jnp.allclose(g.preference + g.preference.T, 1.0))
  True
  """
  u = jax.random.uniform(key, (n, n), _f(dtype))
  upper = jnp.triu(u, 1)
  p = upper + jnp.tril(1.0 - upper.T, -1) + 0.5 * jnp.eye(n, dtype=u.dtype)
  return PreferenceGame(p)


def condorcet_cycle(n: int = 3, p: float = 1.0, dtype: Any = None) -> PreferenceGame:
  """A regular tournament: response ``i`` beats the next ``(n-1)/2`` responses (mod n) w.p. ``p``.

  For ``n = 3`` this is the Condorcet paradox ``0 > 1 > 2 > 0``. Every
  response wins exactly half of its comparisons, so by symmetry the minimax
  winner is uniform (and there is no Condorcet winner) for any ``p > 1/2``.

  Args:
    n: odd number of responses, >= 3.
    p: probability that the favoured response wins, in (1/2, 1].
  """
  if int(n) != n or n < 3 or n % 2 == 0:
    raise ValueError(f"n: a regular tournament needs an odd n >= 3, got {n}")
  if not 0.5 < p <= 1.0:
    raise ValueError(f"p: must be in (1/2, 1], got {p}")
  d = (np.arange(n)[None, :] - np.arange(n)[:, None]) % n
  pm = np.where(d == 0, 0.5, np.where(d <= (n - 1) // 2, p, 1.0 - p))
  return PreferenceGame(jnp.asarray(pm, _f(dtype)))


def bradley_terry(rewards: Any, dtype: Any = None) -> PreferenceGame:
  """Bradley-Terry preferences ``P[i, j] = sigmoid(r_i - r_j)`` (transitive).

  Args:
    rewards: ``[n]`` finite rewards.
  """
  r = validate.finite_array(rewards, "rewards")
  if r.ndim != 1:
    raise ValueError(f"rewards: expected a 1-D [n] vector, got shape {r.shape}")
  rr = jnp.asarray(r, _f(dtype))
  return PreferenceGame(jax.nn.sigmoid(rr[:, None] - rr[None, :]))


def intransitive_dice(dtype: Any = None) -> PreferenceGame:
  """Efron-style dice ``{2,4,9}, {1,6,8}, {3,5,7}``: each beats the next w.p. 5/9.

  The minimax winner is uniform (THEORY.md section 4, worked examples).
  """
  dice = [(2, 4, 9), (1, 6, 8), (3, 5, 7)]
  p = np.full((3, 3), 0.5)
  for i, j in itertools.permutations(range(3), 2):
    p[i, j] = np.mean([a > b for a, b in itertools.product(dice[i], dice[j])])
  return PreferenceGame(jnp.asarray(p, _f(dtype)))
