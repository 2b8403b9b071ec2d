"""Nash learning from human feedback: solvers for (contextual, KL-regularised) preference games.

The game is symmetric: a policy ``pi`` plays
against ``pi'`` with value
``V(pi, pi') = pi^T P pi' - beta KL(pi||pi_ref) + beta KL(pi'||pi_ref)``,
averaged over prompts for a ``ContextualPreferenceGame``. ``beta`` and
``pi_ref`` live on the game (``game.regularized(beta, pi_ref)``); an
unregularised game (``beta = None``) is the minimax-winner problem. Every
solver here is self-play: the state's ``profile`` is one policy (``[n]``, or
``[x, n]`` per prompt) and the certificate is the exact duality gap of the
game (``nashax.metrics``), zero exactly at the (regularised) equilibrium.

Conventions shared by every factory:

* ``eta`` is a step size (bigger = larger step). INPO and DNO write the
  inverse (``eta_paper = 1 / eta``); the docstrings say so.
* Every step on a regularised game is a KL-mirror step in log-space:
  ``log pi' = (1 - eta beta) log c + eta beta log pi_ref + eta r``, normalised,
  with a centre ``c`` and win rates ``r`` that define the method.
* ``num_samples=None`` uses exact expectations ``r = P pi_o``; an integer
  replaces them by Monte-Carlo estimates from that many preference queries
  per response (``state.queries`` counts them; ``oracle_calls`` counts
  win-rate vectors, exact or estimated, in every mode).
* Starts are random (``init_scale``), never the uniform policy.

On a tabular game several papers' idealised updates coincide: SPPO, DNO and
SPO are Hedge on win rates (on a regularised game: the mirror step with
centre ``pi_t``, which is INPO's update); they differ in the iterate their
theorems speak of (average vs last), in their estimators when sampled, and in
their losses (``nashax.solvers.losses``), which the Flax policies use.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import _struct
from nashax.core import validate
from nashax.core import simplex
from nashax.core import metrics as metrics_lib
from nashax.core.games import ContextualPreferenceGame, PreferenceGame
from nashax.core.solver import Solver
from nashax.solvers import _common as c
from nashax.solvers import losses

__all__ = [
    "nash_md",
    "nash_ema",
    "sppo",
    "spo",
    "dno",
    "online_ipo",
    "inpo",
    "onpo",
    "egpo",
    "mnpo",
    "mpo",
    "iterative_dpo",
]

_PREF = (PreferenceGame, ContextualPreferenceGame)
_ITERATES = ("average", "last")
_SCHEDULES = ("constant", "theory")


# ----------------------------------------------------------------------------- shared pieces


class _View(NamedTuple):
  p: jax.Array  # [..., n, n]
  log_ref: jax.Array  # [..., n]; uniform over legal actions when unregularised
  tau: jax.Array  # [] beta, 0 when unregularised
  mask: Optional[jax.Array]


def _view(game: Any) -> _View:
  if not isinstance(game, _PREF):
    raise ValueError(
        f"game: NLHF solvers take a PreferenceGame or ContextualPreferenceGame, got {type(game).__name__}")
  tau = game.beta if game.is_regularized else jnp.zeros((), game.preference.dtype)
  return _View(game.preference, metrics_lib._log_ref(game), tau, game.action_mask)


def _z(x: jax.Array, mask) -> jax.Array:
  """Zeros at masked entries, so ``0 * -inf`` never makes a NaN in a log-space mix."""
  return x if mask is None else jnp.where(mask, x, 0.0)


def _norm(logits: jax.Array, mask) -> jax.Array:
  return simplex.masked_log_softmax(logits, mask)


def _mirror(g: _View, centre: jax.Array, r: jax.Array, eta, tau=None, log_ref=None) -> jax.Array:
  """``log pi' ∝ (1 - eta tau) log centre + eta tau log ref + eta r`` (KL mirror step on V_tau)."""
  tau = g.tau if tau is None else tau
  log_ref = g.log_ref if log_ref is None else log_ref
  a = eta * tau
  return _norm((1.0 - a) * _z(centre, g.mask) + a * _z(log_ref, g.mask) + eta * r, g.mask)


def _mixture(g: _View, lp: jax.Array, w) -> jax.Array:
  """Geometric mixture ``pi^{1-w} pi_ref^w``, normalised (Nash-MD's opponent)."""
  return _norm((1.0 - w) * _z(lp, g.mask) + w * _z(g.log_ref, g.mask), g.mask)


def _exact_win_rates(g: _View, pi: jax.Array) -> jax.Array:
  return metrics_lib._win_rates(g.p, pi)


def _sampled_win_rates(g: _View, key: jax.Array, log_pi_opp: jax.Array, num: int) -> jax.Array:
  """``P̂(y > pi_o)`` for every response y: ``num`` opponents ``y' ~ pi_o``, Bernoulli outcomes.

  The opponents are shared across responses (as when K responses are compared
  with the same samples); each estimate is unbiased.
  """
  k1, k2 = jax.random.split(key)
  batch = log_pi_opp.shape[:-1]
  n = log_pi_opp.shape[-1]
  idx = jax.random.categorical(k1, log_pi_opp[..., None, :], axis=-1, shape=batch + (num,))
  idx = jnp.broadcast_to(idx[..., None, :], batch + (n, num))
  probs = jnp.take_along_axis(g.p, idx, axis=-1)
  wins = jax.random.bernoulli(k2, probs).astype(g.p.dtype)
  return jnp.mean(wins, axis=-1)


def _spo_win_rates(g: _View, key: jax.Array, log_pi: jax.Array, num: int) -> jax.Array:
  """SPO's estimator: ``num`` self-play samples, each rewarded by its win proportion.

  Sample ``xi_1..xi_N ~ pi``; ``r_i`` is the fraction of the other ``N - 1``
  samples that ``xi_i`` beats (one Bernoulli comparison per pair). The
  importance-weighted vector ``1/2 + sum_i 1[xi_i = y](r_i - 1/2) / (N pi(y))``
  is an unbiased estimate of ``P(y > pi)`` for every response (bandit
  feedback turned into a full-information estimate, as Exp3 does).
  """
  k1, k2 = jax.random.split(key)
  batch = log_pi.shape[:-1]
  n = log_pi.shape[-1]
  xi = jax.random.categorical(k1, log_pi[..., None, :], axis=-1, shape=batch + (num,))  # [..., N]
  rows = jnp.take_along_axis(g.p, jnp.broadcast_to(xi[..., :, None], batch + (num, n)), axis=-2)  # P[xi_i, :]
  pij = jnp.take_along_axis(rows, jnp.broadcast_to(xi[..., None, :], batch + (num, num)), axis=-1)
  u = jax.random.uniform(k2, batch + (num, num), g.p.dtype)
  upper = jnp.broadcast_to(jnp.triu(jnp.ones((num, num), bool), 1), batch + (num, num))
  win_upper = (u < pij) & upper
  beats = win_upper | (jnp.swapaxes(~(u < pij) & upper, -1, -2))  # antisymmetric outcomes
  r = jnp.sum(beats, axis=-1).astype(g.p.dtype) / (num - 1)  # [..., N]
  onehot = jax.nn.one_hot(xi, n, dtype=g.p.dtype)  # [..., N, n]
  pi = jnp.exp(log_pi)
  est = jnp.einsum("...i,...in->...n", r - 0.5, onehot) / (num * jnp.maximum(pi, jnp.finfo(pi.dtype).tiny))
  return 0.5 + est


def _estimate(g: _View, key, log_pi_opp, num_samples, estimator: str = "opponent"):
  """(win-rate vector, queries made) for the opponent ``exp(log_pi_opp)``."""
  if num_samples is None:
    return _exact_win_rates(g, jnp.exp(log_pi_opp)), 0
  if estimator == "spo":
    return _spo_win_rates(g, key, log_pi_opp, num_samples), int(np.prod(log_pi_opp.shape[:-1])) * num_samples * (num_samples - 1) // 2
  return _sampled_win_rates(g, key, log_pi_opp, num_samples), int(np.prod(log_pi_opp.shape[:-1])) * log_pi_opp.shape[-1] * num_samples


def _init_log_probs(game: Any, key: jax.Array, scale) -> jax.Array:
  g = _view(game)
  shape = g.p.shape[:-1]
  return _norm(scale * jax.random.normal(key, shape, g.p.dtype), g.mask)


def _plain_init(hp, game: Any, key: jax.Array) -> State:
  """A random start with an empty ``aux``."""
  k0, k1 = jax.random.split(key)
  lp = _init_log_probs(game, k0, hp.init_scale)
  return _state(_zero(), _zero(), jnp.exp(lp), lp, (), _zero(), k1)


def _check_num_samples(num_samples, minimum: int = 1) -> Optional[int]:
  if num_samples is None:
    return None
  if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < minimum:
    raise ValueError(f"num_samples: must be None (exact) or an integer >= {minimum}, got {num_samples!r}")
  return int(num_samples)


def _step_size(hp, g: _View, step) -> jax.Array:
  """Constant ``eta`` or the theory schedule ``2 / (beta (t + 2))`` (Nash-MD Thm 1; INPO Thm 4)."""
  if hp.schedule == "constant":
    return hp.eta
  return 2.0 / (g.tau * (jnp.asarray(step, g.p.dtype) + 2.0))


def _require_regularized(game: Any, what: str) -> None:
  if isinstance(game, _PREF) and not game.is_regularized:
    raise ValueError(f"game: {what} needs a KL-regularised game (game.regularized(beta, pi_ref))")


class State(NamedTuple):
  """State of the single-policy NLHF solvers.

  Attributes:
    step: ``int32[]``.
    oracle_calls: ``int32[]`` win-rate vectors evaluated (exact or estimated).
    profile: ``[..., n]`` the policy the method's theorem speaks of.
    log_probs: ``[..., n]`` the current policy ``log pi_t``.
    aux: method-specific log-space arrays (opponent EMA, optimistic
      auxiliary policy, history of past policies, magnet, Kahan compensation).
    queries: ``int32[]`` preference queries made (0 with exact expectations).
    key: PRNG key for sampled variants.
  """

  step: jax.Array
  oracle_calls: jax.Array
  profile: jax.Array
  log_probs: jax.Array
  aux: tuple
  queries: jax.Array
  key: jax.Array


def _state(step, calls, profile, lp, aux, queries, key) -> State:
  return State(step, calls, profile, lp, aux, queries, key)


def _zero():
  return jnp.zeros((), jnp.int32)


def _avg_update(hp, state: State, lp_new, aux_rest):
  """(profile, aux) with the Kahan-compensated uniform average of iterates if asked."""
  if hp.iterate == "last":
    return jnp.exp(lp_new), aux_rest
  (comp,) = aux_rest
  (avg,), (comp,) = c.running_mean((state.profile,), (comp,), (jnp.exp(lp_new),), state.step, "uniform")
  return avg, (comp,)


# ----------------------------------------------------------------------------- Nash-MD and Nash-EMA


@_struct.dataclass
class NashMDParams:
  eta: jax.Array
  init_scale: jax.Array
  schedule: str = _struct.field(static=True, default="constant")
  num_samples: Optional[int] = _struct.field(static=True, default=None)


def _nash_md_init(hp: NashMDParams, game: Any, key: jax.Array) -> State:
  if hp.schedule == "theory":
    _require_regularized(game, "the theory schedule 2/(beta(t+2))")
  return _plain_init(hp, game, key)


def _nash_md_step(hp: NashMDParams, game: Any, state: State) -> State:
  g = _view(game)
  eta = _step_size(hp, g, state.step)
  key, sub = jax.random.split(state.key)
  mix = _mixture(g, state.log_probs, eta * g.tau)  # pi_t^mu
  r, q = _estimate(g, sub, mix, hp.num_samples)
  lp = _norm(mix + eta * r, g.mask)  # pi_{t+1} ∝ pi_t^mu exp(eta P pi_t^mu)
  return _state(state.step + 1, state.oracle_calls + 1, jnp.exp(lp), lp, (), state.queries + q, key)


def nash_md(eta: Optional[jax.typing.ArrayLike] = None, *, num_samples: Optional[int] = None,
            init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Nash mirror descent: a mirror step against the geometric mixture with ``pi_ref``.

  .. math::
     \pi_t^\mu \propto \pi_t^{1-\eta\beta}\pi_{ref}^{\eta\beta}, \qquad
     \pi_{t+1} \propto \pi_t^\mu \exp(\eta\, P\pi_t^\mu)

  The opponent is the mixture, not ``pi_t``: that is what gives the last
  iterate its convergence.

  Args:
    eta: None for the schedule of Theorem 1, ``eta_t = 2 / (beta (t + 2))``
      (converges to ``pi*_beta``), or a constant step (``eta beta <= 1``),
      whose fixed point ``pi ∝ pi_ref exp(P pi^mu / beta)`` is ``O(eta)`` away
      from ``pi*_beta``.
    num_samples: None (exact ``P pi^mu``) or opponent samples per response.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    ``KL(pi*_beta, pi_T) <= 8 / (beta^2 (T + 1))`` with the theory schedule
    (verifier ``nash_md_last_iterate_kl``).

  References:
    Munos et al., "Nash Learning from Human Feedback", ICML 2024,
    arXiv:2312.00886, section 5, Theorem 1.

  Examples:
    >>> import jax
    >>> from nashax import games, solve
    >>> g = games.random_preference_game(jax.random.key(0), 5).regularized(0.5)
    >>> _, info = solve(nash_md(), g, jax.random.key(1), tol=1e-6, max_steps=10_000)
    >>> int(info.status)
    0
  """
  schedule = "theory" if eta is None else "constant"
  eta = jnp.zeros(()) if eta is None else c.hparam("eta", eta)
  hp = NashMDParams(eta, c.hparam("init_scale", init_scale, strict=False), schedule, _check_num_samples(num_samples))
  return Solver(_nash_md_init, _nash_md_step, hp, "nash_md")


@_struct.dataclass
class NashEMAParams:
  eta: jax.Array
  ema: jax.Array
  init_scale: jax.Array
  num_samples: Optional[int] = _struct.field(static=True, default=None)


def _nash_ema_init(hp: NashEMAParams, game: Any, key: jax.Array) -> State:
  k0, k1 = jax.random.split(key)
  lp = _init_log_probs(game, k0, hp.init_scale)
  return _state(_zero(), _zero(), jnp.exp(lp), lp, (lp,), _zero(), k1)


def _nash_ema_step(hp: NashEMAParams, game: Any, state: State) -> State:
  g = _view(game)
  key, sub = jax.random.split(state.key)
  (ema_logits,) = state.aux
  opp = _norm(ema_logits, g.mask)
  r, q = _estimate(g, sub, opp, hp.num_samples)
  centre = _mixture(g, state.log_probs, hp.eta * g.tau)
  lp = _norm(centre + hp.eta * r, g.mask)
  ema_logits = _norm(hp.ema * _z(ema_logits, g.mask) + (1.0 - hp.ema) * _z(lp, g.mask), g.mask)
  return _state(state.step + 1, state.oracle_calls + 1, jnp.exp(lp), lp, (ema_logits,), state.queries + q, key)


def nash_ema(eta: jax.typing.ArrayLike = 0.1, ema: jax.typing.ArrayLike = 0.9, *,
             num_samples: Optional[int] = None, init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Nash-EMA: Nash-MD's step against an exponential moving average of past policies.

  The opponent's logits are the EMA ``theta̅ <- ema theta̅ + (1 - ema) log pi_{t+1}``
  (the tabular parameters are the log-probabilities), a first-order proxy
  for fictitious play; the KL centre stays the mixture ``pi_t^mu``.

  Args:
    eta: step size.
    ema: EMA coefficient in ``[0, 1)``; 0 recovers a step against ``pi_t``.
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    nothing: the paper gives Nash-EMA no guarantee; the
    regularised equilibrium is its fixed point and the test suite checks that
    it reaches it on the catalogue.

  References:
    Munos et al., "Nash Learning from Human Feedback", ICML 2024,
    arXiv:2312.00886, section 7 (Nash-EMA-PG).
  """
  validate.number("ema", ema, lo=0.0, hi=1.0, hi_open=True)
  hp = NashEMAParams(c.hparam("eta", eta), jnp.asarray(ema), c.hparam("init_scale", init_scale, strict=False),
                     _check_num_samples(num_samples))
  return Solver(_nash_ema_init, _nash_ema_step, hp, "nash_ema")


# ----------------------------------------------------------------------------- mirror steps against pi_t: SPPO, SPO, DNO, INPO


@_struct.dataclass
class SelfPlayParams:
  eta: jax.Array
  init_scale: jax.Array
  iterate: str = _struct.field(static=True, default="average")
  schedule: str = _struct.field(static=True, default="constant")
  num_samples: Optional[int] = _struct.field(static=True, default=None)
  estimator: str = _struct.field(static=True, default="opponent")


def _self_play_init(hp: SelfPlayParams, game: Any, key: jax.Array) -> State:
  if hp.schedule == "theory":
    _require_regularized(game, "the theory schedule 2/(beta(t+2))")
  k0, k1 = jax.random.split(key)
  lp = _init_log_probs(game, k0, hp.init_scale)
  pi = jnp.exp(lp)
  aux = (jnp.zeros_like(pi),) if hp.iterate == "average" else ()
  return _state(_zero(), _zero(), pi, lp, aux, _zero(), k1)


def _self_play_step(hp: SelfPlayParams, game: Any, state: State) -> State:
  g = _view(game)
  eta = _step_size(hp, g, state.step)
  key, sub = jax.random.split(state.key)
  r, q = _estimate(g, sub, state.log_probs, hp.num_samples, hp.estimator)
  lp = _mirror(g, state.log_probs, r, eta)
  profile, aux = _avg_update(hp, state, lp, state.aux)
  return _state(state.step + 1, state.oracle_calls + 1, profile, lp, aux, state.queries + q, key)


def _self_play(name, eta, iterate, schedule, num_samples, init_scale, estimator="opponent", min_samples=1):
  c.check_option("iterate", iterate, _ITERATES)
  c.check_option("schedule", schedule, _SCHEDULES)
  hp = SelfPlayParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False), iterate, schedule,
                      _check_num_samples(num_samples, min_samples), estimator)
  return Solver(_self_play_init, _self_play_step, hp, name)


def sppo(eta: jax.typing.ArrayLike = 0.1, *, iterate: str = "average", num_samples: Optional[int] = None,
         init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Self-play preference optimisation: Hedge on win rates against the current policy.

  .. math:: \pi_{t+1}(y) \propto \pi_t(y)\exp(\eta P(y \succ \pi_t))

  (eq. 4.1). On a regularised game the step is taken on the regularised
  payoff, ``pi_{t+1} ∝ pi_t^{1-eta beta} pi_ref^{eta beta} exp(eta P pi_t)``.
  Sampled: ``P̂(y > pi_t)`` averages ``num_samples`` comparisons with samples
  of ``pi_t`` (the paper uses 5 and PairRM).

  Args:
    eta: step size (``sqrt(8 ln n / T)`` for the Hedge bound).
    iterate: ``"average"`` (what Thm 4.1 bounds) or ``"last"`` (may cycle
      on an unregularised intransitive game).
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits (0: uniform start, as
      the bound assumes).

  Returns:
    A ``Solver``; ``profile`` is the average (or last) iterate.

  Certifies:
    ``Gap_0(pi̅_T) = 2 Reg_T / T <= sqrt(2 ln n / T)`` from the uniform start
    with ``eta = sqrt(8 ln n / T)`` (verifier
    ``sppo_average_gap``).

  References:
    Wu et al., "Self-Play Preference Optimization for Language Model
    Alignment", ICLR 2025, arXiv:2405.00675, eq. 4.1 and Theorem 4.1.
  """
  return _self_play("sppo", eta, iterate, "constant", num_samples, init_scale)


def spo(eta: jax.typing.ArrayLike = 0.1, *, iterate: str = "average", num_samples: Optional[int] = None,
        init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Self-play preference optimisation (SPO): a no-regret learner on self-play win proportions.

  Each round samples ``num_samples`` responses from ``pi_t`` and rewards each
  by the fraction of the others it beats; the learner is Hedge (soft policy
  iteration) on the unbiased importance-weighted estimate of ``P(y > pi_t)``
  built from those rewards. With ``num_samples=None`` the exact expectation
  is used (then the step is SPPO's). One player suffices: in self-play the
  average's gap is ``2 Reg_T / T``.

  Args:
    eta: step size.
    iterate: ``"average"`` (the minimax-winner guarantee) or ``"last"``.
    num_samples: None (exact) or self-play samples per round, >= 2.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the average (or last) iterate.

  Certifies:
    ``Gap(pi̅_T) <= 2 Reg_T / T``; with exact
    expectations the Hedge bound of ``sppo`` applies.

  References:
    Swamy et al., "A Minimaximalist Approach to Reinforcement Learning from
    Human Feedback", ICML 2024, arXiv:2401.04056, Algorithm 1.
  """
  return _self_play("spo", eta, iterate, "constant", num_samples, init_scale, estimator="spo", min_samples=2)


def dno(eta: jax.typing.ArrayLike = 0.1, *, iterate: str = "average", num_samples: Optional[int] = None,
        init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Direct Nash optimisation: each round solves DNO's regression exactly over the table.

  The minimiser of ``losses.dno_loss`` over a tabular policy is the
  soft-policy-iteration target ``pi_{t+1} ∝ pi_t exp(eta r_t)`` with
  ``r_t(y) = P(y > pi_t)`` (the paper's temperature is ``1 / eta``); on a
  regularised game ``r_t`` includes ``-beta log(pi_t / pi_ref)``. The output
  is the uniform mixture of the iterates (Algorithm 1).

  Args:
    eta: step size (inverse temperature).
    iterate: ``"average"`` (the paper's output) or ``"last"``.
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the average (or last) iterate.

  Certifies:
    monotone improvement ``P(pi_{t+1} > pi_t) >= 1/2 + KL(pi_{t+1}||pi_t) / eta``
    per round and the Hedge bound of the average.

  References:
    Rosset et al., "Direct Nash Optimization: Teaching Language Models to
    Self-Improve with General Preferences", arXiv:2404.03715, Algorithm 1.
  """
  return _self_play("dno", eta, iterate, "constant", num_samples, init_scale)


def inpo(eta: jax.typing.ArrayLike = 0.1, *, schedule: str = "constant", num_samples: Optional[int] = None,
         init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Iterative Nash policy optimisation: online mirror descent on the regularised game.

  .. math:: \pi_{t+1} \propto \pi_t^{1-\eta\beta}\,\pi_{ref}^{\eta\beta}\exp(\eta P\pi_t)

  (eq. 5 with ``eta_paper = 1 / eta``), implemented by the pairwise loss
  ``losses.inpo_loss`` without win-rate estimates (Prop. 6).

  Args:
    eta: step size (``eta beta <= 1``); ignored with ``schedule="theory"``.
    schedule: ``"constant"`` or ``"theory"`` (``eta_t = 2 / (beta (t + 2))``, Thm 4).
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    ``KL(pi*, pi_T) <= 32 C^2 / (beta^2 (T + 1))``, ``C = max(B beta, 1)``,
    ``B >= |log(pi / pi_ref)|`` with the theory schedule
    (verifier ``inpo_last_iterate_kl``).

  References:
    Zhang et al., "Iterative Nash Policy Optimization: Aligning LLMs with
    General Preferences via No-Regret Learning", ICLR 2025, arXiv:2407.00617,
    eq. 5 and Theorem 4.
  """
  return _self_play("inpo", eta, "last", schedule, num_samples, init_scale)


# ----------------------------------------------------------------------------- online IPO (gradient steps on its loss)


@_struct.dataclass
class OnlineIPOParams:
  eta: jax.Array
  init_scale: jax.Array
  num_samples: Optional[int] = _struct.field(static=True, default=None)


def _online_ipo_init(hp: OnlineIPOParams, game: Any, key: jax.Array) -> State:
  _require_regularized(game, "online IPO (its loss has temperature beta)")
  return _plain_init(hp, game, key)


def _online_ipo_population_loss(logits, g: _View, pair_weights, pref):
  lp = _norm(logits, g.mask)
  lr = _z(g.log_ref, g.mask)
  l = _z(lp, g.mask)
  per_pair = losses.online_ipo_loss(l[..., :, None], l[..., None, :], lr[..., :, None], lr[..., None, :], pref, g.tau)
  return jnp.sum(pair_weights * per_pair)


def _online_ipo_step(hp: OnlineIPOParams, game: Any, state: State) -> State:
  g = _view(game)
  key, sub = jax.random.split(state.key)
  pi = jnp.exp(state.log_probs)
  n = pi.shape[-1]
  if hp.num_samples is None:
    weights = pi[..., :, None] * pi[..., None, :]  # y, y' ~ pi_t
    pref = g.p
    q = 0
  else:  # num_samples pairs per prompt, one Bernoulli label each
    k1, k2 = jax.random.split(sub)
    batch = pi.shape[:-1]
    yy = jax.random.categorical(k1, state.log_probs[..., None, :], axis=-1, shape=batch + (2 * hp.num_samples,))
    a, b = yy[..., : hp.num_samples], yy[..., hp.num_samples:]
    rows = jnp.take_along_axis(g.p, jnp.broadcast_to(a[..., :, None], batch + (hp.num_samples, n)), axis=-2)
    pab = jnp.take_along_axis(rows, b[..., :, None], axis=-1)[..., 0]
    wins = jax.random.bernoulli(k2, pab).astype(pi.dtype)
    oh_a, oh_b = jax.nn.one_hot(a, n, dtype=pi.dtype), jax.nn.one_hot(b, n, dtype=pi.dtype)
    weights = jnp.einsum("...si,...sj->...ij", oh_a, oh_b) / hp.num_samples
    pref = jnp.einsum("...si,...sj,...s->...ij", oh_a, oh_b, wins) / jnp.maximum(weights * hp.num_samples, 1.0)
    q = int(np.prod(batch)) * hp.num_samples
  grad = jax.grad(_online_ipo_population_loss)(state.log_probs, g, weights, pref)
  lp = _norm(state.log_probs - hp.eta * grad, g.mask)
  return _state(state.step + 1, state.oracle_calls + 1, jnp.exp(lp), lp, (), state.queries + q, key)


def online_ipo(eta: jax.typing.ArrayLike = 1.0, *, num_samples: Optional[int] = None,
               init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Online IPO: gradient descent on the logits with pairs drawn from the current policy.

  Each step is one gradient step of ``losses.online_ipo_loss`` averaged over
  pairs ``y, y' ~ pi_t`` (exact: every pair weighted by ``pi_t(y) pi_t(y')``
  with soft labels ``P(y > y')``; sampled: ``num_samples`` pairs with
  Bernoulli labels), temperature ``beta`` from the game. Its fixed point is
  the regularised Nash equilibrium.

  Args:
    eta: learning rate on the logits.
    num_samples: None (exact) or sampled pairs per prompt.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    nothing beyond its fixed point (the paper proves that the fixed point of
    online IPO is the Nash equilibrium of the regularised game).

  References:
    Calandriello et al., "Human Alignment of Large Language Models through
    Online Preference Optimisation", ICML 2024, arXiv:2403.08635.
  """
  hp = OnlineIPOParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False),
                       _check_num_samples(num_samples))
  return Solver(_online_ipo_init, _online_ipo_step, hp, "online_ipo")


# ----------------------------------------------------------------------------- optimistic (ONPO) and extragradient (EGPO)


@_struct.dataclass
class StepParams:
  eta: jax.Array
  init_scale: jax.Array
  num_samples: Optional[int] = _struct.field(static=True, default=None)


def _onpo_init(hp: StepParams, game: Any, key: jax.Array) -> State:
  k0, k1 = jax.random.split(key)
  lp = _init_log_probs(game, k0, hp.init_scale)
  # aux = (log pi'_t, last win rates r_{t-1}, Kahan-compensated average and its compensation)
  pi = jnp.exp(lp)
  return _state(_zero(), _zero(), pi, lp, (lp, jnp.zeros_like(lp), pi, jnp.zeros_like(pi)), _zero(), k1)


def _onpo_step(hp: StepParams, game: Any, state: State) -> State:
  g = _view(game)
  key, sub = jax.random.split(state.key)
  aux_lp, _, avg, comp = state.aux
  r, q = _estimate(g, sub, state.log_probs, hp.num_samples)  # r_t = P pi_t
  aux_lp = _mirror(g, aux_lp, r, hp.eta)  # pi'_{t+1}
  lp = _mirror(g, aux_lp, r, hp.eta)  # pi_{t+1}: predicted r_{t+1} ≈ r_t
  (avg,), (comp,) = c.running_mean((avg,), (comp,), (jnp.exp(lp),), state.step, "uniform")
  return _state(state.step + 1, state.oracle_calls + 1, jnp.exp(lp), lp, (aux_lp, r, avg, comp),
                state.queries + q, key)


def onpo(eta: jax.typing.ArrayLike = 0.1, *, num_samples: Optional[int] = None,
         init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Optimistic Nash policy optimisation: optimistic mirror descent in self-play.

  .. math::
     \pi'_{t+1} \propto \pi_t'^{\,1-\eta\beta}\pi_{ref}^{\eta\beta} e^{\eta P\pi_t}, \qquad
     \pi_{t+1} \propto \pi_{t+1}'^{\,1-\eta\beta}\pi_{ref}^{\eta\beta} e^{\eta P\pi_t}

  (the prediction of ``r_{t+1}`` is ``r_t``; one oracle call per step). With
  ``beta = None`` and ``pi'_0`` uniform this is optimistic Hedge,
  ``pi_{t+1} ∝ exp(eta (sum_{s<=t} r_s + r_t))``.

  Args:
    eta: step size.
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the last iterate (``state.aux[2]`` holds the
    average, which the O(1/T) gap bound speaks of).

  Certifies:
    ``Gap_0(pi̅_T) = 2 Reg_T / T <= 2 (ln n / eta + eta sum_t ||r_t - r_{t-1}||_inf^2) / T``
    (the RVU bound of optimistic Hedge; verifier ``onpo_average_gap``) and
    last-iterate convergence when the equilibrium is unique.

  References:
    Zhang et al., "Improving LLM General Preference Alignment via Optimistic
    Online Mirror Descent", arXiv:2502.16852.
    Syrgkanis, Agarwal, Luo and Schapire, "Fast Convergence of Regularized
    Learning in Games", NeurIPS 2015, Prop. 7 (RVU property of optimistic Hedge).
  """
  hp = StepParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False), _check_num_samples(num_samples))
  return Solver(_onpo_init, _onpo_step, hp, "onpo")


def _egpo_step(hp: StepParams, game: Any, state: State) -> State:
  g = _view(game)
  key, k1, k2 = jax.random.split(state.key, 3)
  r, q1 = _estimate(g, k1, state.log_probs, hp.num_samples)
  half = _mirror(g, state.log_probs, r, hp.eta)  # pi_{t+1/2}
  r_half, q2 = _estimate(g, k2, half, hp.num_samples)
  lp = _mirror(g, state.log_probs, r_half, hp.eta)
  return _state(state.step + 1, state.oracle_calls + 2, jnp.exp(lp), lp, (), state.queries + q1 + q2, key)


def egpo(eta: jax.typing.ArrayLike = 0.1, *, num_samples: Optional[int] = None,
         init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Extragradient preference optimisation: mirror-prox on the regularised game.

  .. math::
     \pi_{t+1/2} \propto \pi_t^{1-\eta\beta}\pi_{ref}^{\eta\beta} e^{\eta P\pi_t}, \qquad
     \pi_{t+1} \propto \pi_t^{1-\eta\beta}\pi_{ref}^{\eta\beta} e^{\eta P\pi_{t+1/2}}

  Two oracle calls per step. The deep version minimises ``losses.egpo_loss``.

  Args:
    eta: step size (``eta <= 1 / (beta + 2 max|P - 1/2|)`` for the linear rate).
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    last-iterate linear convergence to the regularised equilibrium (verifier
    ``egpo_linear_rate``: ``KL(pi*, pi_t) <= (1 - eta beta)^t KL(pi*, pi_0)``,
    the rate of Cen, Wei and Chi 2021 for this update).

  References:
    Zhou, Fazel and Du, "Extragradient Preference Optimization (EGPO)",
    arXiv:2503.08942.
    Cen, Wei and Chi, "Fast Policy Extragradient Methods for Competitive
    Games with Entropy Regularization", NeurIPS 2021, arXiv:2105.15186.
  """
  hp = StepParams(c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False), _check_num_samples(num_samples))
  return Solver(_plain_init, _egpo_step, hp, "egpo")


# ----------------------------------------------------------------------------- MNPO


@_struct.dataclass
class MNPOParams:
  eta: jax.Array
  weights: jax.Array  # [m] over past policies pi_t, pi_{t-1}, ...
  init_scale: jax.Array
  num_samples: Optional[int] = _struct.field(static=True, default=None)
  win_rates: str = _struct.field(static=True, default="current")


_MNPO_WIN_RATES = ("current", "history")


def _mnpo_init(hp: MNPOParams, game: Any, key: jax.Array) -> State:
  k0, k1 = jax.random.split(key)
  lp = _init_log_probs(game, k0, hp.init_scale)
  m = hp.weights.shape[-1]
  g = _view(game)
  hist = jnp.broadcast_to(lp, (m,) + lp.shape)
  rates = jnp.broadcast_to(_exact_win_rates(g, jnp.exp(lp)), (m,) + lp.shape)
  if hp.num_samples is not None:
    rates = jnp.zeros_like(rates) + 0.5
  return _state(_zero(), _zero(), jnp.exp(lp), lp, (hist, rates), _zero(), k1)


def _mnpo_step(hp: MNPOParams, game: Any, state: State) -> State:
  g = _view(game)
  key, sub = jax.random.split(state.key)
  hist, rates = state.aux
  r, q = _estimate(g, sub, state.log_probs, hp.num_samples)  # win rates against pi_t
  hist = jnp.concatenate([state.log_probs[None], hist[:-1]], 0)
  rates = jnp.concatenate([r[None], rates[:-1]], 0)
  w = hp.weights.reshape((-1,) + (1,) * state.log_probs.ndim)
  centre = jnp.sum(w * _z(hist, g.mask), 0)
  rbar = r if hp.win_rates == "current" else jnp.sum(w * rates, 0)
  lp = _mirror(g, centre, rbar, hp.eta)
  return _state(state.step + 1, state.oracle_calls + 1, jnp.exp(lp), lp, (hist, rates), state.queries + q, key)


def mnpo(eta: jax.typing.ArrayLike = 0.1, weights: Any = (0.5, 0.5), *, num_samples: Optional[int] = None,
         init_scale: jax.typing.ArrayLike = 1.0, win_rates: str = "current") -> Solver:
  r"""Multiplayer Nash preference optimisation with a population of past policies as anchors.

  The default (``win_rates="current"``) is the authors' TD-MNPO:

  .. math::
     \log\pi_{t+1} \propto (1-\eta\beta)\sum_j \lambda_j \log\pi_{t-j}
       + \eta\beta\log\pi_{ref} + \eta\, P\pi_t

  win rates against the current policy only, the history entering through
  the anchors ``pi_t, ..., pi_{t-m+1}`` (weights ``lambda``). This is the
  tabular minimiser of ``losses.mnpo_loss`` with anchors
  ``(pi_t, ..., pi_{t-m+1}, pi_ref)``, weights
  ``((1 - eta beta) lambda, eta beta)`` and pairs ``y, y' ~ pi_t`` labelled
  by ``P`` (eq. 17): the loss the Flax trainer and the authors' trainer
  minimise, so one policy step of the trainer and one tabular step are the
  same update (``tests/test_policies.py``, one-token test).
  ``weights=(1,)`` is INPO.

  ``win_rates="history"`` is the multiplicative-weights step of the
  ``n``-player game read literally (eq. 10): the win rates are also averaged
  over the opponents, ``eta sum_j lambda_j P pi_{t-j}``. Both readings have
  the regularised equilibrium as their fixed point but differ along the way
  (about 3e-3 in ``pi`` within 50 steps on random 5-action games).

  Args:
    eta: step size.
    weights: ``[m]`` nonnegative opponent weights summing to 1 (``m`` is
      static: it sets the history length).
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits.
    win_rates: ``"current"`` (TD-MNPO, default) or ``"history"`` (static).

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    the regularised equilibrium is a fixed point for any weights, in both
    readings.

  References:
    Wu, Huang et al., "Multiplayer Nash Preference Optimization",
    arXiv:2509.23102, eq. 10 (the n-player step), eq. 17 and Algorithm 1
    (TD-MNPO: pairs from the current policy, past policies as anchors).
  """
  c.check_option("win_rates", win_rates, _MNPO_WIN_RATES)
  w = weights
  if not validate.traced(w):
    arr = np.asarray(w, np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all() or (arr < 0).any() or abs(arr.sum() - 1) > 1e-6:
      raise ValueError(f"weights: must be a nonempty 1-D vector of nonnegative weights summing to 1, got {w}")
  hp = MNPOParams(c.hparam("eta", eta), jnp.asarray(w), c.hparam("init_scale", init_scale, strict=False),
                  _check_num_samples(num_samples), win_rates)
  return Solver(_mnpo_init, _mnpo_step, hp, "mnpo")


# ----------------------------------------------------------------------------- MPO (magnetic mirror descent)


@_struct.dataclass
class MPOParams:
  eta: jax.Array
  tau: Optional[jax.Array]
  init_scale: jax.Array
  refresh: Optional[int] = _struct.field(static=True, default=None)
  num_samples: Optional[int] = _struct.field(static=True, default=None)


def _mpo_tau(hp: MPOParams, g: _View):
  return g.tau if hp.tau is None else hp.tau


def _mpo_init(hp: MPOParams, game: Any, key: jax.Array) -> State:
  if hp.tau is None:
    _require_regularized(game, "mpo without its own tau")
  k0, k1 = jax.random.split(key)
  lp = _init_log_probs(game, k0, hp.init_scale)
  g = _view(game)
  return _state(_zero(), _zero(), jnp.exp(lp), lp, (g.log_ref,), _zero(), k1)


def _mpo_step(hp: MPOParams, game: Any, state: State) -> State:
  g = _view(game)
  tau = _mpo_tau(hp, g)
  key, sub = jax.random.split(state.key)
  (magnet,) = state.aux
  r, q = _estimate(g, sub, state.log_probs, hp.num_samples)
  # MMD closed form: log pi' ∝ (log pi + eta tau log magnet + eta r) / (1 + eta tau)
  a = hp.eta * tau
  lp = _norm((_z(state.log_probs, g.mask) + a * _z(magnet, g.mask) + hp.eta * r) / (1.0 + a), g.mask)
  if hp.refresh is not None:
    magnet = jnp.where((state.step + 1) % hp.refresh == 0, lp, magnet)
  return _state(state.step + 1, state.oracle_calls + 1, jnp.exp(lp), lp, (magnet,), state.queries + q, key)


def mpo(eta: jax.typing.ArrayLike = 0.1, *, tau: Optional[jax.typing.ArrayLike] = None, refresh: Optional[int] = None,
        num_samples: Optional[int] = None, init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  r"""Magnetic preference optimisation: magnetic mirror descent toward a magnet policy.

  .. math:: \log\pi_{t+1} \propto \frac{\log\pi_t + \eta\tau\log\pi_{mag} + \eta P\pi_t}{1 + \eta\tau}

  With ``tau=None`` the strength is the game's ``beta`` and the magnet is
  ``pi_ref``: the iterates converge linearly to the regularised equilibrium.
  With ``refresh=k`` the magnet is replaced by the current policy every ``k``
  steps (MPO's outer loop), which drives the iterates toward the
  equilibrium of the unregularised game.

  Args:
    eta: step size (``eta <= tau / L^2``, ``L = 1/2`` for ``P - 1/2``).
    tau: magnet strength (default: the game's ``beta``).
    refresh: steps between magnet updates (static), or None.
    num_samples: None (exact) or opponent samples per response.
    init_scale: spread of the random initial logits.

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    ``KL(pi*, pi_t) <= KL(pi*, pi_0) / (1 + eta tau)^t`` for a fixed magnet
    (Sokota et al. 2023, Thm 3.4; verifier ``mpo_linear_rate``).

  References:
    Wang et al., "Magnetic Preference Optimization: Achieving Last-iterate
    Convergence for Language Model Alignment", ICLR 2025, arXiv:2410.16714.
    Sokota et al., "A Unified Approach to Reinforcement Learning, Quantal
    Response Equilibria, and Two-Player Zero-Sum Games", ICLR 2023,
    arXiv:2206.05825.
  """
  if refresh is not None and (isinstance(refresh, bool) or int(refresh) != refresh or refresh < 1):
    raise ValueError(f"refresh: must be None or a positive integer, got {refresh!r}")
  hp = MPOParams(c.hparam("eta", eta), None if tau is None else c.hparam("tau", tau),
                 c.hparam("init_scale", init_scale, strict=False), None if refresh is None else int(refresh),
                 _check_num_samples(num_samples))
  return Solver(_mpo_init, _mpo_step, hp, "mpo")


# ----------------------------------------------------------------------------- iterative DPO / IPO (baseline)

_ITER_LOSSES = ("dpo", "ipo")


@_struct.dataclass
class IterativeDPOParams:
  init_scale: jax.Array
  loss: str = _struct.field(static=True, default="dpo")
  newton_steps: int = _struct.field(static=True, default=30)


def _iterative_dpo_init(hp: IterativeDPOParams, game: Any, key: jax.Array) -> State:
  _require_regularized(game, f"iterative {hp.loss.upper()} (beta is its temperature)")
  return _plain_init(hp, game, key)


def _iterative_dpo_step(hp: IterativeDPOParams, game: Any, state: State) -> State:
  from nashax.solvers import baselines  # local import: baselines imports this module's helpers

  g = _view(game)
  pi = jnp.exp(state.log_probs)
  weights = pi[..., :, None] * pi[..., None, :]
  if hp.loss == "ipo":
    # Least squares over pairs from pi_t: log(pi'/pi_t) = (P pi_t)/beta + const.
    lp = _norm(_z(state.log_probs, g.mask) + _exact_win_rates(g, pi) / g.tau, g.mask)
  else:
    r = baselines.fit_bradley_terry(g.p, weights, mask=g.mask, steps=hp.newton_steps)
    lp = _norm(_z(state.log_probs, g.mask) + r / g.tau, g.mask)
  return _state(state.step + 1, state.oracle_calls + 1, jnp.exp(lp), lp, (), state.queries, state.key)


def iterative_dpo(loss: str = "dpo", *, init_scale: jax.typing.ArrayLike = 1.0, newton_steps: int = 30) -> Solver:
  r"""Iterative (online) DPO / IPO: each round minimises the loss exactly, with ``pi_t`` as reference.

  Round ``t`` draws pairs from ``pi_t``, labels them with the preference, and
  replaces the policy by the population minimiser of ``losses.dpo_loss`` (or
  ``ipo_loss``) with reference ``pi_t`` and temperature ``beta`` (from the
  game): for DPO, ``pi_{t+1} ∝ pi_t exp(r̂_t / beta)`` with ``r̂_t`` the
  Bradley-Terry fit on ``pi_t x pi_t`` pairs; for IPO,
  ``pi_{t+1} ∝ pi_t exp(P pi_t / beta)``. A baseline: it does not target the
  Nash equilibrium (it follows a Bradley-Terry reward, and on an
  intransitive game it cycles), which is what the NLHF methods are measured
  against.

  Args:
    loss: ``"dpo"`` or ``"ipo"``.
    init_scale: spread of the random initial logits.
    newton_steps: Newton iterations of the Bradley-Terry fit (static).

  Returns:
    A ``Solver``; ``profile`` is the last iterate.

  Certifies:
    nothing (a baseline).

  References:
    Xiong et al., "Iterative Preference Learning from Human Feedback", ICML
    2024, arXiv:2312.11456. Rosset et al. 2024 (DNO-Prct).
  """
  c.check_option("loss", loss, _ITER_LOSSES)
  if int(newton_steps) != newton_steps or newton_steps < 1:
    raise ValueError(f"newton_steps: must be a positive integer, got {newton_steps!r}")
  hp = IterativeDPOParams(c.hparam("init_scale", init_scale, strict=False), loss, int(newton_steps))
  return Solver(_iterative_dpo_init, _iterative_dpo_step, hp, "iterative_dpo")
