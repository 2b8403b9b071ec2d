"""Sweep configurations: a TOML file or a dict, checked before anything compiles.

A sweep names one game family (with a grid over ``size`` and the family's
hyperparameters), one or more solvers (each with its own hyperparameter grid),
seeds, a step budget and the metrics to trace. A value that is a list is a grid
axis; a scalar is fixed. Every grid point runs with every seed; the seeds give
the same games to every solver and hyperparameter, so comparisons are paired.

Example (``examples/sweeps/nash_md_eta.toml``)::

  [game]
  family = "random_preference"
  size = [8, 16]
  beta = [0.1, 0.5]

  [[solver]]
  name = "nash_md"
  eta = [0.05, 0.2, 0.8]

  [run]
  seeds = 8
  steps = 2000
  every = 100
  metrics = ["duality_gap"]
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import numbers
from typing import Any, Mapping, Optional

import jax

from nashax._files import read_toml, stem
from nashax.core import validate
from nashax.core.metrics import Metrics
from nashax.sweeps import registry

__all__ = ["SweepConfig", "SolverSpec", "GridPoint", "load_config", "from_dict"]

_METRICS = tuple(Metrics._fields)
_TOP = ("name", "game", "solver", "run")
_RUN_KEYS = ("seeds", "steps", "every", "metrics", "chunk", "batch_size", "seed")


@dataclasses.dataclass(frozen=True)
class SolverSpec:
  """One solver and its grid: ``name`` and ``{hparam: (values, ...)}``."""

  name: str
  grid: tuple[tuple[str, tuple], ...]


@dataclasses.dataclass(frozen=True)
class SweepConfig:
  """A validated sweep (frozen; serialises to the results table and manifest).

  Attributes:
    name: a label for plots and the default output folder.
    family: a key of ``registry.GAME_FAMILIES``.
    sizes: the game sizes (each its own compiled group).
    game_grid: ``((hparam, values), ...)`` of the family's hyperparameters.
    solvers: ``SolverSpec`` per solver.
    seeds: number of seeds per grid point.
    steps: iterations per run; ``every`` steps between trace entries.
    metrics: ``Metrics`` fields to trace.
    chunk: rows per finished unit written to disk (resumption granularity).
    batch_size: rows vmapped at once inside a chunk (``lax.map``), bounding memory.
    seed: the base seed.
  """

  name: str
  family: str
  sizes: tuple[int, ...]
  game_grid: tuple[tuple[str, tuple], ...]
  solvers: tuple[SolverSpec, ...]
  seeds: int
  steps: int
  every: int
  metrics: tuple[str, ...]
  chunk: int = 64
  batch_size: Optional[int] = None
  seed: int = 0

  def to_dict(self) -> dict:
    """A JSON-able dict that ``from_dict`` reads back to an equal config."""
    return {
        "name": self.name,
        "game": {"family": self.family, **({"size": list(self.sizes)} if self.sizes != (0,) else {}),
                 **{k: list(v) for k, v in self.game_grid}},
        "solver": [{"name": s.name, **{k: [_jsonable(x) for x in v] for k, v in s.grid}} for s in self.solvers],
        "run": {"seeds": self.seeds, "steps": self.steps, "every": self.every, "metrics": list(self.metrics),
                "chunk": self.chunk, "batch_size": self.batch_size, "seed": self.seed},
    }

  def fingerprint(self) -> str:
    """A hash of everything that changes the results (not ``name``)."""
    d = self.to_dict()
    d.pop("name")
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

  def points(self) -> list["GridPoint"]:
    """Every grid point, in the order of the results table."""
    out = []
    gkeys = [k for k, _ in self.game_grid]
    for s_idx, spec in enumerate(self.solvers):
      skeys = [k for k, _ in spec.grid]
      for size in self.sizes:
        for gvals in itertools.product(*[v for _, v in self.game_grid]):
          for svals in itertools.product(*[v for _, v in spec.grid]):
            out.append(GridPoint(len(out), s_idx, spec.name, size, dict(zip(gkeys, gvals)), dict(zip(skeys, svals))))
    return out

  def swept(self) -> list[str]:
    """Columns with more than one value (``size``, game and solver hyperparameters, ``solver``)."""
    cols = []
    if len(self.sizes) > 1:
      cols.append("size")
    cols += [k for k, v in self.game_grid if len(v) > 1]
    if len(self.solvers) > 1:
      cols.append("solver")
    seen = set(cols)
    for spec in self.solvers:
      for k, v in spec.grid:
        if len(v) > 1 and k not in seen:
          cols.append(k)
          seen.add(k)
    return cols


@dataclasses.dataclass(frozen=True)
class GridPoint:
  """One row of the grid (before seeds)."""

  index: int
  solver_index: int
  solver: str
  size: int
  game_hparams: dict
  solver_hparams: dict


def _jsonable(x):
  return list(x) if isinstance(x, tuple) else x


def _grid_values(where: str, value: Any) -> tuple:
  """A scalar -> one value; a list -> a grid axis. Refuses empty, mixed or nested-dict grids."""
  if isinstance(value, Mapping):
    raise ValueError(f"{where}: a grid value must be a number, a string or a list of them, got a table {dict(value)}")
  vals = list(value) if isinstance(value, (list, tuple)) else [value]
  if not vals:
    raise ValueError(f"{where}: an empty list is not a grid; give at least one value")
  out = []
  for v in vals:
    if isinstance(v, Mapping):
      raise ValueError(f"{where}: grid entries must be numbers, strings or vectors, got a table {dict(v)}")
    if isinstance(v, (list, tuple)):
      if not v or not all(isinstance(e, numbers.Real) and not isinstance(e, bool) for e in v):
        raise ValueError(f"{where}: a vector entry must be a non-empty list of numbers, got {v}")
      v = tuple(float(e) for e in v)
    elif not isinstance(v, (numbers.Real, str)):
      raise ValueError(f"{where}: grid entries must be numbers, strings or vectors, got {v!r}")
    out.append(v)
  kinds = {("vector" if isinstance(v, tuple) else "string" if isinstance(v, str)
            else "bool" if isinstance(v, bool) else "number") for v in out}
  if len(kinds) > 1:
    raise ValueError(f"{where}: a grid mixes {sorted(kinds)} values: {vals}")
  if len(set(map(repr, out))) != len(out):
    raise ValueError(f"{where}: a grid repeats a value: {vals}")
  return tuple(out)


def _positive_int(where: str, value: Any, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
    raise ValueError(f"{where}: must be an integer >= {minimum}, got {value!r}")
  return validate.size(where, value, lo=minimum)


def _bool_allowed(sname: str, k: str) -> bool:
  """Whether the solver factory's keyword ``k`` is a boolean option (its default is a bool)."""
  import inspect

  p = inspect.signature(registry.SOLVERS[sname]).parameters.get(k)
  return p is not None and isinstance(p.default, bool)


def _table(where: str, value: Any) -> dict:
  if not isinstance(value, Mapping):
    raise ValueError(f"{where}: expected a table of keys, got {value!r}")
  return dict(value)


def from_dict(d: Mapping[str, Any], *, name: Optional[str] = None) -> SweepConfig:
  """Validates a sweep given as a dict (the TOML file's structure) and returns a ``SweepConfig``.

  Raises:
    ValueError: naming the key, for an unknown family, solver, hyperparameter or
      metric, a malformed grid, or a bad run setting. Every solver grid point is
      built once here, so bad hyperparameter values are refused before anything
      compiles.
  """
  d = _table("config", d)
  for k in d:
    if k not in _TOP:
      raise ValueError(f"{k}: unknown top-level key; a sweep has {list(_TOP)}")
  for k in ("game", "solver", "run"):
    if k not in d:
      raise ValueError(f"{k}: missing; a sweep needs [game], [[solver]] and [run] tables")
  game = _table("game", d["game"])
  if "family" not in game:
    raise ValueError(f"game.family: missing; one of {sorted(registry.GAME_FAMILIES)}")
  family = game.pop("family")
  if family not in registry.GAME_FAMILIES:
    raise ValueError(f"game.family: unknown family {family!r}; one of {sorted(registry.GAME_FAMILIES)}")
  fam = registry.GAME_FAMILIES[family]
  if fam.sized:
    if "size" not in game:
      raise ValueError(f"game.size: missing; family {family!r} needs the number of actions (an integer or a list)")
    sizes = tuple(_positive_int("game.size", s, fam.min_size) for s in _grid_values("game.size", game.pop("size")))
    if family == "condorcet_cycle" and any(s % 2 == 0 for s in sizes):
      raise ValueError(f"game.size: condorcet_cycle needs odd sizes, got {list(sizes)}")
  else:
    if "size" in game:
      raise ValueError(f"game.size: family {family!r} has a fixed size; remove the key")
    sizes = (0,)
  game_grid = []
  for k, v in game.items():
    if k not in fam.hparams:
      raise ValueError(f"game.{k}: family {family!r} takes no hyperparameter {k!r} (it takes: {list(fam.hparams) or 'none'})")
    vals = _grid_values(f"game.{k}", v)
    for x in vals:
      if isinstance(x, (str, tuple, bool)) or not x > 0 or x != x or x == float("inf"):
        raise ValueError(f"game.{k}: must be finite numbers > 0, got {x!r}")
    game_grid.append((k, tuple(float(x) for x in vals)))

  raw_solvers = d["solver"]
  if isinstance(raw_solvers, Mapping):
    raw_solvers = [raw_solvers]
  if not isinstance(raw_solvers, list) or not raw_solvers:
    raise ValueError("solver: expected a [solver] table or a non-empty [[solver]] list")
  specs = []
  for i, s in enumerate(raw_solvers):
    where = f"solver[{i}]" if len(raw_solvers) > 1 else "solver"
    s = _table(where, s)
    if "name" not in s:
      raise ValueError(f"{where}.name: missing; one of {sorted(registry.SOLVERS)}")
    sname = s.pop("name")
    if sname not in registry.SOLVERS:
      raise ValueError(f"{where}.name: unknown solver {sname!r}; one of {sorted(registry.SOLVERS)}")
    params, required = registry.solver_params(sname)
    grid = []
    for k, v in s.items():
      if k not in params:
        raise ValueError(f"{where}.{k}: solver {sname!r} takes no hyperparameter {k!r} (it takes: {list(params)})")
      vals = _grid_values(f"{where}.{k}", v)
      if any(isinstance(x, bool) for x in vals) and not _bool_allowed(sname, k):
        raise ValueError(f"{where}.{k}: must be a number, got the boolean {str(vals[0]).lower()}")
      grid.append((k, vals))
    missing = required - set(s)
    if missing:
      raise ValueError(f"{where}.{sorted(missing)[0]}: missing; solver {sname!r} needs it")
    for vals in itertools.product(*[v for _, v in grid]):
      kw = dict(zip([k for k, _ in grid], vals))
      try:  # abstractly: the factory checks concrete values in NumPy; its jnp calls are traced, not compiled
        jax.eval_shape(lambda kw=kw: registry.SOLVERS[sname](**kw))
      except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: {sname}({', '.join(f'{k}={v!r}' for k, v in kw.items())}) is refused: {e}") from None
    specs.append(SolverSpec(sname, tuple(grid)))

  run = _table("run", d["run"])
  for k in run:
    if k not in _RUN_KEYS:
      raise ValueError(f"run.{k}: unknown key; [run] takes {list(_RUN_KEYS)}")
  for k in ("seeds", "steps"):
    if k not in run:
      raise ValueError(f"run.{k}: missing")
  seeds = _positive_int("run.seeds", run["seeds"])
  steps = _positive_int("run.steps", run["steps"])
  every = _positive_int("run.every", run.get("every", max(1, steps // 100)))
  if steps % every:
    raise ValueError(f"run.every: steps={steps} must be a multiple of every={every}")
  metrics = run.get("metrics", ["exploitability"])
  if isinstance(metrics, str):
    metrics = [metrics]
  if not isinstance(metrics, list) or not metrics:
    raise ValueError(f"run.metrics: expected a non-empty list of names from {list(_METRICS)}, got {metrics!r}")
  for m in metrics:
    if m not in _METRICS or m == "kl_to_optimum":
      raise ValueError(f"run.metrics: unknown metric {m!r}; one of {[x for x in _METRICS if x != 'kl_to_optimum']}")
  chunk = _positive_int("run.chunk", run.get("chunk", 64))
  batch_size = run.get("batch_size")
  if batch_size is not None:
    batch_size = _positive_int("run.batch_size", batch_size)
    if chunk % batch_size:
      raise ValueError(f"run.batch_size: must divide run.chunk={chunk}, got {batch_size}")
  seed = run.get("seed", 0)
  if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
    raise ValueError(f"run.seed: must be an integer >= 0, got {seed!r}")
  validate.size("run.seed", seed, lo=0)
  label = d.get("name", name or "sweep")
  if not isinstance(label, str) or not label:
    raise ValueError(f"name: must be a non-empty string, got {label!r}")
  return SweepConfig(label, family, sizes, tuple(game_grid), tuple(specs), seeds, steps, every, tuple(metrics),
                     chunk, batch_size, int(seed))


def load_config(path: str) -> SweepConfig:
  """Reads and validates a TOML sweep file (``name`` defaults to the file's stem)."""
  return from_dict(read_toml(path), name=stem(path))
