"""Implicit versus unrolled gradients of the regularised Nash equilibrium at K = 256.

The implicit gradient (``solvers.implicit.nash_equilibrium``: one forward
solve, then one linear system) against ``jax.grad`` through the EGPO
(mirror-prox) iterations unrolled until its gradient agrees with the
implicit one to 1e-3 (default beta = 0.01, where EGPO's rate
1 - beta / (1 + beta) needs hundreds to thousands of steps). Both are timed after compilation (median of 3) and
their peak memory (arguments, outputs, temporaries) read from XLA's compiled memory analysis. Prints
``implicit_vs_unrolled_{K}: ratio=VALUE`` last: unrolled time / implicit time.
"""

from __future__ import annotations

import argparse
import functools
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
  ap.add_argument("--gpu", action="store_true", help="accelerator size: k = 1024")
  args = ap.parse_args()
  if args.gpu:
    args.k = max(args.k, 1024)
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

  def unrolled_loss(p, steps):
    state, _ = run(nlhf.egpo(eta, init_scale=0.0), game.replace(preference=p), jax.random.key(0), num_steps=steps)
    return jnp.dot(u, state.profile)

  gi = jax.jit(jax.grad(implicit_loss))
  p = game.preference
  ref = gi(p)
  # The unrolled gradient converges more slowly than the iterates (its error decays like t rho^t): double the
  # steps until it agrees with the implicit one to 1e-3 (float32), i.e. until it is "run to convergence".
  first = steps
  while True:
    gu = jax.jit(jax.grad(functools.partial(unrolled_loss, steps=steps)))
    diff = float(jnp.max(jnp.abs(ref - gu(p))) / jnp.max(jnp.abs(ref)))
    if diff <= 1e-3 or steps >= 20_000:
      break
    steps *= 2
  ti, tu = timed(gi, p), timed(gu, p)
  mi = peak_bytes(jax.grad(implicit_loss), p)
  mu = peak_bytes(jax.grad(functools.partial(unrolled_loss, steps=steps)), p)
  print(f"K = {k}, beta = {beta}, float32, backend {jax.default_backend()}; forward gap {float(sol.gap):.1e}, "
        f"status {int(sol.status)}, condition {float(sol.condition):.1f}")
  print(f"unrolled: {first} EGPO steps reach the gap {tol:.1e}; {steps} steps bring its gradient to "
        f"{diff:.1e} (relative) of the implicit one")
  print(f"{'':10s} {'time (s)':>10s} {'peak memory (MiB)':>18s}")
  print(f"{'implicit':10s} {ti:10.4f} {mi / 2**20:18.1f}")
  print(f"{'unrolled':10s} {tu:10.4f} {mu / 2**20:18.1f}")
  print(f"implicit_vs_unrolled_{k}_memory: ratio={mu / mi:.2f}")
  print(f"implicit_vs_unrolled_{k}: ratio={tu / ti:.2f}")


if __name__ == "__main__":
  main()
