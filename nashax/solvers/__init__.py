"""Solvers (``nashax.solvers``): each factory returns a ``Solver`` pytree."""

from nashax.solvers.equilibrium import (
    extragradient,
    fictitious_play,
    mmd,
    mwu,
    optimistic_mwu,
    regret_matching_plus,
    replicator,
)
from nashax.solvers.exact import ExactSolution, exact_equilibrium, solve_lp, von_neumann_winner

__all__ = [
    "ExactSolution",
    "exact_equilibrium",
    "extragradient",
    "fictitious_play",
    "mmd",
    "mwu",
    "optimistic_mwu",
    "regret_matching_plus",
    "replicator",
    "solve_lp",
    "von_neumann_winner",
]
