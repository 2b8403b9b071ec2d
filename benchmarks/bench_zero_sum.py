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

``--sizes 32,64,128`` runs several sizes in one process (the batch shrinks as
``games * (32/size)^2``, at least 200). For each size it prints the pivots per
game and the work of one pivot: a rank-one update of the ``(n+1) x (m+1)``
tableau, ``2 (n+1)(m+1)`` flops (plus ``O(n + m)`` for pricing and the ratio
test) reading and writing ``16 (n+1)(m+1)`` bytes in float64, so its limit
is memory bandwidth, not flops: the ceiling printed is the games/s that the
measured dense-matmul peak (``_peak.matmul_flops``) would allow, an upper
bound the pivots can only approach.

``--chunks 8,64,...`` also times ``simplex_equilibrium`` at each chunk size on
the largest batch (the accelerator default 4096 is set from such a run).

Prints games/second for each and ``zero_sum_{n}x{n}: ratio=VALUE`` per size
(nashax throughput over the LP's; higher is better; target >= 100 at 64x64).

Usage: python benchmarks/bench_zero_sum.py [--games 10000] [--sizes 32,64,128] [--tol 1e-6] [--devices N]
       [--chunks 8,4096] [--gpu] [--json PATH]
"""

import argparse
import os
import sys
import time


def _args():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--games", type=int, default=10_000)
  ap.add_argument("--size", type=int, default=None, help="one size (same as --sizes N)")
  ap.add_argument("--sizes", default="32,64,128")
  ap.add_argument("--chunks", default="", help="chunk sizes to time on the first size's batch")
  ap.add_argument("--gpu", action="store_true", help="accelerator sizes: 100,000 games, chunks 256..16384")
  ap.add_argument("--json", default=None, metavar="PATH", help="merge the figures into this JSON file")
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

import _figures  # noqa: E402
import _peak  # noqa: E402
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


def solve_fn(mesh, chunk):
  spec = PartitionSpec("games")
  return jax.jit(jax.shard_map(
      lambda a: solvers.simplex_equilibrium(a, chunk=chunk), mesh=mesh, in_specs=spec, out_specs=spec))


def one_size(n, b, devices, mesh, peak):
  b -= b % len(devices)
  keys = jax.random.split(jax.random.key(0), b)
  gs = jax.vmap(lambda k: games.random_zero_sum(k, n, n, dtype=jnp.float64))(keys)
  payoff = jax.device_put(gs.payoff, NamedSharding(mesh, PartitionSpec("games")))
  sol, t_nashax = timed(solve_fn(mesh, ARGS.chunk), payoff)
  status, gap = np.asarray(sol.status), np.asarray(sol.gap)
  solved = int(np.sum((status == nashax.SUCCESS) & (gap <= ARGS.tol)))

  a = np.asarray(gs.payoff, np.float64)
  nl = min(b, max(50, ARGS.lp_games * 32 * 32 // (n * n)))
  lp_one(a[0])  # warm-up
  t0 = time.perf_counter()
  lp = [lp_one(a[i]) for i in range(nl)]
  t_lp = (time.perf_counter() - t0) / nl * b
  lp_gap = max(float(np.max(a[i] @ y) - np.min(x @ a[i])) for i, (_, x, y) in enumerate(lp))
  dv = max(abs(v - float(sol.value[i])) for i, (v, _, _) in enumerate(lp))

  rate, lp_rate = solved / t_nashax, b / t_lp
  piv = float(np.mean(np.asarray(sol.pivots)))
  flops = 2 * (n + 1) * (n + 1)
  print(f"device: {jax.devices()[0].platform} x{len(devices)}, {b} games of {n}x{n}, tol {ARGS.tol:g}")
  print(f"nashax simplex_equilibrium (float64, batched, jit): {rate:10.1f} games/s  ({solved}/{b} certified "
        f"gap <= tol, worst gap {gap.max():.1e}; pivots mean {piv:.1f}, max {int(np.max(np.asarray(sol.pivots)))})")
  print(f"  one pivot: 2(n+1)^2 = {flops} flops, {8 * flops} bytes moved; at the matmul peak {peak / 1e9:.1f} GFLOP/s "
        f"the ceiling is {peak / (flops * piv):.0f} games/s; achieved {rate * piv * flops / 1e9:.2f} GFLOP/s "
        f"({100 * rate * piv * flops / peak:.1f}% of the peak)")
  print(f"scipy linprog HiGHS (one by one, {nl} games):      {lp_rate:10.1f} games/s  "
        f"(worst gap {lp_gap:.1e}; |value - nashax| <= {dv:.1e})", flush=True)
  _figures.figure(f"zero_sum_{n}x{n}_detail", {"games_per_s": rate, "lp_games_per_s": lp_rate, "pivots_mean": piv,
                                              "flops_per_pivot": flops, "ceiling_games_per_s": peak / (flops * piv),
                                              "solved": solved, "games": b})
  _figures.ratio(f"zero_sum_{n}x{n}", rate / lp_rate)
  return gs, keys, payoff


def main():
  if ARGS.gpu:
    ARGS.games = max(ARGS.games, 100_000)
    ARGS.chunks = ARGS.chunks or "256,1024,4096,16384"
  sizes = [ARGS.size] if ARGS.size else [int(v) for v in ARGS.sizes.split(",")]
  devices = jax.devices()[: max(1, min(ARGS.devices, jax.device_count()))]
  mesh = Mesh(np.asarray(devices), ("games",))
  with jax.enable_x64(True):
    peak = _peak.matmul_flops(512, jnp.float64)
  print(f"dense float64 matmul peak of this host: {peak / 1e9:.1f} GFLOP/s")
  _figures.figure("matmul_peak_f64_flops", peak)
  first = None
  for n in sizes:
    out = one_size(n, max(200, ARGS.games * 32 * 32 // (n * n)), devices, mesh, peak)
    first = first or (n, out)
  n, (gs, keys, payoff) = first
  if ARGS.chunks:
    rates = {}
    for ch in [int(v) for v in ARGS.chunks.split(",")]:
      sol, secs = timed(solve_fn(mesh, ch), payoff)
      rates[ch] = payoff.shape[0] / secs
      print(f"chunk {ch:6d}: {rates[ch]:10.1f} games/s ({n}x{n})", flush=True)
    best = max(rates, key=rates.get)
    print(f"best chunk for {n}x{n} on {jax.default_backend()}: {best}")
    _figures.figure(f"simplex_chunk_{n}x{n}", best, games_per_s={str(k): v for k, v in rates.items()})
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
  _figures.write(ARGS.json, "zero_sum")


if __name__ == "__main__":
  main()
