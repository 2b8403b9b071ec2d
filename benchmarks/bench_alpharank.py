"""alpha-rank wall time: single populations of 10 to 10,000 strategies, and a batch of 1,000 games of 50.

nashax: the direct log-space GTH solve (``alpharank``) up to 1,000 strategies
and the matrix-free iteration (``single_population_iterative``, local
selection model, tol 1e-6) for every size; a batch of 1,000 random 50-strategy
games in one ``vmap``. Peer, measured in the same run: the reference
implementation's approach (OpenSpiel's ``alpharank.compute``: a Python loop
over strategy pairs to fill the transition matrix, then a dense eigen-solve),
written here in numpy, one game at a time. float32, after a compiled warm-up.

Prints a table and, last, ``alpharank_batch_50: ratio=VALUE`` (peer time / nashax time on the batch).

Usage: python benchmarks/bench_alpharank.py [--max-n 10000] [--batch 1000]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from nashax.solvers import alpharank as A


def peer(table: np.ndarray, alpha: float, m: int) -> np.ndarray:
  """Loop-and-eig alpha-rank (single population, local selection model) in numpy."""
  n = table.shape[0]
  eta = 1.0 / (n - 1)
  c = np.zeros((n, n))
  for s in range(n):
    for r in range(n):
      if r != s:
        x = alpha * (table[r, s] - table[s, r])
        rho = 1.0 / m if x == 0 else (1 - np.exp(-x)) / (1 - np.exp(-m * x))
        c[s, r] = eta * rho
    c[s, s] = 1 - c[s].sum()
  w, v = np.linalg.eig(c.T)
  pi = np.abs(np.real(v[:, np.argmin(np.abs(w - 1))]))
  return pi / pi.sum()


def timed(f, *a):
  jax.block_until_ready(f(*a))
  t0 = time.perf_counter()
  out = jax.block_until_ready(f(*a))
  return out, time.perf_counter() - t0


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--max-n", type=int, default=10_000)
  ap.add_argument("--batch", type=int, default=1_000)
  args = ap.parse_args()
  rng = np.random.default_rng(0)
  print(f"{'n':>7s} {'direct (s)':>11s} {'iterative (s)':>14s} {'peer (s)':>10s}")
  for n in (10, 100, 1_000, 10_000):
    if n > args.max_n:
      break
    table = rng.normal(size=(n, n)).astype(np.float32)
    x = jnp.asarray(table)
    direct = "-"
    if n <= 1_000:
      _, t = timed(jax.jit(lambda t: A.alpharank(t, 1.0, 50, single_population=True, local_selection=True).pi), x)
      direct = f"{t:.3f}"
    _, ti = timed(jax.jit(lambda t: A.single_population_iterative(t, 1.0, 50, local_selection=True, tol=1e-6).pi), x)
    p = "-"
    if n <= 100:
      t0 = time.perf_counter(); peer(table.astype(np.float64), 1.0, 50); p = f"{time.perf_counter() - t0:.3f}"
    print(f"{n:7d} {direct:>11s} {ti:14.3f} {p:>10s}", flush=True)
  games = rng.normal(size=(args.batch, 50, 50)).astype(np.float32)
  f = jax.jit(jax.vmap(lambda t: A.alpharank(t, 1.0, 50, single_population=True, local_selection=True).pi))
  out, tb = timed(f, jnp.asarray(games))
  k = min(args.batch, 50)
  t0 = time.perf_counter()
  ref = [peer(g.astype(np.float64), 1.0, 50) for g in games[:k]]
  tp = (time.perf_counter() - t0) * args.batch / k
  err = max(float(np.abs(np.asarray(out[i]) - ref[i]).max()) for i in range(k))
  print(f"batch of {args.batch} games of 50: nashax {tb:.3f} s, peer {tp:.2f} s (extrapolated from {k} games), "
        f"max |pi - pi_peer| = {err:.1e}")
  print(f"alpharank_batch_50: ratio={tp / tb:.1f}")


if __name__ == "__main__":
  main()
