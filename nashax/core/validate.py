"""Boundary checks that raise clear ``ValueError``s (DESIGN principle 6).

They run eagerly on concrete arrays, outside ``jit``: the named constructors
(``MatrixGame.from_payoff``, ``PreferenceGame.from_matrix``, ...) call them.
Each message names the argument and says what is wrong.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "finite_array",
    "payoff_matrix",
    "normal_form_payoffs",
    "preference_matrix",
    "distribution",
    "positive_scalar",
]


def _concrete(x, name: str) -> np.ndarray:
  try:
    return np.asarray(x, dtype=np.float64)
  except Exception as e:  # a tracer or a non-numeric object
    raise ValueError(
        f"{name}: expected a concrete numeric array, got {type(x).__name__}; "
        "validation runs outside jit (use the raw constructor inside jit)"
    ) from e


def finite_array(x, name: str) -> np.ndarray:
  """Returns ``x`` as float64 numpy, or raises if any entry is NaN or inf."""
  a = _concrete(x, name)
  bad = ~np.isfinite(a)
  if bad.any():
    idx = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(
        f"{name}: {int(bad.sum())} non-finite entries (NaN or inf), first at "
        f"{list(idx)} = {a[idx]}"
    )
  return a


def payoff_matrix(a, name: str = "payoff") -> np.ndarray:
  """A finite ``[n, m]`` payoff matrix with n, m >= 1."""
  a = _concrete(a, name)
  if a.ndim != 2:
    raise ValueError(f"{name}: expected a 2-D [n, m] matrix, got shape {a.shape}")
  if min(a.shape) < 1:
    raise ValueError(f"{name}: every player needs at least one action, got shape {a.shape}")
  return finite_array(a, name)


def normal_form_payoffs(payoffs, name: str = "payoffs") -> np.ndarray:
  """A finite ``[p, a_1, ..., a_p]`` payoff tensor (player axis first)."""
  a = _concrete(payoffs, name)
  if a.ndim < 2:
    raise ValueError(f"{name}: expected shape [p, a_1, ..., a_p], got shape {a.shape}")
  p = a.ndim - 1
  if a.shape[0] != p:
    raise ValueError(
        f"{name}: the player axis must come first: a {p}-player tensor has "
        f"shape [{p}, a_1, ..., a_{p}], but axis 0 has length {a.shape[0]} "
        f"(shape {a.shape})"
    )
  if min(a.shape[1:]) < 1:
    raise ValueError(f"{name}: every player needs at least one action, got shape {a.shape}")
  return finite_array(a, name)


def preference_matrix(p, name: str = "preference", atol: float = 1e-6) -> np.ndarray:
  """A square ``[n, n]`` matrix with entries in [0, 1] and ``P + P.T = 1``."""
  a = _concrete(p, name)
  if a.ndim != 2 or a.shape[0] != a.shape[1]:
    raise ValueError(f"{name}: expected a square [n, n] matrix, got shape {a.shape}")
  a = finite_array(a, name)
  if (a < -atol).any() or (a > 1 + atol).any():
    idx = tuple(int(i) for i in np.argwhere((a < -atol) | (a > 1 + atol))[0])
    raise ValueError(f"{name}: entries are probabilities in [0, 1], got {a[idx]} at {list(idx)}")
  dev = np.abs(a + a.T - 1.0)
  if dev.max() > atol:
    idx = tuple(int(i) for i in np.unravel_index(np.argmax(dev), dev.shape))
    raise ValueError(
        f"{name}: P + P.T must equal 1 (max deviation {dev.max():.3g} at {list(idx)})"
    )
  return a


def distribution(p, name: str, atol: float = 1e-5, size: int | None = None) -> np.ndarray:
  """A probability vector ``[n]``: finite, non-negative, summing to 1."""
  a = finite_array(p, name)
  if a.ndim != 1:
    raise ValueError(f"{name}: expected a 1-D probability vector, got shape {a.shape}")
  if size is not None and a.shape[0] != size:
    raise ValueError(f"{name}: expected {size} entries, got {a.shape[0]}")
  if (a < -atol).any():
    i = int(np.argmin(a))
    raise ValueError(f"{name}: is not a distribution: entry {i} is negative ({a[i]:.3g})")
  s = a.sum()
  if abs(s - 1.0) > atol:
    raise ValueError(f"{name}: is not a distribution: entries sum to {s:.6g}, not 1")
  return a


def positive_scalar(x, name: str) -> float:
  """A finite scalar > 0."""
  a = finite_array(x, name)
  if a.ndim != 0:
    raise ValueError(f"{name}: expected a scalar, got shape {a.shape}")
  if not a > 0:
    raise ValueError(f"{name}: must be > 0, got {float(a)}")
  return float(a)
