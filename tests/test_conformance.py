"""Conformance: ``nashax.testing.check_solver`` on every catalogue row, and the checks' own failures.

Source of the contract: ``nashax.core.solver`` (the state header, the traced hyperparameters, the drivers'
statuses). Each row takes about 10 s on a busy core (five compiled programs: one short run, its vmap,
the padded run, the NaN ``solve`` and the 20,000-step float32 run).
"""

import inspect

import jax
import jax.numpy as jnp
import pytest

import nashax
from nashax import games, solvers, testing
from nashax.core import solver as solver_lib
from nashax.solvers import catalogue, equilibrium

NAMES = [e.name for e in catalogue.CATALOGUE]


def _solver_factories():
  """Every public function of a ``nashax.solvers`` module whose return annotation is ``Solver``."""
  from nashax.solvers import fdiv, halpern, nlhf
  for module in (equilibrium, halpern, nlhf, fdiv):
    for name in module.__all__:
      fn = getattr(module, name)
      if inspect.isfunction(fn) and inspect.signature(fn).return_annotation in ("Solver", nashax.Solver):
        yield fn


def test_every_solver_factory_is_catalogued():
  """A factory returning a Solver with no catalogue row fails here (and so never skips the conformance)."""
  found = {fn for fn in _solver_factories()}
  assert len(found) >= 27
  missing = sorted(fn.__name__ for fn in found - {e.fn for e in catalogue.CATALOGUE})
  assert not missing, f"add rows to nashax.solvers.catalogue for {missing}"
  assert len(set(NAMES)) == len(NAMES)


def test_solvers_namespace_is_the_catalogue():
  """``nashax.solvers`` exports each catalogued factory under its catalogue name, and nothing else that
  returns a Solver."""
  for name, fn in catalogue.factories().items():
    assert getattr(solvers, name) is fn and name in solvers.__all__, name
  exported = {getattr(solvers, n) for n in solvers.__all__ if inspect.isfunction(getattr(solvers, n))}
  assert {fn for fn in _solver_factories()} <= exported
  for e in catalogue.CATALOGUE:  # all rows of one factory agree on whether a sweep may name it
    assert all(o.sweep == e.sweep for o in catalogue.CATALOGUE if o.factory == e.factory), e.name
  with pytest.raises(ValueError, match="name: no catalogued solver 'nope'"):
    catalogue.get("nope")
  table = catalogue.markdown().splitlines()
  assert len(table) == 2 + len(NAMES) and all(f"| `{n}` |" in row for n, row in zip(NAMES, table[2:]))


@pytest.mark.parametrize("name", NAMES)
def test_check_solver(name):
  e = catalogue.get(name)
  report = testing.check_catalogued(name)
  for check in set(testing.CHECKS) - {"padding", "long_run"} - set(e.fails):
    assert report[check] == "passed", (check, report[check])
  assert "long_run" in e.fails or report["long_run"].startswith("passed (float32")
  assert report["padding"] == "passed" if e.padding else report["padding"].startswith("skipped")
  for check in e.fails:  # a known bug must still show; when it is fixed, drop it from Entry.fails
    with pytest.raises(AssertionError, match=f"^{check}:"):
      testing.check_catalogued(name, checks=[check])


# ----------------------------------------------------------------------------- the checks can fail


def _mwu_with(eta0=0.1, **changes):
  """MWU with one plausible bug swapped in (the real init/step functions otherwise)."""
  def make(eta=eta0, init_scale=1.0):
    s = solvers.mwu(eta, init_scale=init_scale)
    return s.replace(**changes)
  return make


def _static_eta_make(eta=0.1, init_scale=1.0):
  """MWU whose step size is compiled in (a static field): a new value recompiles."""
  base = solvers.mwu(eta, init_scale=init_scale)
  hp = base.hparams
  step = lambda hparams, g, st: equilibrium._mwu_step(hp.replace(eta=jnp.asarray(float(eta))), g, st)
  return base.replace(step_fn=_Static(step, float(eta)))


class _Static:
  """A step function that carries a number in its hash, as a static hyperparameter would."""

  def __init__(self, fn, value):
    self.fn, self.value = fn, value

  def __call__(self, *a):
    return self.fn(*a)

  def __hash__(self):
    return hash(self.value)

  def __eq__(self, other):
    return isinstance(other, _Static) and other.value == self.value


def _uniform_init(hp, game, key):
  return equilibrium._mwu_init(hp.replace(init_scale=jnp.zeros_like(hp.init_scale)), game, key)


def _eager_only_branch_step(hp, game, state):
  st = equilibrium._mwu_step(hp, game, state)
  if not isinstance(state.step, jax.core.Tracer):  # a Python-side shortcut that jit never sees
    return st._replace(oracle_calls=st.oracle_calls + 1)
  return st


def _unmasked_init(hp, game, key):
  """A random start that ignores the action masks (puts mass on padding)."""
  st = equilibrium._mwu_init(hp, game, key)
  lp = tuple(jax.nn.log_softmax(jax.random.normal(key, p.shape)) for p in st.log_probs)
  return st._replace(profile=tuple(jnp.exp(l) for l in lp), log_probs=lp)


def _probability_space_step(hp, game, state):
  """MWU written in probability space with a plain running mean: float32 underflows to exact zeros."""
  from nashax.solvers import _common as c
  g, _, _ = c.player_view(game)
  x = c.probs(state.log_probs)
  new = tuple(p * jnp.exp(hp.eta * u) for p, u in zip(x, c.utils(g, x)))
  new = tuple(p / p.sum() for p in new)
  avg = tuple(a + (n - a) / (state.step + 2.0) for a, n in zip(state.profile, new))
  return state._replace(step=state.step + 1, oracle_calls=state.oracle_calls + 1, profile=avg,
                        log_probs=tuple(jnp.log(p) for p in new))


@pytest.mark.parametrize("bug, check, kw", [
    (dict(init_fn=_uniform_init), "header", {}),
    (dict(step_fn=_eager_only_branch_step), "jit_equals_eager", dict(checks=["jit_equals_eager"])),
    (dict(init_fn=_unmasked_init), "padding", dict(checks=["padding"])),
])
def test_check_solver_detects_a_broken_solver(bug, check, kw):
  """Each plausible bug fails the check that names it: a uniform start, a Python branch jit does not
  see, a start that ignores the action masks."""
  g = games.random_zero_sum(jax.random.key(11), 3, 4)
  with pytest.raises(AssertionError, match=f"^{check}:"):
    testing.check_solver(_mwu_with(**bug), g, vary=("eta", (0.05, 0.1, 0.2)), **kw)


def test_check_solver_detects_a_retrace():
  """A step size compiled into the program (a static hyperparameter) retraces for each new value."""
  g = games.random_zero_sum(jax.random.key(11), 3, 4)
  with pytest.raises(AssertionError, match="^no_retrace:"):
    testing.check_solver(_static_eta_make, g, vary=("eta", (0.05, 0.1, 0.2)), checks=["no_retrace"])


def test_check_solver_detects_a_climb_back():
  """Probability-space MWU (exact zeros after float32 underflow, a plain running mean) on RPS x 5 at
  eta 0.3: its average gap climbs from 0.6 to about 9.6 in 20,000 steps (the reason the entropic methods
  keep log-probabilities and a Kahan-compensated mean); the real MWU passes the same check above."""
  g = games.rock_paper_scissors(5.0)
  with pytest.raises(AssertionError, match="^long_run: the certificate climbed back from "):
    testing.check_solver(_mwu_with(0.3, step_fn=_probability_space_step), g, vary=("eta", (0.2, 0.3, 0.4)),
                         checks=["long_run"])


def test_check_solver_detects_a_certificate_that_hides_nan(monkeypatch):
  """The NaN check reads the problem's certificate: one that maps NaN to 0 ends solve in SUCCESS."""
  monkeypatch.setattr(testing, "_certificate", lambda g, s: jnp.nan_to_num(testing.default_residual(g, s)))
  g = games.random_zero_sum(jax.random.key(11), 3, 4)
  with pytest.raises(AssertionError, match="^nan: NaN data gave status 'reached the tolerance'"):
    testing.check_solver(_mwu_with(), g, vary=("eta", (0.05, 0.1, 0.2)), checks=["nan"])


def test_three_player_normal_form(key):
  """Solvers accept n-player games; the profile stays a tuple of distributions."""
  payoffs = jax.random.normal(jax.random.key(1), (3, 2, 3, 2))
  g = nashax.NormalFormGame(payoffs)
  st, tr = nashax.run(solvers.mwu(0.1), g, key, num_steps=10, every=5)
  assert [p.shape for p in st.profile] == [(2,), (3,), (2,)]
  assert tr.duality_gap is None and tr.nash_conv.shape == (2,)


def test_nan_status_is_reported_in_words(key):
  a = jnp.array([[0.0, 1.0], [jnp.nan, 0.0]], jnp.float32)
  _, info = nashax.solve(solvers.mwu(0.1), nashax.MatrixGame(a), key, tol=1e-6, max_steps=100)
  assert int(info.status) == solver_lib.NONFINITE
  with pytest.raises(RuntimeError, match="NaN or inf"):
    nashax.check(info)


def test_sweep_registry_offers_the_catalogue_factories_a_sweep_may_name():
  """``sweeps.registry.SOLVERS`` is ``catalogue.factories(sweep=True)`` (same names, same functions) plus the two
  string-option adapters, halpern (its base map by name) and f_dpg (its divergence by name), whose factories are
  catalogued."""
  from nashax.sweeps import registry
  extra = {k: v for k, v in registry.SOLVERS.items() if k not in catalogue.factories(sweep=True)}
  assert {k: registry.SOLVERS[k] for k in catalogue.factories(sweep=True)} == catalogue.factories(sweep=True)
  assert set(extra) == {"halpern", "f_dpg"}
  assert {"halpern_iteration", "f_dpg"} <= set(catalogue.factories())
