"""Bootstrap of Bradley-Terry ratings: 1,000 resamples of a log of 100 models and 1,000,000 battles.

nashax (``nashax.rank.bootstrap``, defaults): a Poisson bootstrap, every
resample draws the 14,850 (pair, outcome) cell counts as independent
``Poisson(y_c)`` from alias tables (one 32-bit word per cell, no 10^6-row
gather), then refits Bradley-Terry-Davidson (101 parameters) by 6 chord steps
from the full-data fit (its inverse Hessian fixed: a gradient and a mat-vec per
step; Newton only if a fit fails its gradient certificate), all resamples in
one jitted ``vmap``; float32, timed after a compiled warm-up (the compile time
is printed apart). ``--multinomial`` also times the exact multinomial resample
(binomial splits) with the same fits.

Peer, in the same run: the loop of logistic regressions that arena
leaderboards run (Chiang et al. 2024): per resample, draw 10^6 battle indices
with replacement (numpy), aggregate them into per-pair sample weights
(``np.bincount``, as their pivot tables do), and fit the Bradley-Terry
logistic regression with ties as half a win (the arena's convention) by
``scipy.optimize.minimize`` (L-BFGS-B, analytic gradient), float64. By
default the peer runs ``--peer-resamples`` (20) resamples and its time is
extrapolated per resample to 1,000 (said in the output); ``--full`` runs all
1,000 for both. The two fit slightly different models (Davidson ties with
one more parameter on our side): the work per resample is the comparison.
The peer's resampling and aggregation (``integers`` and two ``bincount`` over
10^6 rows) are about 40% of its time, so the same run also times the peer with
the Poisson shortcut (``rng.poisson`` of the 14,850 cell counts, then the same
fit) and prints that ratio too: the headline ratio is against the arena's loop
as it is run, the second one isolates the batched fits.

The machine is shared: the numbers are indicative.

Prints a table and, last, ``rank_bootstrap_100: ratio=VALUE`` (peer time / nashax time, 1,000 resamples,
compile excluded).

Usage: python benchmarks/bench_rank.py [--full] [--multinomial] [--resamples 1000] [--peer-resamples 20]
"""

import argparse
import time

import jax
import numpy as np
import scipy.optimize

from nashax.rank import io, uncertainty


def synthetic_log(k: int, n: int, seed: int = 0):
  """Battles between uniformly random pairs of ``k`` models, Davidson outcomes (nu = 0.3), strengths N(0, 1)."""
  rng = np.random.default_rng(seed)
  theta = rng.normal(size=k)
  a = rng.integers(0, k, n)
  b = (a + rng.integers(1, k, n)) % k
  d = theta[a] - theta[b]
  z = np.exp(d / 2) + np.exp(-d / 2) + 0.3
  u = rng.uniform(size=n)
  out = np.where(u < np.exp(d / 2) / z, 0, np.where(u < (np.exp(d / 2) + np.exp(-d / 2)) / z, 1, 2))
  counts = np.zeros((n, 4))
  counts[np.arange(n), out] = 1.0
  comp = io.Comparisons(tuple(f"m{i:03d}" for i in range(k)), a.astype(np.int32), b.astype(np.int32), counts)
  return comp, a, b, out


def peer_bootstrap(a, b, out, k, resamples, seed=1, poisson=False):
  """Loop over resamples: resample battles, aggregate, fit the logistic Bradley-Terry model by scipy.

  ``poisson``: instead of resampling the 10^6 battles, draw each (pair, outcome) count as ``Poisson(count)``
  (numpy), then the same fit.
  """
  rng = np.random.default_rng(seed)
  n = len(a)
  lo, hi = np.minimum(a, b), np.maximum(a, b)
  score = np.where(out == 2, 0.5, np.where((out == 0) == (a == lo), 1.0, 0.0))  # lo's score
  pair = lo * k + hi
  cell_counts = np.bincount(pair * 3 + (2 * score).astype(np.int64), minlength=3 * k * k).reshape(k * k, 3)
  thetas = []
  for _ in range(resamples):
    if poisson:
      c = rng.poisson(cell_counts).astype(float)  # columns: lo scores 0, 1/2, 1
      nw, nn = c[:, 2] + 0.5 * c[:, 1], c.sum(1)
    else:
      idx = rng.integers(0, n, n)
      p = pair[idx]
      nw = np.bincount(p, weights=score[idx], minlength=k * k)
      nn = np.bincount(p, minlength=k * k).astype(float)
    keep = nn > 0
    cells = np.flatnonzero(keep)
    i, j, w, m = cells // k, cells % k, nw[keep], nn[keep]

    def f(th):
      d = th[i] - th[j]
      ll = w * -np.logaddexp(0, -d) + (m - w) * -np.logaddexp(0, d)
      g = w - m / (1 + np.exp(-d))
      grad = -(np.bincount(i, g, k) - np.bincount(j, g, k)) + 1e-6 * th
      return -ll.sum() + 0.5e-6 * th @ th, grad

    res = scipy.optimize.minimize(f, np.zeros(k), jac=True, method="L-BFGS-B", options=dict(maxiter=500))
    thetas.append(res.x - res.x.mean())
  return np.array(thetas)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--full", action="store_true", help="run the peer on every resample too")
  ap.add_argument("--multinomial", action="store_true", help="also time the exact multinomial resample")
  ap.add_argument("--models", type=int, default=100)
  ap.add_argument("--battles", type=int, default=1_000_000)
  ap.add_argument("--resamples", type=int, default=1000)
  ap.add_argument("--peer-resamples", type=int, default=20)
  ap.add_argument("--gpu", action="store_true", help="accelerator size: 10,000 resamples")
  args = ap.parse_args()
  if args.gpu:
    args.resamples = max(args.resamples, 10_000)
  k, n, b = args.models, args.battles, args.resamples
  comp, a, bb, out = synthetic_log(k, n)
  t0 = time.perf_counter()
  warm = uncertainty.bootstrap(comp, b, key=jax.random.key(9), methods=("bt",))
  jax.block_until_ready(warm)
  t_first = time.perf_counter() - t0
  t0 = time.perf_counter()
  res = uncertainty.bootstrap(comp, b, key=jax.random.key(0), methods=("bt",))
  jax.block_until_ready(res)
  t_ours = time.perf_counter() - t0
  ok = int((np.asarray(res["bt_status"]) == 0).sum())
  t_multi = None
  if args.multinomial:
    jax.block_until_ready(uncertainty.bootstrap(comp, b, key=jax.random.key(9), methods=("bt",),
                                                resampling="multinomial"))
    t0 = time.perf_counter()
    jax.block_until_ready(uncertainty.bootstrap(comp, b, key=jax.random.key(0), methods=("bt",),
                                                resampling="multinomial"))
    t_multi = time.perf_counter() - t0
  pr = b if args.full else min(args.peer_resamples, b)
  t0 = time.perf_counter()
  peer = peer_bootstrap(a, bb, out, k, pr)
  t_peer = (time.perf_counter() - t0) * b / pr
  t0 = time.perf_counter()
  peer_bootstrap(a, bb, out, k, pr, poisson=True)
  t_peer_pois = (time.perf_counter() - t0) * b / pr
  sd_ours = np.asarray(res["bt"]).std(0)
  sd_peer = peer.std(0)
  print(f"synthetic log: {k} models, {n:,} battles, {len(np.unique(np.minimum(a, bb) * k + np.maximum(a, bb)))} "
        f"pairs; {b} bootstrap resamples ({jax.devices()[0].platform})")
  print(f"{'method':44s} {'seconds':>9s} {'resamples/s':>12s}")
  print(f"{'nashax batched (first call, with compile)':44s} {t_first:9.2f} {b / t_first:12.1f}")
  print(f"{'nashax batched (compiled)':44s} {t_ours:9.2f} {b / t_ours:12.1f}   converged fits: {ok}/{b}")
  if t_multi is not None:
    print(f"{'nashax batched, multinomial (compiled)':44s} {t_multi:9.2f} {b / t_multi:12.1f}")
  what = f"peer loop, {pr} resamples" + ("" if pr == b else f" extrapolated to {b}")
  print(f"{what:44s} {t_peer:9.2f} {b / t_peer:12.2f}")
  print(f"{'  the same, Poisson cell counts':44s} {t_peer_pois:9.2f} {b / t_peer_pois:12.2f}")
  print(f"bootstrap s.d. of theta, median over models: nashax {np.median(sd_ours):.4f}, peer {np.median(sd_peer):.4f} "
        f"(peer over {pr} resamples)")
  print(f"ratio including our compile: {t_peer / t_first:.1f}")
  print(f"ratio against the peer with Poisson cell counts: {t_peer_pois / t_ours:.1f}")
  if t_multi is not None:
    print(f"ratio with the multinomial resample: {t_peer / t_multi:.1f}")
  print(f"rank_bootstrap_100: ratio={t_peer / t_ours:.1f}")


if __name__ == "__main__":
  main()
