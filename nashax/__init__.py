"""nashax: a JAX framework for game-theoretic alignment theory.

The names a user types: the game classes, ``games`` and ``solvers``, the
drivers ``run`` and ``solve``, ``metrics`` and ``check``, and the status codes. ``nashax.policies``
(Flax) is never imported from here.
"""

from nashax import core, games, solvers
from nashax.core import divergences
from nashax.core.games import (
    ContextualPreferenceGame,
    FRegularizedGame,
    MatrixGame,
    NormalFormGame,
    PreferenceGame,
    TargetDistribution,
)
from nashax.core.metrics import Metrics, metrics
from nashax.core.solver import DIVERGED, MAX_STEPS, NONFINITE, SUCCESS, Info, Solver, check, run, solve

__version__ = "0.1.0"

__all__ = [
    "DIVERGED",
    "MAX_STEPS",
    "NONFINITE",
    "SUCCESS",
    "ContextualPreferenceGame",
    "FRegularizedGame",
    "TargetDistribution",
    "divergences",
    "Info",
    "MatrixGame",
    "Metrics",
    "NormalFormGame",
    "PreferenceGame",
    "Solver",
    "check",
    "core",
    "games",
    "metrics",
    "run",
    "solve",
    "solvers",
]
