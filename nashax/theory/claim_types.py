"""The claim types: what a claim module imports to write its table of claims.

A claim measures the quantity a theorem bounds over a sweep (sizes, seeds,
steps), compares it with the bound, plots both, and reports pass or fail with
the worst ratio measured / bound (<= 1 passes).

A claim is only worth its pass if a wrong implementation would fail it. Each
claim therefore names the thing it verifies (its ``subject``: a solver
factory, or a function) and takes it as an override, ``fn(fast, out_dir,
solver=None)``; its ``mutants`` are plausible wrong versions of the subject
(a sign, a factor of 2, an off-by-one, the wrong opponent, a missing
correction step), which the claim must reject.

Each claim module ends with its table, ``CLAIMS = table((claim_a, ...),
mutants)``; ``nashax.theory.CLAIMS`` concatenates the tables. Nothing is
registered at import time.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Callable

import numpy as np

__all__ = ["Claim", "ClaimResult", "Mutant", "claim", "mutant", "mutant_into", "result_from_ratios", "table"]


@dataclasses.dataclass(frozen=True)
class ClaimResult:
  """What one claim measured.

  Attributes:
    name: the claim's name.
    status: ``"pass"`` or ``"fail"``.
    bound: the bound at the worst point (the denominator of ``worst_ratio``).
    measured: the measured value at the worst point.
    worst_ratio: ``max measured / bound`` over the sweep; ``<= 1`` passes.
    details: one line on the sweep (sizes, seeds, steps, precision).
    figures: paths of the PNG plots written.
    seconds: wall time.
    tight_ratio: measured / bound on the claim's tight instance (close to 1
      when the bound is attained), NaN where the claim has none.
    variant: the mutant the claim ran with (``""``: the real subject).
    cpu_seconds: process CPU time (user + system) spent in the claim.
  """

  name: str
  status: str
  bound: float
  measured: float
  worst_ratio: float
  details: str = ""
  figures: tuple = ()
  seconds: float = 0.0
  tight_ratio: float = float("nan")
  variant: str = ""
  cpu_seconds: float = 0.0

  def to_json(self) -> dict:
    d = dataclasses.asdict(self)
    d["figures"] = list(self.figures)
    return d


@dataclasses.dataclass(frozen=True)
class Mutant:
  """A plausible wrong implementation of a claim's subject, which the claim must reject.

  Attributes:
    claim: the claim's name.
    name: short name (``run_claim(claim, variant=name)``).
    bug: the bug, in words (what a person would have got wrong).
    make: the wrong subject, with the same signature as the claim's subject.
  """

  claim: str
  name: str
  bug: str
  make: Callable


@dataclasses.dataclass(frozen=True)
class Claim:
  """A theorem check.

  Attributes:
    name: unique name (``--only`` matches it).
    theorem: the statement checked, with its bound.
    source: the paper (theorem, equation) the bound comes from.
    fn: ``(fast: bool, out_dir: str[, solver=None]) -> ClaimResult``; a
      claim that accepts ``solver`` runs it in place of its subject.
    cost: rough full-run seconds on one CPU core; worker processes
      (``run_claims(jobs > 1)``) take the costliest claims first, so that a
      long claim does not start last and run alone.
    subject: what ``solver=`` replaces, with its signature (``""``: the
      claim takes no override).
    mutants: the wrong variants of the subject (``Mutant``) the claim rejects.
    summary: one line for the README's claim table (``""``: the theorem).
  """

  name: str
  theorem: str
  source: str
  fn: Callable[..., ClaimResult]
  cost: float = 5.0
  subject: str = ""
  mutants: tuple = ()
  summary: str = ""

  def __call__(self, fast: bool, out_dir: str, solver=None) -> ClaimResult:
    """Runs the claim's function (``solver``: a substitute subject)."""
    return self.fn(fast, out_dir) if solver is None else self.fn(fast, out_dir, solver=solver)


def claim(name: str, theorem: str, source: str, cost: float = 5.0, subject: str = "", summary: str = ""):
  """Decorator that turns ``fn(fast, out_dir[, solver=None]) -> ClaimResult`` into a ``Claim``.

  Args:
    name: the claim's name; theorem, source: see ``Claim``.
    cost: rough full-run CPU seconds, finite and > 0.
    subject: what ``solver=`` replaces; a claim with a subject must accept ``solver=`` (None: the real one).
    summary: one line for the README's claim table.

  Returns:
    A decorator returning the ``Claim`` (callable like the function).
  """
  if isinstance(cost, bool) or not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost > 0):
    raise ValueError(f"cost: must be a finite number of seconds > 0, got {cost!r}")

  def make(fn) -> Claim:
    if subject and "solver" not in inspect.signature(fn).parameters:
      raise ValueError(f"subject: claim {name!r} names a subject but its function takes no `solver` argument")
    return Claim(name, theorem, source, fn, float(cost), subject, summary=summary)

  return make


def mutant(claim_name: str, name: str, bug: str):
  """Decorator that turns ``make`` into a ``Mutant``: a wrong variant of claim ``claim_name``'s subject.

  Args:
    claim_name: the claim.
    name: the variant's short name, unique within the claim.
    bug: the bug in words.

  Returns:
    A decorator returning the ``Mutant``.
  """
  return lambda make: Mutant(claim_name, name, bug, make)


def mutant_into(collected: list):
  """A ``mutant`` that also appends each ``Mutant`` it makes to ``collected`` (a claim module's own list).

  A claim module writes ``mutant = mutant_into(_MUTANTS)`` once and then ``mutant(claim, name, bug)(make)``
  beside each wrong variant; ``table(claims, _MUTANTS)`` attaches them. Nothing outside the module changes.
  """

  def make_mutant(claim_name: str, name: str, bug: str):
    def add(make):
      m = mutant(claim_name, name, bug)(make)
      collected.append(m)
      return m

    return add

  return make_mutant


def table(claims, mutants=()) -> tuple:
  """A module's table: its claims, in order, each with its mutants attached.

  Args:
    claims: ``Claim`` objects with distinct names.
    mutants: ``Mutant`` objects; each names one of ``claims`` that has a subject.

  Returns:
    A tuple of ``Claim``.

  Raises:
    ValueError: a duplicate claim or mutant name, or a mutant of no claim with a subject.
  """
  claims = tuple(claims)
  by_name = {}
  for c in claims:
    if not isinstance(c, Claim):
      raise ValueError(f"claims: expected Claim objects, got {type(c).__name__}")
    if c.name in by_name:
      raise ValueError(f"claims: the name {c.name!r} appears twice")
    by_name[c.name] = c
  attached = {n: list(c.mutants) for n, c in by_name.items()}
  for m in mutants:
    c = by_name.get(m.claim)
    if c is None or not c.subject:
      raise ValueError(f"claim_name: {m.claim!r} is not a claim with a subject in this table")
    if any(o.name == m.name for o in attached[m.claim]):
      raise ValueError(f"name: claim {m.claim!r} already has a mutant {m.name!r}")
    attached[m.claim].append(m)
  return tuple(dataclasses.replace(c, mutants=tuple(attached[c.name])) for c in claims)


def result_from_ratios(name: str, measured: np.ndarray, bound: np.ndarray, details: str,
                       figures: tuple, seconds: float, tol: float = 1.0) -> ClaimResult:
  """Builds a result from arrays of measured values and their bounds (ratio <= tol passes)."""
  measured = np.asarray(measured, np.float64).ravel()
  bound = np.asarray(bound, np.float64).ravel()
  if measured.shape != bound.shape or measured.size == 0:
    raise ValueError(f"measured/bound: need equal non-empty shapes, got {measured.shape}, {bound.shape}")
  if not (np.isfinite(measured).all() and np.isfinite(bound).all()):
    return ClaimResult(name, "fail", float("nan"), float("nan"), float("inf"),
                       details + " [non-finite values measured]", figures, seconds)
  ratio = measured / bound
  i = int(np.argmax(ratio))
  status = "pass" if ratio[i] <= tol else "fail"
  return ClaimResult(name, status, float(bound[i]), float(measured[i]), float(ratio[i]),
                     details, figures, seconds)
