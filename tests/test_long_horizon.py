"""100,000-step float32 runs of every entropic method (STYLE fact 5).

Probability-space MWU underflows in float32 and its average gap climbs back
up (0.020 at 30k steps to 2.42 at 100k); a plain running mean freezes once its
increments fall below float32 resolution. Here, after a 10k-step burn-in (the
average-iterate gaps of cyclic dynamics oscillate early on), the gap must never
rise above 3x its running minimum (6x for the replicator, see below) plus a float32 floor of 1e-5, and must end
below a stated target per method.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games, solvers

from nashax.solvers import catalogue

SCALE = 5.0
MAKERS = {
    "mwu": (lambda: solvers.mwu(0.02), 0.05, 3.0),
    "optimistic_mwu": (lambda: solvers.optimistic_mwu(0.02), 1e-4, 3.0),
    "extragradient_entropic": (lambda: solvers.extragradient(0.05), 1e-3, 3.0),
    # about the regret-optimal sqrt(ln 3 / (T R^2)) for T = 1e5; a fixed larger step cycles outwards.
    # Its slow orbit makes the time average's gap oscillate by up to ~5x within a period (also in float64).
    "replicator": (lambda: solvers.replicator(0.001), 0.05, 6.0),
    # eta = tau / L^2 (the theorem's condition); the QRE of scaled RPS is uniform = Nash.
    "mmd": (lambda: solvers.mmd(0.1 / SCALE**2, 0.1), 1e-3, 3.0),
}


def test_every_entropic_method_is_covered():
  """Every catalogue row tagged entropic has a 100,000-step run here."""
  assert sorted(MAKERS) == sorted(e.name for e in catalogue.entries("entropic"))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_gap_does_not_climb_back(name):
  g = games.rock_paper_scissors(SCALE)
  make, target, factor = MAKERS[name]
  state, trace = nashax.run(make(), g, jax.random.key(3), num_steps=100_000, every=1_000)
  gap = np.asarray(trace.duality_gap)
  assert gap.dtype == np.float32 and np.isfinite(gap).all()
  tail = gap[10:]
  running_min = np.minimum.accumulate(tail)
  excess = tail - (factor * running_min + 1e-5)
  assert excess.max() <= 0.0, f"{name}: gap rose to {tail[np.argmax(excess)]:.3g}"
  assert gap[-1] <= target
  for p in state.profile:
    assert float(jnp.min(p)) > 0.0  # nothing underflowed to an exact zero
