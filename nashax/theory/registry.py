"""The names the claims were reached by (kept for one release) and the decorators for a user's claims.

The built-in claims are tables (``nashax.theory.CLAIMS``); ``claim`` and
``mutant`` here add a user's claim and its mutants to ``runner``'s user
table, so that ``run_claims`` and ``nashax verify`` (in this process) run them:

    from nashax.theory import registry

    @registry.claim("my_bound", theorem="...", source="...", subject="solver(...) -> Solver")
    def my_bound(fast, out_dir, solver=None): ...

    registry.mutant("my_bound", "sign", "the step's sign flipped")(my_wrong_solver)
"""

from __future__ import annotations

import dataclasses

from nashax.theory import claim_types, runner
from nashax.theory.claim_types import Claim, ClaimResult, Mutant, result_from_ratios
from nashax.theory.report import claims_markdown, write_report
from nashax.theory.runner import claims, mutants, register, run_claim, run_claims, unregister

__all__ = ["Claim", "ClaimResult", "Mutant", "claim", "claims", "claims_markdown", "mutant", "mutants",
           "register",
           "result_from_ratios", "run_claim", "run_claims", "unregister", "write_report"]


def claim(name: str, theorem: str, source: str, cost: float = 5.0, subject: str = "", summary: str = ""):
  """Decorator that adds ``fn(fast, out_dir[, solver=None]) -> ClaimResult`` to the user's claims.

  Args: as ``claim_types.claim``.

  Returns:
    A decorator returning ``fn`` unchanged.
  """
  make = claim_types.claim(name, theorem, source, cost, subject, summary)

  def add(fn):
    register(make(fn))
    return fn

  return add


def mutant(claim_name: str, name: str, bug: str):
  """Decorator that adds ``make`` as a wrong variant of the user's claim ``claim_name``.

  Returns:
    A decorator returning ``make`` unchanged.
  """

  def add(make):
    c = runner._USER.get(claim_name)
    if c is None or not c.subject:
      raise ValueError(f"claim_name: {claim_name!r} is not a user claim with a subject")
    added = c.mutants + (Mutant(claim_name, name, bug, make),)
    (new,) = claim_types.table((dataclasses.replace(c, mutants=()),), added)
    runner._USER[claim_name] = new
    return make

  return add
