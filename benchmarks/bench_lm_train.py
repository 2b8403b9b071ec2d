"""NLHF train steps on a real decoder (``nashax.lm.train``): tokens/s and model FLOP utilisation.

Every step is the one ``nashax train`` runs (``make_lm_trainer`` and
``compile_steps``) on a Llama-family decoder with random weights, ``B``
random prompts of ``P`` tokens, responses of ``N`` tokens and the cyclic
class oracle (context-free and cheap, so the time is the decoder's), full
fine-tuning with Adam, at several sizes in one run:

- **dpo_pairs**: the loss and update on a fixed batch of ``B`` given pairs
  with their reference log-probabilities: ``value_and_grad`` of the
  trainer's own loss (``trainer.loss(..., data={"w", "l", "ref_w",
  "ref_l"})``) and the Adam update, jitted. The peer runs the same step in
  transformers + PyTorch (``torch.optim.Adam``, the same weights, prompts,
  pairs, ``beta`` and learning rate; winners and losers in one batch, as TRL
  does, logits on every position as ours): their first log-probabilities and
  DPO loss must equal ours (the run stops otherwise), and the ratio of their
  tokens/s is the CPU target;
- **dpo_step**: the trainer's whole DPO step: ``2B`` responses sampled from
  ``pi_ref`` with the key/value cache, labelled by the oracle, their reference
  log-probabilities, then the loss and update;
- **nash_md**: ``y ~ pi_theta`` and ``m = mixture_candidates`` more draws per
  prompt for the resampled geometric mixture (``B (1 + m)`` generations), the
  log-probabilities of the candidates under ``pi_theta`` and ``pi_ref``, and
  the policy gradient on ``y``;
- **sppo**: ``y`` and ``k = num_opponents`` opponents per prompt from the
  anchor (``B (1 + k)`` generations), the anchor's log-probabilities, and the
  update on ``y``.

tokens/s counts the prompt and response tokens of the sequences the update
trains on, ``T = P + N`` each: ``2 B T`` per DPO step (the pair), ``B T`` per
Nash-MD or SPPO step; the generated tokens are counted in the FLOPs only.

FLOP formula (``DecoderConfig.flops_per_token``, PaLM's MFU convention):
with ``n`` the matrix parameters that touch a token (attention and MLP
projections, the unembedding), a forward pass over a context of ``c``
positions costs ``f(c) = 2 n + 4 L H d c`` per token (``L`` layers, ``H``
query heads of size ``d``; the second term is ``QK^T`` and the weighted
values, counted over the whole context), a trained token ``3 f(T)``
(forward and backward). Per step:

- trained sequence: ``3 T f(T)``; scored sequence (no gradient): ``T f(T)``;
- generated sequence (``N`` tokens after ``P``, key/value cache): the prompt
  ``P f(P)`` and the ``N - 1`` decoded tokens at contexts ``P + 1 .. P + N - 1``,
  ``sum_c f(c)`` (the last drawn token needs no forward pass);
- dpo_pairs = ``2B`` trained; dpo_step = ``2B`` generated + ``2B`` scored
  + ``2B`` trained; nash_md = ``B (1 + m)`` generated + ``2 B m + B`` scored
  + ``B`` trained; sppo = ``B (1 + k)`` generated + ``B`` scored + ``B``
  trained.

MFU is those FLOPs per second over the device's measured square-matmul
throughput (``_peak.matmul_flops``, the roofline the model's matmuls could
reach; measured in the same interleaved rounds as the steps, so a loaded
machine slows both alike) and, on a GPU of known kind, over its nominal
dense bf16 peak as well (``mfu_nominal``).
The optimizer, the softmax, norms and the sampler's own work are not counted.

``--gpu``: the Qwen2.5-0.5B shape (random weights), bf16 compute with float32
master weights, the parameters and optimizer state over an ``fsdp`` mesh axis
of all devices (the batch over it too); the target there is MFU >= 40% for the
``dpo_pairs`` step on an H100/H200-class GPU, and the peer runs only if PyTorch sees a
GPU (bf16 autocast, float32 weights). This mode has not been run on a GPU yet.

Prints a table per size with ``lm_train_<step>_<size>: tokens_per_s=VALUE
mfu=VALUE`` lines (``<step>`` one of ``dpo_pairs``, ``dpo_step``, ``nash_md``,
``sppo``) and ``lm_train_dpo_<size>: ratio=VALUE``, then the same
``lm_train_<step>`` lines for the reference size (the last one) and, last,
``lm_train_dpo: ratio=VALUE``: nashax tokens/s over transformers' on the DPO
pairs step, the smallest over the sizes (the target is >= 1). Without torch and
transformers (the ``parity`` extra) it says so and prints no ratio.

Usage: python benchmarks/bench_lm_train.py [--gpu [--remat]] [--smoke] [--reps 5] [--no-peer]
       [--only dpo_pairs,nash_md] [--sizes v8k_h128_l2] [--candidates 4] [--opponents 4]
"""

import argparse
import contextlib
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from _peak import matmul_flops

from nashax import lm
from nashax.lm import train as LT
from nashax.policies import train as PT
from nashax.policies.oracles import cyclic_oracle

_LLAMA = dict(model_type="llama", tie_word_embeddings=True, max_position_embeddings=2048)
# name: (decoder shape, (B, P, N)). The last is the reference size (bench_lm's CPU shape at 8 layers).
CPU_SIZES = {
    "v8k_h128_l2": (dict(_LLAMA, vocab_size=8192, hidden_size=128, intermediate_size=352, num_layers=2,
                         num_heads=4, num_kv_heads=2, head_dim=32), (4, 16, 16)),
    "v49k_h256_l4": (dict(_LLAMA, vocab_size=49152, hidden_size=256, intermediate_size=704, num_layers=4,
                          num_heads=4, num_kv_heads=2, head_dim=64), (4, 16, 16)),
    "v49k_h384_l6": (dict(_LLAMA, vocab_size=49152, hidden_size=384, intermediate_size=1024, num_layers=6,
                          num_heads=6, num_kv_heads=2, head_dim=64), (4, 32, 32)),
}
SMOKE_SIZES = {
    "smoke": (dict(_LLAMA, vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                   num_kv_heads=1, head_dim=16, max_position_embeddings=64), (2, 4, 4)),
}
# Qwen2.5-0.5B's shape (random weights): for an accelerator.
GPU_SIZES = {
    "qwen2.5_0.5b": (dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864,
                          num_layers=24, num_heads=14, num_kv_heads=2, head_dim=64, tie_word_embeddings=True,
                          qkv_bias=True, max_position_embeddings=32768, rope_theta=1e6), (16, 256, 256)),
}
# Nominal dense bf16 peaks (FLOP/s) by device kind, for the MFU against the data sheet.
NOMINAL_BF16 = {"H100": 989e12, "H200": 989e12, "H20": 148e12, "A100": 312e12, "L4": 121e12}
BETA, LR = 0.1, 1e-4
STEPS = ("dpo_pairs", "dpo_step", "nash_md", "sppo")


# --- FLOPs -----------------------------------------------------------------------------------------------


def trained_flops(cfg, n, T):
  """Forward and backward of ``n`` sequences of ``T`` tokens: ``n T 3 f(T)``."""
  return n * T * cfg.flops_per_token(T)


def scored_flops(cfg, n, T):
  """Forward of ``n`` sequences of ``T`` tokens: ``n T f(T)``."""
  return n * T * cfg.flops_per_token(T, training=False)


def generated_flops(cfg, n, P, N):
  """``n`` responses of ``N`` tokens after ``P`` (key/value cache): ``n (P f(P) + sum_{P<c<P+N} f(c))``."""
  decode = sum(cfg.flops_per_token(c, training=False) for c in range(P + 1, P + N))
  return n * (P * cfg.flops_per_token(P, training=False) + decode)


def step_flops(cfg, name, B, P, N, m, k):
  """Model FLOPs of one step of ``name`` (see the module docstring)."""
  T = P + N
  if name == "dpo_pairs":
    return trained_flops(cfg, 2 * B, T)
  if name == "dpo_step":
    return generated_flops(cfg, 2 * B, P, N) + scored_flops(cfg, 2 * B, T) + trained_flops(cfg, 2 * B, T)
  if name == "nash_md":
    return (generated_flops(cfg, B * (1 + m), P, N) + scored_flops(cfg, 2 * B * m + B, T)
            + trained_flops(cfg, B, T))
  if name == "sppo":
    return generated_flops(cfg, B * (1 + k), P, N) + scored_flops(cfg, B, T) + trained_flops(cfg, B, T)
  raise ValueError(f"name: unknown step {name!r}")


def step_tokens(name, B, P, N):
  """Trained prompt + response tokens per step: ``2 B T`` for DPO, ``B T`` otherwise."""
  return (2 if name in ("dpo_pairs", "dpo_step") else 1) * B * (P + N)


# --- nashax ---------------------------------------------------------------------------------------------


def make_trainer(cfg, graphdef, params, algorithm, B, P, N, m, k, compute, mesh, remat=False):
  tc = PT.TrainConfig(algorithm=algorithm, beta=BETA, lr=LR, batch_size=B, mixture_candidates=m,
                      num_opponents=k)
  setup = LT.LMSetup(max_new_tokens=N, compute_dtype=compute, remat=remat)
  oracle = cyclic_oracle(3, cfg.vocab_size, N)
  return LT.make_lm_trainer(cfg, graphdef, params, tc, oracle, setup, prompt_len=P, mesh=mesh)


def dpo_pairs_step(trainer):
  """``(params, opt_state, state, frozen, prompts, mask, key, data) -> (params, opt_state, loss)``, jitted.

  The trainer's loss on the given pairs under ``value_and_grad`` and the trainer's optimizer (Adam at
  ``lr``), parameters and optimizer state donated and, on a mesh, kept in the trainer's shardings (as in
  ``compile_steps``, so no call recompiles for a new layout).
  """
  tx = optax.adam(trainer.train_config.lr)

  def step(params, opt, st, fz, prompts, mask, key, data):
    loss, g = jax.value_and_grad(trainer.loss)(params, st, fz, prompts, mask, key, None, data)
    upd, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, upd), opt, loss
  if trainer.shardings is None:
    return jax.jit(step, donate_argnums=(0, 1))
  st_sh = trainer.shardings[0]
  return jax.jit(step, donate_argnums=(0, 1), out_shardings=(st_sh.params, st_sh.opt_state, None))


def fixed_pairs(cfg, graphdef, params, B, P, N, seed=0):
  """Random prompts and pairs, with reference log-probabilities = the policy's plus ``N(0, 1)`` noise.

  Returns:
    ``(prompts [B, P], {"w", "l", "ref_w", "ref_l"}, policy log-probabilities [2B] of [w; l])``: the peer's
    first log-probabilities must equal the last (the same model scoring the same tokens) and, the noise
    making the first DPO loss differ from ``log 2``, its first loss ours (the same loss).
  """
  rng = np.random.default_rng(seed)
  prompts = rng.integers(1, cfg.vocab_size, (B, P)).astype(np.int32)
  w, l = (rng.integers(1, cfg.vocab_size, (B, N)).astype(np.int32) for _ in range(2))
  score = np.concatenate([np.zeros((B, P), np.int32), np.ones((B, N), np.int32)], 1)

  def logp(y):
    return np.asarray(lm.sequence_logp(graphdef, params, jnp.asarray(np.concatenate([prompts, y], 1)),
                                       jnp.asarray(score)))
  pol = np.concatenate([logp(w), logp(l)])
  ref_w = pol[:B] + rng.normal(size=B).astype(np.float32)
  ref_l = pol[B:] + rng.normal(size=B).astype(np.float32)
  return prompts, {"w": w, "l": l, "ref_w": ref_w.astype(np.float32), "ref_l": ref_l.astype(np.float32)}, pol


class Nashax:
  """The nashax side at one size: the DPO pairs step and the trainer's steps, each run by ``run(name)``."""

  def __init__(self, cfg, graphdef, params, B, P, N, m, k, compute, mesh, steps=STEPS, remat=False):
    self.prompts_np, self.data_np, self.pol = fixed_pairs(cfg, graphdef, params, B, P, N)
    algs = {"dpo"} | {n for n in steps if n in ("nash_md", "sppo")}
    self.trainers = {a: make_trainer(cfg, graphdef, params, a, B, P, N, m, k, compute, mesh, remat)
                     for a in algs}
    self.trainers["dpo_step"] = self.trainers["dpo_pairs"] = self.trainers["dpo"]
    tr = self.trainers["dpo"]
    b_sh = None if tr.shardings is None else tr.shardings[2]
    put = jnp.asarray if b_sh is None else (lambda x: jax.device_put(jnp.asarray(x), b_sh))
    self.prompts, self.mask = put(self.prompts_np), put(np.ones_like(self.prompts_np))
    self.data = {kk: put(v) for kk, v in self.data_np.items()}
    init = lambda t: LT.place_state(t, t.init(jax.random.key(1)))
    self.pairs_state = init(tr)  # the loss reads none of it on given pairs; never donated
    st = init(tr)
    self.params, self.opt = st.params, st.opt_state  # donated to the pairs step
    self.pairs = dpo_pairs_step(tr)
    trainer_steps = [n for n in steps if n != "dpo_pairs"]
    self.states = {n: init(self.trainers[n]) for n in trainer_steps}
    self.steps = {n: LT.compile_steps(self.trainers[n])[0] for n in trainer_steps}
    self.key = jax.random.key(2)
    self.first_loss = None

  def run(self, name):
    tr = self.trainers[name]
    if name == "dpo_pairs":
      self.params, self.opt, loss = self.pairs(self.params, self.opt, self.pairs_state, tr.frozen,
                                               self.prompts, self.mask, self.key, self.data)
      loss = float(loss)
      if self.first_loss is None:
        self.first_loss = loss
      return loss
    self.states[name], out = self.steps[name](self.states[name], tr.frozen, self.prompts, self.mask)
    return float(out["loss"])


# --- transformers + PyTorch -----------------------------------------------------------------------------


def torch_available():
  try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
  except ImportError:
    return False
  return True


class Torch:
  """The same DPO step in transformers + PyTorch: one forward of ``[winners; losers]``, Adam."""

  def __init__(self, path, prompts, data, gpu):
    import torch
    import transformers
    transformers.utils.logging.disable_progress_bar()
    self.torch = torch
    self.dev = "cuda" if gpu else "cpu"
    self.model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32,
                                                                   attn_implementation="sdpa").to(self.dev)
    self.model.train()
    try:  # the fused CPU/GPU kernel where this build has it
      self.opt = torch.optim.Adam(self.model.parameters(), lr=LR, fused=True)
      self.fused = True
    except (RuntimeError, TypeError):
      self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
      self.fused = False
    self.gpu = gpu
    p = torch.as_tensor(prompts, dtype=torch.long)
    w, l = torch.as_tensor(data["w"], dtype=torch.long), torch.as_tensor(data["l"], dtype=torch.long)
    self.P = p.shape[1]
    self.tokens = torch.cat([torch.cat([p, w], 1), torch.cat([p, l], 1)], 0).to(self.dev)
    self.ref = torch.cat([torch.as_tensor(data["ref_w"]), torch.as_tensor(data["ref_l"])]).to(self.dev)
    self.B = p.shape[0]
    self.first_loss = None

  def run(self, _name="dpo_pairs"):
    torch = self.torch
    self.opt.zero_grad(set_to_none=True)
    with torch.autocast("cuda", dtype=torch.bfloat16) if self.gpu else contextlib.nullcontext():
      logits = self.model(input_ids=self.tokens).logits
    lp = torch.log_softmax(logits[:, self.P - 1:-1].float(), -1)
    lp = lp.gather(-1, self.tokens[:, self.P:, None])[..., 0].sum(-1)
    margin = (lp[:self.B] - self.ref[:self.B]) - (lp[self.B:] - self.ref[self.B:])
    loss = -torch.nn.functional.logsigmoid(BETA * margin).mean()
    loss.backward()
    self.opt.step()
    if self.gpu:
      torch.cuda.synchronize()
    loss = float(loss.detach())
    if self.first_loss is None:
      self.first_loss, self.first_logp = loss, lp.detach().float().cpu().numpy()
    return loss


class Peak:
  """The device's square-matmul FLOP/s (``_peak.matmul_flops``), measured in the rounds of the steps."""

  def __init__(self, n, dtype):
    self.n, self.dtype, self.rates = n, dtype, []

  def run(self, _name="peak"):
    self.rates.append(matmul_flops(self.n, self.dtype, reps=3))

  def peak(self):
    return statistics.median(self.rates)


# --- the run --------------------------------------------------------------------------------------------


def timed_rounds(sides, reps):
  """Median seconds per call of each ``(side, name)``, rounds interleaved so a load change hits all alike."""
  for side, name in sides:  # compile / warm up
    side.run(name)
  times = {(id(s), n): [] for s, n in sides}
  for _ in range(reps):
    for side, name in sides:
      t0 = time.perf_counter()
      side.run(name)
      times[(id(side), name)].append(time.perf_counter() - t0)
  return {key: statistics.median(v) for key, v in times.items()}


def nominal_peak():
  kind = jax.devices()[0].device_kind
  if jax.devices()[0].platform != "gpu":
    return None
  for name, peak in NOMINAL_BF16.items():
    if name in kind:
      return peak
  return None


def fmt_mfu(flops_per_s, peak, nominal):
  out = f"mfu={flops_per_s / peak:.4f}"
  return out + (f" mfu_nominal={flops_per_s / nominal:.4f}" if nominal else "")


def parse_args():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--gpu", action="store_true", help="Qwen2.5-0.5B shape, bf16, fsdp")
  ap.add_argument("--smoke", action="store_true", help="one tiny size, one rep (checks the script runs)")
  ap.add_argument("--reps", type=int, default=5)
  ap.add_argument("--no-peer", action="store_true", help="skip transformers + PyTorch")
  ap.add_argument("--remat", action="store_true", help="rematerialise the decoder blocks (LMSetup.remat)")
  ap.add_argument("--candidates", type=int, default=4, help="Nash-MD's mixture_candidates m")
  ap.add_argument("--opponents", type=int, default=4, help="SPPO's num_opponents k")
  ap.add_argument("--only", default=",".join(STEPS), help=f"comma-separated steps among {','.join(STEPS)}")
  ap.add_argument("--sizes", default="", help="comma-separated size names (default: all of the mode's)")
  args = ap.parse_args()
  args.steps = tuple(n for n in STEPS if n in args.only.split(","))
  if set(args.only.split(",")) - set(STEPS) or not args.steps:
    ap.error(f"--only: steps among {','.join(STEPS)}, got {args.only!r}")
  for name in ("reps", "candidates", "opponents"):
    if getattr(args, name) < 1:
      ap.error(f"--{name}: must be >= 1, got {getattr(args, name)}")
  return args


def peer_available(args):
  """Whether the transformers + PyTorch peer runs, saying why not when it does not."""
  if args.no_peer:
    print("--no-peer: no peer")
    return False
  if not torch_available():
    print("transformers + torch not installed (the `parity` extra): no peer")
    return False
  import torch
  if args.gpu and not torch.cuda.is_available():
    print("PyTorch sees no GPU: no peer at this size")
    return False
  print(f"peer: transformers + PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
  return True


def run_size(size, shape, B, P, N, args, peer, nominal):
  """Times every step at one size; prints its table and lines. Returns ``(rows, ratio or None, peak)``."""
  m, k, steps = args.candidates, args.opponents, args.steps
  cfg = lm.DecoderConfig(**shape)
  graphdef, params = lm.init_decoder(cfg, jax.random.key(0), dtype=jnp.float32)
  n_mat = cfg.flops_per_token(0, training=False) / 2
  print(f"\n[{size}] {lm.num_params(params) / 1e6:.2f}M parameters, n = {n_mat / 1e6:.2f}M; "
        f"B={B} P={P} N={N}")
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("fsdp",)) if args.gpu else None
  ours = Nashax(cfg, graphdef, params, B, P, N, m, k, "bfloat16" if args.gpu else "float32", mesh, steps,
                args.remat)
  meter = Peak(256 if args.smoke else 8192 if args.gpu else 1024, jnp.bfloat16 if args.gpu else jnp.float32)
  sides = [(meter, "peak")] + [(ours, n) for n in steps]
  theirs = None
  if peer and "dpo_pairs" in steps:
    with tempfile.TemporaryDirectory() as d:
      lm.save_pretrained(d, cfg, params)
      theirs = Torch(d, ours.prompts_np, ours.data_np, args.gpu)
    sides.append((theirs, "dpo_pairs"))
  t = timed_rounds(sides, 1 if args.smoke else args.reps)
  peak = meter.peak()
  print(f"  measured matmul peak {peak / 1e9:.1f} GFLOP/s (median over the rounds)")

  def rate(who, name):
    sec = t[(id(who), name)]
    return step_tokens(name, B, P, N) / sec, step_flops(cfg, name, B, P, N, m, k) / sec

  def show(who, name, tps, fps):
    print(f"  {who:12s} {name:9s} {tps:10.0f} tokens/s {fps / 1e9:9.2f} GFLOP/s  "
          f"{fmt_mfu(fps, peak, nominal)}")
  rows = {name: rate(ours, name) for name in steps}
  for name, (tps, fps) in rows.items():
    show("nashax", name, tps, fps)
  ratio = None
  if theirs is not None:
    tps, fps = rate(theirs, "dpo_pairs")
    show("transformers", "dpo_pairs", tps, fps)
    print(f"  (transformers: Adam fused={theirs.fused})")
    rtol = 2e-2 if args.gpu else 1e-4
    if not np.allclose(theirs.first_logp, ours.pol, rtol=rtol, atol=1e-3):
      raise SystemExit(f"the peer's log-probabilities {theirs.first_logp} differ from ours {ours.pol}")
    a, b = ours.first_loss, theirs.first_loss
    print(f"  first DPO loss: nashax {a:.6f}, transformers {b:.6f} (log-probabilities equal)")
    # float32: both sides compute the same sums; bf16 (GPU): each rounds its own way.
    if not abs(a - b) <= (5e-2 if args.gpu else 1e-3) * max(1.0, abs(a)):
      raise SystemExit(f"the peer's first DPO loss {b} differs from ours {a}: not the same step")
    ratio = rows["dpo_pairs"][0] / tps
    print(f"lm_train_dpo_{size}: ratio={ratio:.3f}")
  for name, (tps, fps) in rows.items():
    print(f"lm_train_{name}_{size}: tokens_per_s={tps:.1f} {fmt_mfu(fps, peak, nominal)}")
  return rows, ratio, peak


def main():
  args = parse_args()
  sizes = SMOKE_SIZES if args.smoke else GPU_SIZES if args.gpu else CPU_SIZES
  if args.sizes:
    if set(args.sizes.split(",")) - set(sizes):
      raise SystemExit(f"--sizes: names among {','.join(sizes)}, got {args.sizes!r}")
    sizes = {k: v for k, v in sizes.items() if k in args.sizes.split(",")}
  dtype = jnp.bfloat16 if args.gpu else jnp.float32
  nominal = nominal_peak()
  print(f"device: {jax.devices()[0].device_kind} x{len(jax.devices())}; compute {jnp.dtype(dtype).name}"
        + (f"; nominal peak {nominal / 1e12:.0f} TFLOP/s" if nominal else ""))
  print(f"steps: dpo_pairs (loss + Adam on given pairs), dpo_step (pairs sampled from pi_ref), nash_md "
        f"(mixture_candidates={args.candidates}), sppo (num_opponents={args.opponents}); beta={BETA} "
        f"lr={LR}; cyclic class oracle")
  print("FLOPs: f(c) = 2 n + 4 L H d c per token; trained sequence 3 T f(T), scored T f(T), generated "
        "P f(P) + sum_{c=P+1}^{P+N-1} f(c) (see the module docstring)")
  peer = peer_available(args)
  ratios, rows = [], {}
  for size, (shape, (B, P, N)) in sizes.items():
    rows, ratio, peak = run_size(size, shape, B, P, N, args, peer, nominal)
    ratios += [] if ratio is None else [ratio]
  print()
  for name, (tps, fps) in rows.items():
    print(f"lm_train_{name}: tokens_per_s={tps:.1f} {fmt_mfu(fps, peak, nominal)}")
  if args.gpu and "dpo_pairs" in rows and nominal:
    got = rows["dpo_pairs"][1] / nominal
    print(f"target: dpo_pairs MFU >= 0.40 of the nominal bf16 peak: {got:.3f} "
          f"({'met' if got >= 0.4 else 'NOT met'})")
  if ratios:
    print(f"lm_train_dpo: ratio={min(ratios):.3f}")


if __name__ == "__main__":
  main()
