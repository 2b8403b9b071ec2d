"""The standard figures of a finished sweep.

- ``trace_<metric>.png``: the metric against the step, one line per grid point
  (median over seeds) with a band from the 25th to the 75th percentile;
- ``final_<metric>_vs_<h>.png``: the final metric against each swept numeric
  hyperparameter ``h``, one line per combination of the other swept columns;
- ``heatmap_<metric>_<h1>_<h2>.png``: the median final metric over the first
  two swept numeric hyperparameters (median over seeds and the rest).
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from nashax.sweeps.config import from_dict
from nashax.sweeps.runner import load_results

__all__ = ["plot_results"]


def _plt():
  import matplotlib

  if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _label(table, cols, i) -> str:
  parts = []
  for c in cols:
    v = table[c][i]
    parts.append(f"{c}={v:g}" if isinstance(v, (float, np.floating)) else f"{c}={v}")
  return ", ".join(parts) or "all"


def _finite_axis(xs: np.ndarray) -> np.ndarray:
  """Infinite values (alpha-rank's alpha = inf) moved to 10 times the largest finite one, to be drawn."""
  fin = xs[np.isfinite(xs)]
  top = 10.0 * float(np.max(np.abs(fin))) if fin.size and np.max(np.abs(fin)) > 0 else 1.0
  return np.where(np.isposinf(xs), top, xs)


def _numeric(table, c) -> bool:
  return np.issubdtype(table[c].dtype, np.number)


def plot_results(out: str, metrics: Optional[list] = None, plots_dir: Optional[str] = None) -> list[str]:
  """Draws the standard figures of the sweep in ``out`` and returns their paths.

  Args:
    out: a finished sweep's folder.
    metrics: which traced metrics (default: all).
    plots_dir: where the PNGs go (default ``out/plots``).
  """
  res = load_results(out)
  from nashax._files import read_json

  cfg = from_dict(read_json(os.path.join(out, "manifest.json"), "results: the sweep manifest")["config"])
  names = metrics or [k for k, v in res.traces.items() if v.ndim == 2]  # not a ranking's pi vectors
  for m in names:
    if m not in res.traces:
      raise ValueError(f"metrics: {m!r} was not traced in this sweep; it has {list(res.traces)}")
  plt = _plt()
  pdir = plots_dir or os.path.join(out, "plots")
  os.makedirs(pdir, exist_ok=True)
  t = res.table
  swept = cfg.swept()
  points = np.unique(t["point"])
  first = {p: int(np.argmax(t["point"] == p)) for p in points}
  paths = []
  for m in names:
    tr = res.traces[m]
    fin = tr[np.isfinite(tr)]
    # Certificates are >= 0; float round-off can give exact zeros, drawn at a floor.
    logy = bool(fin.size and np.all(fin >= -1e-6) and np.any(fin > 0))
    if logy:
      floor = 1e-3 * float(np.min(fin[fin > 0]))
      tr = np.maximum(tr, floor)
    if len(res.steps) == 1:  # a ranking sweep: one value per row, no trace to draw
      fig = None
    else:
      fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for j, p in enumerate(points if fig is not None else []):
      rows = t["point"] == p
      q25, q50, q75 = np.nanpercentile(tr[rows], [25, 50, 75], axis=0)
      line, = ax.plot(res.steps, q50, lw=1.2, label=_label(t, swept, first[p]) if j < 12 else None)
      ax.fill_between(res.steps, q25, q75, color=line.get_color(), alpha=0.2, lw=0)
    if fig is not None:
      if logy:
        ax.set_yscale("log")
      ax.set_xlabel("step")
      ax.set_ylabel(m)
      ax.set_title(f"{cfg.name}: {m} (median and quartiles over {cfg.seeds} seeds, {cfg.precision})",
                   fontsize=9)
      ax.legend(fontsize=7)
      paths.append(os.path.join(pdir, f"trace_{m}.png"))
      fig.tight_layout()
      fig.savefig(paths[-1], dpi=110)
      plt.close(fig)

    final = tr[:, -1]
    numeric = [c for c in swept if _numeric(t, c)]
    for h in numeric:
      others = [c for c in swept if c != h]
      combos = {}
      for i in range(len(t["point"])):
        combos.setdefault(tuple(str(t[c][i]) for c in others), []).append(i)
      fig, ax = plt.subplots(figsize=(6.4, 4.2))
      for rows in combos.values():
        rows = np.asarray(rows)
        xs = np.unique(t[h][rows])
        q = np.asarray([np.nanpercentile(final[rows][t[h][rows] == x], [25, 50, 75]) for x in xs])
        xs = _finite_axis(xs)
        line, = ax.plot(xs, q[:, 1], "o-", ms=3, label=_label(t, others, rows[0]))
        ax.fill_between(xs, q[:, 0], q[:, 2], color=line.get_color(), alpha=0.2, lw=0)
      hx = _finite_axis(t[h])
      if np.all(hx > 0) and hx.max() / hx.min() > 20:
        ax.set_xscale("log")
      if logy:
        ax.set_yscale("log")
      ax.set_xlabel(h + (" (inf drawn at the right edge)" if np.isinf(t[h]).any() else ""))
      ax.set_ylabel(f"final {m} ({cfg.precision})")
      ax.legend(fontsize=7)
      paths.append(os.path.join(pdir, f"final_{m}_vs_{h}.png"))
      fig.tight_layout()
      fig.savefig(paths[-1], dpi=110)
      plt.close(fig)

    if len(numeric) >= 2:
      h1, h2 = numeric[:2]
      xs, ys = np.unique(t[h1]), np.unique(t[h2])
      z = np.full((len(ys), len(xs)), np.nan)
      for a, x in enumerate(xs):
        for b, y in enumerate(ys):
          sel = (t[h1] == x) & (t[h2] == y)
          if sel.any():
            z[b, a] = np.nanmedian(final[sel])
      fig, ax = plt.subplots(figsize=(5.6, 4.4))
      im = ax.imshow(np.log10(z) if logy else z, origin="lower", aspect="auto", cmap="viridis")
      ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs])
      ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys])
      ax.set_xlabel(h1)
      ax.set_ylabel(h2)
      fig.colorbar(im, ax=ax, label=(f"log10 final {m}" if logy else f"final {m}") + f" ({cfg.precision})")
      ax.set_title(f"median over seeds{' and ' + ', '.join(c for c in swept if c not in (h1, h2)) if len(swept) > 2 else ''}",
                   fontsize=8)
      paths.append(os.path.join(pdir, f"heatmap_{m}_{h1}_{h2}.png"))
      fig.tight_layout()
      fig.savefig(paths[-1], dpi=110)
      plt.close(fig)
  return paths
