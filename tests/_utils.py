"""Thin test helpers (chex is used only through here, so it can be swapped)."""

import functools

import chex
import jax
import numpy as np


def x64(fn):
  """Runs a test with float64 enabled (``jax.enable_x64`` as a context)."""
  @functools.wraps(fn)
  def wrapped(*a, **k):
    with jax.enable_x64(True):
      return fn(*a, **k)
  return wrapped


def _key_data(tree):
  """Typed PRNG keys as their integer data (chex cannot compare key arrays)."""
  return jax.tree.map(
      lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)
      else x, tree)


def assert_trees_close(a, b, rtol, atol):
  chex.assert_trees_all_close(_key_data(a), _key_data(b), rtol=rtol, atol=atol)


def assert_same_structure_shapes_dtypes(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b), (jax.tree.structure(a), jax.tree.structure(b))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.shape(x) == np.shape(y) and x.dtype == y.dtype, (x, y)
