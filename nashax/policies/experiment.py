"""Experiments: a TOML file -> oracle, model, trainer(s) -> metrics, plots and checkpoints on disk.

``load_experiment(path)`` checks the whole file before anything compiles
(unknown algorithm, negative beta, a vocabulary too small for the oracle,
unknown keys: each refused with a message naming the key).
``run_experiment(config, out)`` trains each listed algorithm on the same
oracle and initial policy, on a ``Mesh`` of all devices (the batch sharded),
with a progress bar; every ``checkpoint_every`` steps the whole train state
is saved with orbax, and a run started again resumes from the newest
checkpoint and continues exactly (a finished one is not run again). Each
checkpoint carries a manifest of sha256 checksums and the metrics rows up to
its step: a damaged checkpoint is skipped (with a warning) for the newest
valid one, ``metrics.csv`` is rewritten from the checkpoint it resumes from
(so a kill never loses or replaces a row), and a lock refuses a second run
into the same folder. A NaN or inf metric stops the run with a
``FloatingPointError`` naming the step and the value. Per
algorithm it writes ``metrics.csv`` (step, loss, KL to the reference, win rate
against the reference, exploitability on the oracle's game); at the end a
comparison plot of all of them.

Example (``examples/policies/nash_vs_dpo.toml``)::

  [model]
  vocab_size = 4
  num_layers = 2
  embed_dim = 32

  [oracle]
  num_classes = 3
  response_len = 3

  [train]
  algorithm = ["iterative_dpo", "nash_md", "sppo", "egpo"]
  beta = 0.1
  num_steps = 300
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
from typing import Any, Callable, Mapping, Optional

import jax
import numpy as np

from nashax import _distributed, _files
from nashax._files import check_folder, read_toml, stem
from nashax._progress import Progress
from nashax.core import validate
from nashax.policies import grid
from nashax.policies import oracles as O
from nashax.policies import reward_model as RM
from nashax.policies import transformer as T
from nashax.policies.checkpoint import Checkpoints, resume
from nashax.policies.train import ALGORITHMS, TrainConfig, make_trainer

__all__ = ["Experiment", "load_experiment", "experiment_from_dict", "run_experiment", "METRICS"]

METRICS = ("loss", "kl_ref", "win_rate_ref", "exploitability", "gap_unregularized")
_ORACLE_KEYS = ("num_classes", "response_len", "margin", "noise", "seed")
_RUN_KEYS = ("eval_every", "checkpoint_every", "preference", "preference_steps")
_PREFERENCES = ("oracle", "bradley_terry", "general")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """A validated experiment.

  Attributes:
    name: label (default output folder ``runs/train/<name>``).
    model: ``TransformerConfig``.
    oracle: ``{"num_classes", "response_len", "margin", "noise", "seed"}``.
    trains: one ``TrainConfig`` per algorithm.
    eval_every, checkpoint_every: steps between evaluations / checkpoints.
    preference: what the trainers query: the oracle itself, or a Bradley-Terry
      or general preference model first fitted to ``preference_steps``
      batches of oracle comparisons.
    swept: the ``[train]`` keys given as lists of several values (``grid``).
  """

  name: str
  model: T.TransformerConfig
  oracle: dict
  trains: tuple
  eval_every: int = 25
  checkpoint_every: int = 100
  preference: str = "oracle"
  preference_steps: int = 2000
  swept: tuple = ("algorithm",)

  @property
  def labels(self) -> list[str]:
    """Each run's name and subfolder (``grid.labels``)."""
    return grid.labels(self.trains, self.swept)

  def fingerprint(self) -> str:
    d = {"model": dataclasses.asdict(self.model), "oracle": self.oracle,
         "trains": [dataclasses.asdict(t) for t in self.trains], "eval_every": self.eval_every,
         "preference": self.preference, "preference_steps": self.preference_steps}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

  def build_oracle(self) -> O.SequenceOracle:
    o = self.oracle
    return O.cyclic_oracle(o["num_classes"], self.model.vocab_size, o["response_len"], margin=o["margin"],
                           noise=o["noise"], seed=o["seed"])


def _table(where, v) -> dict:
  if not isinstance(v, Mapping):
    raise ValueError(f"{where}: expected a table, got {v!r}")
  return dict(v)


def _check_types(where: str, table: dict, cls) -> None:
  """Each value of a [model] / [train] table against its dataclass field's type: a boolean where a boolean
  is meant, a real number where a number is (booleans, strings and complex numbers refused), in words."""
  kinds = {f.name: str(f.type) for f in dataclasses.fields(cls)}
  for k, v in table.items():
    kind = kinds.get(k, "")
    if v is None and "Optional" in kind:
      continue
    if kind == "bool":
      validate.boolean(f"{where}.{k}", v)
    elif "int" in kind and kind != "tuple":
      validate.number(f"{where}.{k}", v, integer=True, hi=2 ** 31 - 1)
    elif "float" in kind:
      validate.number(f"{where}.{k}", v)


def experiment_from_dict(d: Mapping[str, Any], *, name: Optional[str] = None) -> Experiment:
  """Validates an experiment given as a dict in the TOML layout (see the module docstring).

  Raises:
    ValueError: naming the key, before anything compiles.
  """
  d = _table("config", d)
  for k in d:
    if k not in ("name", "model", "oracle", "train", "run"):
      raise ValueError(f"{k}: unknown top-level key; an experiment has name, [model], [oracle], [train], [run]")
  model = _table("model", d.get("model", {}))
  fields = {f.name for f in dataclasses.fields(T.TransformerConfig)}
  for k in model:
    if k not in fields:
      raise ValueError(f"model.{k}: unknown key; [model] takes {sorted(fields)}")
  if "vocab_size" not in model:
    raise ValueError("model.vocab_size: missing")
  _check_types("model", model, T.TransformerConfig)
  mc = T.TransformerConfig(**model).validate()
  oracle = {"margin": 0.3, "noise": 0.1, "seed": 0, **_table("oracle", d.get("oracle", {}))}
  for k in oracle:
    if k not in _ORACLE_KEYS:
      raise ValueError(f"oracle.{k}: unknown key; [oracle] takes {list(_ORACLE_KEYS)}")
  for k in ("num_classes", "response_len"):
    if k not in oracle:
      raise ValueError(f"oracle.{k}: missing")
  for k in ("num_classes", "response_len"):
    validate.size(f"oracle.{k}", oracle[k])
  for k in ("margin", "noise"):
    validate.number(f"oracle.{k}", oracle[k])
  validate.size("oracle.seed", oracle["seed"], lo=0)
  try:
    O.check_cyclic(oracle["num_classes"], mc.vocab_size, oracle["response_len"], margin=oracle["margin"],
                   noise=oracle["noise"])
  except ValueError as e:
    msg = str(e)
    key = "model.vocab_size" if msg.startswith("vocab_size") else f"oracle.{msg.split(':')[0].split('/')[0]}"
    raise ValueError(f"{key}: {msg.split(': ', 1)[-1]}") from None
  if (mc.vocab_size - 1) ** oracle["response_len"] > 4096:
    raise ValueError(f"oracle.response_len: {(mc.vocab_size - 1) ** oracle['response_len']} responses; the exact "
                     "exploitability enumerates them (at most 4096)")
  if mc.max_len < oracle["response_len"] + 1:
    raise ValueError(f"model.max_len: {mc.max_len} cannot hold BOS + {oracle['response_len']} response tokens")
  train = _table("train", d.get("train", {}))
  tfields = {f.name for f in dataclasses.fields(TrainConfig)}
  for k in train:
    if k not in tfields:
      raise ValueError(f"train.{k}: unknown key; [train] takes {sorted(tfields)}")
  if train.get("algorithm") is None:
    raise ValueError(f"train.algorithm: missing; one of {list(ALGORITHMS)} or a list of them")
  if "mnpo_weights" in train:
    train["mnpo_weights"] = tuple(train["mnpo_weights"])
  points, swept = grid.expand(train)  # algorithm, beta, eta, seed may be grid axes: one run per point
  for p in points:
    _check_types("train", {k: v for k, v in p.items() if k != "algorithm"}, TrainConfig)
  trains = tuple(TrainConfig(**p).validate() for p in points)
  run = _table("run", d.get("run", {}))
  for k in run:
    if k not in _RUN_KEYS:
      raise ValueError(f"run.{k}: unknown key; [run] takes {list(_RUN_KEYS)}")
  ev, ck = run.get("eval_every", 25), run.get("checkpoint_every", 100)
  for k, v in (("eval_every", ev), ("checkpoint_every", ck), ("preference_steps", run.get("preference_steps", 2000))):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
      raise ValueError(f"run.{k}: must be a positive integer, got {v!r}")
    validate.size(f"run.{k}", v)
  pref = run.get("preference", "oracle")
  if pref not in _PREFERENCES:
    raise ValueError(f"run.preference: one of {list(_PREFERENCES)}, got {pref!r}")
  label = d.get("name", name or "experiment")
  return Experiment(label, mc, oracle, trains, ev, ck, pref, run.get("preference_steps", 2000), swept)


def load_experiment(path: str) -> Experiment:
  """Reads and validates a TOML experiment (``name`` defaults to the file's stem)."""
  return experiment_from_dict(read_toml(path), name=stem(path))


def _read_rows(path: str) -> list:
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return list(csv.DictReader(f))


def _write_rows(path: str, rows: list) -> None:
  """The whole table, atomically (a reader or a kill sees the old file or the new one)."""
  s = io.StringIO(newline="")
  w = csv.DictWriter(s, fieldnames=["step", *METRICS])
  w.writeheader()
  w.writerows(rows)
  _files.atomic_write(path, s.getvalue().encode())


def _mesh(devices, fsdp: int) -> jax.sharding.Mesh:
  """``("data", "fsdp")`` of shape ``(devices / fsdp, fsdp)``, over every process's devices."""
  validate.size("fsdp", fsdp)
  if len(devices) % fsdp:
    raise ValueError(f"fsdp: {fsdp} does not divide the {len(devices)} devices")
  return _distributed.global_mesh((len(devices) // fsdp, fsdp), ("data", "fsdp"), devices)


def _state_shardings(mesh: jax.sharding.Mesh, state: Any) -> Any:
  """One ``NamedSharding`` per leaf of a train state: each floating-point array split along ``"fsdp"`` on
  its largest axis that the fsdp size divides (parameters, optimizer moments, anchors, the reference, the
  offline dataset's log-probabilities); integers, keys and indivisible arrays replicated."""
  P = jax.sharding.PartitionSpec
  k = mesh.shape["fsdp"]

  def one(x):
    spec = P()
    if k > 1 and np.issubdtype(x.dtype, np.floating) and x.ndim:
      axes = [a for a in np.argsort(x.shape, kind="stable")[::-1] if x.shape[a] % k == 0]
      if axes:
        spec = P(*[("fsdp" if a == axes[0] else None) for a in range(x.ndim)])
    return jax.sharding.NamedSharding(mesh, spec)
  return jax.tree.map(one, state)


def run_experiment(config: Any, out: Optional[str] = None, *, progress: bool = True, devices: Optional[list] = None,
                   stop_after: Optional[int] = None, log: Callable[[str], None] = print, fsdp: int = 1) -> dict:
  """Runs (or resumes) every run of an experiment; returns ``{run label: metrics columns}``.

  The runs are the ``[train]`` grid's points (``grid``): the algorithms, and
  every combination of the ``beta``, ``eta`` and ``seed`` lists; a run's label
  is its algorithm when only the algorithm varies.

  Args:
    config: an ``Experiment``, a dict in the TOML layout, or a TOML path.
    out: results folder (default ``runs/train/<name>``); one subfolder per
      run with ``metrics.csv`` and ``checkpoints/``, ``runs.csv`` (every
      run's metrics in one tidy table) and ``comparison.png``.
    progress: draw a progress bar.
    devices: devices of the data-parallel mesh (default all). The batch size
      must be divisible by their number.
    stop_after: stop each run after this many steps of this call (for tests
      of resumption; the run is then unfinished).
    log: where one-line messages go (process 0's only).
    fsdp: the parameters (and optimizer state) are split over this many
      devices: the mesh is ``("data", "fsdp")`` of shape
      ``(devices / fsdp, fsdp)`` and the batch is split over all of them.

  Under JAX's multi-process runtime (``nashax._distributed.initialize``) the
  mesh spans every process's devices and every process must call this with
  the same arguments. Process 0 writes ``experiment.json``, ``metrics.csv``,
  ``comparison.png`` and the folder lock; the orbax checkpoints are written
  by all processes together (each its own shards), so ``out`` must be a
  folder every process sees (a shared file system). A checkpoint restores
  onto any number of processes and devices (orbax reshards it).
  """
  exp = config if isinstance(config, Experiment) else (
      load_experiment(config) if isinstance(config, (str, os.PathLike)) else experiment_from_dict(config))
  out = out or os.path.join("runs", "train", exp.name)
  if not _distributed.is_writer():
    progress, log = False, (lambda s: None)
  theirs = _distributed.broadcast_json(exp.fingerprint())
  if theirs != exp.fingerprint():
    raise ValueError(f"config: process {_distributed.process_index()} has a different experiment (fingerprint "
                     f"{exp.fingerprint()}) from process 0's ({theirs}); give every process the same config")
  with _distributed.writer_lock(out):
    return _run_locked(exp, out, progress, devices, stop_after, log, fsdp)


def _run_locked(exp, out, progress, devices, stop_after, log, fsdp=1) -> dict:
  fp_path = os.path.join(out, "experiment.json")
  fp = exp.fingerprint()

  def claim():
    if check_folder(fp_path, fp, "experiment") is None:
      _files.atomic_write(fp_path, json.dumps({"fingerprint": fp, "name": exp.name}).encode())
  _distributed.on_writer(claim)
  devs = list(devices) if devices is not None else jax.devices()
  for t in exp.trains:
    if t.batch_size % len(devs):
      raise ValueError(f"train.batch_size: {t.batch_size} is not divisible by the {len(devs)} devices")
  mesh = _mesh(devs, fsdp)
  oracle = exp.build_oracle()
  pref = None
  if exp.preference != "oracle":
    model = RM.fit(exp.preference, oracle, jax.random.key(exp.oracle["seed"] + 1), num_steps=exp.preference_steps)
    pref = model.probability
    log(f"nashax train: fitted a {exp.preference} preference model (log-loss {model.final_loss:.3f})")
  results = {}
  for label, t in zip(exp.labels, exp.trains):
    results[label] = _run_one(exp, t, oracle, pref, mesh, os.path.join(out, label), progress, stop_after, log)
    done = [(k, t2, results[k]) for k, t2 in zip(exp.labels, exp.trains) if k in results]
    if _distributed.is_writer():
      grid.write_table(os.path.join(out, "runs.csv"), done, METRICS)
  if _distributed.is_writer():
    _plot(results, os.path.join(out, "comparison.png"), exp)
  return results


# Compiled trainers of recent oracle-preference runs, so that running or resuming the same experiment
# again in one process (a notebook cell, a test) does not compile again. Keyed by everything the trainer
# closes over: the model, the train config, the oracle's config and the mesh's devices.
_COMPILED: dict = {}
_COMPILED_MAX = 8


def _compiled(exp, t, oracle, pref, mesh):
  """``(trainer, step, evaluate, state shardings)``: the step keeps the state on its shardings and the
  evaluation's results are replicated (readable on every process)."""
  key = None
  if pref is None:
    # The seed only enters ``trainer.init`` (in ``_run_one``), so a grid over seeds shares one compiled step.
    key = (exp.model, dataclasses.replace(t, seed=0), json.dumps(exp.oracle, sort_keys=True),
           tuple(d.id for d in mesh.devices.flat), tuple(mesh.shape.items()))
    if key in _COMPILED:
      return _COMPILED[key]
  trainer = make_trainer(exp.model, t, oracle, pref, mesh)
  shardings = _state_shardings(mesh, jax.eval_shape(trainer.init, jax.random.key(0)))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  evaluate = jax.jit(trainer.evaluate, out_shardings=replicated)
  if key is not None:  # the evaluation depends on the model, the game (beta) and the oracle, not the algorithm
    for (m, t2, o, d, ms), (_, _, ev, _) in _COMPILED.items():
      if (m, t2.beta, o, d, ms) == (key[0], t.beta, key[2], key[3], key[4]):
        evaluate = ev
        break
  out = trainer, jax.jit(trainer.step, out_shardings=(shardings, replicated)), evaluate, shardings
  if key is not None:
    if len(_COMPILED) >= _COMPILED_MAX:
      _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = out
  return out


def _run_one(exp, t, oracle, pref, mesh, out, progress, stop_after, log) -> dict:
  """One algorithm: restore the newest valid checkpoint (its metrics rows included), train, checkpoint.

  ``metrics.csv`` never loses or replaces a row under a kill: the rows up to
  a checkpoint (and the losses since the last evaluation) are saved in that
  checkpoint's manifest, after its arrays, and the table is rewritten from
  them (atomically) right after; a resumed run truncates the table to its
  checkpoint and recomputes the rest exactly.
  """
  writer = _distributed.is_writer()
  _distributed.on_writer(lambda: _files.make_folder(out))
  trainer, step, evaluate, shardings = _compiled(exp, t, oracle, pref, mesh)
  state = _distributed.put(trainer.init(jax.random.key(t.seed)), shardings)
  ckpt = Checkpoints(os.path.join(out, "checkpoints"))
  write_rows = _write_rows if writer else (lambda path, rows: None)
  metrics_path = os.path.join(out, "metrics.csv")
  losses: list = []
  found = resume(ckpt, state, t.algorithm, log)
  if found is not None:
    done, state, rows, losses = found
    write_rows(metrics_path, rows)  # truncated to the checkpoint: later rows are recomputed
    if done >= t.num_steps:
      log(f"nashax train: {t.algorithm} already finished ({done} steps) in {out}")
      ckpt.close()
      return _columns(rows)
    log(f"nashax train: {t.algorithm}: resuming from step {done}")
  else:
    rows = [_row(0, float("nan"), evaluate(state))]
  start = int(_distributed.to_host(state.step))
  bar = Progress(t.num_steps, start, progress, unit=f"steps {t.algorithm}")
  for s in range(start, t.num_steps):
    if stop_after is not None and s - start >= stop_after:
      break
    state, m = step(state)
    losses.append(m["loss"])  # read at the next evaluation: the steps meanwhile dispatch asynchronously
    n = s + 1
    if n % exp.eval_every == 0 or n == t.num_steps:
      e = evaluate(state)
      rows.append(_row(n, float(np.mean([float(_distributed.to_host(v)) for v in losses])), e, t))
      losses = []
      bar.update(exp.eval_every if n % exp.eval_every == 0 else n % exp.eval_every,
                 f"exploitability {float(e['exploitability']):.4f}")
    if n % exp.checkpoint_every == 0 or n == t.num_steps:
      ckpt.save(n, state, extra={"rows": rows, "losses": [float(_distributed.to_host(v)) for v in losses]})
      write_rows(metrics_path, rows)
  write_rows(metrics_path, rows)
  ckpt.close()
  return _columns(rows)


def _row(step: int, loss: float, e: dict, t: Any = None) -> dict:
  r = {"step": step, "loss": loss}
  r.update({k: float(e[k]) for k in METRICS if k != "loss"})
  bad = [(k, v) for k, v in r.items() if not np.isfinite(v) and (k != "loss" or step > 0)]
  if bad:
    hint = f" (train.lr = {t.lr} may be too large)" if t is not None and hasattr(t, "lr") else \
        " (a learning rate may be too large)"
    raise FloatingPointError(f"train: non-finite metric at step {step}: {bad[0][0]} = {bad[0][1]}{hint}")
  return r


def _columns(rows: list) -> dict:
  return {k: np.asarray([float(r[k]) for r in rows]) for k in ["step", *METRICS]}


def _plot(results: dict, path: str, exp: Experiment) -> None:
  import matplotlib

  if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
  for alg, c in results.items():
    axes[0].semilogy(c["step"], np.maximum(c["exploitability"], 1e-6), label=alg)
    axes[1].plot(c["step"], c["kl_ref"], label=alg)
    axes[2].plot(c["step"], c["win_rate_ref"], label=alg)
  axes[0].set_ylabel("exploitability (regularised game)")
  axes[1].set_ylabel("KL(pi || pi_ref)")
  axes[2].set_ylabel("win rate against pi_ref")
  for ax in axes:
    ax.set_xlabel("step")
  axes[0].legend(fontsize=8)
  betas = sorted({t.beta for t in exp.trains})
  fig.suptitle(f"{exp.name}: {exp.model.num_layers}-layer transformer, {exp.oracle['num_classes']}-class cyclic oracle, "
               f"beta = {', '.join(f'{b:g}' for b in betas)}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
