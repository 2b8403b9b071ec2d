"""The shared vocabulary (``nashax.core``): games, simplex helpers, metrics, the solver protocol."""

from nashax.core import metrics, operators, simplex, validate
from nashax.core.games import ContextualPreferenceGame, MatrixGame, NormalFormGame, PreferenceGame, pad, stack
from nashax.core.metrics import (
    Metrics,
    default_residual,
    duality_gap,
    entropy_regularized_gap,
    exploitability,
    kl_to_optimum,
    nash_conv,
    preference_gap,
    utilities,
)
from nashax.core.solver import DIVERGED, MAX_STEPS, NONFINITE, RESULTS, SUCCESS, Info, Solver, check, run, solve

__all__ = [
    "operators",
    "DIVERGED",
    "Info",
    "MAX_STEPS",
    "MatrixGame",
    "Metrics",
    "NONFINITE",
    "NormalFormGame",
    "PreferenceGame",
    "ContextualPreferenceGame",
    "RESULTS",
    "SUCCESS",
    "Solver",
    "check",
    "default_residual",
    "duality_gap",
    "entropy_regularized_gap",
    "exploitability",
    "kl_to_optimum",
    "metrics",
    "nash_conv",
    "pad",
    "preference_gap",
    "run",
    "simplex",
    "solve",
    "stack",
    "utilities",
    "validate",
]
