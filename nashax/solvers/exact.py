"""Exact equilibria of zero-sum matrix games by linear programming.

The reference every solver is tested against. It runs in numpy/scipy (HiGHS),
outside jit, one game at a time; batched inputs are solved in a Python loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import optimize

from nashax.core import validate
from nashax.core.games import MatrixGame, PreferenceGame

__all__ = ["ExactSolution", "solve_lp", "exact_equilibrium", "von_neumann_winner"]


class ExactSolution(NamedTuple):
  """Value and optimal strategies of a zero-sum game (numpy float64).

  Attributes:
    value: ``[...]`` the game value ``max_x min_y x^T A y``.
    x: ``[..., n]`` an optimal (maximin) row strategy.
    y: ``[..., m]`` an optimal (minimax) column strategy.
  """

  value: np.ndarray
  x: np.ndarray
  y: np.ndarray


def _maximin(a: np.ndarray) -> tuple[float, np.ndarray]:
  """max_x min_j (x^T A)_j as an LP over (x, v)."""
  n, m = a.shape
  c = np.zeros(n + 1)
  c[-1] = -1.0
  a_ub = np.hstack([-a.T, np.ones((m, 1))])
  a_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
  res = optimize.linprog(
      c, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0],
      bounds=[(0, None)] * n + [(None, None)], method="highs",
  )
  if res.status != 0:
    raise RuntimeError(f"linprog failed: {res.message}")
  x = np.clip(res.x[:n], 0.0, None)
  return float(res.x[-1]), x / x.sum()


def solve_lp(payoff: Any) -> ExactSolution:
  """Value and optimal strategies of the zero-sum game ``x^T A y`` (row maximises).

  Args:
    payoff: ``[..., n, m]`` finite payoffs; leading axes are solved one by one.

  Returns:
    ``ExactSolution`` in float64; ``x`` maximin, ``y`` minimax.

  References:
    von Neumann, "Zur Theorie der Gesellschaftsspiele", Math. Ann. 100, 1928;
    Dantzig, "A proof of the equivalence of the programming problem and the
    game problem", 1951 (the LP formulation).

  >>> sol = solve_lp([[1., -1.], [-1., 1.]])
  >>> round(float(sol.value), 9) + 0.0, sol.x.round(6).tolist(), sol.y.round(6).tolist()
  (0.0, [0.5, 0.5], [0.5, 0.5])
  """
  a = np.asarray(payoff, np.float64)
  if a.ndim > 2:
    sols = [solve_lp(ai) for ai in a.reshape((-1,) + a.shape[-2:])]
    lead = a.shape[:-2]
    return ExactSolution(
        np.array([s.value for s in sols]).reshape(lead),
        np.stack([s.x for s in sols]).reshape(lead + (a.shape[-2],)),
        np.stack([s.y for s in sols]).reshape(lead + (a.shape[-1],)),
    )
  a = validate.payoff_matrix(a, "payoff")
  v, x = _maximin(a)
  _, y = _maximin(-a.T)
  return ExactSolution(np.float64(v), x, y)


def _masked(game: MatrixGame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  a = np.asarray(game.payoff, np.float64)
  rm = np.ones(a.shape[-2], bool) if game.row_mask is None else np.asarray(game.row_mask, bool)
  cm = np.ones(a.shape[-1], bool) if game.col_mask is None else np.asarray(game.col_mask, bool)
  return a, rm, cm


def exact_equilibrium(game: Any) -> ExactSolution:
  """The LP equilibrium of one (possibly padded) zero-sum game.

  Args:
    game: a ``MatrixGame`` or an unregularised ``PreferenceGame`` (solved as
      ``P - 1/2``), unbatched.

  Returns:
    ``ExactSolution``; padding actions get probability 0.
  """
  if isinstance(game, PreferenceGame):
    if game.is_regularized:
      raise ValueError("game: exact_equilibrium solves unregularised games (the LP); got beta set")
    game = game.as_matrix_game()
  if not isinstance(game, MatrixGame):
    raise ValueError(f"game: expected a MatrixGame or PreferenceGame, got {type(game).__name__}")
  a, rm, cm = _masked(game)
  if a.ndim != 2:
    raise ValueError(f"game: expected one game, got a batch with payoff shape {a.shape}")
  sol = solve_lp(a[np.ix_(rm, cm)])
  x = np.zeros(a.shape[0]); x[rm] = sol.x
  y = np.zeros(a.shape[1]); y[cm] = sol.y
  return ExactSolution(sol.value, x, y)


def von_neumann_winner(preference: Any) -> np.ndarray:
  """The minimax (von Neumann) winner of a preference matrix: ``argmax_p min_q p^T P q``.

  Args:
    preference: ``[n, n]`` with ``P + P^T = 1``.

  Returns:
    ``[n]`` a distribution ``p`` with ``p^T P q >= 1/2`` for every ``q``.

  >>> von_neumann_winner([[0.5, 0.9], [0.1, 0.5]]).round(6).tolist()
  [1.0, 0.0]
  """
  p = validate.preference_matrix(preference, "preference")
  return solve_lp(p - 0.5).x
