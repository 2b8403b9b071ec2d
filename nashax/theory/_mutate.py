"""Helpers for writing the wrong variants (mutants) that each claim must reject."""

from __future__ import annotations

import functools

from nashax.core.solver import Solver


def swap_step(factory, step_fn, tag: str):
  """A factory like ``factory`` whose solvers take ``step_fn`` in place of their step.

  Args:
    factory: a solver factory (``solvers.egpo``, ...).
    step_fn: a module-level ``(hparams, game, state) -> state`` (static in the
      solver, so it must be hashable and defined once).
    tag: appended to the solver's name.

  Returns:
    ``make(*args, **kwargs) -> Solver`` with the factory's arguments.
  """

  @functools.wraps(factory)
  def make(*args, **kwargs):
    s = factory(*args, **kwargs)
    return Solver(s.init_fn, step_fn, s.hparams, f"{s.name}[{tag}]")

  return make
