"""Time to duality gap 1e-4 for every NLHF solver on a batch of random intransitive preference games.

nashax: ``jit(vmap(solve))`` of each solver (exact expectations, float32,
random starts) on the same batch of KL-regularised games (K responses, beta,
random pi_ref), stopping each game on its exact regularised duality gap.
Peer: the same EGPO update written as a paper's script would write it
(numpy, float64, one game at a time, a Python loop over steps with the same
stopping rule), timed on a subset and reported per game.

Prints a table (solver, games/s, games that reached the tolerance, median
and max steps) and, last, ``nlhf_64: ratio=VALUE``: batched nashax EGPO
throughput over the numpy loop's (higher is better).

Usage: python benchmarks/bench_nlhf.py [--games 1000] [--size 64] [--beta 0.1] [--tol 1e-4]
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import nashax
from nashax import games, solvers
from nashax.core.games import PreferenceGame


def _solvers(beta: float):
  return {
      "egpo": lambda: solvers.egpo(1.0 / (beta + 1.0)),
      "mpo": lambda: solvers.mpo(4.0 * beta),
      "onpo": lambda: solvers.onpo(0.5),
      "inpo": lambda: solvers.inpo(0.5),
      "mnpo": lambda: solvers.mnpo(0.5, (0.5, 0.5)),
      "nash_ema": lambda: solvers.nash_ema(0.5, 0.5),
      "online_ipo": lambda: solvers.online_ipo(0.1),
      "nash_md": lambda: solvers.nash_md(),
      "sppo (average)": lambda: solvers.sppo(0.5),
      "dno (average)": lambda: solvers.dno(0.5),
      "spo (average)": lambda: solvers.spo(0.5),
  }


def _numpy_egpo(p, log_ref, beta, eta, tol, max_steps, rng):
  """EGPO in plain numpy for one game: the per-paper-script baseline."""
  lp = rng.normal(size=p.shape[0])
  lp -= np.log(np.exp(lp - lp.max()).sum()) + lp.max()

  def norm(z):
    m = z.max()
    return z - (m + np.log(np.exp(z - m).sum()))

  def gap(lp):
    pi = np.exp(lp)
    z = log_ref + p @ pi / beta
    m = z.max()
    lse = m + np.log(np.exp(z - m).sum())
    kl = np.sum(pi * (lp - log_ref))
    return 2 * beta * (lse + kl) - 1.0

  for t in range(max_steps):
    if gap(lp) <= tol:
      return t
    half = norm((1 - eta * beta) * lp + eta * beta * log_ref + eta * (p @ np.exp(lp)))
    lp = norm((1 - eta * beta) * lp + eta * beta * log_ref + eta * (p @ np.exp(half)))
  return max_steps


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--games", type=int, default=1000)
  ap.add_argument("--size", type=int, default=64)
  ap.add_argument("--beta", type=float, default=0.1)
  ap.add_argument("--tol", type=float, default=1e-4)
  ap.add_argument("--max-steps", type=int, default=20_000)
  ap.add_argument("--peer-games", type=int, default=20)
  ap.add_argument("--gpu", action="store_true", help="accelerator size: 10,000 games")
  args = ap.parse_args()
  if args.gpu:
    args.games = max(args.games, 10_000)
  b, k, beta = args.games, args.size, args.beta
  keys = jax.random.split(jax.random.key(0), b)
  p = jax.vmap(lambda kk: games.random_preference_game(kk, k).preference)(keys)
  ref = jax.random.dirichlet(jax.random.key(1), jnp.ones(k), (b,))
  gs = PreferenceGame(p, jnp.full((b,), beta), jnp.log(ref))
  skeys = jax.random.split(jax.random.key(2), b)

  print(f"device: {jax.devices()[0].platform}, {b} random intransitive games, K = {k}, beta = {beta}, "
        f"tol {args.tol:g}, max_steps {args.max_steps}")
  print(f"{'solver':16s} {'games/s':>10s} {'reached':>9s} {'median steps':>13s} {'max steps':>10s}")
  rates = {}
  for name, make in _solvers(beta).items():
    @jax.jit
    def solve_all(gs, keys):
      f = lambda g, kk: nashax.solve(make(), g, kk, tol=args.tol, max_steps=args.max_steps, check_every=10)[1]
      return jax.vmap(f)(gs, keys)

    jax.block_until_ready(solve_all(gs, skeys))  # compile
    t0 = time.perf_counter()
    info = jax.block_until_ready(solve_all(gs, skeys))
    dt = time.perf_counter() - t0
    rates[name] = b / dt
    steps = np.asarray(info.num_steps)
    ok = int(np.sum(np.asarray(info.status) == 0))
    print(f"{name:16s} {b / dt:10.1f} {ok:>4d}/{b:<4d} {int(np.median(steps)):>13d} {int(steps.max()):>10d}")

  n_peer = min(args.peer_games, b)
  pn, rn = np.asarray(p, np.float64), np.log(np.asarray(ref, np.float64))
  rng = np.random.default_rng(0)
  t0 = time.perf_counter()
  peer_steps = [_numpy_egpo(pn[i], rn[i], beta, 1.0 / (beta + 1.0), args.tol, args.max_steps, rng) for i in range(n_peer)]
  peer_rate = n_peer / (time.perf_counter() - t0)
  print(f"{'numpy egpo loop':16s} {peer_rate:10.1f} {'':>9s} {int(np.median(peer_steps)):>13d} {max(peer_steps):>10d}"
        f"   (one game at a time, {n_peer} games)")
  print(f"nlhf_{k}: ratio={rates['egpo'] / peer_rate:.3g}")


if __name__ == "__main__":
  main()
