"""Intransitivity diagnostics of a win-rate matrix: response graph, cycles, triads, Condorcet, and a
likelihood-ratio test of Bradley-Terry against the general (saturated) pairwise model.

``W[i, j]`` is the rate at which ``i`` beats ``j`` (ties count half) and
``N[i, j]`` the number of battles. The response graph has an edge
``i -> j`` when ``j`` beats ``i`` (``W[j, i] > 1/2``): it is alpha-rank's
single-population response graph of the zero-sum table ``W - 1/2``, and its
sink strongly connected components carry alpha-rank's mass as ``alpha -> inf``
(a sink of more than one model is a cycle that no ranking can break).

Triads: a triple whose three pairs are all decided (``W != 1/2``) is
intransitive when it is a 3-cycle. With ``A[i, j] = [W[i, j] > 1/2]`` and
``D = A + A^T``, the cyclic triads are ``tr(A^3) / 3`` and the decided
triads ``tr(D^3) / 6``.

Likelihood-ratio test: on decisive battles (ties removed; under Davidson's
model the decisive outcomes follow Bradley-Terry exactly, so ties do not
bias it), ``G = 2 (l_saturated - l_BT)`` with one free win probability per
played pair against ``K - 1`` strengths, ``G ~ chi^2`` with
``(#pairs - K + 1)`` degrees of freedom under Bradley-Terry (Wilks).

References:
  Omidshafiei et al., "alpha-Rank", Sci. Rep. 2019, arXiv:1903.01373 (response
  graph, sink components).
  Kendall & Babington Smith, "On the method of paired comparisons",
  Biometrika 1940 (circular triads).
  Wilks, "The large-sample distribution of the likelihood ratio for testing
  composite hypotheses", Ann. Math. Stat. 1938.
  Condorcet, "Essai sur l'application de l'analyse...", 1785.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["response_graph", "sink_components", "intransitive_triads", "condorcet_winner", "LRTest", "lr_test",
           "lr_test_cells"]


def response_graph(w, n=None) -> np.ndarray:
  """``bool[K, K]``: ``i -> j`` when ``j`` beats ``i`` (over played pairs), by ``solvers.alpharank.response_graph``."""
  from nashax.solvers.alpharank import response_graph as _rg

  w = np.asarray(w, np.float64)
  g = np.asarray(_rg(w - 0.5, single_population=True))  # s -> r when M[r, s] > M[s, r], i.e. W[r, s] > 1/2
  if n is not None:
    g = g & (np.asarray(n) > 0)
  return g


def sink_components(adj) -> list:
  """The sink strongly connected components of a directed graph (lists of node indices), by scipy."""
  from scipy.sparse import csgraph

  a = np.asarray(adj, bool)
  ncomp, labels = csgraph.connected_components(a.astype(np.int8), directed=True, connection="strong")
  out_edges = np.zeros(ncomp, bool)
  src, dst = np.nonzero(a)
  out_edges[labels[src][labels[src] != labels[dst]]] = True
  return [sorted(np.flatnonzero(labels == c).tolist()) for c in range(ncomp) if not out_edges[c]]


def intransitive_triads(w: jax.Array, n=None) -> jax.Array:
  """Fraction of decided triads that are 3-cycles, ``[...]`` (0 when no triad is decided; jit/vmap-able)."""
  k = w.shape[-1]
  played = ~jnp.eye(k, dtype=bool) if n is None else (n > 0)
  a = ((w > 0.5) & played).astype(w.dtype)
  d = a + jnp.swapaxes(a, -1, -2)
  cyc = jnp.trace(a @ a @ a, axis1=-2, axis2=-1) / 3.0
  tri = jnp.trace(d @ d @ d, axis1=-2, axis2=-1) / 6.0
  return jnp.where(tri > 0, cyc / jnp.maximum(tri, 1.0), 0.0)


def condorcet_winner(w: jax.Array, n=None) -> jax.Array:
  """``int32[...]``: the model that beats every other (all pairs played, ``W > 1/2``), or -1."""
  k = w.shape[-1]
  off = ~jnp.eye(k, dtype=bool)
  played = off if n is None else (n > 0)
  beats = jnp.all(jnp.where(off, (w > 0.5) & played, True), -1)
  return jnp.where(jnp.any(beats), jnp.argmax(beats), -1).astype(jnp.int32)


class LRTest(NamedTuple):
  """Likelihood-ratio test of Bradley-Terry against the saturated pairwise model (decisive battles).

  Attributes:
    statistic: ``G = 2 (l_sat - l_BT)``; df: degrees of freedom; p_value: ``P(chi^2_df >= G)``.
  """

  statistic: jax.Array
  df: jax.Array
  p_value: jax.Array


def _xlogy(x, y):
  return jnp.where(x > 0, x * jnp.log(jnp.where(x > 0, y, 1.0)), 0.0)


def lr_test_cells(y: jax.Array, i, j, num_models: int, steps: int = 30) -> LRTest:
  """``lr_test`` on pair cells ``y: [C, 3]`` (one row per unordered pair; jit/vmap-able over ``y``)."""
  from nashax.rank.core import fit_bt_cells

  dec = y.at[:, 2].set(0.0)
  fit = fit_bt_cells(dec, i, j, jnp.zeros((y.shape[0], 0), y.dtype), num_models=num_models, steps=steps)
  w, l = dec[:, 0], dec[:, 1]
  tot = w + l
  sat = jnp.sum(_xlogy(w, w / jnp.maximum(tot, 1.0)) + _xlogy(l, l / jnp.maximum(tot, 1.0)))
  d = fit.theta[i] - fit.theta[j]
  bt = jnp.sum(w * jax.nn.log_sigmoid(d) + l * jax.nn.log_sigmoid(-d))
  g = jnp.maximum(2.0 * (sat - bt), 0.0)
  df = jnp.sum(tot > 0) - (num_models - 1)
  dff = jnp.maximum(df, 1).astype(y.dtype)
  p = jnp.where(df > 0, jax.scipy.special.gammaincc(dff / 2.0, g / 2.0), 1.0)
  return LRTest(g, df, p)


def lr_test(comp, steps: int = 30) -> LRTest:
  """Bradley-Terry vs the saturated model on the decisive battles of ``comp`` (float64 on the host).

  Refuses a comparison graph that is not connected (the strengths of its parts are not comparable).
  """
  from scipy.sparse import csgraph

  from nashax.rank.core import cells_of
  from nashax.rank.io import Comparisons

  c = cells_of(Comparisons(comp.models, comp.a, comp.b, comp.counts, None, (), comp.ordered, comp.summary))
  k = c.num_models
  dec = c.y[:, 0] + c.y[:, 1] > 0
  adj = np.zeros((k, k), np.int8)
  adj[c.i[dec], c.j[dec]] = 1
  ncomp, _ = csgraph.connected_components(adj, directed=False)
  if ncomp > 1:
    raise ValueError(f"comp: the graph of decisive battles has {ncomp} disconnected parts; "
                     "Bradley-Terry cannot compare models across them")
  with jax.enable_x64(True):
    res = lr_test_cells(jnp.asarray(c.y, jnp.float64), jnp.asarray(c.i), jnp.asarray(c.j), k, steps)
    return LRTest(float(res.statistic), int(res.df), float(res.p_value))

