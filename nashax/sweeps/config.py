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

``family`` and a solver's ``name`` may also be ``"module:function"``, the
user's own factory (``registry``). A solver ``name`` may be a ranker
(``alpharank``, ``nash_averaging``, ``response_graph_ucb``: ``rankers``); a
sweep holds solvers or rankers, not both. ``[run] x64 = true`` runs the sweep
in float64 (``jax.enable_x64``); the table says so (column ``precision``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import numbers
import os
from typing import Any, Mapping, Optional

import jax
import numpy as np

from nashax._files import read_toml, stem
from nashax.core import validate
from nashax.core.metrics import Metrics
from nashax.sweeps import rankers, registry

__all__ = ["SweepConfig", "SolverSpec", "GridPoint", "load_config", "from_dict"]

# "residual": the certificate ``solve`` stops on (duality gap, NashConv, an operator's natural residual, the
# total-variation distance to a target), defined for every problem.
_METRICS = tuple(m for m in Metrics._fields if m != "kl_to_optimum") + ("residual",)
_TOP = ("name", "game", "solver", "run")
_RUN_KEYS = ("seeds", "steps", "every", "metrics", "chunk", "batch_size", "seed", "x64")


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
    x64: run in float64.
    kind: ``"solve"`` (iterative solvers, traced every ``every`` steps) or ``"rank"`` (one ranker call a row).
    digests: ``((path, sha256), ...)`` of the files the game reads (they enter the fingerprint).
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
  x64: bool = False
  kind: str = "solve"
  digests: tuple = ()

  def to_dict(self) -> dict:
    """A JSON-able dict that ``from_dict`` reads back to an equal config."""
    run = {"seeds": self.seeds, "steps": self.steps, "every": self.every, "metrics": list(self.metrics),
           "chunk": self.chunk, "batch_size": self.batch_size, "seed": self.seed}
    if self.x64:  # only when set, so that the fingerprints of float32 sweeps stay what they were
      run["x64"] = True
    return {
        "name": self.name,
        "game": {"family": self.family, **({"size": list(self.sizes)} if self.sizes != (0,) else {}),
                 **{k: [_jsonable(x) for x in v] for k, v in self.game_grid}},
        "solver": [{"name": s.name, **{k: [_jsonable(x) for x in v] for k, v in s.grid}} for s in self.solvers],
        "run": run,
    }

  def fingerprint(self) -> str:
    """A hash of everything that changes the results (not ``name``): the config and the files it reads."""
    d = self.to_dict()
    d.pop("name")
    if self.digests:
      d["files"] = [list(x) for x in self.digests]
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

  @property
  def precision(self) -> str:
    return "float64" if self.x64 else "float32"

  @property
  def game_family(self) -> "registry.GameFamily":
    return registry.family(self.family)

  def static_game(self, point: "GridPoint") -> tuple:
    """The point's shape-changing game parameters, ``((name, value), ...)`` (part of its group)."""
    return tuple((k, point.game_hparams[k]) for k in self.game_family.static if k in point.game_hparams)

  def traced_game_keys(self) -> list[str]:
    """The game hyperparameters passed into jit as arrays (numbers, vectors, choice indices)."""
    fam = self.game_family
    choices = dict(fam.choices)
    return [k for k, v in self.game_grid if k not in fam.static and not (k in choices and len(v) == 1)]

  def game_arrays(self, points: list, rows: list) -> dict:
    """Stacked traced game inputs of ``rows`` (``[(point, seed)]``): numbers in the sweep's precision,
    choice parameters as ``int32`` indices into their grid values."""
    choices = dict(self.game_family.choices)
    grid = dict(self.game_grid)
    dt = np.float64 if self.x64 else np.float32
    out = {}
    for k in self.traced_game_keys():
      vals = [points[p].game_hparams[k] for p, _ in rows]
      if k in choices:
        out[k] = np.asarray([grid[k].index(v) for v in vals], np.int32)
      else:
        out[k] = np.asarray(vals, dt)
    return out

  def game_kwargs(self, static: tuple, traced: dict) -> dict:
    """The keyword arguments of the family's ``build`` for one row: static values, traced arrays, and
    each choice parameter as ``(index, options)`` (or ``(options,)`` when its grid has one value)."""
    choices = dict(self.game_family.choices)
    grid = dict(self.game_grid)
    kw = dict(static)
    for k, v in traced.items():
      kw[k] = (v, grid[k]) if k in choices else v
    for k, vals in grid.items():  # a one-value choice: no index, the member itself (closed forms kept)
      if k in choices and len(vals) == 1:
        kw[k] = (vals,)
    return kw

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
  p = inspect.signature(registry.solver(sname)).parameters.get(k)
  return p is not None and isinstance(p.default, bool)


def _table(where: str, value: Any) -> dict:
  if not isinstance(value, Mapping):
    raise ValueError(f"{where}: expected a table of keys, got {value!r}")
  return dict(value)


def _number_ok(x, bound) -> bool:
  lo, hi, lo_open, hi_open = bound
  if isinstance(x, (str, bool)) or x != x or x in (float("inf"), float("-inf")):
    return False
  return (x > lo if lo_open else x >= lo) and (x < hi if hi_open else x <= hi)


def _bound_words(bound) -> str:
  lo, hi, lo_open, hi_open = bound
  parts = ["finite numbers"]
  if lo != float("-inf"):
    parts.append(f"{'>' if lo_open else '>='} {lo:g}")
  if hi != float("inf"):
    parts.append(f"{'<' if hi_open else '<='} {hi:g}")
  return " ".join(parts[:1]) + (" " + " and ".join(parts[1:]) if len(parts) > 1 else "")


def _game_grid(family: str, fam, game: dict, base_dir: Optional[str]) -> tuple[tuple, list]:
  """The sizes and ``((hparam, values), ...)`` of a ``[game]`` table, each checked against the family."""
  if fam.sized:
    if "size" not in game:
      raise ValueError(f"game.size: missing; family {family!r} needs the number of actions (an integer or a "
                       "list)")
    raw = _grid_values("game.size", game.pop("size"))
    sizes = tuple(_positive_int("game.size", s, fam.min_size) for s in raw)
    if family == "condorcet_cycle" and any(s % 2 == 0 for s in sizes):
      raise ValueError(f"game.size: condorcet_cycle needs odd sizes, got {list(sizes)}")
  else:
    if "size" in game:
      raise ValueError(f"game.size: family {family!r} has a fixed size; remove the key")
    sizes = (0,)
  ints = {n: (lo, hi) for n, lo, hi in fam.ints}
  choices = dict(fam.choices)
  for k in fam.required:
    if k not in game:
      raise ValueError(f"game.{k}: missing; family {family!r} needs it")
  grid = []
  for k, v in game.items():
    if k not in fam.params:
      raise ValueError(f"game.{k}: family {family!r} takes no hyperparameter {k!r} (it takes: "
                       f"{list(fam.params) or 'none'})")
    vals = _grid_values(f"game.{k}", v)
    if k in ints:
      vals = tuple(_positive_int(f"game.{k}", x, ints[k][0]) for x in vals)
      for x in vals:
        validate.size(f"game.{k}", x, lo=ints[k][0], hi=ints[k][1])
    elif k in fam.strings or k in choices:
      for x in vals:
        if not isinstance(x, str):
          raise ValueError(f"game.{k}: must be a string, got {x!r}")
        if k in choices and x not in choices[k]:
          raise ValueError(f"game.{k}: unknown value {x!r}; one of {list(choices[k])}")
      if k in fam.files:
        vals = tuple(_file(f"game.{k}", x, base_dir) for x in vals)
        for x in vals:  # read now: a malformed table is refused in words before anything compiles
          try:
            registry.table_game(x)
          except ValueError as e:
            raise ValueError(f"game.{k}: {x}: {e}") from None
    elif k in fam.vectors:
      for x in vals:
        x = x if isinstance(x, tuple) else (x,)
        if not all(_number_ok(e, fam.bound(k)) for e in x):
          raise ValueError(f"game.{k}: entries must be {_bound_words(fam.bound(k))}, got {list(x)}")
      vals = tuple(x if isinstance(x, tuple) else (float(x),) for x in vals)
    else:
      for x in vals:
        if isinstance(x, tuple) or not _number_ok(x, fam.bound(k)):
          raise ValueError(f"game.{k}: must be {_bound_words(fam.bound(k))}, got {x!r}")
      vals = tuple(float(x) for x in vals)
    grid.append((k, vals))
  gd = dict(grid)
  for vec, count in fam.lengths.items():
    if vec in gd:
      n_vals = gd.get(count, (dict(_defaults(fam)).get(count),))
      for x in gd[vec]:
        for n in n_vals:
          if len(x) != n:
            raise ValueError(f"game.{vec}: a vector of {count} = {n} entries, got {len(x)}: {list(x)}")
  return sizes, grid


def _defaults(fam) -> dict:
  try:
    sig = inspect.signature(fam.build)
  except (TypeError, ValueError):
    return {}
  return {p.name: p.default for p in sig.parameters.values() if p.default is not inspect.Parameter.empty}


def _file(where: str, path: str, base_dir: Optional[str]) -> str:
  """A data file's path (relative paths from the config's folder), which must exist."""
  full = path if os.path.isabs(path) or base_dir is None else os.path.join(base_dir, path)
  if not os.path.isfile(full):
    raise ValueError(f"{where}: no such file {full!r}")
  return os.path.abspath(full)


def _check_game_traces(family: str, fam, sizes: tuple, grid: list) -> None:
  """Builds one game of every shape group abstractly (``eval_shape``: nothing compiles), so a factory that
  cannot be traced (NumPy on its inputs, Python control flow on a traced number) is refused with a reason."""
  statics = [k for k, _ in grid if k in fam.static]
  gd = dict(grid)
  choices = dict(fam.choices)
  key = jax.eval_shape(lambda: jax.random.key(0))
  for size in sizes:
    for svals in itertools.product(*[gd[k] for k in statics]):
      kw = dict(zip(statics, svals))
      traced = {}
      for k, vals in grid:
        if k in statics:
          continue
        if k in choices:
          kw[k] = (vals,) if len(vals) == 1 else None
          if len(vals) > 1:
            traced[k] = jax.ShapeDtypeStruct((), np.int32)
        else:
          traced[k] = jax.ShapeDtypeStruct(np.shape(vals[0]), jax.numpy.result_type(float))

      def build(key, traced, kw=kw, size=size):
        args = dict(kw)
        for k, v in traced.items():
          args[k] = (v, gd[k]) if k in choices else v
        return fam.build(key, size if fam.sized else None, **args)

      try:
        jax.eval_shape(build, key, traced)
      except Exception as e:  # noqa: BLE001 - any failure to trace, in words
        what = f"size={size}, " if fam.sized else ""
        raise ValueError(f"game.family: {family!r} cannot be traced ({what}{kw or ''}): a sweep builds its "
                         f"games inside jit from a traced key and traced hyperparameters; "
                         f"{type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}") from None


def from_dict(d: Mapping[str, Any], *, name: Optional[str] = None,
              base_dir: Optional[str] = None) -> SweepConfig:
  """Validates a sweep given as a dict (the TOML file's structure) and returns a ``SweepConfig``.

  Raises:
    ValueError: naming the key, for an unknown family, solver, hyperparameter or
      metric, a malformed grid, or a bad run setting. Every solver grid point is
      built once here, so bad hyperparameter values are refused before anything
      compiles, and every game shape is traced abstractly, so a game factory
      that cannot run inside jit is refused with the reason.

  Args:
    d: the config.
    name: the label when ``d`` has none.
    base_dir: the folder relative file paths (``payoff_table``'s ``path``) start from.
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
    raise ValueError(f"game.family: missing; one of {sorted(registry.GAME_FAMILIES)} or 'module:function'")
  family = game.pop("family")
  if not isinstance(family, str):
    raise ValueError(f"game.family: must be a string, got {family!r}")
  fam = registry.family(family)
  sizes, game_grid = _game_grid(family, fam, game, base_dir)
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
      raise ValueError(f"{where}.name: missing; one of {sorted(registry.SOLVERS)} or 'module:function'")
    sname = s.pop("name")
    if not isinstance(sname, str):
      raise ValueError(f"{where}.name: must be a string, got {sname!r}")
    factory = registry.solver(sname, f"{where}.name")
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
        jax.eval_shape(lambda kw=kw: factory(**kw))
      except (ValueError, TypeError) as e:
        raise ValueError(f"{where}: {sname}({', '.join(f'{k}={v!r}' for k, v in kw.items())}) is refused: {e}") from None
    specs.append(SolverSpec(sname, tuple(grid)))

  kinds = {"rank" if sp.name in rankers.RANKERS else "solve" for sp in specs}
  if len(kinds) > 1:
    raise ValueError(f"solver: a sweep holds iterative solvers or rankers ({sorted(rankers.RANKERS)}), not "
                     "both; split it in two")
  kind = kinds.pop()
  if kind == "rank" and len({sp.name for sp in specs}) > 1:
    raise ValueError(f"solver: a ranking sweep names one ranker (each has its own metrics), got "
                     f"{sorted({sp.name for sp in specs})}")
  run = _table("run", d["run"])
  for k in run:
    if k not in _RUN_KEYS:
      raise ValueError(f"run.{k}: unknown key; [run] takes {list(_RUN_KEYS)}")
  if kind == "rank":
    for k in ("steps", "every"):
      if k in run and run[k] != 1:
        raise ValueError(f"run.{k}: a ranking sweep makes one call per row; remove the key")
    run = {"steps": 1, "every": 1, **run}
  for k in ("seeds", "steps"):
    if k not in run:
      raise ValueError(f"run.{k}: missing")
  seeds = _positive_int("run.seeds", run["seeds"])
  steps = _positive_int("run.steps", run["steps"])
  every = _positive_int("run.every", run.get("every", max(1, steps // 100)))
  if steps % every:
    raise ValueError(f"run.every: steps={steps} must be a multiple of every={every}")
  allowed = rankers.METRICS[specs[0].name] if kind == "rank" else _METRICS
  metrics = run.get("metrics", list(allowed) if kind == "rank" else ["exploitability"])
  if isinstance(metrics, str):
    metrics = [metrics]
  if not isinstance(metrics, list) or not metrics:
    raise ValueError(f"run.metrics: expected a non-empty list of names from {list(allowed)}, got {metrics!r}")
  for m in metrics:
    if m not in allowed:
      raise ValueError(f"run.metrics: unknown metric {m!r}; one of {list(allowed)}")
  x64 = run.get("x64", False)
  validate.boolean("run.x64", x64)
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
  _check_game_traces(family, fam, sizes, game_grid)
  digests = tuple((p, registry.file_digest(p)) for k, vals in game_grid if k in fam.files for p in vals)
  if registry.is_user_name(family):
    digests += _source_digests(family)
  for sp in specs:
    if registry.is_user_name(sp.name):
      digests += _source_digests(sp.name)
  return SweepConfig(label, family, sizes, tuple(game_grid), tuple(specs), seeds, steps, every, tuple(metrics),
                     chunk, batch_size, int(seed), bool(x64), kind, tuple(dict(digests).items()))


def _source_digests(name: str) -> tuple:
  """``((name, sha256 of the module's source file),)`` for a user factory (its code is part of the sweep)."""
  import importlib

  mod = importlib.import_module(name.partition(":")[0])
  path = getattr(mod, "__file__", None)
  return ((name, registry.file_digest(path)),) if path and os.path.isfile(path) else ()


def load_config(path: str) -> SweepConfig:
  """Reads and validates a TOML sweep file (``name`` defaults to the file's stem; relative file paths in it
  start from its folder)."""
  return from_dict(read_toml(path), name=stem(path), base_dir=os.path.dirname(os.path.abspath(path)))
