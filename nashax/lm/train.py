"""NLHF on real decoders: the policy trainer's algorithm table, run on a Llama-family model with prompts.

``make_lm_trainer`` builds the pure ``init``/``step``/``evaluate`` functions of a
run in which the policy is a ``nashax.lm`` decoder (random weights or a local
Hugging Face checkpoint), responses are sampled after each prompt of a batch
(chat-templated prompts from a dataset file, left-padded), and the
preference is any ``PreferenceOracle`` (``prob(prompt, a, b)``): the
synthetic class oracle, a learned preference model, an LLM judge or a
``RuleJudge`` over a verifiable score. The losses are the rows of
``nashax.policies.train.ALGORITHMS``, the ones the toy transformer and (as
population losses) the tabular solvers use, with the same hyperparameter
names (``TrainConfig``): a run on a 135M-parameter model is the same
algorithm as the theorem verified on the table.

The batch's prompts enter the table's closures: ``logp(params, y)`` scores
responses ``y [n, N]`` after prompt ``i // (n / B)`` (so ``B * k`` samples
are ``k`` per prompt, as the table's reshapes expect), ``draw`` samples with
the key/value cache of ``nashax.lm.sampling``, and ``pref`` calls the
oracle with the prompts and the response masks (1 up to and including the
first end-of-sequence token). ``exact=True`` enumerates the responses (all
``V ** N`` of them, for tiny vocabularies) and averages the population loss
over the batch's prompts.

What is trained:

- ``adapter="full"``: every weight; the reference is a frozen copy of the
  initial weights.
- ``adapter="lora"``: low-rank adapters (flax's ``nnx.LoRA``, ``W x + x A B``
  with ``B = 0`` at the start) on the named projections; the base weights
  are frozen and shared by the policy, its anchors and the reference (the
  reference is the base with ``A B = 0``), so no full copy is made.

Scale: parameters and optimizer state are placed by the checkpoint loader's
partition rules (``DEFAULT_RULES``, over the mesh axes ``fsdp`` and
``tensor``), the batch is split over ``("data", "fsdp")``, ``remat=True``
rematerialises each decoder block in the backward pass, and
``compute_dtype="bfloat16"`` runs the forward and backward passes in bf16
while the optimizer updates float32 master weights.

Metrics (``evaluate``) on a fixed set of evaluation prompts: the win rate
against the reference and against each member of a pool of opponent
policies with 95% confidence intervals, the KL to the reference estimated
from samples (``E_pi[log pi - log pi_ref]``) with its interval, and an
exploitability estimated against the pool (``max_j P(pi_j > pi) - 1/2``,
the reference included). When the oracle is the class oracle and the
responses can be enumerated, the exact regularised exploitability and
the unregularised gap are reported as well (averaged over the prompts), so
the estimate can be checked against the exact value.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nashax.core import validate
from nashax.lm import checkpoint as ckpt
from nashax.lm import sampling
from nashax.lm.config import DecoderConfig
from nashax.policies import train as PT
from nashax.policies.oracles import SequenceOracle, class_marginals, exact_gap

__all__ = ["LMSetup", "LMTrainer", "PromptSet", "make_lm_trainer", "add_lora", "merged_params", "lora_tensors",
           "LORA_TARGETS", "response_mask", "bos_prompts"]

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_DTYPES = ("float32", "bfloat16")
_sg = jax.lax.stop_gradient


@dataclasses.dataclass(frozen=True)
class LMSetup:
  """How a decoder is trained, beyond the algorithm's hyperparameters (``TrainConfig``).

  Attributes:
    adapter: ``"full"`` (every weight) or ``"lora"``.
    lora_rank: the adapters' rank.
    lora_targets: the projections that get adapters (names in ``LORA_TARGETS``).
    max_new_tokens: the longest response ``N``.
    temperature: sampling temperature of the policy's responses (1 samples the policy itself, which the
      losses assume; other values are for exploration and are recorded).
    compute_dtype: ``"float32"`` or ``"bfloat16"`` (bf16 compute, float32 master weights).
    remat: rematerialise the decoder blocks in the backward pass.
    eval_prompts: prompts in the evaluation set (the first ones of the prompt set).
    eval_samples: responses per evaluation prompt.
  """

  adapter: str = "full"
  lora_rank: int = 8
  lora_targets: tuple = LORA_TARGETS
  max_new_tokens: int = 16
  temperature: float = 1.0
  compute_dtype: str = "float32"
  remat: bool = False
  eval_prompts: int = 16
  eval_samples: int = 4

  def validate(self, where: str = "lm") -> "LMSetup":
    if self.adapter not in ("full", "lora"):
      raise ValueError(f"{where}.adapter: 'full' or 'lora', got {self.adapter!r}")
    validate.size(f"{where}.lora_rank", self.lora_rank)
    bad = [t for t in self.lora_targets if t not in LORA_TARGETS]
    if bad or not self.lora_targets:
      raise ValueError(f"{where}.lora_targets: a non-empty list of {list(LORA_TARGETS)}, got {list(self.lora_targets)}")
    validate.size(f"{where}.max_new_tokens", self.max_new_tokens)
    validate.number(f"{where}.temperature", self.temperature, lo=0.0, lo_open=True)  # > 0: the losses sample pi
    if self.compute_dtype not in _DTYPES:
      raise ValueError(f"{where}.compute_dtype: one of {list(_DTYPES)}, got {self.compute_dtype!r}")
    validate.boolean(f"{where}.remat", self.remat)
    validate.size(f"{where}.eval_prompts", self.eval_prompts)
    validate.size(f"{where}.eval_samples", self.eval_samples)
    return self


class PromptSet(NamedTuple):
  """Left-padded prompts: ``tokens [M, P]`` int32 and ``mask [M, P]`` (1 on real tokens)."""

  tokens: np.ndarray
  mask: np.ndarray


def bos_prompts(n: int, bos_id: int = 0) -> PromptSet:
  """``n`` one-token prompts (the class-oracle setting: a response after a start token, no context)."""
  return PromptSet(np.full((n, 1), bos_id, np.int32), np.ones((n, 1), np.int32))


def response_mask(y: jax.Array, eos_ids: Sequence[int]) -> jax.Array:
  """``[..., N]`` 1 on the tokens of ``y`` up to and including the first of ``eos_ids`` (all 1 without EOS)."""
  if not eos_ids:
    return jnp.ones(y.shape, jnp.int32)
  is_eos = jnp.any(y[..., None] == jnp.asarray(eos_ids, y.dtype), axis=-1).astype(jnp.int32)
  return ((jnp.cumsum(is_eos, axis=-1) - is_eos) == 0).astype(jnp.int32)


# --- LoRA ---------------------------------------------------------------------------------------------


def add_lora(graphdef: Any, params: Any, rank: int, targets: Sequence[str], key: jax.Array):
  """Wraps the ``targets`` projections of every block in ``nnx.LoRA`` adapters.

  Returns:
    ``(graphdef, lora, base)``: the adapted graph, the adapter parameters
    (``lora_a`` random, ``lora_b`` zero, so the model is unchanged) and the
    base parameters (paths gain ``base_module``).
  """
  model = nnx.merge(graphdef, params)
  rngs = nnx.Rngs(params=key)
  for blk in model.layers:
    for part in (blk.self_attn, blk):
      for name in targets:
        lin = getattr(part, name, None)
        if lin is None:
          continue
        dt = lin.kernel[...].dtype
        setattr(part, name, nnx.LoRA(lin.in_features, int(rank), lin.out_features, base_module=lin,
                                     param_dtype=dt, rngs=rngs))
  return nnx.split(model, nnx.LoRAParam, nnx.Param)


def _lora_rules(rules: Sequence) -> tuple:
  """The loader's rules, matching a wrapped projection's ``base_module`` kernel as the plain one."""
  return tuple((p.replace("/kernel$", "(/base_module)?/kernel$").replace("/bias$", "(/base_module)?/bias$"), s)
               for p, s in rules)


def _lora_pairs(lora: Any) -> dict:
  """``{path of the projection (tuple): (A [in, r], B [r, out])}``."""
  flat = dict(nnx.to_flat_state(lora)) if not isinstance(lora, dict) else lora
  out: dict = {}
  for path, v in flat.items():
    a = v[...] if hasattr(v, "__getitem__") and not isinstance(v, (jnp.ndarray, np.ndarray)) else v
    out.setdefault(tuple(path[:-1]), {})[path[-1]] = a
  return {k: (d["lora_a"], d["lora_b"]) for k, d in out.items()}


def merged_params(graphdef: Any, params: Any, base: Any = None) -> Any:
  """The plain decoder's parameters: LoRA adapters merged (``W + A B``), ``base_module`` levels removed."""
  if base is None:
    return params
  full = nnx.merge(graphdef, params, base)
  for blk in full.layers:
    for part in (blk.self_attn, blk):
      for name in LORA_TARGETS:
        mod = getattr(part, name, None)
        if isinstance(mod, nnx.LoRA):
          lin = mod.base_module
          delta = (mod.lora_a[...].astype(jnp.float32) @ mod.lora_b[...].astype(jnp.float32))
          lin.kernel[...] = (lin.kernel[...].astype(jnp.float32) + delta).astype(lin.kernel[...].dtype)
          setattr(part, name, lin)
  return nnx.split(full, nnx.Param)[1]


def lora_tensors(lora: Any) -> dict:
  """The adapters in PEFT's names and layouts: ``...q_proj.lora_A.weight [r, in]``, ``lora_B.weight [out, r]``."""
  out = {}
  for path, (a, b) in _lora_pairs(lora).items():
    name, _ = ckpt.hf_name(tuple(path) + ("kernel",))  # model.layers.0.mlp.up_proj.weight
    stem = "base_model.model." + name[:-len(".weight")]
    out[f"{stem}.lora_A.weight"] = np.ascontiguousarray(np.asarray(jax.device_get(a)).T)
    out[f"{stem}.lora_B.weight"] = np.ascontiguousarray(np.asarray(jax.device_get(b)).T)
  return out


# --- the trainer ----------------------------------------------------------------------------------------


class LMTrainer(NamedTuple):
  """The pure functions of a run on a decoder (from ``make_lm_trainer``).

  Attributes:
    init: ``(key) -> TrainState`` (``params`` are the trainable weights: all of them, or the adapters).
    step: ``(state, frozen, prompts, prompt_mask) -> (state, {"loss"})``.
    evaluate: ``(state, frozen, key) -> metrics``.
    loss: ``(params, state, frozen, prompts, prompt_mask, key, look_ahead=None) -> []``.
    frozen: the arrays every step reads and none updates (the LoRA base), passed in so jit does not
      embed them.
    shardings: ``(state shardings, frozen shardings, batch sharding)`` (``None`` without a mesh).
    graphdef: the (adapted) graph definition; config, train_config, setup, oracle, eos_ids: as given.
    responses: the enumerated responses ``[R, N]`` (exact metrics / exact mode) or ``None``.
  """

  init: Callable
  step: Callable
  evaluate: Callable
  loss: Callable
  frozen: Any
  shardings: Any
  graphdef: Any
  config: DecoderConfig
  train_config: PT.TrainConfig
  setup: LMSetup
  oracle: Any
  eos_ids: tuple
  responses: Any


def _enumerable(vocab: int, n: int, limit: int = 4096) -> Optional[np.ndarray]:
  if vocab ** n > limit:
    return None
  grids = np.meshgrid(*[np.arange(vocab)] * n, indexing="ij")
  return np.stack([g.reshape(-1) for g in grids], -1).astype(np.int32)


def _cast(tree: Any, dtype) -> Any:
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def _mean_ci(x: jax.Array) -> tuple:
  """Mean and the half-width of its normal 95% interval (``1.96 s / sqrt(n)``)."""
  n = x.shape[0]
  m = jnp.mean(x)
  s = jnp.std(x, ddof=1) if n > 1 else jnp.zeros(())
  return m, 1.96 * s / math.sqrt(n)


def make_lm_trainer(config: DecoderConfig, graphdef: Any, params: Any, train_config: PT.TrainConfig, oracle: Any,
                    setup: LMSetup = LMSetup(), *, eos_ids: Sequence[int] = (), pad_id: int = 0,
                    prompt_len: int = 1, mesh: Optional[jax.sharding.Mesh] = None,
                    pool: Sequence[tuple] = (), rules: Sequence = ckpt.DEFAULT_RULES) -> LMTrainer:
  """Builds the pure functions of an NLHF run on a decoder, validating everything first.

  Args:
    config, graphdef, params: the initial policy (= the reference), e.g. from ``load_pretrained``.
    train_config: the algorithm and its hyperparameters (``nashax.policies.train.TrainConfig``).
    oracle: a ``PreferenceOracle`` (``prob(prompt, a, b, *, prompt_mask, a_mask, b_mask)``).
    setup: the ``LMSetup``.
    eos_ids: a response ends after any of these (``()``: every response has ``max_new_tokens`` tokens, as
      the class oracle needs).
    pad_id: written after a response ends.
    prompt_len: the padded prompt length ``P`` (to check ``P + N`` against the model's context).
    mesh: a ``Mesh`` with axes among ``data``, ``fsdp``, ``tensor``; ``None`` for one device.
    pool: ``(name, graphdef, params)`` opponent policies for the evaluation (plain decoders).
    rules: partition rules for the parameters.

  Raises:
    ValueError: naming the field, before anything compiles.
  """
  cfg = train_config.validate()
  setup = setup.validate()
  alg = PT.ALGORITHMS[cfg.algorithm]
  N = int(setup.max_new_tokens)
  validate.size("prompt_len", prompt_len)
  if prompt_len + N > config.max_position_embeddings:
    raise ValueError(f"lm.max_new_tokens: prompt length {prompt_len} + {N} new tokens exceeds the model's "
                     f"max_position_embeddings={config.max_position_embeddings}")
  for e in eos_ids:
    if not 0 <= int(e) < config.vocab_size:
      raise ValueError(f"eos_ids: {e} is outside the vocabulary of {config.vocab_size}")
  eos = tuple(int(e) for e in eos_ids)
  if isinstance(oracle, SequenceOracle):
    if eos:
      raise ValueError("oracle: the class oracle scores responses of exactly response_len tokens; pass no eos_ids")
    if oracle.response_len != N:
      raise ValueError(f"lm.max_new_tokens: {N} differs from the class oracle's response_len {oracle.response_len}")
  if not callable(getattr(oracle, "prob", None)):
    raise ValueError(f"oracle: needs a prob(prompt, a, b) method (a PreferenceOracle), got {type(oracle).__name__}")
  responses = _enumerable(config.vocab_size, N)
  if cfg.exact and responses is None:
    raise ValueError(f"train.exact: needs an enumerable response space (<= 4096), got {config.vocab_size}^{N}")
  compute = jnp.bfloat16 if setup.compute_dtype == "bfloat16" else jnp.float32
  gd_plain = graphdef
  if setup.remat:
    model = nnx.merge(graphdef, params)
    model.remat = True
    gd_plain, params = nnx.split(model, nnx.Param)
  params = _cast(params, jnp.float32)  # master weights
  if setup.adapter == "lora":
    gd, lora, base = add_lora(gd_plain, params, setup.lora_rank, setup.lora_targets,
                              jax.random.key(cfg.seed + 17))
    trainable0, frozen = lora, {"base": base}
    rules = _lora_rules(rules)
  else:
    gd, trainable0, frozen = gd_plain, params, {}
  tx = optax.adam(cfg.lr)
  B = cfg.batch_size

  # Shardings: parameters by the rules, the batch over data x fsdp.
  if mesh is not None:
    batch_axes = tuple(a for a in ("data", "fsdp") if a in mesh.shape)
    n_batch = int(np.prod([mesh.shape[a] for a in batch_axes])) if batch_axes else 1
    if B % n_batch:
      raise ValueError(f"train.batch_size: {B} is not divisible by the {n_batch} batch shards of the mesh")
    batch_spec = jax.sharding.PartitionSpec(batch_axes if batch_axes else None)
    batch_sharding = jax.sharding.NamedSharding(mesh, batch_spec)
    shard = lambda x: jax.lax.with_sharding_constraint(x, batch_sharding)
  else:
    batch_sharding = None
    shard = lambda x: x

  def full(p, fz):
    return p if not fz else nnx.merge_state(p, fz["base"])

  def logp_fn(p, fz, prompts, pmask, y):
    """``[n]`` log-probabilities of responses ``y [n, N]``, each after prompt ``i // (n / B_prompts)``."""
    r = y.shape[0] // prompts.shape[0]
    pr, pm = jnp.repeat(prompts, r, axis=0), jnp.repeat(pmask, r, axis=0)
    ym = response_mask(y, eos)
    tok = jnp.concatenate([pr, y.astype(pr.dtype)], axis=1)
    score = jnp.concatenate([jnp.zeros_like(pm), ym], axis=1)
    attn = jnp.concatenate([pm, ym], axis=1)
    from nashax.lm.decoder import sequence_logp  # jitted: inlines under the caller's jit
    return sequence_logp(gd, _cast(full(p, fz), compute), shard(tok), shard(score), shard(attn))

  def draw_fn(p, fz, prompts, pmask, key, n, temperature):
    r = n // prompts.shape[0]
    pr, pm = shard(jnp.repeat(prompts, r, axis=0)), shard(jnp.repeat(pmask, r, axis=0))
    g = sampling._decode((gd,), [_cast(full(_sg(p), fz), compute)], (1.0,), key, pr, pm,
                         jnp.asarray(temperature, jnp.float32), jnp.asarray(1.0, jnp.float32), max_new_tokens=N,
                         eos_ids=eos, pad_id=int(pad_id))
    return shard(g.tokens[:, prompts.shape[1]:])

  def pref_fn(prompts, pmask, y, y2):
    lead = y.shape[:-1]
    a, b = y.reshape(-1, N), y2.reshape(-1, N)
    r = a.shape[0] // prompts.shape[0]
    pr, pm = jnp.repeat(prompts, r, axis=0), jnp.repeat(pmask, r, axis=0)
    p = oracle.prob(pr, a, b, prompt_mask=pm.astype(bool), a_mask=response_mask(a, eos).astype(bool),
                    b_mask=response_mask(b, eos).astype(bool))
    return p.reshape(lead)

  resp = None if responses is None else jnp.asarray(responses)

  def context(fz, prompts, pmask, batch):
    logp = lambda p, y: logp_fn(p, fz, prompts, pmask, y)
    draw = lambda p, key, n: draw_fn(p, fz, prompts, pmask, key, n, setup.temperature)
    pref = lambda y, y2: pref_fn(prompts, pmask, y, y2)
    all_logp = None if resp is None else (lambda p: logp(p, resp))
    pm = None
    if cfg.exact:
      R = resp.shape[0]
      a = jnp.broadcast_to(resp[:, None, :], (R, R, N)).reshape(1, R * R, N)
      b = jnp.broadcast_to(resp[None, :, :], (R, R, N)).reshape(1, R * R, N)
      pm = pref(a, b).reshape(R, R)
    return PT._Context(cfg, batch, N, logp, draw, pref, shard, all_logp, pm)

  def offline_pairs(st, fz, prompts, pmask, key):
    """DPO / IPO: pairs from ``pi_ref`` labelled by the oracle; the reference log-probabilities once per batch."""
    k1, k2, k3 = jax.random.split(key, 3)
    c = context(fz, prompts, pmask, prompts.shape[0])
    y, y2 = c.draw(st.ref, k1, B), c.draw(st.ref, k2, B)
    w, l = PT.preferred_pair(k3, y, y2, c.pref(y, y2))
    return {"w": w, "l": l, "ref_w": _sg(c.logp(st.ref, w)), "ref_l": _sg(c.logp(st.ref, l))}

  def loss_fn(p, st, fz, prompts, pmask, key, look_ahead=None, data=None):
    prompts, pmask = shard(prompts), shard(pmask)
    if cfg.exact:
      def one(pr, pmk):
        c = context(fz, pr[None], pmk[None], 1)
        return alg.exact(c, p, st, look_ahead)
      return jnp.mean(jax.vmap(one)(prompts, pmask))
    if alg.offline:
      c = context(fz, prompts, pmask, B)
      d = data if data is not None else offline_pairs(st, fz, prompts, pmask, key)
      return jnp.mean(alg.pair_loss(c.logp(p, d["w"]), c.logp(p, d["l"]), d["ref_w"], d["ref_l"], cfg.beta))
    c = context(fz, prompts, pmask, B)
    return alg.sampled(c, p, st, key, look_ahead)

  def init(key: jax.Array) -> PT.TrainState:
    p = trainable0
    copy = lambda t: jax.tree.map(lambda x: jnp.array(x, copy=True), t)  # distinct buffers: the step donates
    empty = {"w": jnp.zeros((1, 1), jnp.int32)}  # orbax refuses zero-size arrays
    st = PT.TrainState(copy(p), tx.init(p), (copy(p), copy(p)), copy(p), empty, jnp.zeros((), jnp.int32),
                       jax.random.key_data(key))
    if setup.adapter == "lora":  # the reference is the base: adapters with A B = 0
      st = st._replace(ref=jax.tree.map(jnp.zeros_like, p))
    return st

  def step(st: PT.TrainState, fz: Any, prompts: jax.Array, pmask: jax.Array) -> tuple:
    key = jax.random.fold_in(jax.random.wrap_key_data(st.key), st.step)
    data = None
    if alg.offline and not cfg.exact:
      data = offline_pairs(st, fz, shard(prompts), shard(pmask), jax.random.fold_in(key, 1))
    loss = functools.partial(loss_fn, data=data)
    return PT.train_update(alg, cfg, tx, loss, st, st, fz, prompts, pmask, key)

  pool = tuple(pool)

  def evaluate(st: PT.TrainState, fz: Any, prompts: jax.Array, pmask: jax.Array, key: jax.Array) -> dict:
    k = setup.eval_samples
    E = prompts.shape[0]
    keys = jax.random.split(key, 3 + len(pool))
    c = context(fz, prompts, pmask, E)
    y = c.draw(st.params, keys[0], E * k)
    y_ref = c.draw(st.ref, keys[1], E * k)
    lp, lr = c.logp(st.params, y), c.logp(st.ref, y)
    out = {}
    out["kl_ref"], out["kl_ref_ci"] = _mean_ci(lp - lr)
    out["win_rate_ref"], out["win_rate_ref_ci"] = _mean_ci(c.pref(y, y_ref))
    worst = 0.5 - out["win_rate_ref"]  # the reference is in the pool
    for j, (name, pg, pp) in enumerate(pool):
      r = E * k // prompts.shape[0]
      pr, pm = jnp.repeat(prompts, r, axis=0), jnp.repeat(pmask, r, axis=0)
      g = sampling._decode((pg,), [_cast(pp, compute)], (1.0,), keys[3 + j], pr, pm,
                           jnp.asarray(setup.temperature, jnp.float32), jnp.asarray(1.0, jnp.float32),
                           max_new_tokens=N, eos_ids=eos, pad_id=int(pad_id))
      yo = g.tokens[:, prompts.shape[1]:]
      w, ci = _mean_ci(c.pref(y, yo))
      out[f"win_rate_{name}"], out[f"win_rate_{name}_ci"] = w, ci
      worst = jnp.maximum(worst, 0.5 - w)
    out["exploitability_pool"] = worst
    if isinstance(oracle, SequenceOracle) and resp is not None:
      def exact(pr, pmk):
        cc = context(fz, pr[None], pmk[None], 1)
        la, ra = cc.all_logp(st.params), cc.all_logp(st.ref)
        return (exact_gap(oracle, la, ra, resp, cfg.beta), exact_gap(oracle, la, ra, resp, 0.0),
                class_marginals(oracle, la, resp))
      ex, gap, q = jax.vmap(exact)(prompts, pmask)
      out["exploitability"], out["gap_unregularized"] = jnp.mean(ex), jnp.mean(gap)
      out["class_marginals"] = jnp.mean(q, axis=0)
    return out

  state_sh = frozen_sh = None
  if mesh is not None:
    p_sh = ckpt.param_shardings(trainable0, mesh, rules)
    rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    st_abs = jax.eval_shape(init, jax.random.key(0))
    opt_sh = _opt_shardings(st_abs.opt_state, trainable0, p_sh, rep)
    state_sh = PT.TrainState(p_sh, opt_sh, (p_sh, p_sh), p_sh, jax.tree.map(lambda _: rep, st_abs.data), rep, rep)
    frozen_sh = {} if not frozen else {"base": ckpt.param_shardings(frozen["base"], mesh, rules)}
    frozen = jax.device_put(frozen, frozen_sh) if frozen else frozen
  shardings = None if mesh is None else (state_sh, frozen_sh, batch_sharding)
  return LMTrainer(init, step, evaluate, loss_fn, frozen, shardings, gd, config, cfg, setup, oracle, eos, resp)


def _opt_shardings(opt_abs: Any, params: Any, p_sh: Any, rep: Any) -> Any:
  """Shardings of the optimizer state: a leaf shaped like a parameter subtree follows its parameters."""
  p_struct = jax.tree.structure(params)

  def walk(node):
    try:
      if jax.tree.structure(node) == p_struct:
        return p_sh
    except Exception:  # noqa: BLE001 - not a pytree of the same kind
      pass
    if isinstance(node, tuple) and not hasattr(node, "_fields"):
      return tuple(walk(n) for n in node)
    if isinstance(node, tuple):  # a NamedTuple state
      return type(node)(*(walk(n) for n in node))
    return jax.tree.map(lambda _: rep, node)
  return walk(opt_abs)


def compile_steps(trainer: LMTrainer) -> tuple:
  """``(step, evaluate)`` jitted with the trainer's shardings (state donated to the step)."""
  if trainer.shardings is None:
    return jax.jit(trainer.step, donate_argnums=0), jax.jit(trainer.evaluate)
  st_sh, fz_sh, b_sh = trainer.shardings
  step = jax.jit(trainer.step, in_shardings=(st_sh, fz_sh, b_sh, b_sh), out_shardings=(st_sh, None),
                 donate_argnums=0)
  evaluate = jax.jit(trainer.evaluate, in_shardings=(st_sh, fz_sh, b_sh, b_sh, None))
  return step, evaluate


def place_state(trainer: LMTrainer, state: PT.TrainState) -> PT.TrainState:
  """``state`` on the trainer's mesh (unchanged without one)."""
  return state if trainer.shardings is None else jax.device_put(state, trainer.shardings[0])
