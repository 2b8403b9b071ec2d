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
    "number",
    "size",
    "boolean",
    "float_dtype",
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
  """A finite scalar > 0 (booleans, strings and complex numbers are refused)."""
  if not _is_tracer(x) and np.ndim(x) == 0:
    _scalar(name, x, "a real number > 0")
  a = finite_array(x, name)
  if a.ndim != 0:
    raise ValueError(f"{name}: expected a scalar, got shape {a.shape}")
  if not a > 0:
    raise ValueError(f"{name}: must be > 0, got {float(a)}")
  return float(a)


# --- scalars: one vocabulary for every public number --------------------------------------------

_MAX_SIZE = 2 ** 31 - 1  # the int32 range of JAX loop counters and index arithmetic


def traced(x) -> bool:
  """Whether ``x`` is a tracer (the call runs under ``jit``/``vmap``/``grad``): its value cannot be checked here.

  The one test every guard uses before checking a value that may be traced; a traced value is
  checked by the status codes of whatever consumes it.
  """
  import jax

  return isinstance(x, jax.core.Tracer)


_is_tracer = traced


def _scalar(name: str, value, what: str):
  """``value`` as a numpy 0-d array (float64 or int64), refusing what is not a real number."""
  if isinstance(value, (bool, np.bool_)):
    raise ValueError(f"{name}: expected {what}, got the boolean {value!r}")
  if value is None or isinstance(value, (str, bytes)):
    raise ValueError(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
  if isinstance(value, (complex, np.complexfloating)):
    raise ValueError(f"{name}: expected {what}, got the complex number {value!r}")
  try:
    a = np.asarray(value)
  except Exception:  # noqa: BLE001 - an object numpy cannot read is not a number
    raise ValueError(f"{name}: expected {what}, got {type(value).__name__}") from None
  if a.dtype == bool:
    raise ValueError(f"{name}: expected {what}, got a boolean array")
  if np.issubdtype(a.dtype, np.complexfloating):
    raise ValueError(f"{name}: expected {what}, got a complex array")
  if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
    raise ValueError(f"{name}: expected {what}, got {type(value).__name__} {value!r}")
  if a.ndim != 0:
    raise ValueError(f"{name}: expected {what} (a scalar), got shape {a.shape}")
  return a


def number(name: str, value, *, lo=None, hi=None, lo_open: bool = False, hi_open: bool = False,
           integer: bool = False):
  """A finite real scalar in ``[lo, hi]`` (ends open with ``lo_open`` / ``hi_open``), or a tracer.

  Refuses booleans, strings, ``None``, complex numbers, arrays with more than
  one entry, NaN and inf, and (with ``integer``) a non-integral value, each
  with a message naming ``name``. A tracer (the call runs under ``jit`` or
  ``vmap``) is returned unchanged: its value is checked by the status codes of
  whatever consumes it.

  Returns:
    ``value`` unchanged (a tracer), or a Python ``int`` (``integer=True``) or
    ``float``.
  """
  if _is_tracer(value):
    return value
  what = "an integer" if integer else "a real number"
  a = _scalar(name, value, what)
  v = float(a) if np.issubdtype(a.dtype, np.floating) else int(a)
  if isinstance(v, float) and not np.isfinite(v):
    raise ValueError(f"{name}: must be finite, got {v}")
  if integer and (isinstance(v, float) and v != np.floor(v)):
    raise ValueError(f"{name}: must be an integer, got {value!r}")
  if lo is not None and (v < lo or (lo_open and v == lo)):
    raise ValueError(f"{name}: must be {'>' if lo_open else '>='} {lo}, got {value!r}")
  if hi is not None and (v > hi or (hi_open and v == hi)):
    raise ValueError(f"{name}: must be {'<' if hi_open else '<='} {hi}, got {value!r}")
  return int(v) if integer else float(v)


def size(name: str, n, *, lo: int = 1, hi: int = _MAX_SIZE) -> int:
  """A concrete integer count in ``[lo, hi]`` (a size, a number of steps or samples).

  Sizes shape arrays and loops, so they cannot be traced; ``hi`` (default
  ``2**31 - 1``, JAX's int32 range) refuses absurd values before they reach an
  allocation or an int32 overflow.
  """
  if _is_tracer(n):
    raise ValueError(f"{name}: must be a concrete integer (it sets a shape or a loop length), got a tracer")
  kind = "a positive integer" if lo == 1 else f"an integer >= {lo}"
  a = _scalar(name, n, kind)
  v = float(a)
  if not np.isfinite(v) or v != np.floor(v) or v < lo:
    raise ValueError(f"{name}: must be {kind}, got {n!r}")
  if v > hi:
    raise ValueError(f"{name}: must be at most {hi}, got {n!r}")
  return int(a)


def boolean(name: str, value) -> bool:
  """A true boolean (``True`` / ``False`` / numpy bool); 0, 1 and strings are refused."""
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  raise ValueError(f"{name}: expected true or false, got {type(value).__name__} {value!r}")


def float_dtype(name: str, dtype):
  """``dtype`` if it is ``None`` or a floating dtype; integer, boolean and complex dtypes are refused."""
  if dtype is None:
    return None
  import jax.numpy as jnp

  try:
    d = jnp.dtype(dtype)
  except Exception:  # noqa: BLE001
    raise ValueError(f"{name}: not a dtype: {dtype!r}") from None
  if not jnp.issubdtype(d, jnp.floating):
    raise ValueError(f"{name}: must be a floating dtype (float32 or float64), got {d}")
  return dtype
