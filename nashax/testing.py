"""The conformance check every solver passes, for nashax's own solvers and for a user's.

``check_solver(make, problem)`` runs the contract of ``nashax.core.solver`` on
one solver factory and one problem:

* the state header is valid at ``init`` (``step = 0``, int32 counters, a
  feasible ``profile``, a positive certificate, a start that depends on the key);
* a step keeps the state's structure, shapes and dtypes;
* jit equals eager, and vmap over (problem, key, hyperparameter) equals a loop;
* a new hyperparameter value does not retrace;
* padded actions leave the run unchanged (matrix and preference games);
* NaN in the problem's data ends ``solve`` with status NONFINITE;
* a long float32 run stays finite and its certificate does not climb back.

A failed check raises ``AssertionError`` naming the check. Runs outside jit.
``PROBLEMS`` holds the small problems the catalogue (``nashax.solvers.catalogue``)
is checked on; ``check_catalogued(name)`` runs one catalogue row.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import games as games_lib
from nashax.core import operators
from nashax.core import solver as solver_lib
from nashax.core.metrics import default_residual

__all__ = ["CHECKS", "PROBLEMS", "check_solver", "check_catalogued", "poison", "pad_actions"]

_SHORT, _EVERY, _BATCH = 4, 2, 3
CHECKS = ("jit_equals_eager", "no_retrace", "vmap_equals_loop", "padding", "nan", "long_run")


def _matrix(key):
  from nashax import games
  return games.random_zero_sum(key, 3, 4)


def _preference(key):
  from nashax import games
  ref = jax.nn.softmax(jax.random.normal(jax.random.fold_in(key, 1), (4,)))
  return games.random_preference_game(key, 4).regularized(0.3, ref)


def _least_squares(key):
  from nashax import games
  return games.random_least_squares(key, 16, 3)


def _target(key):
  lb = jax.nn.log_softmax(jax.random.normal(key, (7,)))
  return games_lib.TargetDistribution(lb, jax.random.normal(jax.random.fold_in(key, 1), (7,)))


def _f_game(key):
  from nashax import games
  from nashax.core import divergences
  g = games.random_preference_game(key, 5)
  return games_lib.FRegularizedGame(g.preference, jnp.asarray(0.3), jnp.full((5,), -jnp.log(5.0)),
                                    divergences.squared_hellinger())


PROBLEMS: dict[str, Callable[[jax.Array], Any]] = {
    "matrix": _matrix,                # 3 x 4 zero-sum game, Uniform(-1, 1) payoffs
    "preference": _preference,        # 4 responses, KL-regularised (beta 0.3) toward a random reference
    "least_squares": _least_squares,  # 16 unit-row least-squares components in R^3 (cocoercive)
    "target": _target,                # an energy-based target over 7 outcomes
    "f_game": _f_game,                # 5 responses, squared-Hellinger regularised (beta 0.3)
}


def _certificate(game: Any, state: Any) -> jax.Array:
  return default_residual(game, state)


def _run_short(solver, game, key):
  return solver_lib._run(solver, game, key, num_steps=_SHORT, every=_EVERY, metric_fn=_certificate)


def poison(problem: Any) -> Any:
  """``problem`` with entry 0 of every floating array (``ndim >= 1``, finite there) set to NaN.

  What a NaN that gets past the validated constructors looks like (data replaced by hand).
  """
  def bad(x):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating) or x.ndim == 0 or not bool(jnp.isfinite(x.reshape(-1)[0])):
      return x
    return x.reshape(-1).at[0].set(jnp.nan).reshape(x.shape)

  return jax.tree.map(bad, problem)


def pad_actions(problem: Any, extra: int = 2) -> Optional[Any]:
  """``problem`` with ``extra`` illegal actions per player, or None for problems without actions."""
  if isinstance(problem, games_lib.MatrixGame):  # pad needs the player count; types without actions give None
    n, m = problem.payoff.shape[-2:]
    return games_lib.pad(problem, n + extra, m + extra)
  if isinstance(problem, games_lib.PreferenceGame):
    return games_lib.pad(problem, problem.preference.shape[-1] + extra)
  return None


def _fail(check: str, msg: str) -> None:
  raise AssertionError(f"{check}: {msg}")


def _leaves_close(check, a, b, rtol, atol) -> None:
  a, b = _key_data(a), _key_data(b)
  if jax.tree.structure(a) != jax.tree.structure(b):
    _fail(check, f"structures differ: {jax.tree.structure(a)} vs {jax.tree.structure(b)}")
  for i, (x, y) in enumerate(zip(jax.tree.leaves(a), jax.tree.leaves(b))):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or not np.allclose(x, y, rtol=rtol, atol=atol, equal_nan=True):
      err = np.max(np.abs(x - y)) if x.shape == y.shape else f"shapes {x.shape} vs {y.shape}"
      _fail(check, f"leaf {i} differs (max abs difference {err})")


def _key_data(tree):
  return jax.tree.map(lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(
      getattr(x, "dtype", None), jax.dtypes.prng_key) else x, tree)


def _stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def _variants(make, vary) -> list:
  """Three solvers with new hyperparameter values: ``make(name=v)``, or the traced floats rescaled."""
  if vary is not None:
    name, values = vary
    if len(values) != _BATCH:
      raise ValueError(f"vary: expected (name, three values), got {vary!r}")
    return [make(**{name: v}) for v in values]
  base = make()
  scale = lambda f: lambda x: x * f if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating) else x
  return [base.replace(hparams=jax.tree.map(scale(f), base.hparams)) for f in (0.9, 0.8, 0.7)]


def _check_header(check, problem, state, step: int) -> None:
  if not hasattr(state, "step") or not hasattr(state, "oracle_calls") or not hasattr(state, "profile"):
    _fail(check, "the state lacks the header step / oracle_calls / profile")
  for field in ("step", "oracle_calls"):
    x = getattr(state, field)
    if jnp.shape(x) != () or jnp.asarray(x).dtype != jnp.int32:
      _fail(check, f"state.{field} must be an int32 scalar, got {jnp.asarray(x).dtype}{jnp.shape(x)}")
  if int(state.step) != step:
    _fail(check, f"state.step is {int(state.step)} after {step} steps")
  if int(state.oracle_calls) < 0:
    _fail(check, f"state.oracle_calls is negative ({int(state.oracle_calls)})")
  for p in jax.tree.leaves(state.profile):
    p = np.asarray(p, np.float64)
    if not np.isfinite(p).all():
      _fail(check, "the profile is not finite")
    # an operator's profile is a point of R^d, not a distribution (until problems own their checks)
    if not isinstance(problem, (operators.Operator, operators.FiniteSumOperator)):
      if p.min() < 0.0 or not np.allclose(p.sum(-1), 1.0, atol=1e-5):
        _fail(check, "the profile is not a distribution (negative entries or sums != 1)")


def check_solver(make: Callable[..., Any], problem: Any, *, key: Optional[jax.Array] = None,
                 vary: Optional[tuple[str, tuple]] = None, padding: bool = True,
                 checks: Optional[Sequence[str]] = None, long_steps: int = 20_000, long_factor: float = 3.0,
                 floor: float = 1e-5,
                 rtol: float = 1e-5, atol: float = 1e-6) -> dict[str, str]:
  """Runs the solver contract on ``make()`` and ``problem``; raises ``AssertionError`` naming a failed check.

  Args:
    make: ``(**overrides) -> Solver``; called with no argument, with ``init_scale=0.0``
      (the padding check compares uniform starts) and with ``vary[0]=value``.
    problem: one problem the solver accepts (a game, target or operator).
    key: PRNG key (default ``jax.random.key(0)``).
    vary: ``(hyperparameter, three values)`` for the vmap and retrace checks; None
      rescales the solver's traced floating hyperparameters by 0.9, 0.8 and 0.7.
    padding: run the padded-equals-unpadded check where the problem has actions.
    checks: the checks to run after ``header`` (default all of ``CHECKS``).
    long_steps: steps of the long run (a multiple of 100); 0 skips it.
    long_factor: after a burn-in of 10 of the 100 trace entries, the certificate must stay
      ``<= long_factor * running minimum + floor``, and end ``<= long_factor`` times its minimum
      over the burn-in ``+ floor``.
    floor: the float32 floor of that bound.
    rtol, atol: tolerances of the jit/eager, vmap/loop and padded comparisons.

  Returns:
    ``{check: "passed" | "skipped: why"}``.

  A user's solver is checked the same way (about five compilations, seconds on a CPU)::

    report = check_solver(lambda eta=0.1, **kw: my_solver(eta, **kw), games.random_zero_sum(key, 3, 4),
                          vary=("eta", (0.05, 0.1, 0.2)))

  Raises:
    AssertionError: a check failed (the message starts with its name).
    ValueError: for a bad ``vary``, ``checks`` or ``long_steps``.
  """
  if long_steps % 100:
    raise ValueError(f"long_steps: must be a multiple of 100, got {long_steps}")
  checks = CHECKS if checks is None else tuple(checks)
  if set(checks) - set(CHECKS):
    raise ValueError(f"checks: unknown {sorted(set(checks) - set(CHECKS))}; each one of {CHECKS}")
  key = jax.random.key(0) if key is None else key
  report = {}
  solver = make()

  st0 = solver.init(problem, key)
  _check_header("header", problem, st0, 0)
  r0 = float(_certificate(problem, st0))
  if not r0 > 0.0:
    _fail("header", f"the certificate at init is {r0}: the start must be random, not a solution")
  other = solver.init(problem, jax.random.fold_in(key, 1)).profile
  if all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(st0.profile), jax.tree.leaves(other))):
    _fail("header", "init gives the same profile for two keys: the start must be random")
  st = solver.step(problem, st0)
  _check_header("header", problem, st, 1)
  for x, y in zip(jax.tree.leaves(st0), jax.tree.leaves(st)):
    if jnp.shape(x) != jnp.shape(y) or jnp.asarray(x).dtype != jnp.asarray(y).dtype:
      _fail("header", f"a step changed a state leaf from {jnp.asarray(x).dtype}{jnp.shape(x)} to "
                      f"{jnp.asarray(y).dtype}{jnp.shape(y)}")
  if jax.tree.structure(st0) != jax.tree.structure(st):
    _fail("header", "a step changed the state's structure")
  report["header"] = "passed"

  report.update({c: "skipped: not in checks" for c in CHECKS if c not in checks})
  for _ in range(_SHORT - 1):
    st = solver.step(problem, st)
  traces = []

  @jax.jit
  def short(s, g, k):
    traces.append(None)
    return _run_short(s, g, k)

  if "jit_equals_eager" in checks:
    jst, _ = short(solver, problem, key)
    _leaves_close("jit_equals_eager", jst, st, rtol, atol)
    report["jit_equals_eager"] = "passed"

  if "no_retrace" in checks or "vmap_equals_loop" in checks:
    variants = _variants(make, vary)
    keys = jax.random.split(key, _BATCH)
    short(solver, problem, key)
    n_traces = len(traces)
    loop = [short(s, problem, k) for s, k in zip(variants, keys)]
    if len(traces) != n_traces and "no_retrace" in checks:
      _fail("no_retrace", f"a new hyperparameter value retraced {len(traces) - n_traces} times")
    report["no_retrace"] = "passed" if "no_retrace" in checks else report["no_retrace"]
  if "vmap_equals_loop" in checks:
    batched = jax.vmap(_run_short)(_stack(variants), _stack([problem] * _BATCH), keys)
    for i, one in enumerate(loop):
      _leaves_close("vmap_equals_loop", jax.tree.map(lambda x: x[i], batched), one, rtol, atol)
    report["vmap_equals_loop"] = "passed"

  padded = pad_actions(problem) if padding else None
  if "padding" not in checks:
    pass
  elif padded is None:
    why = "padding=False" if not padding else "the problem has no actions to pad"
    report["padding"] = "skipped: " + why
  else:
    uniform = make(init_scale=0.0)
    (su, ru), (sp, rp) = short(uniform, problem, key), short(uniform, padded, key)
    for p, pp in zip(jax.tree.leaves(su.profile), jax.tree.leaves(sp.profile)):
      n = p.shape[-1]
      _leaves_close("padding", pp[..., :n], p, rtol, atol)
      if np.any(np.asarray(pp[..., n:]) != 0.0):
        _fail("padding", "a padding action has positive probability")
    _leaves_close("padding", rp, ru, rtol, atol)
    report["padding"] = "passed"

  if "nan" in checks:
    _, info = solver_lib.solve(solver, poison(problem), key, tol=1e-6, max_steps=50, residual_fn=_certificate)
    if int(info.status) != solver_lib.NONFINITE:
      _fail("nan", f"NaN data gave status {solver_lib.RESULTS[int(info.status)]!r}, not NONFINITE")
    report["nan"] = "passed"

  if "long_run" in checks and not long_steps:
    report["long_run"] = "skipped: long_steps=0"
  elif "long_run" in checks:
    _, trace = solver_lib._run(solver, problem, key, num_steps=long_steps, every=long_steps // 100,
                               metric_fn=_certificate)
    r = np.asarray(trace)
    if not np.isfinite(r).all():
      _fail("long_run", f"the certificate became non-finite at entry {int(np.argmin(np.isfinite(r)))} of 100")
    first = float(r[:10].min())
    if not r[-1] <= long_factor * first + floor:  # a climb that starts before the burn-in ends
      _fail("long_run", f"the certificate climbed back from {first:.3g} in the first tenth to {r[-1]:.3g}")
    tail = r[10:]
    excess = tail - (long_factor * np.minimum.accumulate(tail) + floor)
    if excess.max() > 0.0:
      i = int(np.argmax(excess))
      _fail("long_run", f"the certificate climbed back to {tail[i]:.3g} (running minimum "
                        f"{np.minimum.accumulate(tail)[i]:.3g}) at entry {i + 10} of 100")
    report["long_run"] = f"passed ({r.dtype}, {long_steps} steps, final {r[-1]:.3g})"
  return report


def check_catalogued(name: str, **overrides: Any) -> dict[str, str]:
  """``check_solver`` on the catalogue row ``name`` and its problem (key 11), with its settings.

  Args:
    name: a row of ``nashax.solvers.catalogue.CATALOGUE``.
    **overrides: keyword arguments of ``check_solver`` that replace the row's (by default every
      check but the row's known failures, ``Entry.fails``).
  """
  from nashax.solvers import catalogue

  e = catalogue.get(name)
  kw = dict(vary=e.vary, padding=e.padding, long_steps=e.long_steps, long_factor=e.long_factor,
            floor=e.long_floor, checks=[c for c in CHECKS if c not in e.fails])
  kw.update(overrides)
  if not e.x64:
    return check_solver(e.make, PROBLEMS[e.problem](jax.random.key(11)), **kw)
  checks = tuple(kw.pop("checks"))
  with jax.enable_x64(True):
    report = check_solver(e.make, PROBLEMS[e.problem](jax.random.key(11)),
                          checks=[c for c in checks if c != "long_run"], **kw)
  if "long_run" in checks:
    report["long_run"] = check_solver(e.make, PROBLEMS[e.problem](jax.random.key(11)), checks=["long_run"],
                                      **kw)["long_run"]
  return report
