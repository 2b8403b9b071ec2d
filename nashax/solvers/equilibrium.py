"""No-regret and extragradient dynamics for matrix and normal-form games.

Every factory returns a ``Solver``; the states share the header ``step``,
``oracle_calls`` (one call = every player's payoff vector at one profile,
i.e. ``A y`` and ``A^T x`` for a matrix game) and ``profile`` (the iterate the
method's theorem is about). Entropic methods keep log-probabilities as state
(probability-space updates underflow in float32 over long runs). Starting
points are random: ``init_scale`` draws the initial log-weights from ``init_scale * N(0, 1)`` (0 gives the uniform start).

The games accepted are ``MatrixGame``, unregularised ``PreferenceGame`` (as the
zero-sum game ``P - 1/2``) and ``NormalFormGame`` with any number of players
(where the no-regret averages approach coarse correlated equilibria, not Nash
equilibria in general).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nashax.core import _struct
from nashax.core import simplex
from nashax.core.solver import Solver
from nashax.solvers import _common as c

__all__ = [
    "mwu",
    "optimistic_mwu",
    "extragradient",
    "fictitious_play",
    "regret_matching_plus",
    "replicator",
    "mmd",
]


def _dot(s, u):
  return jnp.sum(s * u, axis=-1, keepdims=True)


class _Start(NamedTuple):
  game: Any  # the game as the no-regret solvers see it (c.player_view)
  log_probs: tuple  # random starting log-strategies, one per player
  probs: tuple  # their exponentials
  zero: jax.Array  # int32 0, the step counter's start


def _random_start(hp: Any, game: Any, key: jax.Array) -> _Start:
  """The random start every method here shares: ``log_softmax(init_scale * N(0, 1))`` per player."""
  g, sizes, masks = c.player_view(game)
  lp = c.random_log_probs(key, sizes, masks, hp.init_scale, c.payoff_dtype(g))
  return _Start(g, lp, c.probs(lp), jnp.zeros((), jnp.int32))


# ----------------------------------------------------------------------------- Hedge / MWU


@_struct.dataclass
class MWUParams:
  eta: jax.Array
  init_scale: jax.Array
  average: str = _struct.field(static=True, default="uniform")


class MWUState(NamedTuple):
  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple  # average of x_0..x_t
  log_probs: tuple  # current iterate x_t (log-space)
  comp: tuple  # Kahan compensation of the average


def _mwu_init(hp: MWUParams, game: Any, key: jax.Array) -> MWUState:
  s = _random_start(hp, game, key)
  return MWUState(step=s.zero, oracle_calls=s.zero, profile=s.probs, log_probs=s.log_probs,
                  comp=c.zeros_like(s.probs))


def _mwu_step(hp: MWUParams, game: Any, state: MWUState) -> MWUState:
  g, _, masks = c.player_view(game)
  us = c.utils(g, c.probs(state.log_probs))
  lp = tuple(simplex.masked_log_softmax(l + hp.eta * u, m) for l, u, m in zip(state.log_probs, us, masks))
  avg, comp = c.running_mean(state.profile, state.comp, c.probs(lp), state.step, hp.average)
  return MWUState(state.step + 1, state.oracle_calls + 1, avg, lp, comp)


def mwu(eta: jax.typing.ArrayLike, *, init_scale: jax.typing.ArrayLike = 1.0, average: str = "uniform") -> Solver:
  r"""Multiplicative weights / Hedge for every player (simultaneous updates).

  .. math:: \log x_{t+1} = \log x_t + \eta\, u_x(y_t) - \log Z_t

  Args:
    eta: step size (traced).
    init_scale: spread of the random initial log-weights (0: uniform start).
    average: ``"uniform"`` (what the regret bound speaks of) or ``"linear"``.

  Returns:
    A ``Solver`` whose ``profile`` is the average of ``x_0, ..., x_t``.

  Certifies:
    duality gap of the average iterate ``<= (Reg_x(T) + Reg_y(T)) / T`` with
    ``Reg(T) <= max_i(-log x_0(i)) / eta + eta T (b - a)^2 / 8`` for payoffs in
    ``[a, b]`` (verifier ``hedge_average_gap``).

  References:
    Freund and Schapire, "Adaptive game playing using multiplicative
    weights", Games and Economic Behavior 29, 1999.
    Cesa-Bianchi and Lugosi, "Prediction, Learning, and Games", 2006, Thm 2.2.

  Examples:
    >>> import jax
    >>> from nashax import games, solve
    >>> _, info = solve(mwu(0.1), games.rock_paper_scissors(), jax.random.key(0),
    ...                 tol=2e-2, max_steps=50_000)
    >>> int(info.status)
    0
  """
  c.check_option("average", average, c.STATIC_AVERAGES)
  return Solver(_mwu_init, _mwu_step, MWUParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False), average), "mwu")


# ----------------------------------------------------------------------------- optimistic MWU


@_struct.dataclass
class OMWUParams:
  eta: jax.Array
  init_scale: jax.Array


class OMWUState(NamedTuple):
  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple  # last iterate
  log_probs: tuple
  prev_utils: tuple


def _omwu_init(hp: OMWUParams, game: Any, key: jax.Array) -> OMWUState:
  s = _random_start(hp, game, key)
  return OMWUState(step=s.zero, oracle_calls=jnp.ones((), jnp.int32), profile=s.probs, log_probs=s.log_probs,
                   prev_utils=c.utils(s.game, s.probs))


def _omwu_step(hp: OMWUParams, game: Any, state: OMWUState) -> OMWUState:
  g, _, masks = c.player_view(game)
  us = c.utils(g, state.profile)
  lp = tuple(
      simplex.masked_log_softmax(l + hp.eta * (2.0 * u - up), m)
      for l, u, up, m in zip(state.log_probs, us, state.prev_utils, masks)
  )
  return OMWUState(state.step + 1, state.oracle_calls + 1, c.probs(lp), lp, us)


def optimistic_mwu(eta: jax.typing.ArrayLike, *, init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Optimistic multiplicative weights (last-iterate convergent).

  .. math:: \log x_{t+1} = \log x_t + \eta\,(2 u_x(y_t) - u_x(y_{t-1})) - \log Z_t

  with ``u(y_{-1}) = u(y_0)`` (so ``init`` makes one oracle call).

  Args:
    eta: step size (traced); the theory asks for a small ``eta`` (e.g.
      ``eta <= 1 / (8 max|A|)``).
    init_scale: spread of the random initial log-weights.

  Returns:
    A ``Solver`` whose ``profile`` is the last iterate.

  Certifies:
    last-iterate convergence of the duality gap to 0 when the equilibrium is
    unique, at a linear rate (verifier
    ``optimistic_mwu_last_iterate``).

  References:
    Daskalakis and Panageas, "Last-Iterate Convergence: Zero-Sum Games and
    Constrained Min-Max Optimization", ITCS 2019, arXiv:1807.04252.
    Wei, Lee, Zhang and Luo, "Linear Last-iterate Convergence in Constrained
    Saddle-point Optimization", ICLR 2021, arXiv:2006.09517, Thm 3.

  Examples:
    >>> import jax
    >>> from nashax import games, solve
    >>> g = games.weighted_rock_paper_scissors(1.0, 0.5, 0.1)
    >>> _, info = solve(optimistic_mwu(0.5), g, jax.random.key(1), tol=1e-5, max_steps=50_000)
    >>> int(info.status)
    0
  """
  return Solver(_omwu_init, _omwu_step, OMWUParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False)), "optimistic_mwu")


# ----------------------------------------------------------------------------- extragradient / mirror-prox

_GEOMETRIES = ("entropic", "euclidean")
_ITERATES = ("average", "last")


@_struct.dataclass
class ExtragradientParams:
  eta: jax.Array
  init_scale: jax.Array
  geometry: str = _struct.field(static=True, default="entropic")
  iterate: str = _struct.field(static=True, default="average")


class ExtragradientState(NamedTuple):
  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple  # average of the half-iterates w_0..w_{t-1} (x_0 at t = 0), or last
  z: tuple  # current iterate: log-probabilities (entropic) or probabilities (euclidean)
  avg: tuple
  comp: tuple  # Kahan compensation of the average


def _eg_probs(hp: ExtragradientParams, z: tuple) -> tuple:
  return c.probs(z) if hp.geometry == "entropic" else z


def _eg_move(hp: ExtragradientParams, z: tuple, us: tuple, masks: tuple) -> tuple:
  if hp.geometry == "entropic":
    return tuple(simplex.masked_log_softmax(l + hp.eta * u, m) for l, u, m in zip(z, us, masks))
  return tuple(simplex.project_simplex(x + hp.eta * u, m) for x, u, m in zip(z, us, masks))


def _eg_init(hp: ExtragradientParams, game: Any, key: jax.Array) -> ExtragradientState:
  s = _random_start(hp, game, key)
  z = s.log_probs if hp.geometry == "entropic" else s.probs
  return ExtragradientState(step=s.zero, oracle_calls=s.zero, profile=s.probs, z=z, avg=s.probs,
                            comp=c.zeros_like(s.probs))


def _eg_step(hp: ExtragradientParams, game: Any, state: ExtragradientState) -> ExtragradientState:
  g, _, masks = c.player_view(game)
  x = _eg_probs(hp, state.z)
  z_half = _eg_move(hp, state.z, c.utils(g, x), masks)
  w = _eg_probs(hp, z_half)
  z_new = _eg_move(hp, state.z, c.utils(g, w), masks)
  t = state.step.astype(x[0].dtype)
  avg, comp = c.weighted_update(state.avg, state.comp, w, 1.0 / (t + 1.0))
  profile = avg if hp.iterate == "average" else _eg_probs(hp, z_new)
  return ExtragradientState(state.step + 1, state.oracle_calls + 2, profile, z_new, avg, comp)


def extragradient(
    eta: jax.typing.ArrayLike,
    *,
    geometry: str = "entropic",
    iterate: str = "average",
    init_scale: jax.typing.ArrayLike = 1.0,
) -> Solver:
  r"""Extragradient / mirror-prox for games, entropic or Euclidean.

  .. math::
     w_t = \arg\max_x \eta\langle u(z_t), x\rangle - D(x, z_t), \qquad
     z_{t+1} = \arg\max_x \eta\langle u(w_t), x\rangle - D(x, z_t)

  with ``D`` the KL divergence (``geometry="entropic"``, mirror-prox) or half
  the squared Euclidean distance (``"euclidean"``, projected extragradient).

  Args:
    eta: step size (traced); the bound needs ``eta <= 1/L`` with ``L = max|A_ij|``
      (entropic, l1 geometry) or ``L = ||A||_2`` (Euclidean).
    geometry: ``"entropic"`` or ``"euclidean"``.
    iterate: ``"average"`` (the ergodic average of ``w_t``, what the bound
      speaks of) or ``"last"``.
    init_scale: spread of the random initial log-weights.

  Returns:
    A ``Solver``; two oracle calls per step.

  Certifies:
    ergodic duality gap ``<= max_u D(u, z_0) / (eta T)`` for ``eta <= 1/L``
    (verifier ``extragradient_ergodic_gap``).

  References:
    Korpelevich, "The extragradient method for finding saddle points and other
    problems", Ekonomika i Matematicheskie Metody 12, 1976.
    Nemirovski, "Prox-method with rate of convergence O(1/t) for variational
    inequalities", SIAM J. Optim. 15(1), 2004, Thm 3.2.

  Examples:
    >>> import jax
    >>> from nashax import games, solve
    >>> _, info = solve(extragradient(0.5, iterate="last"), games.matching_pennies(),
    ...                 jax.random.key(0), tol=1e-5, max_steps=10_000)
    >>> int(info.status)
    0
  """
  c.check_option("geometry", geometry, _GEOMETRIES)
  c.check_option("iterate", iterate, _ITERATES)
  hp = ExtragradientParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False), geometry, iterate)
  return Solver(_eg_init, _eg_step, hp, "extragradient")


# ----------------------------------------------------------------------------- fictitious play


@_struct.dataclass
class FictitiousPlayParams:
  init_scale: jax.Array


class FictitiousPlayState(NamedTuple):
  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple  # empirical averages
  comp: tuple  # Kahan compensation of the average


def _fp_init(hp: FictitiousPlayParams, game: Any, key: jax.Array) -> FictitiousPlayState:
  s = _random_start(hp, game, key)
  return FictitiousPlayState(step=s.zero, oracle_calls=s.zero, profile=s.probs, comp=c.zeros_like(s.probs))


def _best_response(u: jax.Array, mask) -> jax.Array:
  if mask is not None:
    u = jnp.where(mask, u, -jnp.inf)
  return jax.nn.one_hot(jnp.argmax(u, axis=-1), u.shape[-1], dtype=u.dtype)


def _fp_step(hp: FictitiousPlayParams, game: Any, state: FictitiousPlayState) -> FictitiousPlayState:
  g, _, masks = c.player_view(game)
  us = c.utils(g, state.profile)
  brs = tuple(_best_response(u, m) for u, m in zip(us, masks))
  avg, comp = c.running_mean(state.profile, state.comp, brs, state.step, "uniform")
  return FictitiousPlayState(state.step + 1, state.oracle_calls + 1, avg, comp)


def fictitious_play(*, init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Simultaneous fictitious play: each player best-responds to the others' averages.

  .. math:: \bar x_{t+1} = \bar x_t + \tfrac{1}{t+2}(\mathrm{BR}(\bar y_t) - \bar x_t)

  The initial (random, mixed) strategy counts as the first play. Ties in the
  best response go to the lowest index.

  Args:
    init_scale: spread of the random initial strategy.

  Returns:
    A ``Solver`` whose ``profile`` is the empirical average.

  Certifies:
    duality gap of the averages -> 0 in zero-sum games (Robinson 1951), at a
    rate that can be as slow as ``t^{-1/(n+m-2)}``; no rate is asserted.

  References:
    Brown, "Iterative solution of games by fictitious play", 1951.
    Robinson, "An iterative method of solving a game", Annals of Math. 54, 1951.

  Examples:
    >>> import jax
    >>> from nashax import games, solve
    >>> _, info = solve(fictitious_play(), games.matching_pennies(), jax.random.key(0),
    ...                 tol=2e-2, max_steps=50_000)
    >>> int(info.status)
    0
  """
  return Solver(_fp_init, _fp_step, FictitiousPlayParams(c.hparam("init_scale", init_scale, strict=False)), "fictitious_play")


# ----------------------------------------------------------------------------- regret matching+


@_struct.dataclass
class RegretMatchingPlusParams:
  init_scale: jax.Array
  average: str = _struct.field(static=True, default="linear")
  alternating: bool = _struct.field(static=True, default=True)


class RegretMatchingPlusState(NamedTuple):
  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple  # (linearly) weighted average strategy
  q: tuple  # cumulative clipped regrets
  comp: tuple  # Kahan compensation of the average


def _rm_strategy(q: jax.Array, mask) -> jax.Array:
  s = jnp.sum(q, axis=-1, keepdims=True)
  legal = jnp.ones_like(q) if mask is None else mask.astype(q.dtype)
  uniform = legal / jnp.sum(legal, axis=-1, keepdims=True)
  return jnp.where(s > 0, q / jnp.where(s > 0, s, 1.0), uniform)


def _rm_init(hp: RegretMatchingPlusParams, game: Any, key: jax.Array) -> RegretMatchingPlusState:
  s = _random_start(hp, game, key)
  return RegretMatchingPlusState(step=s.zero, oracle_calls=s.zero, profile=s.probs, q=s.probs,
                                 comp=c.zeros_like(s.probs))


def _rm_update(q: jax.Array, u: jax.Array, x: jax.Array, mask) -> jax.Array:
  r = u - _dot(x, u)
  if mask is not None:
    r = jnp.where(mask, r, 0.0)
  return jnp.maximum(q + r, 0.0)


def _rm_step(hp: RegretMatchingPlusParams, game: Any, state: RegretMatchingPlusState) -> RegretMatchingPlusState:
  g, _, masks = c.player_view(game)
  q = list(state.q)
  xs = [_rm_strategy(qi, m) for qi, m in zip(q, masks)]
  if hp.alternating:  # player k sees the strategies players < k just updated
    for k in range(len(q)):
      u = c.utils(g, tuple(xs))[k]
      q[k] = _rm_update(q[k], u, xs[k], masks[k])
      xs[k] = _rm_strategy(q[k], masks[k])
  else:
    us = c.utils(g, tuple(xs))
    q = [_rm_update(qi, u, x, m) for qi, u, x, m in zip(q, us, xs, masks)]
    xs = [_rm_strategy(qi, m) for qi, m in zip(q, masks)]
  avg, comp = c.running_mean(state.profile, state.comp, tuple(xs), state.step, hp.average)
  return RegretMatchingPlusState(state.step + 1, state.oracle_calls + 1, avg, tuple(q), comp)


def regret_matching_plus(
    *, init_scale: jax.typing.ArrayLike = 1.0, average: str = "linear", alternating: bool = True
) -> Solver:
  r"""Regret matching+ with (linear) averaging and alternating updates (CFR+'s scheme).

  .. math:: Q_{t+1} = [Q_t + u(y_t) - \langle x_t, u(y_t)\rangle]_+, \quad x_{t+1} = Q_{t+1} / \|Q_{t+1}\|_1

  The random initial strategy is used as ``Q_0`` (a positive vector).

  Args:
    init_scale: spread of the random initial strategy.
    average: ``"linear"`` (CFR+'s weights ``t``) or ``"uniform"``.
    alternating: players update in turn, each seeing the others' newest
      strategy (default, as in CFR+); ``False`` updates all at once, which can
      stall (Farina et al. 2023). One step (all players) is one oracle call.

  Returns:
    A ``Solver`` whose ``profile`` is the weighted average strategy.

  Certifies:
    regret ``O(sqrt(T))`` per player, so the average's duality gap is
    ``O(1/sqrt(T))`` (uniform averaging); no constant is asserted.

  References:
    Tammelin, "Solving Large Imperfect Information Games Using CFR+",
    arXiv:1407.5042, 2014.
    Farina, Grand-Clement, Kroer, Lee and Luo, "Regret Matching+: (In)Stability
    and Fast Convergence in Games", NeurIPS 2023, arXiv:2305.14709.
    Hart and Mas-Colell, "A Simple Adaptive Procedure Leading to Correlated
    Equilibrium", Econometrica 68, 2000.

  Examples:
    >>> import jax
    >>> from nashax import games, solve
    >>> _, info = solve(regret_matching_plus(), games.rock_paper_scissors(), jax.random.key(0),
    ...                 tol=1e-3, max_steps=20_000)
    >>> int(info.status)
    0
  """
  c.check_option("average", average, c.STATIC_AVERAGES)
  hp = RegretMatchingPlusParams(c.hparam("init_scale", init_scale, strict=False), average, bool(alternating))
  return Solver(_rm_init, _rm_step, hp, "regret_matching_plus")


# ----------------------------------------------------------------------------- replicator dynamics


@_struct.dataclass
class ReplicatorParams:
  eta: jax.Array
  init_scale: jax.Array


class ReplicatorState(NamedTuple):
  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple  # time average
  log_probs: tuple
  comp: tuple  # Kahan compensation of the average


def _rep_init(hp: ReplicatorParams, game: Any, key: jax.Array) -> ReplicatorState:
  s = _random_start(hp, game, key)
  return ReplicatorState(step=s.zero, oracle_calls=s.zero, profile=s.probs, log_probs=s.log_probs,
                         comp=c.zeros_like(s.probs))


def _rep_step(hp: ReplicatorParams, game: Any, state: ReplicatorState) -> ReplicatorState:
  g, _, masks = c.player_view(game)
  xs = c.probs(state.log_probs)
  us = c.utils(g, xs)
  lp = tuple(
      simplex.masked_log_softmax(l + jnp.log1p(hp.eta * (u - _dot(x, u))), m)
      for l, u, x, m in zip(state.log_probs, us, xs, masks)
  )
  avg, comp = c.running_mean(state.profile, state.comp, c.probs(lp), state.step, "uniform")
  return ReplicatorState(state.step + 1, state.oracle_calls + 1, avg, lp, comp)


def replicator(eta: jax.typing.ArrayLike, *, init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Discrete-time replicator dynamics, in log-space.

  .. math:: x_{t+1}(a) = x_t(a)\,(1 + \eta\,(u(a) - \langle x_t, u\rangle))

  (the right side already sums to one). This is the "Prod" / linearised
  multiplicative-weights update; it needs ``eta (b - a) < 1`` for payoffs in
  ``[a, b]``, otherwise a weight turns negative and ``solve`` reports NONFINITE.

  Args:
    eta: step size (traced).
    init_scale: spread of the random initial log-weights.

  Returns:
    A ``Solver`` whose ``profile`` is the time average.

  Certifies:
    no-regret (regret ``<= log n / eta + eta sum_t u_t^2``), so the time
    average's duality gap -> 0 in zero-sum games; the last iterate cycles.

  References:
    Taylor and Jonker, "Evolutionarily stable strategies and game dynamics",
    Math. Biosci. 40, 1978.
    Cesa-Bianchi, Mansour and Stoltz, "Improved second-order bounds for
    prediction with expert advice", Machine Learning 66, 2007 (Prod).

  Examples:
    >>> import jax
    >>> from nashax import games, solve
    >>> _, info = solve(replicator(0.02), games.matching_pennies(), jax.random.key(0),
    ...                 tol=2e-2, max_steps=20_000)
    >>> int(info.status)
    0
  """
  return Solver(_rep_init, _rep_step, ReplicatorParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False)), "replicator")


# ----------------------------------------------------------------------------- magnetic mirror descent


@_struct.dataclass
class MMDParams:
  eta: jax.Array
  tau: jax.Array
  init_scale: jax.Array


class MMDState(NamedTuple):
  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple  # last iterate
  log_probs: tuple


def _mmd_init(hp: MMDParams, game: Any, key: jax.Array) -> MMDState:
  s = _random_start(hp, game, key)
  return MMDState(step=s.zero, oracle_calls=s.zero, profile=s.probs, log_probs=s.log_probs)


def _mmd_step(hp: MMDParams, game: Any, state: MMDState) -> MMDState:
  g, _, masks = c.player_view(game)
  us = c.utils(g, state.profile)
  # uniform magnet: its log is a constant, absorbed by the normalisation.
  lp = tuple(
      simplex.masked_log_softmax((l + hp.eta * u) / (1.0 + hp.eta * hp.tau), m)
      for l, u, m in zip(state.log_probs, us, masks)
  )
  return MMDState(state.step + 1, state.oracle_calls + 1, c.probs(lp), lp)


def mmd(eta: jax.typing.ArrayLike, tau: jax.typing.ArrayLike, *, init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Magnetic mirror descent with the uniform magnet.

  .. math:: x_{t+1} \propto \left[x_t\, \rho^{\eta\tau} e^{\eta u(y_t)}\right]^{1/(1+\eta\tau)}

  Its last iterate converges linearly to the quantal response equilibrium of
  temperature ``tau`` (the equilibrium of the entropy-regularised game), whose
  unregularised duality gap is ``O(tau log n)``; small ``tau`` approximates Nash.

  Args:
    eta: step size (traced).
    tau: regularisation temperature (traced), > 0.
    init_scale: spread of the random initial log-weights.

  Returns:
    A ``Solver`` whose ``profile`` is the last iterate.

  Certifies:
    ``metrics.entropy_regularized_gap(game, profile, tau) -> 0`` linearly when
    ``eta <= tau / L^2`` with ``L = max|A_ij|`` (entropy is 1-strongly convex in
    the l1 norm, in which the game's operator is L-Lipschitz).

  References:
    Sokota, D'Orazio, Kolter, Loizou, Lanctot, Mitliagkas, Brown and Kroer,
    "A Unified Approach to Reinforcement Learning, Quantal Response
    Equilibria, and Two-Player Zero-Sum Games", ICLR 2023, arXiv:2206.05825,
    Alg. 3.1 / Thm 3.4.

  Examples:
    >>> import jax, functools
    >>> from nashax import games, solve
    >>> from nashax.core.metrics import entropy_regularized_gap
    >>> res = functools.partial(entropy_regularized_gap, tau=0.2)
    >>> _, info = solve(mmd(0.2, 0.2), games.random_zero_sum(jax.random.key(0), 4, 4),
    ...                 jax.random.key(1), tol=1e-6, max_steps=10_000, residual_fn=res)
    >>> int(info.status)
    0
  """
  hp = MMDParams(c.hparam("eta", eta), c.hparam("tau", tau), c.hparam("init_scale", init_scale, strict=False))
  return Solver(_mmd_init, _mmd_step, hp, "mmd")
