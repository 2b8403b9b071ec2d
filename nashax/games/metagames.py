"""Empirical meta-games: Bernoulli games and user payoff tables (partial; Kuhn poker is to come).

A meta-game's payoffs are the expected outcomes of agents (policies) played
against each other; in practice they are estimated from noisy matches. The
tables here use the ``NormalFormGame`` convention ``[K, a_1, ..., a_K]``.

References:
  Rowland et al., "Multiagent Evaluation under Incomplete Information",
  NeurIPS 2019, arXiv:1909.09849 (Bernoulli games with noisy outcomes).
"""

from __future__ import annotations

import csv
import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import validate
from nashax.core.games import NormalFormGame

__all__ = ["bernoulli_game", "sample_outcomes", "payoff_table"]


def bernoulli_game(key: jax.Array, shape: tuple, *, constant_sum: bool = False, dtype: Any = None) -> NormalFormGame:
  """Random win probabilities: ``payoffs ~ Uniform(0, 1)`` of shape ``[K, *shape]``.

  ``constant_sum`` (two players): ``payoffs[1] = 1 - payoffs[0]``, the
  probability that the column agent wins.
  """
  shape = tuple(int(a) for a in shape)
  if len(shape) < 1 or min(shape) < 1:
    raise ValueError(f"shape: expected at least one player with >= 1 strategy, got {shape}")
  if constant_sum and len(shape) != 2:
    raise ValueError(f"constant_sum: needs two players, got shape {shape}")
  dtype = dtype or jnp.result_type(float)
  if constant_sum:
    p = jax.random.uniform(key, shape, dtype)
    return NormalFormGame(jnp.stack([p, 1.0 - p]))
  return NormalFormGame(jax.random.uniform(key, (len(shape),) + shape, dtype))


def sample_outcomes(key: jax.Array, game: NormalFormGame, num_samples: int) -> jax.Array:
  """``[num_samples, K, *shape]`` Bernoulli outcomes with the game's payoffs as means (payoffs in [0, 1])."""
  if int(num_samples) < 1:
    raise ValueError(f"num_samples: must be >= 1, got {num_samples}")
  p = game.payoffs
  shape = (int(num_samples),) + p.shape
  return jax.random.bernoulli(key, jnp.broadcast_to(p, shape), shape).astype(p.dtype)


def payoff_table(source: Any, num_players: Optional[int] = None, dtype: Any = None) -> NormalFormGame:
  """A user's empirical payoff table as a validated ``NormalFormGame``.

  Args:
    source: a ``[K, a_1, ..., a_K]`` array; a square ``[n, n]`` array (a
      symmetric two-player meta-game, ``M[i, j]`` = payoff of ``i`` against
      ``j``: the column player's table is ``M.T``); or the path of a CSV
      file in long format, one row per pure profile:
      ``s_1, ..., s_K, u_1, ..., u_K`` (integer strategy indices from 0, then
      the K payoffs; a header row of non-numbers is skipped).
    num_players: ``K`` for a CSV (default: half the number of columns).
  """
  if isinstance(source, (str, os.PathLike)):
    rows = []
    with open(source, newline="") as fh:
      for i, row in enumerate(csv.reader(fh)):
        if not row:
          continue
        try:
          rows.append([float(v) for v in row])
        except ValueError:
          if i == 0:
            continue  # header
          raise ValueError(f"source: row {i + 1} of {source} is not numeric: {row}") from None
    if not rows:
      raise ValueError(f"source: {source} has no data rows")
    width = {len(r) for r in rows}
    if len(width) != 1:
      raise ValueError(f"source: rows of {source} have different lengths {sorted(width)}")
    w = width.pop()
    k = num_players if num_players is not None else w // 2
    if w != 2 * k:
      raise ValueError(f"source: a {k}-player CSV needs {2 * k} columns (profile, payoffs), got {w}")
    data = np.asarray(rows)
    prof = data[:, :k]
    if (prof != np.round(prof)).any() or (prof < 0).any():
      raise ValueError("source: strategy indices must be integers >= 0")
    prof = prof.astype(int)
    shape = tuple(int(m) + 1 for m in prof.max(0))
    seen = np.zeros(shape, bool)
    table = np.full((k,) + shape, np.nan)
    for p, u in zip(prof, data[:, k:]):
      if seen[tuple(p)]:
        raise ValueError(f"source: profile {tuple(p)} appears twice")
      seen[tuple(p)] = True
      table[(slice(None),) + tuple(p)] = u
    if not seen.all():
      missing = tuple(int(i) for i in np.argwhere(~seen)[0])
      raise ValueError(f"source: profile {missing} is missing ({int((~seen).sum())} missing in all)")
    return NormalFormGame.from_payoffs(table, dtype)
  a = validate.finite_array(source, "source")
  if a.ndim == 2:
    if a.shape[0] != a.shape[1]:
      raise ValueError(f"source: a 2-D table must be square (symmetric meta-game), got shape {a.shape}")
    a = np.stack([a, a.T])
  return NormalFormGame.from_payoffs(a, dtype)
