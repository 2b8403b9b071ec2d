"""Helpers for writing the wrong variants (mutants) that each claim must reject."""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp

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


class _WrongDerivative:
  """A wrong ``f'`` in log-space, ``(alpha, s) -> ...``, from a divergence's ``f_log`` and ``fprime_log``.

  Hashable by its functions and kind, so a jitted function of the mutated divergence compiles once.
  """

  def __init__(self, f_log, fprime_log, kind: str):
    self.fns, self.kind = (f_log, fprime_log), kind

  def __eq__(self, other):
    return isinstance(other, _WrongDerivative) and (self.fns, self.kind) == (other.fns, other.kind)

  def __hash__(self):
    return hash((self.fns, self.kind))

  def __call__(self, alpha, s):
    f_log, fprime_log = self.fns
    if self.kind == "reflect":
      return fprime_log(alpha, -s)
    if self.kind == "negate":
      return -fprime_log(alpha, s)
    # "transpose": the derivative of t f(1/t), the generator of D_f(p || pi) = D_{f'}(pi || p).
    return f_log(alpha, -s) - jnp.exp(-s) * fprime_log(alpha, -s)


def wrong_fprime(divergence, kind: str):
  """``divergence`` with a wrong ``f'``.

  Args:
    divergence: a ``Divergence``.
    kind: ``"reflect"``: ``f'(1/t)`` (the ratio inverted, ``p/pi`` for ``pi/p``); ``"negate"``: ``-f'(t)``
      (the pseudo-reward's sign flipped); ``"transpose"``: the derivative of ``t f(1/t)`` (the two
      arguments of ``D_f`` swapped, forward for reverse KL).

  Returns:
    The mutated ``Divergence`` (``D_f`` itself unchanged: only what reads ``f'`` goes wrong).
  """
  wrong = _WrongDerivative(divergence.f_log, divergence.fprime_log, kind)
  return dataclasses.replace(divergence, fprime_log=wrong)
