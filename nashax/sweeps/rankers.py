"""Rankings as sweep rows: alpha-rank, Nash averaging and ResponseGraphUCB on a family of games.

A ranker is a frozen pytree like a ``Solver`` (a static row function, traced
hyperparameters and static options), so a sweep stacks rankers of one
structure and vmaps over them exactly as it does over solvers. Each row is
one call, not an iteration: the sweep's trace has one entry (``run.steps``
defaults to 1), and its metrics are the ranker's own:

================== ==============================================================================
ranker              metrics
================== ==============================================================================
alpharank           ``sink_mass`` (mass on the sink components of the weak response graph, where
                    the infinite-alpha mass sits), ``max_mass``, ``residual`` (``|pi C - pi|_1``)
nash_averaging      ``gap`` (``max_i (A p)_i``, 0 at an equilibrium), ``max_mass``, ``entropy``
response_graph_ucb  ``samples`` (profile samples drawn), ``errors`` (edges oriented against the
                    true response graph), ``resolved`` (fraction of edges resolved)
================== ==============================================================================

``alpha = inf`` (TOML ``inf``) is the limit chain, its own compiled group;
``m``, Nash averaging's ``eps`` and ``steps`` and ResponseGraphUCB's ``delta``
and ``max_samples`` are static (each value its own group).

A game's payoffs are read as a normal-form table ``[K, a_1, ..., a_K]``: a
matrix game ``A`` as ``(A, -A)``, a preference game ``P`` as ``(P - 1/2, P^T - 1/2)``.
ResponseGraphUCB samples Bernoulli outcomes, so its means are the table mapped
into ``[0, 1]`` without changing any preference: ``(P, P^T)`` for a preference
game, ``((A - lo) / (hi - lo), (hi - A) / (hi - lo))`` for a matrix game, each
player's payoffs min-max scaled for a normal-form game.

References:
  Omidshafiei et al., "alpha-Rank: Multi-Agent Evaluation by Evolution",
  Scientific Reports 2019, arXiv:1903.01373.
  Balduzzi et al., "Re-evaluating Evaluation", NeurIPS 2018, arXiv:1806.02643 (Nash averaging).
  Rowland et al., "Multiagent Evaluation under Incomplete Information",
  NeurIPS 2019, arXiv:1909.09849 (ResponseGraphUCB).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from nashax.core import _struct, validate
from nashax.core.games import MatrixGame, NormalFormGame, PreferenceGame
from nashax.solvers import alpharank as _ar
from nashax.solvers import ranking as _rk

__all__ = ["Ranker", "RANKERS", "METRICS", "alpharank", "nash_averaging", "response_graph_ucb",
           "payoff_table", "ucb_means", "sink_mass"]


@_struct.dataclass
class Ranker:
  """A ranking method as a pytree: ``row_fn(hparams, options, game, key) -> {metric: []}``.

  Attributes:
    row_fn: module-level function (static).
    hparams: traced numbers.
    options: static options (a hashable tuple of ``(name, value)``).
    name: the ranker's name (static).
  """

  row_fn: Callable = _struct.field(static=True)
  hparams: Any = None
  options: tuple = _struct.field(static=True, default=())
  name: str = _struct.field(static=True, default="")

  def __call__(self, game: Any, key: jax.Array) -> dict:
    return self.row_fn(self.hparams, dict(self.options), game, key)


def payoff_table(game: Any) -> jax.Array:
  """``[K, a_1, ..., a_K]`` payoffs of a matrix, preference or normal-form game (see the module docstring)."""
  if isinstance(game, PreferenceGame):
    a = game.preference - 0.5
    return jnp.stack([a, a.T])
  if isinstance(game, MatrixGame):
    return jnp.stack([game.payoff, -game.payoff])
  if isinstance(game, NormalFormGame):
    return game.payoffs
  raise ValueError(f"game: a ranker needs a matrix, preference or normal-form game, got "
                   f"{type(game).__name__}")


def ucb_means(game: Any) -> jax.Array:
  """Bernoulli means in ``[0, 1]`` with the preferences of ``payoff_table(game)`` (module docstring)."""
  if isinstance(game, PreferenceGame):
    return jnp.stack([game.preference, game.preference.T])
  u = payoff_table(game)
  axes = tuple(range(1, u.ndim))
  lo, hi = jnp.min(u, axis=axes, keepdims=True), jnp.max(u, axis=axes, keepdims=True)
  return (u - lo) / jnp.where(hi > lo, hi - lo, 1.0)


def sink_mass(graph: jax.Array, pi: jax.Array) -> jax.Array:
  """The mass of ``pi`` on the sink strongly connected components of the directed ``graph: bool[N, N]``.

  A node is in a sink component iff every node it reaches reaches it back; reachability is the
  transitive closure by repeated squaring (``ceil(log2 N)`` boolean products).
  """
  n = graph.shape[-1]
  reach = graph | jnp.eye(n, dtype=bool)
  for _ in range(max(1, math.ceil(math.log2(max(n, 2))))):
    r = reach.astype(jnp.int32)
    reach = (r @ r) > 0
  sink = jnp.all(~reach | reach.T, axis=1)
  return jnp.sum(jnp.where(sink, pi, 0.0))


def _alpharank_row(hp, opts, game, key):
  del key
  u = payoff_table(game)
  single = opts["single_population"]
  if opts["infinite"]:
    lr = _ar.infinite_alpha_log_rates(u, single)
  elif single:
    lr = _ar.single_population_log_rates(u[0], jnp.asarray(hp["alpha"], u.dtype), opts["m"])
  else:
    lr = _ar.multi_population_log_rates(u, jnp.asarray(hp["alpha"], u.dtype), opts["m"])
  pi = jnp.exp(_ar.stationary_log(lr))
  graph = _ar.response_graph(u, single, weak=True)
  return {"oracle_calls": jnp.zeros((), jnp.int32), "sink_mass": sink_mass(graph, pi),
          "max_mass": jnp.max(pi), "residual": _ar._residual(pi, lr), "pi": pi}


def alpharank(alpha: float = 1.0, m: int = 50, *, single_population: bool = False) -> Ranker:
  """alpha-rank (``solvers.alpha_rank``) as a sweep row; ``alpha = inf`` is the limit chain.

  Args:
    alpha: selection intensity ``>= 0`` (traced), or ``inf``.
    m: population size ``>= 2`` (static).
    single_population: one population for a symmetric two-player game (its row player's table).
  """
  infinite = isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and alpha == math.inf
  a = math.inf if infinite else validate.number("alpha", alpha, lo=0.0)
  m = validate.size("m", m, lo=2)
  validate.boolean("single_population", single_population)
  hp = {} if infinite else {"alpha": jnp.asarray(a, jnp.result_type(float))}
  opts = (("m", m), ("infinite", infinite), ("single_population", single_population))
  return Ranker(_alpharank_row, hp, opts, "alpharank")


def _nash_averaging_row(hp, opts, game, key):
  del hp, key
  if not isinstance(game, PreferenceGame):
    raise ValueError(f"game: Nash averaging needs a win-rate table (a preference game), got "
                     f"{type(game).__name__}")
  r = _rk.nash_averaging(game.preference, eps=opts["eps"], steps=opts["steps"])
  p = r.equilibrium
  ent = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
  return {"oracle_calls": jnp.zeros((), jnp.int32), "gap": r.gap, "max_mass": jnp.max(p), "entropy": ent,
          "pi": p}


def nash_averaging(*, eps: float = 1e-6, steps: int = 20_000) -> Ranker:
  """Nash averaging (``solvers.nash_averaging``) of a preference game's win rates.

  Args:
    eps: the clipping of win rates before the logit, in ``(0, 1/2)`` (static).
    steps: accelerated projected-gradient steps (static).
  """
  eps = validate.number("eps", eps, lo=0.0, hi=0.5, lo_open=True, hi_open=True)
  steps = validate.size("steps", steps)
  return Ranker(_nash_averaging_row, {}, (("eps", eps), ("steps", steps)), "nash_averaging")


def _ucb_row(hp, opts, game, key):
  del hp
  mu = ucb_means(game)
  est = _rk._ucb(key, mu, opts["delta"], opts["max_samples"], _rk._time_uniform_width)
  truth = _ar.response_graph(mu)
  src, dst = est.edges[:, 0], est.edges[:, 1]
  gap = truth[src, dst] != truth[dst, src]  # edges with a strict preference (ties have no true orientation)
  wrong = gap & (est.graph[src, dst] != truth[src, dst])
  return {"oracle_calls": est.samples, "samples": est.samples.astype(mu.dtype),
          "errors": jnp.sum(wrong).astype(mu.dtype), "resolved": jnp.mean(est.resolved.astype(mu.dtype))}


def response_graph_ucb(delta: float = 0.1, *, max_samples: int = 10 ** 6) -> Ranker:
  """ResponseGraphUCB (``solvers.response_graph_ucb``) on Bernoulli outcomes with ``ucb_means(game)``.

  Args:
    delta: the failure probability in ``(0, 1)`` (static: each value its own group).
    max_samples: the sample budget (static).
  """
  delta = validate.number("delta", delta, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
  max_samples = validate.size("max_samples", max_samples, lo=2, hi=2 ** 31 - 1)
  return Ranker(_ucb_row, {}, (("delta", float(delta)), ("max_samples", max_samples)), "response_graph_ucb")


RANKERS: dict[str, Callable[..., Ranker]] = {
    "alpharank": alpharank,
    "nash_averaging": nash_averaging,
    "response_graph_ucb": response_graph_ucb,
}

METRICS: dict[str, tuple[str, ...]] = {
    "alpharank": ("sink_mass", "max_mass", "residual"),
    "nash_averaging": ("gap", "max_mass", "entropy"),
    "response_graph_ucb": ("samples", "errors", "resolved"),
}

# Vector outputs kept beside the scalar metrics (the ranking itself), padded with NaN to the largest game.
VECTORS = ("pi",)


