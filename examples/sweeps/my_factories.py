"""Your own game and solver for a sweep: ``family = "my_factories:tempered_bt"``.

Run with the folder on the import path:
``PYTHONPATH=examples/sweeps nashax sweep examples/sweeps/user_factory.toml``.
"""

import jax
import jax.numpy as jnp

from nashax import solvers
from nashax.core.games import PreferenceGame


def tempered_bt(key, size, beta=0.1, temperature=1.0, intransitivity=0.0):
  """Bradley-Terry preferences at a temperature plus an intransitive (cyclic) part, KL-regularised.

  Every hyperparameter is traced: a sweep over them is one compiled function.
  """
  k1, k2 = jax.random.split(key)
  r = jax.random.normal(k1, (size,)) / temperature
  c = jax.random.normal(k2, (size, size))
  c = c - c.T  # antisymmetric: a cyclic component
  p = jax.nn.sigmoid(r[:, None] - r[None, :] + intransitivity * c)
  return PreferenceGame(p, jnp.asarray(beta, p.dtype), jnp.full((size,), -jnp.log(size), p.dtype))


def sppo_last(eta=0.1, *, init_scale=1.0):
  """SPPO's last iterate (any factory returning a ``Solver`` will do)."""
  return solvers.sppo(eta, iterate="last", init_scale=init_scale)
