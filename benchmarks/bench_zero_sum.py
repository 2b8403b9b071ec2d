"""Batched exact solving of random zero-sum games vs scipy's LP one by one.

nashax: ``solvers.simplex_equilibrium`` (the simplex method in JAX: Dantzig's
rule, chunks of games pivoting together) on the whole batch in one jitted call, in
float64, the batch split over the host's devices (one per core on a CPU;
``--devices 1`` for one). Every game's duality gap is recomputed from its
strategies and must be <= ``--tol``; games that miss it are counted unsolved.
Peer, in the same run: ``scipy.optimize.linprog`` (HiGHS) on the same games,
one LP per game (the maximin LP; the column strategy from its duals), in one
process, as a paper's script would call it. Both are timed after a warm-up
(nashax: compiled before timing; best of two runs).

``--first-order N`` also times a first-order method (projected
extragradient, last iterate, eta = 0.9 / ||A||_2, float32, ``nashax.solve``
to the same tolerance) on N of the games, for context: at tol 1e-6 it needs
thousands of steps per game, which is why the exact path exists.

Prints games/second for each and, last, ``zero_sum_32x32: ratio=VALUE``
(nashax throughput over the LP's; higher is better).

Usage: python benchmarks/bench_zero_sum.py [--games 10000] [--size 32] [--tol 1e-6] [--devices N]
"""

import argparse
import os
import sys
import time


def _args():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--games", type=int, default=10_000)
  ap.add_argument("--size", type=int, default=32)
  ap.add_argument("--tol", type=float, default=1e-6)
  ap.add_argument("--devices", type=int, default=os.cpu_count() or 1,
                  help="host devices to split the batch over on a CPU (default: one per core)")
  ap.add_argument("--chunk", type=int, default=None, help="games pivoting together (default: the library's for the backend)")
  ap.add_argument("--lp-games", type=int, default=2_000, help="games the LP peer solves (its rate is per game)")
  ap.add_argument("--first-order", type=int, default=0, metavar="N", help="also time extragradient on N games")
  return ap.parse_args()


ARGS = _args()
if "jax" not in sys.modules and ARGS.devices > 1:  # must precede importing jax
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             f" --xla_force_host_platform_device_count={ARGS.devices}").strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import Mesh, NamedSharding, PartitionSpec  # noqa: E402

import nashax  # noqa: E402
from nashax import games, solvers  # noqa: E402
from nashax.solvers import exact  # noqa: E402

jax.config.update("jax_enable_x64", True)


def lp_one(a: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
  """One HiGHS LP per game (the reference's maximin LP); y from its duals."""
  return exact._maximin(a, duals=True)


def timed(f, *a):
  jax.block_until_ready(f(*a))  # compile (and warm up)
  best = np.inf
  for _ in range(2):
    t0 = time.perf_counter()
    out = jax.block_until_ready(f(*a))
    best = min(best, time.perf_counter() - t0)
  return out, best


def main():
  n, b = ARGS.size, ARGS.games
  devices = jax.devices()[: max(1, min(ARGS.devices, jax.device_count()))]
  b -= b % len(devices)
  keys = jax.random.split(jax.random.key(0), b)
  gs = jax.vmap(lambda k: games.random_zero_sum(k, n, n, dtype=jnp.float64))(keys)

  mesh = Mesh(np.asarray(devices), ("games",))
  spec = PartitionSpec("games")
  payoff = jax.device_put(gs.payoff, NamedSharding(mesh, spec))
  solve = jax.jit(jax.shard_map(
      lambda a: solvers.simplex_equilibrium(a, chunk=ARGS.chunk), mesh=mesh, in_specs=spec, out_specs=spec))
  sol, t_nashax = timed(solve, payoff)
  status, gap = np.asarray(sol.status), np.asarray(sol.gap)
  solved = int(np.sum((status == nashax.SUCCESS) & (gap <= ARGS.tol)))

  a = np.asarray(gs.payoff, np.float64)
  nl = min(b, ARGS.lp_games)
  lp_one(a[0])  # warm-up
  t0 = time.perf_counter()
  lp = [lp_one(a[i]) for i in range(nl)]
  t_lp = (time.perf_counter() - t0) / nl * b
  lp_gap = max(float(np.max(a[i] @ y) - np.min(x @ a[i])) for i, (_, x, y) in enumerate(lp))
  dv = max(abs(v - float(sol.value[i])) for i, (v, _, _) in enumerate(lp))

  rate, lp_rate = solved / t_nashax, b / t_lp
  print(f"device: {jax.devices()[0].platform} x{len(devices)}, {b} games of {n}x{n}, tol {ARGS.tol:g}")
  print(f"nashax simplex_equilibrium (float64, batched, jit): {rate:10.1f} games/s  ({solved}/{b} certified "
        f"gap <= tol, worst gap {gap.max():.1e}; pivots mean {np.mean(np.asarray(sol.pivots)):.1f}, "
        f"max {int(np.max(np.asarray(sol.pivots)))})")
  print(f"scipy linprog HiGHS (one by one, {nl} games):      {lp_rate:10.1f} games/s  "
        f"(worst gap {lp_gap:.1e}; |value - nashax| <= {dv:.1e})")

  if ARGS.first_order:
    k = ARGS.first_order
    sub = jax.tree.map(lambda z: z[:k].astype(jnp.float32), gs)
    eta = 0.9 / jnp.linalg.norm(sub.payoff, ord=2, axis=(-2, -1))

    @jax.jit
    def first_order(g, e, ks):
      def one(g, e, k):
        s = solvers.extragradient(e, geometry="euclidean", iterate="last")
        return nashax.solve(s, g, k, tol=ARGS.tol, max_steps=50_000, check_every=50)[1]
      return jax.vmap(one)(g, e, ks)

    info, t_fo = timed(first_order, sub, eta, keys[:k])
    ok = int(np.sum(np.asarray(info.status) == nashax.SUCCESS))
    print(f"nashax extragradient (float32, batched, {k} games):  {k / t_fo:10.1f} games/s  ({ok}/{k} reached tol, "
          f"median steps {int(np.median(np.asarray(info.num_steps)))})")
  print(f"zero_sum_{n}x{n}: ratio={rate / lp_rate:.3g}")


if __name__ == "__main__":
  main()
