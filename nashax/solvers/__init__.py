"""Solvers (``nashax.solvers``): each factory returns a ``Solver`` pytree; ``losses`` are pure functions."""

from nashax.solvers import alpharank, baselines, catalogue, fdiv, halpern, implicit, losses, nlhf, ranking
from nashax.solvers.alpharank import alpharank as alpha_rank
from nashax.solvers.baselines import dpo_optimum, fit_bradley_terry, maxmin_rlhf, pooled_rlhf, rlhf_optimum
from nashax.solvers.exact import (
    ExactSolution,
    RegularizedNash,
    SimplexSolution,
    exact_equilibrium,
    minimax_winners,
    regularized_nash,
    simplex_equilibrium,
    solve_lp,
    von_neumann_winner,
)
from nashax.solvers.ranking import elo, nash_averaging, rank_policies, response_graph_ucb
from nashax.solvers.halpern import forward_step, resolvent_step

# Every Solver factory, under its public name, from the one table of solvers.
globals().update(catalogue.factories())

__all__ = [
    "catalogue",
    "ranking",
    "elo",
    "nash_averaging",
    "rank_policies",
    "response_graph_ucb",
    "alpharank",
    "alpha_rank",
    "fdiv",
    "implicit",
    "forward_step",
    "halpern",
    "resolvent_step",
    "ExactSolution",
    "SimplexSolution",
    "simplex_equilibrium",
    "RegularizedNash",
    "baselines",
    "dpo_optimum",
    "exact_equilibrium",
    "fit_bradley_terry",
    "losses",
    "maxmin_rlhf",
    "minimax_winners",
    "nlhf",
    "pooled_rlhf",
    "regularized_nash",
    "rlhf_optimum",
    "solve_lp",
    "von_neumann_winner",
    *catalogue.factories(),
]
