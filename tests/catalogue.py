"""The catalogue of test games with independently known equilibria.

Each case: a factory returning a game, its known equilibrium (x*, y*) when
unique (else None), and its value, with the source of the known answer.
"""

import jax
import jax.numpy as jnp
import numpy as np

import nashax
from nashax import games
from nashax.solvers import exact


def _lp(g):
  sol = exact.exact_equilibrium(g)
  return (sol.x, sol.y), float(sol.value)


def rps():
  """Uniform, value 0 (symmetry of RPS)."""
  return games.rock_paper_scissors(), (np.ones(3) / 3, np.ones(3) / 3), 0.0


def weighted_rps():
  """(1/16, 5/8, 5/16) for both players, value 0: a skew-symmetric three-cycle puts on each action the win it
  is not part of, (0.1, 1.0, 0.5) / 1.6 (scissors-paper, rock-scissors, paper-rock wins); checked by LP."""
  x = np.array([1 / 16, 5 / 8, 5 / 16])
  return games.weighted_rock_paper_scissors(1.0, 0.5, 0.1), (x, x), 0.0


def matching_pennies():
  """(1/2, 1/2), value 0 (closed form of 2x2 games without a saddle point)."""
  return games.matching_pennies(), (np.ones(2) / 2, np.ones(2) / 2), 0.0


def two_by_two():
  """[[3, -1], [-2, 1]]: x1 = (d - c)/(a + d - b - c) = 3/7, y1 = (d - b)/(...) = 2/7, v = (ad - bc)/(...) = 1/7."""
  g = nashax.MatrixGame.from_payoff([[3.0, -1.0], [-2.0, 1.0]])
  return g, (np.array([3 / 7, 4 / 7]), np.array([2 / 7, 5 / 7])), 1 / 7


def random_5x7():
  """Random Uniform(-1, 1) 5x7 game; reference by LP (scipy HiGHS)."""
  g = games.random_zero_sum(jax.random.key(7), 5, 7)
  eq, v = _lp(g)
  return g, eq, v


def interior_4x4():
  """Constructed with a known interior equilibrium (games.random_interior_zero_sum), value 0.3."""
  g, (x, y) = games.random_interior_zero_sum(jax.random.key(3), 4, value=0.3)
  return g, (np.asarray(x), np.asarray(y)), 0.3


def dice():
  """Intransitive dice as a preference game: each die beats the next w.p. 5/9 (counted over the 9 face
  pairs), a cycle with equal margins, so the minimax winner is uniform (invariant under the cyclic
  relabelling), value 0."""
  return games.intransitive_dice(), (np.ones(3) / 3, np.ones(3) / 3), 0.0


CASES = {
    "rps": rps,
    "weighted_rps": weighted_rps,
    "matching_pennies": matching_pennies,
    "two_by_two": two_by_two,
    "random_5x7": random_5x7,
    "interior_4x4": interior_4x4,
    "dice": dice,
}


def payoff(g):
  """The zero-sum payoff matrix of a catalogue game (float64 numpy)."""
  from nashax.core.games import PreferenceGame

  if isinstance(g, PreferenceGame):
    g = g.as_matrix_game()
  return np.asarray(g.payoff, np.float64)
