"""The registry of executable claims behind ``nashax verify``.

A claim measures the quantity a theorem bounds over a sweep (sizes, seeds,
steps), compares it with the bound, plots both, and reports pass or fail with
the worst ratio measured / bound (<= 1 passes).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
import os
import time
from typing import Callable, Optional

import numpy as np

__all__ = ["Claim", "ClaimResult", "claim", "claims", "run_claims", "write_report"]


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
  """

  name: str
  status: str
  bound: float
  measured: float
  worst_ratio: float
  details: str = ""
  figures: tuple = ()
  seconds: float = 0.0

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
    source: the paper (and THEORY.md section) the bound comes from.
    fn: ``(fast: bool, out_dir: str) -> ClaimResult``.
    cost: rough full-run seconds on one CPU core; worker processes
      (``run_claims(jobs > 1)``) take the costliest claims first, so that a
      long claim does not start last and run alone.
  """

  name: str
  theorem: str
  source: str
  fn: Callable[[bool, str], ClaimResult]
  cost: float = 5.0


_REGISTRY: dict[str, Claim] = {}


def claim(name: str, theorem: str, source: str, cost: float = 5.0):
  """Decorator that registers ``fn(fast, out_dir) -> ClaimResult`` as a claim (``cost``: see ``Claim``)."""

  def register(fn):
    if name in _REGISTRY:
      raise ValueError(f"name: claim {name!r} is already registered")
    if isinstance(cost, bool) or not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost > 0):
      raise ValueError(f"cost: must be a finite number of seconds > 0, got {cost!r}")
    _REGISTRY[name] = Claim(name, theorem, source, fn, float(cost))
    return fn

  return register


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


def _run_one(c: Claim, fast: bool, out_dir: str) -> ClaimResult:
  t0 = time.perf_counter()
  try:
    r = c.fn(fast, out_dir)
  except Exception as e:  # a crashing claim is a failing claim, reported in words
    r = ClaimResult(c.name, "fail", float("nan"), float("nan"), float("inf"),
                    f"raised {type(e).__name__}: {e}")
  return dataclasses.replace(r, seconds=time.perf_counter() - t0)


def _run_by_name(name: str, fast: bool, out_dir: str) -> ClaimResult:
  """Worker-process entry point: the registry is rebuilt there by importing the built-in claims."""
  _load_builtin()
  return _run_one(_REGISTRY[name], fast, out_dir)


def _log_line(r: ClaimResult) -> str:
  return f"{r.status.upper():4s}  {r.name}  worst ratio {r.worst_ratio:.3g}  ({r.seconds:.1f}s)"


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
           "| claim | status | measured | bound | worst ratio | time (s) |",
           "|---|---|---|---|---|---|"]
  for r in results:
    lines.append(f"| {r.name} | {r.status} | {r.measured:.4g} | {r.bound:.4g} | "
                 f"{r.worst_ratio:.4g} | {r.seconds:.1f} |")
  lines.append("")
  for r in results:
    c = by_name.get(r.name)
    lines += [f"## {r.name}", ""]
    if c is not None:
      lines += [f"**Theorem.** {c.theorem}", "", f"**Source.** {c.source}", ""]
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
