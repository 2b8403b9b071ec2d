"""The registry of executable claims behind ``nashax verify``.

A claim measures the quantity a theorem bounds over a sweep (sizes, seeds,
steps), compares it with the bound, plots both, and reports pass or fail with
the worst ratio measured / bound (<= 1 passes).

A claim is only worth its pass if a wrong implementation would fail it. Each
claim therefore names the thing it verifies (its ``subject``: a solver
factory, or a function) and takes it as an override, ``fn(fast, out_dir,
solver=None)``; ``mutant`` registers plausible wrong versions of the subject
(a sign, a factor of 2, an off-by-one, the wrong opponent, a missing
correction step), and ``run_claim(name, variant=...)`` runs the claim with one
of them in place of the real subject. The test suite runs every mutant and
requires the claim to fail on it (``nashax verify --list`` names them).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
import json
import math
import os
import time
from typing import Callable, Optional

import numpy as np

__all__ = ["Claim", "ClaimResult", "Mutant", "claim", "claims", "mutant", "mutants", "run_claim", "run_claims",
           "write_report"]


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
class Claim:
  """A registered theorem check.

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
  """

  name: str
  theorem: str
  source: str
  fn: Callable[..., ClaimResult]
  cost: float = 5.0
  subject: str = ""

  @property
  def mutants(self) -> tuple:
    """The registered wrong variants of the subject (``Mutant``), in registration order."""
    return tuple(_MUTANTS.get(self.name, {}).values())


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


_REGISTRY: dict[str, Claim] = {}
_MUTANTS: dict[str, dict[str, Mutant]] = {}


def claim(name: str, theorem: str, source: str, cost: float = 5.0, subject: str = ""):
  """Decorator that registers ``fn(fast, out_dir[, solver=None]) -> ClaimResult`` as a claim.

  ``cost`` and ``subject``: see ``Claim``. A claim with a ``subject`` must
  accept ``solver=`` (None: the real subject).
  """

  def register(fn):
    if name in _REGISTRY:
      raise ValueError(f"name: claim {name!r} is already registered")
    if isinstance(cost, bool) or not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost > 0):
      raise ValueError(f"cost: must be a finite number of seconds > 0, got {cost!r}")
    if subject and "solver" not in inspect.signature(fn).parameters:
      raise ValueError(f"subject: claim {name!r} names a subject but its function takes no `solver` argument")
    _REGISTRY[name] = Claim(name, theorem, source, fn, float(cost), subject)
    return fn

  return register


def mutant(claim_name: str, name: str, bug: str):
  """Decorator that registers ``make`` as a wrong variant of claim ``claim_name``'s subject.

  Args:
    claim_name: the claim (registered before its mutants, in the same module).
    name: the variant's short name, unique within the claim.
    bug: the bug in words.
  """

  def register(make):
    c = _REGISTRY.get(claim_name)
    if c is None or not c.subject:
      raise ValueError(f"claim_name: {claim_name!r} is not a registered claim with a subject")
    table = _MUTANTS.setdefault(claim_name, {})
    if name in table:
      raise ValueError(f"name: claim {claim_name!r} already has a mutant {name!r}")
    table[name] = Mutant(claim_name, name, bug, make)
    return make

  return register


def mutants(claim_name: Optional[str] = None) -> list[Mutant]:
  """The registered mutants (of one claim, or of every claim in registration order)."""
  _load_builtin()
  if claim_name is not None:
    if claim_name not in _REGISTRY:
      raise ValueError(f"claim_name: no claim {claim_name!r}; see `nashax verify --list`")
    return list(_REGISTRY[claim_name].mutants)
  return [m for c in _REGISTRY.values() for m in c.mutants]


def claims() -> list[Claim]:
  """Every registered claim, in registration order."""
  _load_builtin()
  return list(_REGISTRY.values())


def _load_builtin() -> None:
  # Importing the modules registers their claims.
  from nashax.theory import alignment, fdiv, implicit, matrix_games, monotone, nlhf, policies, ranking  # noqa: F401


def _matches(name: str, pattern: Optional[str]) -> bool:
  if not pattern:
    return True
  return any(fnmatch.fnmatch(name, p) or p in name for p in pattern.split(","))


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


def _run_one(c: Claim, fast: bool, out_dir: str, solver=None, variant: str = "") -> ClaimResult:
  t0, c0 = time.perf_counter(), time.process_time()
  try:
    r = c.fn(fast, out_dir) if solver is None else c.fn(fast, out_dir, solver=solver)
  except Exception as e:  # a crashing claim is a failing claim, reported in words
    r = ClaimResult(c.name, "fail", float("nan"), float("nan"), float("inf"),
                    f"raised {type(e).__name__}: {e}")
  return dataclasses.replace(r, seconds=time.perf_counter() - t0, cpu_seconds=time.process_time() - c0,
                             variant=variant)


def run_claim(name: str, fast: bool = False, out_dir: str = "runs/verify", *, solver=None,
              variant: Optional[str] = None) -> ClaimResult:
  """Runs one claim, optionally with a substituted subject.

  Args:
    name: the claim's exact name.
    fast: small sizes.
    out_dir: where the plots go.
    solver: a replacement for the claim's subject (see ``Claim.subject`` for
      its signature), e.g. your own implementation of the algorithm.
    variant: the name of a registered mutant to run instead (exclusive with
      ``solver``).

  Returns:
    The ``ClaimResult``; with a mutant its ``status`` should be ``"fail"``.
  """
  _load_builtin()
  if name not in _REGISTRY:
    raise ValueError(f"name: no claim {name!r}; see `nashax verify --list`")
  c = _REGISTRY[name]
  if (solver is not None or variant) and not c.subject:
    raise ValueError(f"solver/variant: claim {name!r} takes no substituted subject")
  if solver is not None and variant:
    raise ValueError("solver/variant: give one of them, not both")
  label = ""
  if variant:
    table = _MUTANTS.get(name, {})
    if variant not in table:
      raise ValueError(f"variant: claim {name!r} has no mutant {variant!r}; it has {sorted(table)}")
    solver, label = table[variant].make, variant
  elif solver is not None:
    label = "custom"
  os.makedirs(out_dir, exist_ok=True)
  return _run_one(c, fast, out_dir, solver, label)


def _run_by_name(name: str, fast: bool, out_dir: str) -> ClaimResult:
  """Worker-process entry point: the registry is rebuilt there by importing the built-in claims."""
  _load_builtin()
  return _run_one(_REGISTRY[name], fast, out_dir)


def _log_line(r: ClaimResult) -> str:
  return (f"{r.status.upper():4s}  {r.name}  worst ratio {r.worst_ratio:.3g}  "
          f"({r.seconds:.1f}s, {r.cpu_seconds:.1f}s CPU)")


def run_claims(pattern: Optional[str] = None, fast: bool = False, out_dir: str = "runs/verify",
               log: Callable[[str], None] = lambda s: None, jobs: int = 1) -> list[ClaimResult]:
  """Runs the claims whose names match ``pattern`` (glob or substring, comma-separated).

  Args:
    pattern: which claims (default all).
    fast: small sizes.
    out_dir: where the plots go.
    log: receives one line per finished claim.
    jobs: worker processes. With ``jobs > 1`` (and more than one claim) the
      claims run in that many fresh processes, each compiling its own
      functions: JAX's compiles are single-threaded, so on a multi-core CPU
      this divides the wall time. Only built-in claims run in workers.

  Returns:
    One ``ClaimResult`` per claim, in registration order.
  """
  if isinstance(jobs, bool) or int(jobs) != jobs or jobs < 1:
    raise ValueError(f"jobs: must be a positive integer, got {jobs!r}")
  os.makedirs(out_dir, exist_ok=True)
  selected = [c for c in claims() if _matches(c.name, pattern)]
  if not selected:
    raise ValueError(f"pattern: no claim matches {pattern!r}; see `nashax verify --list`")
  jobs = min(int(jobs), len(selected))
  if jobs == 1:
    results = []
    for c in selected:
      results.append(_run_one(c, fast, out_dir))
      log(_log_line(results[-1]))
    return results
  import concurrent.futures
  import multiprocessing

  by_name = {}
  # Claims registered outside nashax (a user's script) exist only in this process: they run here.
  remote = [c for c in selected if c.fn.__module__.startswith("nashax.theory.")]
  for c in selected:
    if c not in remote:
      by_name[c.name] = _run_one(c, fast, out_dir)
      log(_log_line(by_name[c.name]))
  # spawn, not fork: a forked child of a process that has started JAX's threads can deadlock.
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
    # Longest first (a stable sort keeps registration order among equals).
    futures = {pool.submit(_run_by_name, c.name, fast, out_dir): c for c in sorted(remote, key=lambda c: -c.cost)}
    for f in concurrent.futures.as_completed(futures):
      c = futures[f]
      try:
        r = f.result()
      except Exception as e:  # the worker itself died
        r = ClaimResult(c.name, "fail", float("nan"), float("nan"), float("inf"),
                        f"worker raised {type(e).__name__}: {e}")
      by_name[c.name] = r
      log(_log_line(r))
  return [by_name[c.name] for c in selected]


def write_report(results: list[ClaimResult], out_dir: str, json_path: Optional[str] = None) -> str:
  """Writes ``report.md`` (and optionally JSON) and returns the Markdown path."""
  by_name = {c.name: c for c in claims()}
  lines = ["# nashax verify", "",
           "| claim | status | measured | bound | worst ratio | tight ratio | mutants rejected (tested) | "
           "time (s) | CPU (s) |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in results:
    c = by_name.get(r.name)
    muts = ", ".join(m.name for m in c.mutants) if c is not None and c.mutants else "none"
    tight = "" if math.isnan(r.tight_ratio) else f"{r.tight_ratio:.4g}"
    lines.append(f"| {r.name} | {r.status} | {r.measured:.4g} | {r.bound:.4g} | "
                 f"{r.worst_ratio:.4g} | {tight} | {muts} | {r.seconds:.1f} | {r.cpu_seconds:.1f} |")
  lines += ["", "Mutants: the wrong variants of each claim's subject that the claim rejects; the test suite "
            "(tests/test_mutations.py) runs every one in fast mode and requires the claim to fail.", ""]
  for r in results:
    c = by_name.get(r.name)
    lines += [f"## {r.name}", ""]
    if c is not None:
      lines += [f"**Theorem.** {c.theorem}", "", f"**Source.** {c.source}", ""]
      if c.subject:
        lines += [f"**Subject** (`run_claim(name, solver=...)` replaces it). {c.subject}", ""]
      for m in c.mutants:
        lines.append(f"- rejects `{m.name}`: {m.bug}")
      if c.mutants:
        lines.append("")
    lines += [f"**Sweep.** {r.details}", ""]
    lines += [f"![{os.path.basename(f)}]({os.path.relpath(f, out_dir)})" for f in r.figures]
    lines.append("")
  path = os.path.join(out_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  if json_path:
    d = os.path.dirname(json_path)
    if d:
      os.makedirs(d, exist_ok=True)
    with open(json_path, "w") as f:
      json.dump([r.to_json() for r in results], f, indent=2)
  return path
