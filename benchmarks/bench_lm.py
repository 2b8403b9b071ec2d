"""The Llama-family decoder against transformers + PyTorch: train-step and generation throughput.

Both sides run the same configuration with the same random weights (nashax's
are copied into transformers' model through ``nashax.lm.save_pretrained``),
in float32 on the CPU (or bfloat16 with ``--gpu``, where the peer is skipped
unless PyTorch sees a GPU), in one run:

- **forward + backward**: the summed next-token log-likelihood of ``B``
  sequences of ``T`` tokens and its gradient with respect to every weight;
  tokens/s and model FLOP utilisation (``DecoderConfig.flops_per_token``: ``6 N
  + 12 n_layer T n_head d_head`` per token, ``N`` the matrix parameters that
  touch a token, attention scores and values counted in full; the peak is a
  measured square matmul of the device, the roofline the model's matmuls could
  reach);
- **generation**: ``B`` prompts of ``P`` tokens, ``N`` new tokens each with the
  key/value cache, sampled (``nashax.lm.generate`` against ``model.generate``;
  no EOS, so both produce exactly ``B N`` tokens).

Prints a table and, last, ``lm_train_step: ratio=VALUE`` (nashax tokens/s over
transformers'). transformers and torch come from the ``parity`` extra.

Usage: python benchmarks/bench_lm.py [--gpu] [--reps 5]
"""

import argparse
import os
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from _peak import matmul_flops

from nashax import lm

CPU = dict(model_type="llama", vocab_size=49152, hidden_size=256, intermediate_size=704, num_layers=4,
           num_heads=4, num_kv_heads=2, head_dim=64, tie_word_embeddings=True, max_position_embeddings=2048)
# Qwen2.5-0.5B's shape (random weights): for an accelerator.
GPU = dict(model_type="qwen2", vocab_size=151936, hidden_size=896, intermediate_size=4864, num_layers=24,
           num_heads=14, num_kv_heads=2, head_dim=64, tie_word_embeddings=True, qkv_bias=True,
           max_position_embeddings=32768, rope_theta=1e6)




def timed(fn, reps):
  fn()
  t0 = time.perf_counter()
  for _ in range(reps):
    fn()
  return (time.perf_counter() - t0) / reps


def nashax_side(cfg, params, graphdef, batch, seq, prompt, new, reps):
  tokens = jax.random.randint(jax.random.key(1), (batch, seq), 0, cfg.vocab_size)
  mask = jnp.ones_like(tokens)

  def loss(p):
    return -jnp.sum(lm.sequence_logp(graphdef, p, tokens, mask))
  step = jax.jit(jax.value_and_grad(loss))
  t_train = timed(lambda: jax.block_until_ready(step(params)), reps)
  prompts = tokens[:, :prompt]
  t_gen = timed(lambda: jax.block_until_ready(lm.generate(graphdef, params, jax.random.key(2), prompts,
                                                          jnp.ones_like(prompts), max_new_tokens=new).tokens), reps)
  return batch * seq / t_train, batch * new / t_gen


def torch_side(path, batch, seq, prompt, new, reps):
  import torch
  import transformers
  torch.manual_seed(0)
  model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa")
  tokens = torch.randint(0, model.config.vocab_size, (batch, seq))

  def train():
    model.zero_grad(set_to_none=True)
    out = model(input_ids=tokens)
    lp = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(-1, tokens[:, 1:, None]).sum()
    (-lp).backward()
  t_train = timed(train, reps)
  prompts = tokens[:, :prompt]

  def gen():
    with torch.no_grad():
      model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                     max_new_tokens=new, min_new_tokens=new, eos_token_id=None, pad_token_id=0)
  t_gen = timed(gen, reps)
  return batch * seq / t_train, batch * new / t_gen


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--gpu", action="store_true", help="Qwen2.5-0.5B shape in bfloat16 (random weights)")
  ap.add_argument("--reps", type=int, default=5)
  args = ap.parse_args()
  shape = GPU if args.gpu else CPU
  dtype = jnp.bfloat16 if args.gpu else jnp.float32
  batch, seq, prompt, new = (16, 1024, 128, 128) if args.gpu else (4, 128, 16, 32)
  cfg = lm.DecoderConfig(**shape)
  graphdef, params = lm.init_decoder(cfg, jax.random.key(0), dtype=dtype)
  peak = matmul_flops(8192 if args.gpu else 1024, dtype)
  print(f"device: {jax.devices()[0].device_kind}; {lm.num_params(params) / 1e6:.1f}M parameters; "
        f"B={batch} T={seq}; generation P={prompt} N={new}; measured matmul peak {peak / 1e9:.1f} GFLOP/s")
  train_tps, gen_tps = nashax_side(cfg, params, graphdef, batch, seq, prompt, new, args.reps)
  mfu = train_tps * cfg.flops_per_token(seq) / peak
  print(f"nashax        train {train_tps:10.0f} tokens/s (MFU {mfu:.1%})   generate {gen_tps:8.0f} tokens/s")
  try:
    import torch  # noqa: F401
    import transformers  # noqa: F401
  except ImportError:
    print("transformers + torch not installed (the `parity` extra): no peer")
    print(f"lm_train_step_mfu: ratio={mfu:.3f}")
    return
  if args.gpu and not torch.cuda.is_available():
    print("PyTorch sees no GPU: no peer at this size")
    print(f"lm_train_step_mfu: ratio={mfu:.3f}")
    return
  with tempfile.TemporaryDirectory() as d:
    lm.save_pretrained(d, cfg, params)
    t_train, t_gen = torch_side(d, batch, seq, prompt, new, args.reps)
  print(f"transformers  train {t_train:10.0f} tokens/s (MFU {t_train * cfg.flops_per_token(seq) / peak:.1%})   "
        f"generate {t_gen:8.0f} tokens/s")
  print(f"lm_generate: ratio={gen_tps / t_gen:.2f}")
  print(f"lm_train_step: ratio={train_tps / t_train:.2f}")


if __name__ == "__main__":
  main()
