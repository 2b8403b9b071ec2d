"""Grids of policy runs: ``[train]`` keys given as lists expand into one run per grid point.

``algorithm``, ``beta``, ``eta`` and ``seed`` may each be a list (``GRID_KEYS``);
every combination is its own run, checkpointed and resumed on its own in a
subfolder of the experiment's folder named by its values
(``nash_md-beta0.1-seed1``; just the algorithm when only the algorithm
varies, as before). ``write_table`` gathers every run's ``metrics.csv`` into
one tidy ``runs.csv`` (a row per run and evaluation step, the swept values as
columns), rewritten whole (atomically) after each run, so a killed sweep's
table lists exactly the runs finished so far and a resumed one ends with the
uninterrupted table.
"""

from __future__ import annotations

import csv
import io
import itertools
from typing import Any

from nashax import _files

__all__ = ["GRID_KEYS", "expand", "labels", "write_table"]

GRID_KEYS = ("algorithm", "beta", "eta", "seed")


def expand(train: dict) -> tuple[list[dict], tuple[str, ...]]:
  """The ``[train]`` table's grid points (dicts of scalar keys) and the keys that vary.

  Raises:
    ValueError: naming the key, for a list under a key that is not a grid axis, an empty list or a
      repeated value.
  """
  axes = []
  for k, v in train.items():
    if isinstance(v, (list, tuple)) and k != "mnpo_weights":
      if k not in GRID_KEYS:
        raise ValueError(f"train.{k}: a list is a grid axis only for {list(GRID_KEYS)}, got {v!r}")
      if not v or len({repr(x) for x in v}) != len(v):
        raise ValueError(f"train.{k}: a grid axis is a non-empty list without repeats, got {list(v)}")
      axes.append((k, list(v)))
  axes.sort(key=lambda a: GRID_KEYS.index(a[0]))  # labels and the run order do not depend on the TOML's order
  points = []
  for vals in itertools.product(*[v for _, v in axes]):
    points.append({**train, **dict(zip([k for k, _ in axes], vals))})
  return points, tuple(k for k, v in axes if len(v) > 1)


def labels(trains: tuple, swept: tuple[str, ...]) -> list[str]:
  """Each run's subfolder name: the algorithm, then ``<key><value>`` for the other swept keys."""
  out = []
  for t in trains:
    vals = [(k, getattr(t, k)) for k in swept if k != "algorithm"]
    parts = [t.algorithm] + [f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in vals]
    out.append("-".join(parts))
  return out


def write_table(path: str, runs: list[tuple[str, Any, dict]], metrics: tuple[str, ...]) -> None:
  """Writes ``runs.csv``: ``run, algorithm, beta, eta, seed, step, <metrics>``.

  Args:
    path: the table's path.
    runs: ``(label, TrainConfig, metrics columns)`` per finished run.
    metrics: the metric columns.
  """
  s = io.StringIO(newline="")
  w = csv.writer(s)
  w.writerow(["run", *GRID_KEYS, "step", *metrics])
  for label, t, cols in runs:
    for i in range(len(cols["step"])):
      w.writerow([label, *[getattr(t, k) for k in GRID_KEYS], int(cols["step"][i]),
                  *[repr(float(cols[m][i])) for m in metrics]])
  _files.atomic_write(path, s.getvalue().encode())
