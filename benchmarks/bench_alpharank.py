"""alpha-rank wall time against OpenSpiel, LAPACK and a numpy loop-and-eig peer, in one run.

1. ``alpharank_openspiel_{n}_{model}``: single population of ``n`` (200) random
   strategies, ``m = 50``, ``alpha = 10``, the local selection model (and the
   general one with ``--openspiel-general``: OpenSpiel's Python loop over ``m``
   took 450 s at 200 and then failed, its linear-space rates overflowing); nashax's
   ``alpharank`` (``method="auto"``, jitted, from the payoffs) against
   OpenSpiel's ``egt.alpharank.compute`` on the same table and model (skipped,
   saying so, when ``open_spiel`` is not importable: ``pip install open_spiel``
   into any path on ``PYTHONPATH``). Ratio: OpenSpiel time / nashax time
   (target >= 50 at 200).
2. ``alpharank_lapack_{n}``: the stationary solve alone at ``n`` (1,000)
   strategies, from the log-rates, against ``numpy.linalg.solve`` (LAPACK
   ``gesv``) of the same chain's generator (given to it in linear space, for
   free). Ratio: nashax time / LAPACK time (target <= 2).
3. ``single_population_iterative`` on the general selection model at ``n``
   (10,000) strategies, rates cached (target: under a minute on 2 cores).
4. ``alpharank_batch_50``: 1,000 random 50-strategy games in one ``vmap``
   (``method="linear"``, local model, float32) against a numpy loop-and-eig peer
   (OpenSpiel's approach) one game at a time. Ratio: peer / nashax.

Timed after a compiled warm-up; float64 for 1-2 (OpenSpiel's precision).

Usage: python benchmarks/bench_alpharank.py [--n 200] [--lapack-n 1000] [--iter-n 10000] [--batch 1000]
       [--gpu] [--json PATH]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import _figures
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


def timed(f, *a, reps=3):
  jax.block_until_ready(f(*a))
  best = np.inf
  for _ in range(reps):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*a))
    best = min(best, time.perf_counter() - t0)
  return out, best


def vs_openspiel(rng, n, alpha, m, general):
  try:
    from open_spiel.python.egt import alpharank as os_alpharank
  except ImportError as e:
    print(f"OpenSpiel not importable ({e}): the OpenSpiel comparison is skipped")
    return
  table = rng.normal(size=(n, n))
  for local in (True, False) if general else (True,):
    model = "local" if local else "general"
    with jax.enable_x64(True):
      f = jax.jit(lambda t, lc=local: A.alpharank(t, alpha, m, single_population=True, local_selection=lc))
      res, t_nx = timed(f, jnp.asarray(table))
      t0 = time.perf_counter()
      try:
        pi_os = os_alpharank.compute([table], m=m, alpha=alpha, use_local_selection_model=local)[2]
      except ValueError as e:  # its linear-space rates overflow at large alpha * m
        print(f"n={n} {model:7s} alpha={alpha:g} m={m}: nashax {t_nx:.4f} s (linear solve: {bool(res.linear)}); "
              f"OpenSpiel failed after {time.perf_counter() - t0:.3f} s ({e}): no ratio")
        _figures.figure(f"alpharank_openspiel_{n}_{model}", None, nashax_s=t_nx, openspiel_error=str(e))
        continue
      t_os = time.perf_counter() - t0
    err = float(np.abs(np.asarray(res.pi) - pi_os).max())
    print(f"n={n} {model:7s} alpha={alpha:g} m={m}: nashax {t_nx:.4f} s (linear solve: {bool(res.linear)}), "
          f"OpenSpiel {t_os:.3f} s, max |pi - pi_OpenSpiel| = {err:.1e}", flush=True)
    _figures.ratio(f"alpharank_openspiel_{n}_{model}", t_os / t_nx, nashax_s=t_nx, openspiel_s=t_os, max_abs_diff=err)


def vs_lapack(rng, n, alpha, m):
  with jax.enable_x64(True):
    table = jnp.asarray(rng.normal(size=(n, n)))
    lr = jax.jit(lambda t: A.single_population_log_rates(t, alpha, m, True))(table).block_until_ready()
    (pi, lin), t_nx = timed(jax.jit(A.stationary), lr)
    c = np.exp(np.asarray(lr))
    np.fill_diagonal(c, 0.0)
    gen = c.T - np.diag(c.sum(1))
    gen[-1] = 1.0
    rhs = np.zeros(n)
    rhs[-1] = 1.0
    best = np.inf
    for _ in range(3):
      t0 = time.perf_counter()
      ref = np.linalg.solve(gen, rhs)
      best = min(best, time.perf_counter() - t0)
  err = float(np.abs(np.asarray(pi) - ref / ref.sum()).max())
  print(f"n={n} stationary solve from the log-rates: nashax {t_nx:.4f} s (linear: {bool(lin)}), "
        f"numpy.linalg.solve {best:.4f} s, max |pi - pi_LAPACK| = {err:.1e}", flush=True)
  _figures.ratio(f"alpharank_lapack_{n}", t_nx / best, nashax_s=t_nx, lapack_s=best, max_abs_diff=err)


def iterative(rng, n, alpha, m):
  x = jnp.asarray(rng.normal(size=(n, n)), jnp.float32)
  f = jax.jit(lambda t: A.single_population_iterative(t, alpha, m, tol=1e-6, cache=True))
  t0 = time.perf_counter()
  res = jax.block_until_ready(f(x))
  secs = time.perf_counter() - t0
  print(f"n={n} general selection model, iterative (cached rates, tol 1e-6): {secs:.1f} s including compile, "
        f"last step {float(res.residual):.1e}", flush=True)
  _figures.figure(f"alpharank_iterative_{n}_general_s", secs)


def batch(rng, size, games_n=50):
  games = rng.normal(size=(size, games_n, games_n)).astype(np.float32)
  f = jax.jit(jax.vmap(lambda t: A.alpharank(t, 1.0, 50, single_population=True, local_selection=True,
                                             method="linear").pi))
  out, tb = timed(f, jnp.asarray(games))
  k = min(size, 50)
  t0 = time.perf_counter()
  ref = [peer(g.astype(np.float64), 1.0, 50) for g in games[:k]]
  tp = (time.perf_counter() - t0) * size / k
  err = max(float(np.abs(np.asarray(out[i]) - ref[i]).max()) for i in range(k))
  print(f"batch of {size} games of {games_n}: nashax {tb:.3f} s, peer {tp:.2f} s (extrapolated from {k} games), "
        f"max |pi - pi_peer| = {err:.1e}")
  _figures.ratio(f"alpharank_batch_{games_n}", tp / tb, fmt=".1f", nashax_s=tb, peer_s=tp)


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--n", type=int, default=200)
  ap.add_argument("--lapack-n", type=int, default=1_000)
  ap.add_argument("--iter-n", type=int, default=10_000, help="0 skips the iterative run")
  ap.add_argument("--batch", type=int, default=1_000)
  ap.add_argument("--openspiel-general", action="store_true", help="also time OpenSpiel's general model (slow)")
  _figures.add_args(ap)
  args = ap.parse_args()
  if args.gpu:
    args.lapack_n, args.iter_n, args.batch = max(args.lapack_n, 4_000), max(args.iter_n, 20_000), 10 * args.batch
  rng = np.random.default_rng(0)
  vs_openspiel(rng, args.n, 10.0, 50, args.openspiel_general)
  vs_lapack(rng, args.lapack_n, 10.0, 50)
  if args.iter_n:
    iterative(rng, args.iter_n, 10.0, 50)
  batch(rng, args.batch)
  _figures.write(args.json, "alpharank")


if __name__ == "__main__":
  main()
