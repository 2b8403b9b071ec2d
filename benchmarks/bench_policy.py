"""Policy train-step throughput (tokens/s) and model FLOP utilisation at a few transformer sizes.

The step is the offline DPO step of ``nashax.policies.train`` (pairs from a
cached dataset, reference log-probabilities cached once): a forward and a
backward pass of the policy on ``2 B`` sequences of ``T + 1`` tokens (BOS +
response). Model FLOPs per step: ``2 B T (6 N + 6 n_layer T d)`` with ``N =
n_layer (4 d^2 + 2 d d_ff) + d V`` (Kaplan et al. 2020; the PaLM MFU
convention; ``transformer.flops_per_token``). The peer measured in the same
run is the device's dense matmul throughput (a square float32 ``jnp.dot``,
the roofline the model's matmuls could at best reach): model FLOP
utilisation = achieved model FLOP/s / measured matmul FLOP/s.

Prints a table and, last, ``policy_dpo_largest: ratio=VALUE`` (the MFU of the
largest size). ``--gpu`` uses larger sizes.

Usage: python benchmarks/bench_policy.py [--gpu] [--steps 20]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from _peak import matmul_flops

from nashax.policies import oracles as O
from nashax.policies import train as TR
from nashax.policies import transformer as T

CPU_SIZES = [  # (embed_dim, layers, heads, batch, response_len)
    (32, 1, 2, 32, 15),
    (64, 2, 4, 32, 31),
    (128, 4, 4, 32, 63),
]
GPU_SIZES = [
    (256, 4, 4, 64, 127),
    (512, 8, 8, 64, 255),
    (1024, 12, 16, 32, 511),
]




def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--gpu", action="store_true")
  ap.add_argument("--steps", type=int, default=20)
  args = ap.parse_args()
  sizes = GPU_SIZES if args.gpu else CPU_SIZES
  peak = matmul_flops(8192 if args.gpu else 1024)
  print(f"device: {jax.devices()[0].device_kind} x {jax.device_count()}; measured float32 matmul "
        f"{peak / 1e12:.2f} TFLOP/s")
  print(f"{'d':>5} {'layers':>6} {'params':>10} {'batch':>5} {'T+1':>5} {'tokens/s':>12} {'TFLOP/s':>8} {'MFU':>6}")
  mfu = 0.0
  vocab = 64
  for d, layers, heads, batch, length in sizes:
    cfg = T.TransformerConfig(vocab_size=vocab, num_layers=layers, num_heads=heads, embed_dim=d, max_len=length + 1)
    oracle = O.cyclic_oracle(3, vocab, length)
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
    tr = TR.make_trainer(cfg, TR.TrainConfig("dpo", batch_size=batch, dataset_size=4 * batch), oracle, mesh=mesh)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    state = jax.device_put(tr.init(jax.random.key(0)), replicated)
    step = jax.jit(tr.step)
    for _ in range(2):  # compile, and settle the output shardings
      state, m = step(state)
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    for _ in range(args.steps):
      state, m = step(state)
    jax.block_until_ready(state)
    dt = (time.perf_counter() - t0) / args.steps
    tokens = 2 * batch * (length + 1)
    flops = 2 * batch * length * T.flops_per_token(cfg, length, training=True)
    mfu = flops / dt / peak
    print(f"{d:5d} {layers:6d} {T.num_params(state.params):10,d} {batch:5d} {length + 1:5d} {tokens / dt:12,.0f} "
          f"{flops / dt / 1e12:8.3f} {mfu:6.1%}", flush=True)
  print(f"policy_dpo_largest: ratio={mfu:.3f}")


if __name__ == "__main__":
  main()
