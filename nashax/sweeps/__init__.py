"""Sweeps (``nashax.sweeps``): a grid of games x solvers x hyperparameters x seeds as one vmap.

``run_sweep(config, out)`` validates the config (before anything compiles),
runs the grid in chunks (``lax.map`` with a batch size inside each jitted
chunk; the batch axis sharded over all devices), writes each finished chunk
atomically, and assembles a tidy table: ``results.csv`` / ``results.npz``
(columnar) and ``traces.npz``. A killed sweep resumes from its last finished
chunk; a finished one is not run again. ``plot_results(out)`` draws the
standard figures. The command line is ``nashax sweep CONFIG`` and
``nashax plot RESULTS``.

What can be swept (``nashax sweep --list``): every game family of
``registry.GAME_FAMILIES`` (matrix, preference, contextual, f-regularised with
the divergence as a grid axis, finite sums for the Halpern family, payoff
tables from a file, alignment games), every solver of ``registry.SOLVERS``,
the rankers of ``rankers.RANKERS`` (alpha-rank over alpha including ``inf``
and ``m``, Nash averaging, ResponseGraphUCB over ``delta``), and the user's own
factories named ``"module:function"``. ``[run] x64 = true`` runs in float64.
"""

from nashax.sweeps import rankers, registry
from nashax.sweeps.config import GridPoint, SolverSpec, SweepConfig, from_dict, load_config
from nashax.sweeps.plot import plot_results
from nashax.sweeps.registry import GAME_FAMILIES, SOLVERS, GameFamily
from nashax.sweeps.runner import Results, default_out, load_results, run_sweep

__all__ = [
    "GAME_FAMILIES",
    "SOLVERS",
    "GameFamily",
    "GridPoint",
    "Results",
    "SolverSpec",
    "SweepConfig",
    "default_out",
    "from_dict",
    "load_config",
    "load_results",
    "plot_results",
    "rankers",
    "registry",
    "run_sweep",
]
