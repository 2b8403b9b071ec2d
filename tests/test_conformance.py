"""Conformance suite that every solver factory runs (STYLE section 10.2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games
from nashax.core import solver as solver_lib
from nashax.solvers import equilibrium

from _utils import assert_same_structure_shapes_dtypes, assert_trees_close
from solver_registry import COVERED_FACTORIES, COVERED_HALPERN, ROW_SPLIT, SOLVERS

NAMES = sorted(SOLVERS)


def _game():
  return games.random_zero_sum(jax.random.key(11), 3, 4)


def _make(name, eta=None, **kw):
  make, default = SOLVERS[name]
  return make(default if eta is None else eta, **kw) if default is not None else make(**kw)


def test_every_factory_is_covered():
  """A new solver factory must join the conformance suite."""
  assert set(equilibrium.__all__) == COVERED_FACTORIES
  from nashax.solvers import halpern
  assert set(halpern.__all__) - {"vr_halpern", "forward_step", "resolvent_step"} == COVERED_HALPERN


@pytest.mark.parametrize("name", NAMES)
def test_init_step_keep_structure_shapes_dtypes(name, key):
  s = _make(name)
  g = _game()
  st0 = s.init(g, key)
  st1 = s.step(g, st0)
  assert_same_structure_shapes_dtypes(st0, st1)


@pytest.mark.parametrize("name", NAMES)
def test_header_valid_after_init(name, key):
  """step = 0, int32 counters, and a profile of distributions already at init (STYLE fact 6)."""
  s = _make(name)
  st = s.init(_game(), key)
  assert int(st.step) == 0 and st.step.dtype == jnp.int32
  assert st.oracle_calls.dtype == jnp.int32 and int(st.oracle_calls) >= 0
  for p, n in zip(st.profile, (3, 4)):
    assert p.shape == (n,)
    np.testing.assert_allclose(float(p.sum()), 1.0, atol=1e-6)
    assert float(p.min()) >= 0.0
  # A random start is not uniform, and its gap is positive (so solve cannot stop at step 0).
  assert float(nashax.metrics(_game(), st).duality_gap) > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager(name, key):
  s = _make(name)
  g = _game()
  st = s.init(g, key)
  for _ in range(5):
    st = s.step(g, st)
  jst, _ = nashax.run(s, g, key, num_steps=5)
  assert_trees_close(st, jst, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_games_equals_loop(name):
  s = _make(name)
  keys = jax.random.split(jax.random.key(5), 3)
  gs = jax.vmap(lambda k: games.random_zero_sum(k, 3, 4))(keys)
  vst, vtr = jax.vmap(lambda g, k: nashax.run(s, g, k, num_steps=8, every=4))(gs, keys)
  for i in range(3):
    g = jax.tree.map(lambda x: x[i], gs)
    st, tr = nashax.run(s, g, keys[i], num_steps=8, every=4)
    assert_trees_close(jax.tree.map(lambda x: x[i], vst), st, rtol=1e-5, atol=1e-6)
    assert_trees_close(jax.tree.map(lambda x: x[i], vtr), tr, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", [n for n in NAMES if SOLVERS[n][1] is not None])
def test_vmap_over_step_size_and_no_retrace(name, key):
  g = _game()
  etas = jnp.array([0.05, 0.1, 0.2])
  vst, _ = jax.vmap(lambda e: nashax.run(_make(name, e), g, key, num_steps=4))(etas)
  for i, e in enumerate(etas):
    st, _ = nashax.run(_make(name, float(e)), g, key, num_steps=4)
    assert_trees_close(jax.tree.map(lambda x: x[i], vst), st, rtol=1e-5, atol=1e-6)
  traces = []

  @jax.jit
  def one(s, g, k):
    traces.append(None)
    return s.step(g, s.init(g, k))

  for e in (0.05, 0.1, 0.2):
    one(_make(name, e), g, key)
  assert len(traces) == 1, f"{name} retraced for a new step size"


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ROW_SPLIT])
def test_padded_game_gives_same_result(name):
  """Padding actions are ignored: same profile on the real actions, 0 on padding."""
  g = games.random_zero_sum(jax.random.key(2), 3, 2)
  gp = games.pad(g, 5, 4)
  s = _make(name, init_scale=0.0)
  st, _ = nashax.run(s, g, jax.random.key(0), num_steps=20)
  stp, _ = nashax.run(s, gp, jax.random.key(0), num_steps=20)
  for p, pp in zip(st.profile, stp.profile):
    n = p.shape[0]
    np.testing.assert_allclose(pp[:n], p, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(pp[n:]), 0.0)
  np.testing.assert_allclose(nashax.metrics(gp, stp).duality_gap, nashax.metrics(g, st).duality_gap,
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_nan_payoffs_give_nonfinite(name, key):
  a = jnp.asarray(np.array([[0.0, 1.0], [np.nan, 0.0]], np.float32))
  _, info = nashax.solve(_make(name), nashax.MatrixGame(a), key, tol=1e-6, max_steps=100)
  assert int(info.status) == solver_lib.NONFINITE
  with pytest.raises(RuntimeError, match="NaN or inf"):
    nashax.check(info)


@pytest.mark.parametrize("name", ["mwu", "regret_matching_plus", "fictitious_play"])
def test_three_player_normal_form(name, key):
  """Solvers accept n-player games; the profile stays a tuple of distributions."""
  payoffs = jax.random.normal(jax.random.key(1), (3, 2, 3, 2))
  g = nashax.NormalFormGame(payoffs)
  st, tr = nashax.run(_make(name), g, key, num_steps=10, every=5)
  assert [p.shape for p in st.profile] == [(2,), (3,), (2,)]
  assert tr.duality_gap is None and tr.nash_conv.shape == (2,)
