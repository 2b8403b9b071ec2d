"""The verify report (Markdown and JSON) and the README's claim table, from claims and their results."""

from __future__ import annotations

import json
import math
import os
from typing import Optional

from nashax.theory import runner
from nashax.theory.claim_types import ClaimResult

__all__ = ["claims_markdown", "write_report"]


def claims_markdown(claims=None) -> str:
  """The README's claim table: one row per claim (name, summary, mutants rejected).

  Args:
    claims: ``Claim`` objects (default: every claim, ``runner.claims()``).

  Returns:
    A Markdown table.
  """
  claims = runner.claims() if claims is None else claims
  cell = lambda s: s.replace("|", "\\|").replace("\n", " ")
  lines = ["| claim | theorem checked | mutants rejected |", "|---|---|---|"]
  for c in claims:
    muts = ", ".join(f"`{m.name}`" for m in c.mutants) or "none"
    lines.append(f"| `{c.name}` | {cell(c.summary or c.theorem)} | {muts} |")
  return "\n".join(lines) + "\n"


def write_report(results: list[ClaimResult], out_dir: str, json_path: Optional[str] = None) -> str:
  """Writes ``report.md`` (and optionally JSON) and returns the Markdown path."""
  by_name = {c.name: c for c in runner.claims()}
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
