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
from nashax.core.games import ContextualPreferenceGame, PreferenceGame

__all__ = [
    "random_preference_game",
    "annotator_mixture",
    "bradley_terry_mixture",
    "three_rater_cycle",
    "random_contextual_preference_game",
    "contextual_bradley_terry",
    "condorcet_cycle",
    "bradley_terry",
    "intransitive_dice",
]


def _f(dtype):
  return validate.float_dtype("dtype", dtype) or jnp.result_type(float)


def random_preference_game(key: jax.Array, n: int, dtype: Any = None) -> PreferenceGame:
  """A random (generically intransitive) preference game over ``n`` responses.

  The upper triangle is i.i.d. ``Uniform(0, 1)``, the lower triangle is
  ``1 - upper^T`` and the diagonal is 1/2 (the generator of the EGPO simulations).
  Valid by construction; vmap over keys for a batch.

  >>> import jax
  >>> g = random_preference_game(jax.random.key(0), 4)
  >>> bool(jnp.allclose(g.preference + g.preference.T, 1.0))
  True
  """
  n = validate.size("n", n)
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
  n = validate.size("n", n, lo=3, hi=1 << 14)
  p = validate.number("p", p)
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

  The minimax winner is uniform.
  """
  dice = [(2, 4, 9), (1, 6, 8), (3, 5, 7)]
  p = np.full((3, 3), 0.5)
  for i, j in itertools.permutations(range(3), 2):
    p[i, j] = np.mean([a > b for a, b in itertools.product(dice[i], dice[j])])
  return PreferenceGame(jnp.asarray(p, _f(dtype)))


def annotator_mixture(preferences: Any, weights: Any = None, dtype: Any = None) -> PreferenceGame:
  """The population preference of a mixture of annotator types: ``P = sum_a w_a P_a``.

  Each type may be transitive (a Bradley-Terry rater) while the mixture is
  not: that is how intransitive population preferences arise (see
  ``three_rater_cycle``).

  Args:
    preferences: ``[A, n, n]`` one valid preference matrix per annotator type.
    weights: ``[A]`` population shares (default: equal).
  """
  ps = validate.finite_array(preferences, "preferences")
  if ps.ndim != 3:
    raise ValueError(f"preferences: expected [annotators, n, n], got shape {ps.shape}")
  for a in range(ps.shape[0]):
    validate.preference_matrix(ps[a], f"preferences[{a}]")
  w = np.full(ps.shape[0], 1.0 / ps.shape[0]) if weights is None else validate.distribution(
      weights, "weights", size=ps.shape[0])
  return PreferenceGame.from_matrix(np.einsum("a,aij->ij", w / w.sum(), ps), dtype=dtype)


def bradley_terry_mixture(rewards: Any, weights: Any = None, dtype: Any = None) -> PreferenceGame:
  """Mixture of Bradley-Terry annotator populations, ``P = sum_a w_a sigmoid(r_a,i - r_a,j)``.

  Args:
    rewards: ``[A, n]`` one reward vector per population.
    weights: ``[A]`` population shares (default: equal).
  """
  r = validate.finite_array(rewards, "rewards")
  if r.ndim != 2:
    raise ValueError(f"rewards: expected [populations, n], got shape {r.shape}")
  ps = 1.0 / (1.0 + np.exp(-(r[:, :, None] - r[:, None, :])))
  return annotator_mixture(ps, weights, dtype)


def three_rater_cycle(eps: float = 0.1, dtype: Any = None) -> PreferenceGame:
  """A Condorcet cycle from three deterministic rater types (a mixture of transitive raters).

  Types 1, 2, 3 (shares ``1/3 - eps``, ``1/3 + eps/2``, ``1/3 + eps/2``)
  prefer ``y2 > y1``, ``y1 > y3`` and ``y3 > y2`` respectively and are
  indifferent (1/2) otherwise. The minimax winner is
  ``(1/3 + eps/2, 1/3 + eps/2, 1/3 - eps)`` for small ``|eps|`` (the LP
  gives it at ``eps = +-0.1``).
  """
  eps = validate.number("eps", eps)
  if not -2.0 / 3.0 < eps < 1.0 / 3.0:
    raise ValueError(f"eps: the shares 1/3 - eps and 1/3 + eps/2 must be positive, need -2/3 < eps < 1/3, got {eps}")
  base = np.full((3, 3, 3), 0.5)
  for k, (win, lose) in enumerate([(1, 0), (0, 2), (2, 1)]):
    base[k, win, lose], base[k, lose, win] = 1.0, 0.0
  return annotator_mixture(base, [1 / 3 - eps, 1 / 3 + eps / 2, 1 / 3 + eps / 2], dtype)


def random_contextual_preference_game(key: jax.Array, num_prompts: int, n: int, dtype: Any = None
                                      ) -> ContextualPreferenceGame:
  """Independent random intransitive preference games per prompt, uniform prompt weights."""
  num_prompts, n = validate.size("num_prompts", num_prompts), validate.size("n", n)
  keys = jax.random.split(key, num_prompts)
  p = jax.vmap(lambda k: random_preference_game(k, n, dtype).preference)(keys)
  return ContextualPreferenceGame(p, jnp.full((num_prompts,), 1.0 / num_prompts, p.dtype))


def contextual_bradley_terry(rewards: Any, prompt_weights: Any = None, dtype: Any = None
                             ) -> ContextualPreferenceGame:
  """Bradley-Terry preferences per prompt from rewards ``r(x, y)``: ``[x, n]``."""
  r = validate.finite_array(rewards, "rewards")
  if r.ndim != 2:
    raise ValueError(f"rewards: expected [prompts, n], got shape {r.shape}")
  p = 1.0 / (1.0 + np.exp(-(r[:, :, None] - r[:, None, :])))
  return ContextualPreferenceGame.from_matrices(p, prompt_weights, dtype)
