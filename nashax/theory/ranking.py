"""Claims about alpha-rank (THEORY.md section 3)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
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
    cost=7,
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
    limit = jax.jit(lambda pp: A.alpharank(pp, np.inf, 20))  # compiled once, like batch
    for _ in range(games):
      payoffs = rng.integers(-3, 4, size=(3, 3, 3, 3)).astype(float)
      sink = _sink_mask(np.asarray(A.response_graph(payoffs, weak=True)))
      res = batch(payoffs, alphas)
      off = [float(pi[~sink].sum()) for pi in np.asarray(res.pi)]
      measured += [float(r) for r in np.asarray(res.residual)]; bound += [1e-10] * len(alphas)
      curves.append(off)
      measured.append(off[-1]); bound.append(1e-9)
      res = limit(payoffs)
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


def _gapped_bernoulli(rng, shape, min_gap):
  """Means on a grid of 1/20 with every single-deviation gap >= min_gap (rejection sampling)."""
  from nashax.solvers.ranking import _edges

  edges = _edges(shape)
  while True:
    mu = rng.integers(1, 20, size=(len(shape),) + shape) / 20.0
    flat = mu.reshape(len(shape), -1)
    gaps = np.abs(flat[edges[:, 2], edges[:, 1]] - flat[edges[:, 2], edges[:, 0]])
    if gaps.min() >= min_gap:
      return mu


@claim(
    "response_graph_ucb_guarantees",
    theorem=("ResponseGraphUCB with Hoeffding intervals and a union bound returns the true response graph with "
             "probability >= 1 - delta (empirical error rate / delta <= 1 over many seeds), and on that event uses "
             "at most N + 2 sum_e floor(8 log(2KN/delta) / Delta_e^2) samples (samples / bound <= 1)."),
    source=("Rowland et al., NeurIPS 2019 (arXiv:1909.09849), Algorithm 1 and Theorem 4.1 (uniform edge "
            "selection); THEORY.md section 3. The sample bound is derived for this implementation (each pick of an "
            "edge samples both endpoints; an edge is resolved once both endpoints' Hoeffding widths are < Delta/4)."),
    cost=10,
)
def response_graph_ucb_guarantees(fast: bool, out_dir: str) -> ClaimResult:
  from nashax.solvers import ranking as R

  n_games = 3 if fast else 8
  seeds = 100 if fast else 500
  delta = 0.1
  rng = np.random.default_rng(4)
  measured, bound, used_all, bound_all = [], [], [], []
  errors = 0
  with jax.enable_x64(True):
    run = jax.jit(jax.vmap(lambda k, m: R.response_graph_ucb(k, m, delta), in_axes=(0, None)))  # one compile
    for g in range(n_games):
      mu = _gapped_bernoulli(rng, (3, 3), 0.15)
      true = np.asarray(A.response_graph(mu))
      out = run(jax.random.split(jax.random.key(g), seeds), jnp.asarray(mu))
      wrong = ~(np.asarray(out.graph) == true[None]).all(axis=(1, 2))
      errors += int(wrong.sum())
      b = R.sample_bound(mu, delta)
      used = np.asarray(out.samples, np.float64)
      measured += list(used); bound += [b] * seeds
      used_all.append(used.mean()); bound_all.append(b)
  rate = errors / (n_games * seeds)
  measured.append(rate + 1e-300); bound.append(delta)
  fig, ax = _plot.figure()
  ax.scatter(bound_all, used_all, s=20, label="mean samples used per game")
  lim = [0, max(bound_all) * 1.05]
  ax.plot(lim, lim, "k--", lw=0.8, label="bound")
  ax.set_xlabel("sample bound"); ax.set_ylabel("samples used"); ax.legend(fontsize=7)
  ax.set_title(f"ResponseGraphUCB, delta = {delta}: error rate {rate:.3f}", fontsize=10)
  path = _plot.save(fig, out_dir, "response_graph_ucb_guarantees")
  details = (f"{n_games} Bernoulli 3x3 games (means on a 1/20 grid, every gap >= 0.15), {seeds} seeds each, "
             f"delta = {delta}: error rate {rate:.4f}; samples / bound worst {max(np.array(measured[:-1]) / np.array(bound[:-1])):.3f}")
  return result_from_ratios("response_graph_ucb_guarantees", np.array(measured), np.array(bound), details,
                            (path,), 0.0)
