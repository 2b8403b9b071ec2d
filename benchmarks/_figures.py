"""The figures a benchmark prints, also collected into one JSON file shared by every benchmark.

Each benchmark calls ``add_args`` on its parser (``--gpu``: accelerator sizes; ``--json PATH``: merge
this run's figures into ``PATH``) and ``ratio`` for each ``NAME: ratio=VALUE`` line it prints.
``make bench-gpu`` runs every benchmark with ``--gpu --json runs/bench_gpu.json``, so one short run on
a lent accelerator measures everything into one file.
"""

import json
import os
import platform
import time

from nashax import _files

_FIGURES: dict = {}


def add_args(ap):
  """``--gpu`` and ``--json`` on an ``argparse`` parser."""
  ap.add_argument("--gpu", action="store_true", help="accelerator sizes (larger problems and batches)")
  ap.add_argument("--json", default=None, metavar="PATH", help="merge the figures into this JSON file")
  return ap


def figure(name: str, value, **detail):
  """Records one figure (a number, or a dict of them) under ``name``."""
  _FIGURES[name] = {"value": value, **detail}


def ratio(name: str, value: float, fmt: str = ".3g", **detail):
  """Prints ``NAME: ratio=VALUE`` and records it."""
  print(f"{name}: ratio={value:{fmt}}", flush=True)
  figure(name, float(value), kind="ratio", **detail)


def write(path, bench: str):
  """Merges this run's figures into ``path`` under ``bench`` (atomic replace; other benchmarks' entries kept)."""
  if not path:
    return
  import jax
  data = {}
  if os.path.exists(path):
    with open(path) as f:
      data = json.load(f)
  data[bench] = {"figures": dict(_FIGURES), "backend": jax.default_backend(),
                 "devices": [str(d) for d in jax.devices()], "host": platform.node(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  _files.atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode())
  print(f"figures of {bench} written to {path}")
