"""Plot helpers for the verifiers (matplotlib, Agg backend, PNG files)."""

from __future__ import annotations

import os

import numpy as np


def figure():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt.subplots(figsize=(6.4, 4.2))


def save(fig, out_dir: str, name: str) -> str:
  import matplotlib.pyplot as plt

  path = os.path.join(out_dir, f"{name}.png")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def measured_vs_bound(out_dir: str, name: str, steps, measured, bound, title: str,
                      ylabel: str, labels=None) -> str:
  """Log-log plot of measured curves (solid) against their bounds (dashed)."""
  fig, ax = figure()
  steps = np.asarray(steps)
  measured = np.atleast_2d(measured)
  bound = np.atleast_2d(bound)
  for i in range(measured.shape[0]):
    lab = labels[i] if labels is not None else None
    line, = ax.loglog(steps, np.maximum(measured[i], 1e-16), lw=1.2, label=lab and f"{lab}: measured")
    ax.loglog(steps, bound[i], "--", color=line.get_color(), lw=1.0, label=lab and f"{lab}: bound")
  ax.set_xlabel("step t")
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  if labels is not None:
    ax.legend(fontsize=7)
  return save(fig, out_dir, name)
