"""Executable theory (``nashax.theory``): the claims that ``nashax verify`` runs.

Each claim module exports its table ``CLAIMS`` (a tuple of ``Claim``);
``nashax.theory.CLAIMS`` is their concatenation, built on first use (the
claim modules import JAX and the solvers). ``claim_types`` holds what a claim
is made of, ``runner`` runs claims, ``report`` writes the report and the
README's claim table.
"""

from nashax.theory.claim_types import Claim, ClaimResult, Mutant, result_from_ratios, table
from nashax.theory.registry import claim, mutant
from nashax.theory.report import claims_markdown, write_report
from nashax.theory.runner import claims, mutants, register, run_claim, run_claims, unregister

__all__ = ["CLAIMS", "Claim", "ClaimResult", "Mutant", "claim", "claims", "claims_markdown", "mutant",
           "mutants", "register", "result_from_ratios", "run_claim", "run_claims", "table", "unregister", "write_report"]

_MODULES = ("alignment", "fdiv", "implicit", "matrix_games", "monotone", "nlhf", "policies", "ranking")
_CLAIMS = None


def __getattr__(name):
  global _CLAIMS
  if name != "CLAIMS":
    raise AttributeError(f"module 'nashax.theory' has no attribute {name!r}")
  if _CLAIMS is None:
    import importlib

    tables = [importlib.import_module(f"nashax.theory.{m}").CLAIMS for m in _MODULES]
    _CLAIMS = tuple(c for t in tables for c in t)
  return _CLAIMS
