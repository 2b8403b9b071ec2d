"""What a sweep may name: game families and solver factories.

A game family is built *inside* jit from a PRNG key and the family's traced
hyperparameters, so a sweep over ``beta`` is a vmap over games (a
number that changes the equilibrium belongs to the game). ``size`` is static:
each size is its own batch group.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable

import jax
import jax.numpy as jnp

from nashax import games as _games
from nashax import solvers as _solvers

__all__ = ["GameFamily", "GAME_FAMILIES", "SOLVERS", "solver_params"]


@dataclasses.dataclass(frozen=True)
class GameFamily:
  """A generator of games for sweeps.

  Attributes:
    build: ``(key, size, **hparams) -> game``, traceable in ``key`` and hparams.
    hparams: the traced game hyperparameters it takes (each ``> 0``).
    sized: whether it takes ``size`` (the number of actions / responses).
    min_size: the smallest allowed size.
    doc: one line for ``nashax sweep --list``.
  """

  build: Callable[..., Any]
  hparams: tuple[str, ...]
  sized: bool
  min_size: int
  doc: str


def _regularize(g, beta):
  """``g.regularized(beta)`` toward the uniform reference, for a traced beta."""
  if beta is None:
    return g
  n = g.preference.shape[-1]
  dt = g.preference.dtype
  return g.replace(beta=jnp.asarray(beta, dt), log_ref=jnp.full((n,), -jnp.log(n), dt))


def _random_preference(key, size, beta=None):
  return _regularize(_games.random_preference_game(key, size), beta)


def _bradley_terry(key, size, beta=None, reward_scale=1.0):
  r = reward_scale * jax.random.normal(key, (size,))
  p = jax.nn.sigmoid(r[:, None] - r[None, :])
  return _regularize(_games.preference.PreferenceGame(p), beta)


def _condorcet(key, size, beta=None):
  del key
  return _regularize(_games.condorcet_cycle(size), beta)


def _rps(key, size=None):
  del key, size
  return _games.rock_paper_scissors()


GAME_FAMILIES: dict[str, GameFamily] = {
    "random_zero_sum": GameFamily(lambda key, size: _games.random_zero_sum(key, size, size), (), True, 2,
                                  "size x size zero-sum game, i.i.d. Uniform(-1, 1) payoffs"),
    "random_interior_zero_sum": GameFamily(lambda key, size: _games.random_interior_zero_sum(key, size)[0], (), True, 2,
                                           "size x size zero-sum game with a fully mixed equilibrium"),
    "random_preference": GameFamily(_random_preference, ("beta",), True, 2,
                                    "random intransitive preference game; beta > 0 regularizes toward uniform"),
    "bradley_terry": GameFamily(_bradley_terry, ("beta", "reward_scale"), True, 2,
                                "transitive BT preferences from N(0, reward_scale^2) rewards; optional beta"),
    "condorcet_cycle": GameFamily(_condorcet, ("beta",), True, 3,
                                  "regular tournament on an odd number of responses; optional beta"),
    "rock_paper_scissors": GameFamily(_rps, (), False, 0, "rock-paper-scissors (3 x 3)"),
}

SOLVERS: dict[str, Callable[..., Any]] = {
    name: getattr(_solvers, name)
    for name in (
        "mwu", "optimistic_mwu", "extragradient", "fictitious_play", "regret_matching_plus", "replicator", "mmd",
        "eag", "feg", "projected_extragradient",
        "nash_md", "nash_ema", "sppo", "spo", "dno", "inpo", "online_ipo", "onpo", "egpo", "mnpo", "mpo",
        "iterative_dpo",
    )
}


def solver_params(name: str) -> tuple[dict[str, inspect.Parameter], set[str]]:
  """The keyword arguments of solver ``name`` and those without a default."""
  sig = inspect.signature(SOLVERS[name])
  params = {p.name: p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
  required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
  return params, required
