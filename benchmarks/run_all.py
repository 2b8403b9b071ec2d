"""Runs every ``bench_*.py`` and collects their ``NAME: ratio=VALUE`` lines into one JSON file.

``make bench-gpu`` is ``python benchmarks/run_all.py --gpu --json runs/bench_gpu.json``: each
benchmark at its accelerator sizes (``--gpu``), one after another, so that one short run on a lent
device measures everything. Per benchmark the file holds its ratios, exit code, wall seconds and the
last lines of its output (under ``"runs"``); benchmarks that record detailed figures themselves
(``_figures``) also get ``--json`` and add their own entry. The file is rewritten after each
benchmark; a rerun skips benchmarks already recorded with exit code 0 (``--fresh`` reruns all).

Usage: python benchmarks/run_all.py [--gpu] [--json PATH] [--only alpharank,zero_sum] [--fresh]
       [--timeout S] [--dir DIR] [-- extra args for every benchmark]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

from nashax import _files

RATIO = re.compile(r"^([A-Za-z0-9_.\-]+): ratio=(\S+)\s*$")


def parse_ratios(text: str) -> dict:
  """``{NAME: float}`` from the ``NAME: ratio=VALUE`` lines of a benchmark's output (others ignored)."""
  out = {}
  for line in text.splitlines():
    m = RATIO.match(line.strip())
    if m:
      try:
        out[m.group(1)] = float(m.group(2))
      except ValueError:
        out[m.group(1)] = m.group(2)
  return out


def _load(path):
  if os.path.exists(path):
    with open(path) as f:
      return json.load(f)
  return {}


def _save(path, data):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  _files.atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode())


def main(argv=None):
  argv = sys.argv[1:] if argv is None else argv
  extra = []
  if "--" in argv:
    i = argv.index("--")
    argv, extra = argv[:i], argv[i + 1:]
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--gpu", action="store_true")
  ap.add_argument("--json", default="runs/bench.json")
  ap.add_argument("--only", default="", help="comma-separated names (bench_NAME.py)")
  ap.add_argument("--fresh", action="store_true")
  ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark")
  ap.add_argument("--dir", default=os.path.dirname(os.path.abspath(__file__)))
  args = ap.parse_args(argv)
  names = sorted(f[len("bench_"):-3] for f in os.listdir(args.dir) if f.startswith("bench_") and f.endswith(".py"))
  if args.only:
    wanted = args.only.split(",")
    unknown = sorted(set(wanted) - set(names))
    if unknown:
      raise SystemExit(f"--only: no benchmark {unknown}; there are {names}")
    names = [n for n in names if n in wanted]
  data = _load(args.json)
  runs = data.setdefault("runs", {})
  failed = 0
  for name in names:
    if not args.fresh and runs.get(name, {}).get("rc") == 0:
      print(f"== {name}: already recorded, skipped (--fresh reruns it)")
      continue
    path = os.path.join(args.dir, f"bench_{name}.py")
    with open(path) as f:
      src = f.read()
    cmd = [sys.executable, path] + (["--gpu"] if args.gpu else [])
    if "_figures.add_args" in src or '"--json"' in src:
      cmd += ["--json", os.path.abspath(args.json)]
    cmd += extra
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
      rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
      rc, text = 124, (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    secs = time.perf_counter() - t0
    print(text[-4000:], flush=True)
    data = _load(args.json)  # the benchmark may have added its own entry
    data.setdefault("runs", {})[name] = {"rc": rc, "seconds": secs, "ratios": parse_ratios(text),
                                         "gpu": args.gpu, "tail": text[-2000:]}
    _save(args.json, data)
    failed += rc != 0
  print(f"figures in {args.json}; {failed} benchmark(s) failed")
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
