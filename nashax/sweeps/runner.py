"""Running a sweep: grid -> one batch axis -> chunks of ``lax.map``-ed vmaps -> files.

Each chunk of rows (grid point x seed) is one jitted call; its results are
written atomically (a temporary file, then ``os.replace``), then its sha256
(``c00000.npz.sha256``), before the next one starts, so a sweep killed at any
moment (SIGKILL included) restarts from the last finished chunk and recomputes
nothing that was written. A chunk whose checksum is missing or wrong (a kill
between the two writes, a truncated, zeroed or altered file) is recomputed with
a warning that names it; the merged tables carry checksums too, and a finished
sweep whose tables are damaged rebuilds them from the chunks. A lock on the
output folder refuses a second sweep into it. A row's result
depends only on its grid point and seed (keys are ``fold_in(key(seed0), seed)``
and chunks are padded to a fixed shape), so a resumed sweep writes the same
table as an uninterrupted one. On several devices the batch axis is sharded
over a one-axis ``Mesh``.

Under JAX's multi-process runtime (``nashax._distributed.initialize``) the mesh
spans every process's devices: each process computes its share of every chunk
on its own devices, the results are gathered, and process 0 alone touches the
folder (the lock, the manifest, the chunks and the tables); it decides which
chunks are left and tells the others, so the folder need not be visible to
them. A row's result does not depend on which process computed it, so the
table equals the one-process table on the same number of devices bit for bit.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax import _distributed, _files
from nashax._files import check_folder
from nashax._progress import Progress
from nashax.core import operators as _ops
from nashax.core.games import TargetDistribution
from nashax.core.metrics import default_residual as _default_residual
from nashax.core.metrics import metrics as _metrics
from nashax.core.solver import run as _run
from nashax.sweeps import rankers as _rankers
from nashax.sweeps import registry
from nashax.sweeps.config import SweepConfig, from_dict, load_config

__all__ = ["Results", "run_sweep", "load_results", "default_out"]

_VERSION = 2
_TABLES = ("results.npz", "traces.npz", "results.csv")


class Results(NamedTuple):
  """A finished sweep.

  Attributes:
    table: column name -> ``[rows]`` array (one row per grid point and seed).
    traces: metric -> ``[rows, T]`` array; row ``i`` matches ``table`` row ``i``.
    steps: ``[T]`` the step of each trace entry.
    out: the folder holding ``results.csv``, ``results.npz``, ``traces.npz``.
    computed: chunks computed by this call (0 when it found the sweep finished).
  """

  table: dict
  traces: dict
  steps: np.ndarray
  out: str
  computed: int = 0


def default_out(cfg: SweepConfig) -> str:
  return os.path.join("runs", "sweeps", cfg.name)


@functools.lru_cache(maxsize=None)
def _metric_fn(names: tuple[str, ...]) -> Callable:
  def fn(game, state):
    out = {"oracle_calls": state.oracle_calls}
    if "residual" in names:
      out["residual"] = _default_residual(game, state)
    rest = [k for k in names if k != "residual"]
    if rest:  # games only: an operator or a target has no duality gap (None: refused before compiling)
      problem = isinstance(game, (_ops.Operator, _ops.FiniteSumOperator, TargetDistribution))
      m = None if problem else _metrics(game, state)
      out.update({k: None if m is None else getattr(m, k) for k in rest})
    return out
  return fn


class _Group(NamedTuple):
  solver_index: int
  size: int
  rows: list  # [(point, seed)]
  static: tuple = ()  # the game's shape-changing parameters


def _solver(cfg: SweepConfig, point) -> Any:
  return registry.solver(point.solver)(**point.solver_hparams)


def _groups(cfg: SweepConfig, points) -> list[_Group]:
  """Rows that share a compiled function: same solver structure (static options, leaf shapes), size and
  static game parameters."""
  groups: dict = {}
  for p in points:
    s = _solver(cfg, p)
    shapes = tuple((np.shape(x), np.asarray(x).dtype.str) for x in jax.tree.leaves(s))
    static = cfg.static_game(p)
    key = (p.solver_index, p.size, static, jax.tree.structure(s), shapes)
    groups.setdefault(key, _Group(p.solver_index, p.size, [], static))
    groups[key].rows.extend((p.index, seed) for seed in range(cfg.seeds))
  return list(groups.values())


def _plan(cfg: SweepConfig, groups: list[_Group]) -> list[tuple[int, list]]:
  """Chunks as ``(group index, rows)``, at most ``cfg.chunk`` rows each."""
  chunks = []
  for gi, g in enumerate(groups):
    for i in range(0, len(g.rows), cfg.chunk):
      chunks.append((gi, g.rows[i:i + cfg.chunk]))
  return chunks


def _row_fn(cfg: SweepConfig, size: int, static: tuple = ()) -> Callable:
  fam = cfg.game_family
  names = tuple(cfg.metrics)

  def one(x):
    key = jax.random.fold_in(jax.random.key(cfg.seed), x["seed"])
    gkey, skey = jax.random.split(key)
    game = fam.build(gkey, size if fam.sized else None, **cfg.game_kwargs(static, x["game"]))
    if isinstance(x["solver"], _rankers.Ranker):  # one call: a trace of one entry
      out = x["solver"](game, skey)
      return {k: jnp.asarray(v)[None] for k, v in out.items() if k in names or k in ("oracle_calls", "pi")}
    _, trace = _run(x["solver"], game, skey, num_steps=cfg.steps, every=cfg.every, metric_fn=_metric_fn(names))
    return trace

  return one


def _inputs(cfg: SweepConfig, points, rows: list) -> dict:
  """Stacked per-row inputs: seed, game hyperparameters, the solver pytree."""
  solvers = [_solver(cfg, points[p]) for p, _ in rows]
  stacked = jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *solvers)
  return {"seed": np.asarray([s for _, s in rows], np.int32), "game": cfg.game_arrays(points, rows),
          "solver": stacked}


def _pad(x: dict, total: int) -> dict:
  n = len(x["seed"])
  idx = np.minimum(np.arange(total), n - 1)
  return jax.tree.map(lambda a: a[idx], x)


class _Compiled:
  """The jitted chunk function of one group: ``[D, m]`` rows, vmapped over devices, ``lax.map`` inside."""

  def __init__(self, cfg: SweepConfig, size: int, devices: list, static: tuple = ()):
    self.d = len(devices)
    per = -(-cfg.chunk // self.d)
    self.bs = min(cfg.batch_size or per, per)
    self.m = -(-per // self.bs) * self.bs
    one = _row_fn(cfg, size, static)
    fn = jax.vmap(lambda xs: jax.lax.map(one, xs, batch_size=self.bs))
    self.sharding = None
    if self.d > 1:
      mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
      self.sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))
    self.fn = jax.jit(fn)
    self.one = one

  def __call__(self, x: dict) -> dict:
    n = len(x["seed"])
    xp = _pad(x, self.d * self.m)
    xp = jax.tree.map(lambda a: a.reshape((self.d, self.m) + a.shape[1:]), xp)
    if self.sharding is not None:
      xp = _distributed.put(xp, self.sharding)
    out = _distributed.to_host(self.fn(xp))
    return {k: v.reshape((self.d * self.m,) + v.shape[2:])[:n] for k, v in out.items()}


# Chunk functions of recent sweeps, so that resuming (or re-running) a sweep in one process (a notebook,
# a test) does not compile again. Keyed by everything a chunk function closes over; solvers of another
# structure retrace inside the same jit.
_COMPILED: dict = {}
_COMPILED_MAX = 8


def _compiled(cfg: SweepConfig, size: int, devices: list, static: tuple = ()) -> "_Compiled":
  choices = tuple((k, v) for k, v in cfg.game_grid if k in dict(cfg.game_family.choices))
  key = (cfg.family, cfg.seed, cfg.steps, cfg.every, tuple(cfg.metrics), cfg.chunk, cfg.batch_size, size,
         static, choices, cfg.x64, cfg.digests, tuple((d.platform, d.id) for d in devices))
  if key not in _COMPILED:
    if len(_COMPILED) >= _COMPILED_MAX:
      _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = _Compiled(cfg, size, devices, static)
  return _COMPILED[key]


def _check_runs(cfg: SweepConfig, points, groups: list[_Group]) -> None:
  """Traces one row of every group abstractly (``eval_shape``: no compilation)."""
  for g in groups:
    p = points[g.rows[0][0]]
    x = jax.tree.map(lambda a: a[0], _inputs(cfg, points, g.rows[:1]))
    try:
      out = jax.eval_shape(_row_fn(cfg, g.size, g.static), x)
    except Exception as e:  # noqa: BLE001 - reworded with the names a user wrote
      raise ValueError(f"solver: {p.solver!r} cannot run on game family {cfg.family!r}: "
                       f"{type(e).__name__}: {e}") from None
    for k in cfg.metrics:
      if out.get(k) is None:
        raise ValueError(f"run.metrics: {k!r} is not defined for game family {cfg.family!r}")


def _atomic_write(path: str, write: Callable) -> None:
  _files.atomic_write(path, write)


def _write_verified(path: str, write: Callable) -> None:
  """The file, then its checksum (a file without a valid checksum is never trusted)."""
  _files.atomic_write(path, write)
  _files.write_checksum(path)


def _chunk_path(out: str, i: int) -> str:
  return os.path.join(out, "chunks", f"c{i:05d}.npz")


def run_sweep(config: Any, out: Optional[str] = None, *, progress: bool = True,
              devices: Optional[list] = None, log: Callable[[str], None] = print) -> Results:
  """Runs (or resumes, or finds finished) a sweep and returns its results.

  Args:
    config: a ``SweepConfig``, a dict in the TOML layout, or a path to a TOML file.
    out: the results folder (default ``runs/sweeps/<name>``). It holds
      ``manifest.json``, ``chunks/`` while running, and at the end
      ``results.csv`` and ``results.npz`` (one row per grid point and seed) and
      ``traces.npz`` (``[rows, T]`` per metric; a ranking sweep adds ``pi``,
      ``[rows, 1, N]`` padded with NaN to the largest game). The table's
      ``precision`` column says float32 or float64 (``[run] x64``).
    progress: draw a progress bar on stderr.
    devices: devices to shard the batch axis over (default: all of
      ``jax.devices()``, every process's under the multi-process runtime).
    log: where one-line messages go (process 0's only).

  Returns:
    ``Results``. Under the multi-process runtime, processes other than 0
    return empty ``table`` and ``traces`` (the results are in process 0's
    ``out``).

  Raises:
    ValueError: a bad config (naming the key), a solver that cannot run on the
      family, an ``out`` folder that holds a different sweep (or one of the
      other precision, naming both), cannot be
      created, or is in use by another live process (a lock file); all before
      anything compiles.
  """
  cfg = config if isinstance(config, SweepConfig) else (
      load_config(config) if isinstance(config, (str, os.PathLike)) else from_dict(config))
  out = out or default_out(cfg)
  writer = _distributed.is_writer()
  if not writer:
    progress, log = False, (lambda s: None)
  theirs = _distributed.broadcast_json(cfg.fingerprint())
  if theirs != cfg.fingerprint():
    raise ValueError(f"config: process {_distributed.process_index()} has a different sweep (fingerprint "
                     f"{cfg.fingerprint()}) from process 0's ({theirs}); give every process the same config")
  with _distributed.writer_lock(out), jax.enable_x64(cfg.x64):
    return _run_locked(cfg, out, progress, devices, log, writer)


def _check_precision(cfg: SweepConfig, manifest_path: str) -> None:
  """Refuses to resume a folder written in the other precision (naming both)."""
  if not os.path.exists(manifest_path):
    return
  old = _files.read_json(manifest_path, "out: the sweep manifest")
  was = "float64" if (old.get("config") or {}).get("run", {}).get("x64") else "float32"
  if was != cfg.precision:
    raise ValueError(f"out: {os.path.dirname(manifest_path)} holds a {was} sweep and this config runs in "
                     f"{cfg.precision} ([run] x64 = {str(cfg.x64).lower()}); a resume would mix precisions: "
                     "choose another folder, or set x64 to match")


def _tables_damage(out: str) -> Optional[str]:
  """None when every merged table matches its checksum; otherwise the first damaged one, in words."""
  for name in _TABLES:
    why = _files.verify_checksum(os.path.join(out, name))
    if why is not None:
      return f"{os.path.join(out, name)}: {why}"
  return None


def _chunk_damage(path: str, rows: list) -> Optional[str]:
  """None when the chunk file is complete, matches its checksum and holds exactly ``rows``."""
  why = _files.verify_checksum(path)
  if why is not None:
    return why
  try:
    with np.load(path) as z:
      point, seed = z["point"], z["seed"]
  except Exception as e:  # noqa: BLE001 - any unreadable chunk is recomputed
    return f"unreadable ({type(e).__name__})"
  if point.tolist() != [p for p, _ in rows] or seed.tolist() != [s for _, s in rows]:
    return "holds other rows than the plan (an older sweep's chunk?)"
  return None


def _finished(cfg: SweepConfig, out: str, log) -> bool:
  """Process 0: whether ``out`` holds this sweep finished with intact tables (refuses another sweep's folder)."""
  manifest_path = os.path.join(out, "manifest.json")
  _check_precision(cfg, manifest_path)
  old = check_folder(manifest_path, cfg.fingerprint(), "sweep")
  if old is not None and old.get("finished"):
    damage = _tables_damage(out)
    if damage is None:
      log(f"nashax sweep: {cfg.name} already finished; results in {out}/results.csv")
      return True
    log(f"nashax sweep: WARNING {damage}; rebuilding the merged tables from the chunks")
  return False


def _chunks_done(out: str, chunks: list, manifest: dict, log) -> list:
  """Process 0: writes the manifest of a new sweep, removes damaged chunks; which chunks are finished."""
  manifest_path = os.path.join(out, "manifest.json")
  _files.make_folder(os.path.join(out, "chunks"))
  if not os.path.exists(manifest_path):
    _atomic_write(manifest_path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
  done = []
  for i, (_, rows) in enumerate(chunks):
    path = _chunk_path(out, i)
    why = _chunk_damage(path, rows)
    if why is not None and why != "missing":
      log(f"nashax sweep: WARNING chunk {path} is corrupt or incomplete ({why}); recomputing it")
      _files.remove(path)
    done.append(why is None)
  return done


def _run_locked(cfg: SweepConfig, out: str, progress: bool, devices, log, writer: bool = True) -> Results:
  steps = (np.arange(cfg.steps // cfg.every) + 1) * cfg.every
  if _distributed.on_writer(lambda: _finished(cfg, out, log)):
    return load_results(out) if writer else Results({}, {}, steps, out)
  points = cfg.points()
  groups = _groups(cfg, points)
  chunks = _plan(cfg, groups)
  _check_runs(cfg, points, groups)
  manifest = {"version": _VERSION, "fingerprint": cfg.fingerprint(), "config": cfg.to_dict(),
              "num_chunks": len(chunks), "num_rows": len(points) * cfg.seeds, "finished": False}
  done = _distributed.on_writer(lambda: _chunks_done(out, chunks, manifest, log))
  todo = [i for i, d in enumerate(done) if not d]
  if sum(done) and todo:
    log(f"nashax sweep: resuming {cfg.name}: {sum(done)} of {len(chunks)} chunks already done")
  devs = list(devices) if devices is not None else jax.devices()
  compiled: dict = {}
  bar = Progress(len(chunks), sum(done), progress)
  for i in todo:
    gi, rows = chunks[i]
    if gi not in compiled:
      compiled[gi] = _compiled(cfg, groups[gi].size, devs, groups[gi].static)
    res = compiled[gi](_inputs(cfg, points, rows))
    if writer:
      arrays = {"point": np.asarray([p for p, _ in rows]), "seed": np.asarray([s for _, s in rows])}
      arrays.update({f"m_{k}": v for k, v in res.items()})
      _write_verified(_chunk_path(out, i), lambda f, a=arrays: np.savez(f, **a))
    bar.update()
  _distributed.sync("nashax-sweep-chunks")
  if not writer:
    return Results({}, {}, steps, out, computed=len(todo))
  results = _finish(cfg, points, len(chunks), out)
  manifest["finished"] = True
  _atomic_write(os.path.join(out, "manifest.json"), lambda f: f.write(json.dumps(manifest, indent=1).encode()))
  bad = int((~results.table["finite"]).sum())
  if bad:
    log(f"nashax sweep: WARNING {bad} of {len(results.table['finite'])} rows have a non-finite metric "
        "(column 'finite' is False); a step size may be too large")
  log(f"nashax sweep: {cfg.name}: {len(results.table['point'])} rows in {out}/results.csv")
  return results._replace(computed=len(todo))


def _finish(cfg: SweepConfig, points, num_chunks: int, out: str) -> Results:
  parts = []
  for i in range(num_chunks):
    with np.load(_chunk_path(out, i)) as z:
      parts.append({k: z[k] for k in z.files})
  cat = {k: np.concatenate(_pad_last([p[k] for p in parts])) for k in parts[0]}
  order = np.lexsort((cat["seed"], cat["point"]))
  cat = {k: v[order] for k, v in cat.items()}
  n = len(order)
  calls = cat.pop("m_oracle_calls")[:, -1]
  traces = {k[2:]: v.astype(np.float64) for k, v in cat.items() if k.startswith("m_")}
  vectors = {k: traces.pop(k) for k in list(traces) if traces[k].ndim > 2}  # rankings: kept, not tabled
  steps = (np.arange(cfg.steps // cfg.every) + 1) * cfg.every
  table: dict = {"point": cat["point"], "seed": cat["seed"],
                 "family": np.asarray([cfg.family] * n), "size": np.asarray([points[p].size for p in cat["point"]])}
  for k, _ in cfg.game_grid:
    table[k] = _column([points[p].game_hparams[k] for p in cat["point"]])
  table["solver"] = np.asarray([points[p].solver for p in cat["point"]])
  hnames = []
  for spec in cfg.solvers:
    hnames += [k for k, _ in spec.grid if k not in hnames and k not in table]
  for k in hnames:
    table[k] = _column([points[p].solver_hparams.get(k, "") for p in cat["point"]])
  table["steps"] = np.full(n, cfg.steps)
  table["oracle_calls"] = calls
  finite = np.ones(n, bool)
  for k, v in traces.items():
    table[k] = v[:, -1]
    finite &= np.isfinite(v).all(axis=1)
  table["finite"] = finite
  table["precision"] = np.asarray([cfg.precision] * n)
  _write_verified(os.path.join(out, "results.npz"), lambda f: np.savez(f, **table))
  _write_verified(os.path.join(out, "traces.npz"), lambda f: np.savez(f, step=steps, **traces, **vectors))

  def write_csv(f):
    import io
    s = io.StringIO()
    w = csv.writer(s)
    w.writerow(list(table))
    for i in range(n):
      w.writerow([_fmt(table[k][i]) for k in table])
    f.write(s.getvalue().encode())

  _write_verified(os.path.join(out, "results.csv"), write_csv)
  return Results(table, {**traces, **vectors}, steps, out)


def _column(vals: list) -> np.ndarray:
  """A table column: float64 when every value is a number, else strings (vectors space-separated)."""
  vals = [" ".join(map(str, v)) if isinstance(v, tuple) else v for v in vals]
  if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
    return np.asarray(vals, np.float64)
  return np.asarray([str(v) for v in vals])


def _pad_last(arrays: list) -> list:
  """Arrays of 3 or more axes padded with NaN on the last one to a common length (rankings of games of
  several sizes); others unchanged."""
  if arrays[0].ndim < 3:
    return arrays
  n = max(a.shape[-1] for a in arrays)
  return [np.pad(a.astype(np.float64), [(0, 0)] * (a.ndim - 1) + [(0, n - a.shape[-1])],
                 constant_values=np.nan) for a in arrays]


def _fmt(x) -> str:
  if isinstance(x, (np.floating, float)):
    return repr(float(x))
  if isinstance(x, (np.bool_, bool)):
    return "true" if x else "false"
  return str(x)


def load_results(out: str) -> Results:
  """Reads a finished sweep's folder back as ``Results``.

  The merged tables are checked against their checksums; damaged ones are
  rebuilt from the sweep's chunks (with a warning on stderr) when those are
  intact, and refused in words otherwise.
  """
  path = os.path.join(out, "results.npz")
  if not os.path.exists(path):
    raise ValueError(f"results: {out} holds no finished sweep (no results.npz); run `nashax sweep` first")
  damage = _tables_damage(out)
  if damage is not None:
    _rebuild(out, damage)
  try:
    with np.load(path) as z:
      table = {k: z[k] for k in z.files}
    with np.load(os.path.join(out, "traces.npz")) as z:
      traces = {k: z[k] for k in z.files if k != "step"}
      steps = z["step"]
  except Exception as e:  # noqa: BLE001 - a table that passed its checksum but does not load
    raise ValueError(f"results: {out} has a damaged results table ({type(e).__name__}: {e}); run "
                     "`nashax sweep` on its config again to rebuild it") from None
  return Results(table, traces, steps, out)


def _rebuild(out: str, damage: str) -> None:
  """Rewrites the merged tables of a finished sweep from its chunks, or refuses naming the damage."""
  import sys

  manifest_path = os.path.join(out, "manifest.json")
  if not os.path.exists(manifest_path):
    raise ValueError(f"results: {damage}, and {out} has no manifest.json to rebuild it from")
  cfg = from_dict(_files.read_json(manifest_path, "results: the sweep manifest")["config"])
  with _files.folder_lock(out, "results"):
    points = cfg.points()
    chunks = _plan(cfg, _groups(cfg, points))
    for i, (_, rows) in enumerate(chunks):
      why = _chunk_damage(_chunk_path(out, i), rows)
      if why is not None:
        raise ValueError(f"results: {damage}, and chunk {_chunk_path(out, i)} is {why}; run `nashax sweep` "
                         f"on its config with --out {out} to recompute it")
    print(f"nashax: WARNING {damage}; rebuilt the merged tables from the chunks", file=sys.stderr)
    _finish(cfg, points, len(chunks), out)
