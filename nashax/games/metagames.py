"""Empirical meta-games: Bernoulli games, the Kuhn poker meta-game, and user payoff tables.

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

__all__ = ["bernoulli_game", "sample_outcomes", "payoff_table", "kuhn_poker_value", "kuhn_nash_policy",
           "kuhn_meta_game"]


def bernoulli_game(key: jax.Array, shape: tuple, *, constant_sum: bool = False, dtype: Any = None) -> NormalFormGame:
  """Random win probabilities: ``payoffs ~ Uniform(0, 1)`` of shape ``[K, *shape]``.

  ``constant_sum`` (two players): ``payoffs[1] = 1 - payoffs[0]``, the
  probability that the column agent wins.
  """
  if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
    raise ValueError(f"shape: expected a tuple of strategy counts, got {shape!r}")
  shape = tuple(validate.size(f"shape[{i}]", a) for i, a in enumerate(shape))
  validate.boolean("constant_sum", constant_sum)
  if len(shape) < 1 or min(shape) < 1:
    raise ValueError(f"shape: expected at least one player with >= 1 strategy, got {shape}")
  if constant_sum and len(shape) != 2:
    raise ValueError(f"constant_sum: needs two players, got shape {shape}")
  dtype = validate.float_dtype("dtype", dtype) or jnp.result_type(float)
  if constant_sum:
    p = jax.random.uniform(key, shape, dtype)
    return NormalFormGame(jnp.stack([p, 1.0 - p]))
  return NormalFormGame(jax.random.uniform(key, (len(shape),) + shape, dtype))


def sample_outcomes(key: jax.Array, game: NormalFormGame, num_samples: int) -> jax.Array:
  """``[num_samples, K, *shape]`` Bernoulli outcomes with the game's payoffs as means (payoffs in [0, 1])."""
  validate.size("num_samples", num_samples)
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
  if num_players is not None:
    num_players = validate.size("num_players", num_players, hi=64)
  validate.float_dtype("dtype", dtype)
  if isinstance(source, (str, os.PathLike)):
    rows = []
    if not os.path.isfile(source):
      raise ValueError(f"source: no such file {os.fspath(source)!r}")
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
    cells = int(np.prod([float(m) for m in shape])) * k
    if cells > max(64 * len(rows) * k, 1 << 20):
      raise ValueError(f"source: strategy indices up to {[m - 1 for m in shape]} make a table of {cells} "
                       f"entries from {len(rows)} rows: every pure profile needs a row")
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


# ----------------------------------------------------------------------------- Kuhn poker

# A Kuhn poker policy (both seats) is an array [4, 3] of probabilities indexed by the private card
# (0 = J, 1 = Q, 2 = K): row 0 the first player's bet at the root, row 1 the first player's call after
# check-bet, row 2 the second player's bet after a check, row 3 the second player's call after a bet.


def kuhn_poker_value(first: jax.typing.ArrayLike, second: jax.typing.ArrayLike) -> jax.Array:
  """Exact expected payoff of the first player, ``first`` seated first and ``second`` second.

  Each player antes 1; a bet or call adds 1. Averaged over the six deals
  of J < Q < K. ``first`` and ``second`` are ``[4, 3]`` policies (only rows
  0-1 of ``first`` and rows 2-3 of ``second`` are used).
  """
  a, b = jnp.asarray(first), jnp.asarray(second)
  c1, c2 = np.array([(i, j) for i in range(3) for j in range(3) if i != j]).T
  win = jnp.where(jnp.asarray(c1 > c2), 1.0, -1.0)
  bet, call1 = a[0, c1], a[1, c1]
  bet2, call2 = b[2, c2], b[3, c2]
  after_bet = call2 * 2.0 * win + (1.0 - call2) * 1.0
  after_check = bet2 * (call1 * 2.0 * win - (1.0 - call1)) + (1.0 - bet2) * win
  return jnp.mean(bet * after_bet + (1.0 - bet) * after_check)


def kuhn_nash_policy(alpha: float = 0.0) -> jax.Array:
  """Kuhn's (1950) equilibrium family: first player bets J w.p. ``alpha`` in ``[0, 1/3]``, K w.p. ``3 alpha``,
  calls with Q w.p. ``alpha + 1/3``; second player bets K and bluffs J w.p. 1/3, calls with K and Q w.p. 1/3.
  The first player's value is ``-1/18``."""
  if not 0.0 <= float(alpha) <= 1.0 / 3.0:
    raise ValueError(f"alpha: must be in [0, 1/3], got {alpha}")
  a = float(alpha)
  return jnp.asarray([[a, 0.0, 3 * a], [0.0, a + 1 / 3, 1.0], [1 / 3, 0.0, 1.0], [0.0, 1 / 3, 1.0]])


def kuhn_meta_game(policies: jax.typing.ArrayLike) -> NormalFormGame:
  """The symmetric zero-sum meta-game of ``K`` Kuhn poker policies ``[K, 4, 3]``.

  ``M[i, j] = (v(i, j) - v(j, i)) / 2``: agent ``i``'s exact expected payoff
  against ``j``, averaged over both seatings. Returns ``payoffs = [M, -M]``.
  """
  if not validate.traced(policies):
    p = validate.finite_array(policies, "policies")
    if p.ndim != 3 or p.shape[1:] != (4, 3):
      raise ValueError(f"policies: expected [K, 4, 3] Kuhn poker policies, got shape {p.shape}")
    if (p < 0).any() or (p > 1).any():
      raise ValueError("policies: entries are probabilities and must lie in [0, 1]")
  x = jnp.asarray(policies)
  v = jax.vmap(lambda f: jax.vmap(lambda s: kuhn_poker_value(f, s))(x))(x)  # v[i, j]: i first, j second
  m = 0.5 * (v - v.T)
  return NormalFormGame(jnp.stack([m, -m]))
