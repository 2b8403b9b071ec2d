"""The ``nashax`` command line: ``nashax verify`` runs the theory claims."""

from __future__ import annotations

import argparse
import sys

_EPILOG = """examples:
  nashax verify                         run every claim, write runs/verify/report.md and PNG plots
  nashax verify --fast --only hedge     small sizes, only the claims whose names match 'hedge'
  nashax verify --list                  name the claims
  nashax verify --json runs/verify.json machine-readable results
"""


def _verify(args: argparse.Namespace) -> int:
  from nashax.theory import registry

  if args.list:
    for c in registry.claims():
      print(f"{c.name}\n    {c.theorem}\n    source: {c.source}")
    return 0
  print(f"nashax verify: {'fast' if args.fast else 'full'} run, plots and report in {args.out}/", flush=True)
  try:
    results = registry.run_claims(args.only, fast=args.fast, out_dir=args.out,
                                  log=lambda s: print(s, flush=True))
  except ValueError as e:
    print(f"nashax verify: {e}", file=sys.stderr)
    return 2
  path = registry.write_report(results, args.out, args.json)
  w = max(len(r.name) for r in results)
  print()
  print(f"{'claim':<{w}}  status  {'measured':>10}  {'bound':>10}  {'worst ratio':>11}  time")
  for r in results:
    print(f"{r.name:<{w}}  {r.status:<6}  {r.measured:>10.4g}  {r.bound:>10.4g}  {r.worst_ratio:>11.4g}  {r.seconds:5.1f}s")
  failed = [r for r in results if r.status != "pass"]
  print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed; report: {path}")
  for r in failed:
    print(f"FAILED {r.name}: {r.details}", file=sys.stderr)
  return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="nashax",
      description="nashax: JAX solvers for game-theoretic alignment, with executable theory checks.",
      epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  v = sub.add_parser(
      "verify", help="measure what each theorem bounds and compare with the bound",
      description=("Runs the registered claims: each measures the quantity a theorem bounds over a sweep, "
                   "compares it with the bound, plots both, and passes when the worst ratio "
                   "measured/bound is <= 1. Exits 1 if any claim fails."),
      epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  v.add_argument("--list", action="store_true", help="name the claims and exit")
  v.add_argument("--only", metavar="PATTERN", help="run claims matching PATTERN (glob or substring, comma-separated)")
  v.add_argument("--fast", action="store_true", help="small sizes (seconds, for tests)")
  v.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
  v.add_argument("--out", default="runs/verify", metavar="DIR", help="where the report and plots go (default runs/verify)")
  args = parser.parse_args(argv)
  if args.command == "verify":
    return _verify(args)
  return 2


if __name__ == "__main__":
  sys.exit(main())
