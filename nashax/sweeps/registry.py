"""What a sweep may name: game families, solver factories, rankers, and the user's own factories.

A game family is built *inside* jit from a PRNG key and the family's traced
hyperparameters, so a sweep over ``beta`` is a vmap over games (a number that
changes the equilibrium belongs to the game). ``size`` and the family's
static parameters (integers such as a prompt or component count, strings
such as a file path) change shapes: each value is its own compiled group. A
*choice* parameter (the divergence of an f-regularised game) is a string in
the config and a traced index inside jit (``divergences.switch``), so a grid
over divergences compiles once.

``family = "mypkg.games:my_game"`` and ``name = "mypkg.solvers:my_solver"``
name the user's own factories (``import mypkg.games``, then its attribute
``my_game``). A game factory is ``my_game(key, size, **hparams)`` (``size``
only when it takes a parameter of that name); its signature gives the
hyperparameters: an ``int`` default makes a static integer, a ``str`` default
a static string, anything else (a float default or none) a traced number. A
solver factory is read like the built-in ones: its keyword parameters are the
hyperparameters, checked by calling it (abstractly) on every grid value.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax import games as _games
from nashax import solvers as _solvers
from nashax.solvers import catalogue as _catalogue
from nashax.core import divergences as _div
from nashax.core import operators as _ops
from nashax.core.games import FRegularizedGame, MatrixGame, PreferenceGame, TargetDistribution

__all__ = ["GameFamily", "GAME_FAMILIES", "SOLVERS", "solver_params", "family", "solver", "is_user_name",
           "file_digest"]

_OPEN = (0.0, math.inf, True, True)  # (lo, hi, lo_open, hi_open): finite numbers > 0


@dataclasses.dataclass(frozen=True)
class GameFamily:
  """A generator of games for sweeps.

  Attributes:
    build: ``(key, size, **hparams) -> game``, traceable in ``key`` and the traced hparams.
    hparams: the traced game hyperparameters it takes (numbers, see ``bounds``).
    sized: whether it takes ``size`` (the number of actions / responses).
    min_size: the smallest allowed size.
    doc: one line for ``nashax sweep --list``.
    ints: ``((name, minimum, maximum), ...)`` static integer parameters (each value its own group).
    strings: static string parameters (each value its own group).
    files: the string parameters that name files (their contents enter the sweep's fingerprint).
    choices: ``((name, options), ...)`` string parameters passed in as a traced index.
    vectors: traced hyperparameters whose grid values are vectors.
    bounds: ``{name: (lo, hi, lo_open, hi_open)}``; a traced hparam not listed is a finite number > 0.
    required: parameters a config must give.
    lengths: ``{vector hparam: the int parameter its length must equal}``.
  """

  build: Callable[..., Any]
  hparams: tuple[str, ...]
  sized: bool
  min_size: int
  doc: str
  ints: tuple = ()
  strings: tuple[str, ...] = ()
  files: tuple[str, ...] = ()
  choices: tuple = ()
  vectors: tuple[str, ...] = ()
  bounds: dict = dataclasses.field(default_factory=dict)
  required: tuple[str, ...] = ()
  lengths: dict = dataclasses.field(default_factory=dict)

  @property
  def static(self) -> tuple[str, ...]:
    """The parameters that change shapes (compiled once per value)."""
    return tuple(n for n, *_ in self.ints) + self.strings

  @property
  def params(self) -> tuple[str, ...]:
    return self.hparams + self.static + tuple(n for n, _ in self.choices)

  def bound(self, name: str) -> tuple:
    return self.bounds.get(name, _OPEN)


def _regularize(g, beta):
  """``g.regularized(beta)`` toward the uniform reference, for a traced beta."""
  if beta is None:
    return g
  n = g.preference.shape[-1]
  dt = g.preference.dtype
  return g.replace(beta=jnp.asarray(beta, dt), log_ref=jnp.full((n,), -jnp.log(n), dt))


def _random_preference(key, size, beta=None):
  return _regularize(_games.random_preference_game(key, size), beta)


def _bradley_terry(key, size, beta=None, reward_scale=1.0):
  r = reward_scale * jax.random.normal(key, (size,))
  p = jax.nn.sigmoid(r[:, None] - r[None, :])
  return _regularize(_games.preference.PreferenceGame(p), beta)


def _condorcet(key, size, beta=None):
  del key
  return _regularize(_games.condorcet_cycle(size), beta)


def _rps(key, size=None):
  del key, size
  return _games.rock_paper_scissors()


def _contextual(key, size, num_prompts=2, beta=None, prompt_weights=None):
  g = _games.random_contextual_preference_game(key, num_prompts, size)
  if prompt_weights is not None:
    w = jnp.asarray(prompt_weights, g.preference.dtype)
    g = g.replace(prompt_weights=w / jnp.sum(w))
  if beta is None:
    return g
  dt = g.preference.dtype
  return g.replace(beta=jnp.asarray(beta, dt), log_ref=jnp.full((num_prompts, size), -jnp.log(size), dt))


def divergence_of(name: str, alpha=None) -> _div.Divergence:
  """The divergence a config names (``divergences.NAMES``); ``alpha`` only for ``"alpha"``."""
  return _div.get(name, alpha if name == "alpha" else None)


def _f_regularized(key, size, beta=0.1, alpha=0.5, divergence=("reverse_kl",)):
  """``divergence`` is ``(options,)`` (one option) or ``(index, options)`` (a traced index into them)."""
  p = _games.random_preference_game(key, size).preference
  dt = p.dtype
  *index, options = divergence
  members = [divergence_of(o, jnp.asarray(alpha, dt)) for o in options]
  d = members[0] if not index else _div.switch(members, index[0])
  return FRegularizedGame(p, jnp.asarray(beta, dt), jnp.full((size,), -jnp.log(size), dt), d)


def _bilinear_sum(key, size, components=4, lipschitz=1.0):
  """``random_bilinear_sum`` at ``L = 1`` scaled by the (traced) ``lipschitz``: the sum with that ``L``."""
  fs = _games.random_bilinear_sum(key, components, size, 1.0)
  a, b, c = fs.data
  return _ops.bilinear_finite_sum(a * lipschitz, b * lipschitz, c * lipschitz, fs.constraint)


def _least_squares(key, size, components=16, noise=0.5):
  """``games.random_least_squares`` with a traced ``noise``: the noiseless sum, plus ``noise`` times its
  Gaussian (the same key and draw as the public generator)."""
  fs = _games.random_least_squares(key, components, size, noise=0.0)
  a, b = fs.data
  eps = jax.random.normal(jax.random.split(key, 3)[2], (components,), b.dtype)
  return _ops.least_squares_finite_sum(a, b + jnp.asarray(noise, b.dtype) * eps[:, None])


def _annotator_sum(key, size, components=4):
  return _games.random_annotator_preference_sum(key, components, size)


def _target(key, size, beta=1.0):
  r = jax.random.normal(key, (size,))
  dt = r.dtype
  return TargetDistribution(jnp.full((size,), -jnp.log(size), dt), r / jnp.asarray(beta, dt))


def _red_teaming(key, size, observations=3, refusal_cost=0.5, disguise=0.5):
  """``alignment.red_teaming_game`` with ``random_red_teaming_game``'s prompts, drawn in JAX (traceable)."""
  k1, k2, k3 = jax.random.split(key, 3)
  harmful = (jnp.arange(size) % 2).astype(jnp.result_type(float))
  harm = jax.random.uniform(k1, (size,), harmful.dtype, 0.3, 1.0) * harmful
  benign_obs = jax.random.randint(k2, (size,), 0, max(observations - 1, 1))
  disguised = jax.random.uniform(k3, (size,), harmful.dtype) < disguise
  obs = jnp.where(harmful == 0, benign_obs, jnp.where(disguised, benign_obs, observations - 1))
  refuse = jnp.asarray(_games.alignment._policies(observations), harmful.dtype)[:, obs].T  # [P, 2^O]
  s = harmful[:, None] * harm[:, None] * (1 - refuse) + (1 - harmful[:, None]) * refusal_cost * refuse
  return MatrixGame(s)


def _three_rater(key, size=None, eps=0.1):
  del key, size
  base = np.full((3, 3, 3), 0.5)
  for k, (win, lose) in enumerate([(1, 0), (0, 2), (2, 1)]):
    base[k, win, lose], base[k, lose, win] = 1.0, 0.0
  base = jnp.asarray(base, jnp.result_type(float))
  w = jnp.stack([1 / 3 - eps, 1 / 3 + eps / 2, 1 / 3 + eps / 2]).astype(base.dtype)
  return PreferenceGame(jnp.einsum("k,kij->ij", w, base))


@functools.lru_cache(maxsize=16)
def _read_table(path: str, digest: str) -> np.ndarray:
  """The payoffs of a table file (``.npy``: an array; otherwise ``games.payoff_table``'s CSV), float64."""
  del digest  # the cache key: a changed file is read again
  if path.endswith(".npy"):
    return np.asarray(_games.payoff_table(np.load(path)).payoffs, np.float64)
  return np.asarray(_games.payoff_table(path).payoffs, np.float64)


def file_digest(path: str) -> str:
  from nashax._files import sha256

  return sha256(path)


def table_game(path: str):
  """The game of a payoff-table file: a ``MatrixGame`` when two players' payoffs sum to a constant."""
  u = _read_table(path, file_digest(path))
  dt = jnp.result_type(float)
  if u.shape[0] == 2:
    total = u[0] + u[1]
    if np.allclose(total, total.flat[0], atol=1e-12):
      return MatrixGame(jnp.asarray(u[0] - total.flat[0] / 2, dt))
  return _games.metagames.NormalFormGame(jnp.asarray(u, dt))


def _payoff_table(key, size=None, path=""):
  del key, size
  return table_game(path)


_PROB = (0.0, 1.0, False, False)
GAME_FAMILIES: dict[str, GameFamily] = {
    "random_zero_sum": GameFamily(lambda key, size: _games.random_zero_sum(key, size, size), (), True, 2,
                                  "size x size zero-sum game, i.i.d. Uniform(-1, 1) payoffs"),
    "random_interior_zero_sum": GameFamily(lambda key, size: _games.random_interior_zero_sum(key, size)[0], (), True, 2,
                                           "size x size zero-sum game with a fully mixed equilibrium"),
    "random_preference": GameFamily(_random_preference, ("beta",), True, 2,
                                    "random intransitive preference game; beta > 0 regularizes toward uniform"),
    "bradley_terry": GameFamily(_bradley_terry, ("beta", "reward_scale"), True, 2,
                                "transitive BT preferences from N(0, reward_scale^2) rewards; optional beta"),
    "condorcet_cycle": GameFamily(_condorcet, ("beta",), True, 3,
                                  "regular tournament on an odd number of responses; optional beta"),
    "rock_paper_scissors": GameFamily(_rps, (), False, 0, "rock-paper-scissors (3 x 3)"),
    "contextual_preference": GameFamily(
        _contextual, ("beta", "prompt_weights"), True, 2,
        "num_prompts random preference games over size responses; prompt_weights (a vector), optional beta",
        ints=(("num_prompts", 1, 4096),), vectors=("prompt_weights",),
        lengths={"prompt_weights": "num_prompts"}),
    "f_regularized": GameFamily(
        _f_regularized, ("beta", "alpha"), True, 2,
        "random preference game regularised by beta D_f(pi || uniform); divergence from "
        f"{list(_div.NAMES)} (a grid axis), alpha for the 'alpha' family",
        choices=(("divergence", tuple(_div.NAMES)),), bounds={"alpha": (-math.inf, math.inf, True, True)}),
    "bilinear_sum": GameFamily(
        _bilinear_sum, ("lipschitz",), True, 1,
        "finite sum of components bilinear saddle operators on R^size x R^size, average Lipschitz constant "
        "lipschitz (games.random_bilinear_sum)", ints=(("components", 1, 1 << 16),)),
    "least_squares": GameFamily(
        _least_squares, ("noise",), True, 1,
        "finite sum of components least-squares gradients a_i (a_i^T x - b_i) on R^size with unit rows "
        "(cocoercive, for vr_halpern; games.random_least_squares)", ints=(("components", 1, 1 << 16),),
        bounds={"noise": (0.0, math.inf, False, True)}),
    "annotator_sum": GameFamily(
        _annotator_sum, (), True, 2,
        "finite sum of components random annotators' preference games over size responses "
        "(games.random_annotator_preference_sum)", ints=(("components", 1, 1 << 16),)),
    "target": GameFamily(_target, ("beta",), True, 2,
                         "energy-based target p ∝ exp(r / beta), r ~ N(0, 1), uniform base (for f_dpg)"),
    "red_teaming": GameFamily(
        _red_teaming, ("refusal_cost", "disguise"), True, 2,
        "attacker/defender game over size prompts and 2^observations defences (alignment.red_teaming_game)",
        ints=(("observations", 1, 12),),
        bounds={"refusal_cost": (0.0, math.inf, False, True), "disguise": _PROB}),
    "three_rater_cycle": GameFamily(
        _three_rater, ("eps",), False, 0, "a Condorcet cycle from three transitive rater types with shares "
        "1/3 - eps, 1/3 + eps/2, 1/3 + eps/2", bounds={"eps": (-2 / 3, 1 / 3, True, True)}),
    "payoff_table": GameFamily(
        _payoff_table, (), False, 0, "a payoff table from a file: path to a .npy array or a CSV "
        "(games.payoff_table's layouts); zero- or constant-sum two-player tables become matrix games",
        strings=("path",), files=("path",), required=("path",)),
}


def _halpern(eta: Any = None, *, base: str = "resolvent", inner_steps: int = 10, init_scale: float = 1.0):
  """``solvers.halpern_iteration`` with the base map a config names: ``"resolvent"`` or ``"forward"``."""
  if base == "resolvent":
    return _solvers.halpern_iteration(_solvers.resolvent_step(eta, inner_steps), init_scale=init_scale)
  if base == "forward":
    return _solvers.halpern_iteration(_solvers.forward_step(eta), init_scale=init_scale)
  raise ValueError(f"base: must be 'resolvent' or 'forward', got {base!r}")


def _f_dpg(divergence: str = "reverse_kl", lr: float = 1.0, *, alpha: float = 0.5,
           num_samples: Optional[int] = None, geometry: Optional[str] = None, baseline_ema: float = 0.9,
           decay: float = 1.0, init_scale: float = 1.0):
  """``solvers.f_dpg`` with the divergence a config names (``divergences.NAMES``; ``alpha`` for "alpha")."""
  return _solvers.f_dpg(divergence_of(divergence, alpha), lr, num_samples=num_samples, geometry=geometry,
                        baseline_ema=baseline_ema, decay=decay, init_scale=init_scale)


_halpern.__name__, _f_dpg.__name__ = "halpern", "f_dpg"

# The catalogue's sweepable factories (numbers-only hyperparameters), plus two adapters that name an
# option by a string: halpern's base map and f_dpg's divergence (their factories take objects).
SOLVERS: dict[str, Callable[..., Any]] = {
    **_catalogue.factories(sweep=True),
    "halpern": _halpern,
    "f_dpg": _f_dpg,
}


def is_user_name(name: Any) -> bool:
  """Whether a family or solver name is ``"module:attribute"`` (the user's own factory)."""
  return isinstance(name, str) and ":" in name


def _import(where: str, name: str) -> Callable:
  mod, _, attr = name.partition(":")
  if not mod or not attr:
    raise ValueError(f"{where}: {name!r} must be 'module:attribute' (e.g. 'mypkg.games:my_game')")
  try:
    module = importlib.import_module(mod)
  except Exception as e:  # noqa: BLE001 - any import failure, in words
    raise ValueError(f"{where}: cannot import module {mod!r} for {name!r} ({type(e).__name__}: "
                     f"{e})") from None
  fn = module
  for part in attr.split("."):
    if not hasattr(fn, part):
      raise ValueError(f"{where}: module {mod!r} has no attribute {attr!r}")
    fn = getattr(fn, part)
  if not callable(fn):
    raise ValueError(f"{where}: {name!r} is not callable (a {type(fn).__name__})")
  return fn


def _signature(where: str, name: str, fn: Callable) -> list:
  try:
    sig = inspect.signature(fn)
  except (TypeError, ValueError) as e:
    raise ValueError(f"{where}: cannot read the signature of {name!r} ({e})") from None
  return [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _user_family(name: str) -> GameFamily:
  """A ``GameFamily`` from the user's factory ``fn(key, [size,] **hparams)``, read from its signature."""
  fn = _import("game.family", name)
  params = _signature("game.family", name, fn)
  if not params or params[0].name != "key":
    raise ValueError(f"game.family: {name!r} must take the PRNG key as its first parameter, named 'key' "
                     f"(its parameters: {[p.name for p in params]})")
  rest = params[1:]
  sized = any(p.name == "size" for p in rest)
  hparams, ints, strings, required, bounds = [], [], [], [], {}
  for p in rest:
    if p.name == "size":
      continue
    d = p.default
    if d is inspect.Parameter.empty:
      required.append(p.name)
    if isinstance(d, bool):
      raise ValueError(f"game.family: {name!r}: parameter {p.name!r} has a boolean default; a sweep passes "
                       "numbers (traced), integers or strings (static)")
    if isinstance(d, int) or p.annotation in (int, "int"):
      ints.append((p.name, 0, (1 << 31) - 1))
    elif isinstance(d, str) or p.annotation in (str, "str"):
      strings.append(p.name)
    else:
      hparams.append(p.name)
      bounds[p.name] = (-math.inf, math.inf, True, True)
  build = fn if sized else (lambda key, size, **kw: fn(key, **kw))
  doc = (inspect.getdoc(fn) or "the user's game factory").splitlines()[0]
  return GameFamily(build, tuple(hparams), sized, 1, doc, tuple(ints), tuple(strings), (), (), (), bounds,
                    tuple(required))


@functools.lru_cache(maxsize=64)
def _user_family_cached(name: str) -> GameFamily:
  return _user_family(name)


def family(name: str) -> GameFamily:
  """The family a config names: a key of ``GAME_FAMILIES`` or ``"module:attribute"``.

  Raises:
    ValueError: naming ``game.family``, for an unknown name or a factory that cannot be imported or read.
  """
  if is_user_name(name):
    return _user_family_cached(name)
  if name not in GAME_FAMILIES:
    raise ValueError(f"game.family: unknown family {name!r}; one of {sorted(GAME_FAMILIES)} or "
                     "'module:function'")
  return GAME_FAMILIES[name]


def solver(name: str, where: str = "solver.name") -> Callable:
  """The factory a config names: a key of ``SOLVERS``, of ``rankers.RANKERS``, or ``"module:attribute"``."""
  from nashax.sweeps import rankers

  if is_user_name(name):
    return _import(where, name)
  if name in SOLVERS:
    return SOLVERS[name]
  if name in rankers.RANKERS:
    return rankers.RANKERS[name]
  raise ValueError(f"{where}: unknown solver {name!r}; one of {sorted(SOLVERS) + sorted(rankers.RANKERS)} "
                   "or 'module:function'")


def solver_params(name: str) -> tuple[dict[str, inspect.Parameter], set[str]]:
  """The keyword arguments of solver ``name`` and those without a default."""
  sig = inspect.signature(solver(name))
  params = {p.name: p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
  required = {n for n, p in params.items() if p.default is inspect.Parameter.empty}
  return params, required
