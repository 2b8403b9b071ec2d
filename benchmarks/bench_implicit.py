"""Implicit versus unrolled gradients of the regularised Nash equilibrium at K = 256.

The implicit gradient (``solvers.implicit.nash_equilibrium``: one forward
solve, then one linear system) against ``jax.grad`` through the EGPO
(mirror-prox) iterations unrolled for the steps that reach the same gap
(default beta = 0.01, where EGPO's rate 1 - beta / (1 + beta) needs
thousands of steps). Both are timed after compilation (median of 3) and
their peak memory (arguments, outputs, temporaries) read from XLA's compiled memory analysis. Prints
``implicit_vs_unrolled_256: ratio=VALUE`` last: unrolled time / implicit time.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from nashax import games
from nashax.core import metrics
from nashax.core.solver import run
from nashax.solvers import implicit as I
from nashax.solvers import nlhf


def timed(f, *args, reps=3):
  jax.block_until_ready(f(*args))
  ts = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    ts.append(time.perf_counter() - t0)
  return float(np.median(ts))


def peak_bytes(f, *args):
  m = jax.jit(f).lower(*args).compile().memory_analysis()
  if m is None:
    return float("nan")
  return float(m.temp_size_in_bytes + m.output_size_in_bytes + m.argument_size_in_bytes)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--k", type=int, default=256)
  ap.add_argument("--beta", type=float, default=0.01)
  args = ap.parse_args()
  k, beta = args.k, args.beta
  game = games.random_preference_game(jax.random.key(0), k).regularized(beta)
  u = jax.random.normal(jax.random.key(1), (k,))
  sol = I.nash_equilibrium(game)
  # Unrolled: the EGPO steps that reach the implicit forward's gap (Newton-polished), from one traced run.
  tol = max(float(sol.gap), 1e-7)
  eta = 1.0 / (1.0 + beta)
  _, trace = run(nlhf.egpo(eta, init_scale=0.0), game, jax.random.key(0), num_steps=20_000, every=10,
                 metric_fn=metrics.preference_gap)
  hit = np.nonzero(np.asarray(trace) <= tol)[0]
  steps = int((hit[0] + 1) * 10) if hit.size else 20_000

  def implicit_loss(p):
    return jnp.dot(u, I.nash_equilibrium(game.replace(preference=p)).policy)

  def unrolled_loss(p):
    state, _ = run(nlhf.egpo(eta, init_scale=0.0), game.replace(preference=p), jax.random.key(0), num_steps=steps)
    return jnp.dot(u, state.profile)

  gi, gu = jax.jit(jax.grad(implicit_loss)), jax.jit(jax.grad(unrolled_loss))
  p = game.preference
  diff = float(jnp.max(jnp.abs(gi(p) - gu(p))) / jnp.max(jnp.abs(gu(p))))
  ti, tu = timed(gi, p), timed(gu, p)
  mi, mu = peak_bytes(jax.grad(implicit_loss), p), peak_bytes(jax.grad(unrolled_loss), p)
  print(f"K = {k}, beta = {beta}, float32, backend {jax.default_backend()}; forward gap {float(sol.gap):.1e}, "
        f"status {int(sol.status)}, condition {float(sol.condition):.1f}")
  print(f"unrolled: {steps} EGPO steps (gap <= {tol:g}); relative gradient difference {diff:.1e}")
  print(f"{'':10s} {'time (s)':>10s} {'peak memory (MiB)':>18s}")
  print(f"{'implicit':10s} {ti:10.4f} {mi / 2**20:18.1f}")
  print(f"{'unrolled':10s} {tu:10.4f} {mu / 2**20:18.1f}")
  print(f"implicit_vs_unrolled_256_memory: ratio={mu / mi:.2f}")
  print(f"implicit_vs_unrolled_256: ratio={tu / ti:.2f}")


if __name__ == "__main__":
  main()
