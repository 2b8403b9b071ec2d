"""The drivers run/solve and check; import hygiene; API coverage."""

import inspect
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games, solvers
from nashax.core import solver as S
from nashax.core import solver as solver_lib


def test_run_trace_shapes_and_order(key):
  """Trace entry i is taken after (i+1)*every steps: it equals a separate run of that length."""
  g = games.random_zero_sum(jax.random.key(1), 3, 3)
  s = solvers.mwu(0.1)
  st, tr = nashax.run(s, g, key, num_steps=30, every=10)
  assert tr.duality_gap.shape == (3,) and int(st.step) == 30 and int(st.oracle_calls) == 30
  st20, _ = nashax.run(s, g, key, num_steps=20, every=20)
  np.testing.assert_allclose(tr.duality_gap[1], nashax.metrics(g, st20).duality_gap, rtol=1e-6)


def test_solve_does_not_stop_at_step_zero(key):
  """STYLE fact 6: a zero 'average' at init would have gap 0 and stop at once."""
  st, info = nashax.solve(solvers.mwu(0.1), games.rock_paper_scissors(), key, tol=1e-2, max_steps=50_000)
  nashax.check(info)
  assert int(info.num_steps) > 100 and float(info.residual) <= 1e-2


def test_vmapped_solve_freezes_finished_games(key):
  """Each game's step count equals its own unbatched solve (STYLE fact 2)."""
  keys = jax.random.split(jax.random.key(9), 3)
  gs = jax.vmap(lambda k: games.random_zero_sum(k, 4, 4))(keys)
  s = solvers.extragradient(0.2, geometry="euclidean", iterate="last")
  f = lambda g, k: nashax.solve(s, g, k, tol=1e-4, max_steps=20_000)
  _, infos = jax.jit(jax.vmap(f))(gs, keys)
  for i in range(3):
    _, info = f(jax.tree.map(lambda x: x[i], gs), keys[i])
    assert int(info.num_steps) == int(infos.num_steps[i])
    assert int(info.status) == int(infos.status[i])


def test_check_messages(key):
  keys = jax.random.split(key, 3)
  gs = jax.vmap(lambda k: games.random_zero_sum(k, 4, 4))(keys)
  _, infos = jax.vmap(lambda g, k: nashax.solve(solvers.mwu(0.1), g, k, tol=1e-9, max_steps=50))(gs, keys)
  with pytest.raises(RuntimeError, match=r"3 of 3 games hit max_steps before reaching the tolerance \(max_steps=50\); worst residual .* > tol 1e-09"):
    nashax.check(infos)


def test_diverged_status(key):
  """A residual above the cap stops the loop with DIVERGED."""
  _, info = nashax.solve(solvers.mwu(0.1), games.rock_paper_scissors(), key, tol=1e-6, max_steps=100,
                         divergence_cap=1e-3)
  assert int(info.status) == S.DIVERGED
  with pytest.raises(RuntimeError, match="divergence cap"):
    nashax.check(info)


def test_tol_is_traced_no_retrace(key):
  g = games.matching_pennies()
  n0 = solver_lib._solve._cache_size()
  for tol in (1e-2, 1e-3, 1e-4):
    nashax.solve(solvers.mwu(0.1), g, key, tol=tol, max_steps=1000)
  assert solver_lib._solve._cache_size() - n0 <= 1


def test_import_does_not_import_flax():
  code = "import sys, nashax; bad = [m for m in sys.modules if m == 'flax' or m.startswith('flax.')]; print(bad); sys.exit(bool(bad))"
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert r.returncode == 0, r.stdout + r.stderr


def _public():
  import nashax.core, nashax.games, nashax.solvers, nashax.theory
  for mod in (nashax, nashax.core, nashax.games, nashax.solvers, nashax.theory):
    for name in mod.__all__:
      yield mod.__name__, name, getattr(mod, name)


def test_every_public_name_has_a_docstring():
  missing = [f"{m}.{n}" for m, n, obj in _public()
             if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj)]
  assert not missing, missing


def test_every_solver_factory_cites_references():
  from nashax.solvers import equilibrium, halpern, nlhf
  for module in (equilibrium, nlhf, halpern):
    for name in [n for n in module.__all__ if n not in ("forward_step", "resolvent_step")]:
      doc = inspect.getdoc(getattr(module, name))
      assert "References:" in doc and "Certifies:" in doc, name


def test_every_loss_cites_its_paper():
  from nashax.solvers import losses
  for name in losses.__all__:
    assert "References:" in inspect.getdoc(getattr(losses, name)), name
