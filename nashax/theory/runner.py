"""Runs claims: the built-in tables (``nashax.theory.CLAIMS``) and the user's, here or in worker processes."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import fnmatch
import multiprocessing
import os
import time
from typing import Callable, Optional

from nashax.theory.claim_types import Claim, ClaimResult, Mutant

__all__ = ["claims", "mutants", "register", "unregister", "run_claim", "run_claims"]

# Claims a user added (``register``, or the decorator ``nashax.theory.claim``): they exist only in the process
# that defined them, so they run there, never in worker processes.
_USER: dict[str, Claim] = {}


def _builtin() -> tuple:
  from nashax import theory

  return theory.CLAIMS


def register(*new: Claim) -> None:
  """Adds a user's claims (``Claim`` objects, e.g. built with ``claim_types.claim`` and ``table``).

  Raises:
    ValueError: a name already taken by a built-in or registered claim.
  """
  taken = {c.name for c in claims()}
  for c in new:
    if not isinstance(c, Claim):
      raise ValueError(f"claims: expected Claim objects, got {type(c).__name__}")
    if c.name in taken:
      raise ValueError(f"name: claim {c.name!r} is already registered")
    taken.add(c.name)
  for c in new:
    _USER[c.name] = c


def unregister(name: str) -> None:
  """Removes a user's claim (built-in claims cannot be removed)."""
  if name not in _USER:
    raise ValueError(f"name: {name!r} is not a user claim")
  del _USER[name]


def claims() -> list[Claim]:
  """Every claim: the built-in tables in order, then the user's in registration order."""
  return list(_builtin()) + list(_USER.values())


def _by_name(name: str) -> Claim:
  for c in claims():
    if c.name == name:
      return c
  raise ValueError(f"name: no claim {name!r}; see `nashax verify --list`")


def mutants(claim_name: Optional[str] = None) -> list[Mutant]:
  """The mutants (of one claim, or of every claim in table order)."""
  if claim_name is not None:
    try:
      return list(_by_name(claim_name).mutants)
    except ValueError:
      raise ValueError(f"claim_name: no claim {claim_name!r}; see `nashax verify --list`") from None
  return [m for c in claims() for m in c.mutants]


def _matches(name: str, pattern: Optional[str]) -> bool:
  if not pattern:
    return True
  return any(fnmatch.fnmatch(name, p) or p in name for p in pattern.split(","))


def _run_one(c: Claim, fast: bool, out_dir: str, solver=None, variant: str = "") -> ClaimResult:
  t0, c0 = time.perf_counter(), time.process_time()
  try:
    r = c(fast, out_dir, solver)
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
  c = _by_name(name)
  if (solver is not None or variant) and not c.subject:
    raise ValueError(f"solver/variant: claim {name!r} takes no substituted subject")
  if solver is not None and variant:
    raise ValueError("solver/variant: give one of them, not both")
  label = ""
  if variant:
    table = {m.name: m for m in c.mutants}
    if variant not in table:
      raise ValueError(f"variant: claim {name!r} has no mutant {variant!r}; it has {sorted(table)}")
    solver, label = table[variant].make, variant
  elif solver is not None:
    label = "custom"
  os.makedirs(out_dir, exist_ok=True)
  return _run_one(c, fast, out_dir, solver, label)


def _run_by_name(name: str, fast: bool, out_dir: str) -> ClaimResult:
  """Worker-process entry point: the built-in tables are imported there."""
  return _run_one(_by_name(name), fast, out_dir)


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
  by_name = {}
  # Claims registered outside nashax (a user's script) exist only in this process: they run here.
  remote = [c for c in selected if c.name not in _USER]
  for c in selected:
    if c not in remote:
      by_name[c.name] = _run_one(c, fast, out_dir)
      log(_log_line(by_name[c.name]))
  # spawn, not fork: a forked child of a process that has started JAX's threads can deadlock.
  ctx = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
    # Longest first (a stable sort keeps registration order among equals).
    by_cost = sorted(remote, key=lambda c: -c.cost)
    futures = {pool.submit(_run_by_name, c.name, fast, out_dir): c for c in by_cost}
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
