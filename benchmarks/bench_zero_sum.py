"""Batched certified solving of random zero-sum games vs scipy's LP one by one.

nashax: ``jit(vmap(solve))`` of projected extragradient (Euclidean, last
iterate, eta = 0.9 / ||A||_2 per game) to duality gap <= tol, in float32.
Peer: ``scipy.optimize.linprog`` (HiGHS) on the same games, one at a time.
Both are timed after warm-up (nashax: compiled once before timing).

Prints games/second for each and, last, ``zero_sum_32x32: ratio=VALUE``
(nashax throughput over the LP's; higher is better). Games that hit the step
budget are counted as unsolved and reported; they still cost their time.

Usage: python benchmarks/bench_zero_sum.py [--games 10000] [--size 32] [--tol 1e-6]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import nashax
from nashax import games, solvers


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--games", type=int, default=1000)
  ap.add_argument("--size", type=int, default=32)
  ap.add_argument("--tol", type=float, default=1e-6)
  ap.add_argument("--max-steps", type=int, default=50_000)
  args = ap.parse_args()
  n, b = args.size, args.games
  keys = jax.random.split(jax.random.key(0), b)
  gs = jax.vmap(lambda k: games.random_zero_sum(k, n, n))(keys)
  eta = 0.9 / jnp.linalg.norm(gs.payoff, ord=2, axis=(-2, -1))

  @jax.jit
  def solve_all(gs, eta, keys):
    def one(g, e, k):
      s = solvers.extragradient(e, geometry="euclidean", iterate="last")
      return nashax.solve(s, g, k, tol=args.tol, max_steps=args.max_steps, check_every=50)[1]
    return jax.vmap(one)(gs, eta, keys)

  warm = jax.tree.map(lambda x: x[:2], (gs, eta, keys))
  jax.block_until_ready(solve_all(*warm))  # compile for a batch of 2 ...
  t0 = time.perf_counter()
  infos = jax.block_until_ready(solve_all(gs, eta, keys))  # ... and again for b: include nothing else
  t_nashax = time.perf_counter() - t0
  t0 = time.perf_counter()
  infos = jax.block_until_ready(solve_all(gs, eta, keys))
  t_nashax = min(t_nashax, time.perf_counter() - t0)
  solved = int(np.sum(np.asarray(infos.status) == 0))

  a = np.asarray(gs.payoff, np.float64)
  solvers.solve_lp(a[0])  # warm-up
  t0 = time.perf_counter()
  values = [float(solvers.solve_lp(a[i]).value) for i in range(b)]
  t_lp = time.perf_counter() - t0
  assert np.isfinite(values).all()

  nashax_rate = b / t_nashax
  lp_rate = b / t_lp
  print(f"device: {jax.devices()[0].platform}, {b} games of {n}x{n}, tol {args.tol:g}")
  print(f"nashax extragradient (batched, jit): {nashax_rate:10.1f} games/s  ({solved}/{b} reached tol, "
        f"median steps {int(np.median(np.asarray(infos.num_steps)))}, max {int(np.max(np.asarray(infos.num_steps)))})")
  print(f"scipy linprog HiGHS (one by one):    {lp_rate:10.1f} games/s")
  print(f"zero_sum_{n}x{n}: ratio={nashax_rate / lp_rate:.3g}")


if __name__ == "__main__":
  main()
