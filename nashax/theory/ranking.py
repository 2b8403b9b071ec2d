"""Claims about alpha-rank (THEORY.md section 3)."""

from __future__ import annotations

import jax
import numpy as np
from scipy.sparse.csgraph import connected_components

from nashax.solvers import alpharank as A
from nashax.theory import _plot
from nashax.theory.registry import ClaimResult, claim, result_from_ratios

_RPS = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])


def _sink_mask(adj: np.ndarray) -> np.ndarray:
  """Nodes in sink strongly connected components (scipy's Tarjan/Pearce), independent of alpharank."""
  _, labels = connected_components(adj, directed=True, connection="strong")
  sinks = set(range(labels.max() + 1))
  for i, j in zip(*np.nonzero(adj)):
    if labels[i] != labels[j]:
      sinks.discard(labels[i])
  return np.isin(labels, list(sinks))


@claim(
    "alpharank_limits",
    theorem=("alpha-rank of rock-paper-scissors is uniform for every alpha (one and two populations); as alpha "
             "grows the stationary mass leaves every profile outside the sink strongly connected components of the "
             "response graph (mass off the sinks <= 1e-9 at alpha = 1e4 and exactly 0 at alpha = inf); the "
             "stationary distribution is invariant (|pi C - pi|_1 <= 1e-10)."),
    source=("Omidshafiei et al., Sci. Rep. 2019 (arXiv:1903.01373), Sec. 3 and Thm 2.1.3 (infinite-alpha limit on "
            "the sink components / Markov-Conley chains); THEORY.md section 3. Sink components by scipy. float64."),
)
def alpharank_limits(fast: bool, out_dir: str) -> ClaimResult:
  alphas = np.array([0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4])
  games = 4 if fast else 12
  measured, bound, curves = [], [], []
  with jax.enable_x64(True):
    for single in (True, False):
      p = _RPS if single else np.stack([_RPS, -_RPS])
      sweep = jax.jit(jax.vmap(lambda a, pp=p, s=single: A.alpharank(pp, a, 50, single_population=s)))(alphas)
      res_inf = A.alpharank(p, np.inf, 50, single_population=single)
      for pi, r in list(zip(np.asarray(sweep.pi), np.asarray(sweep.residual))) + [(res_inf.pi, res_inf.residual)]:
        measured.append(float(np.abs(np.asarray(pi) - 1.0 / len(pi)).max())); bound.append(1e-12)
        measured.append(float(r)); bound.append(1e-10)
    rng = np.random.default_rng(0)
    batch = jax.jit(jax.vmap(lambda pp, a: A.alpharank(pp, a, 20), in_axes=(None, 0)))
    for _ in range(games):
      payoffs = rng.integers(-3, 4, size=(3, 3, 3, 3)).astype(float)
      sink = _sink_mask(np.asarray(A.response_graph(payoffs, weak=True)))
      res = batch(payoffs, alphas)
      off = [float(pi[~sink].sum()) for pi in np.asarray(res.pi)]
      measured += [float(r) for r in np.asarray(res.residual)]; bound += [1e-10] * len(alphas)
      curves.append(off)
      measured.append(off[-1]); bound.append(1e-9)
      res = A.alpharank(payoffs, np.inf, 20)
      measured.append(float(np.asarray(res.pi)[~sink].sum()) + 1e-300); bound.append(1e-12)
  fig, ax = _plot.figure()
  for c in curves:
    ax.loglog(alphas, np.maximum(c, 1e-300), lw=1)
  ax.axhline(1e-9, color="k", ls="--", lw=0.8)
  ax.set_xlabel("alpha"); ax.set_ylabel("mass off the sink components")
  ax.set_title("alpha-rank on random 3x3x3 games (m = 20)", fontsize=10)
  path = _plot.save(fig, out_dir, "alpharank_limits")
  details = (f"RPS (m = 50) at alpha in {[float(a) for a in alphas]} + inf, one and two populations; {games} random integer "
             f"3x3x3 games (m = 20), sinks of the weak response graph by scipy; float64")
  return result_from_ratios("alpharank_limits", np.array(measured), np.array(bound), details, (path,), 0.0)
