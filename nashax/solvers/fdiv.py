"""f-divergence solvers: f-DPG toward an energy-based target, and the f-regularised preference game.

* ``f_dpg(divergence)`` minimises ``D_f(pi || p)`` over a tabular softmax
  policy for a ``TargetDistribution`` ``p ∝ a b``, by gradient steps on the
  f-DPG surrogate ``losses.f_dpg_loss`` (the same loss a Flax policy uses),
  with exact expectations or on-policy samples and a moving-average baseline.
  Its certificate is the total-variation distance ``(1/2)|pi - p|_1``.
* ``f_extragradient(eta)`` solves ``FRegularizedGame`` (the NLHF game with
  ``beta D_f`` in place of ``beta KL``) by extragradient on the two players'
  logits; its certificate is the game's exact duality gap
  (``nashax.metrics``), computed from the closed-form best response
  ``divergences.regularized_argmax``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from nashax.core import _struct
from nashax.core import validate
from nashax.core.divergences import Divergence
from nashax.core.games import FRegularizedGame, TargetDistribution
from nashax.core.solver import Solver
from nashax.solvers import _common as c
from nashax.solvers import losses

__all__ = ["f_dpg", "f_extragradient", "FDPGState", "FGameState"]


def _check_divergence(divergence: Any) -> Divergence:
  if not isinstance(divergence, Divergence):
    raise ValueError(f"divergence: expected a core.divergences.Divergence, got {type(divergence).__name__}")
  return divergence


# ----------------------------------------------------------------------------- f-DPG


class FDPGState(NamedTuple):
  """State of ``f_dpg``.

  Attributes:
    step: ``int32[]``.
    oracle_calls: ``int32[]`` target evaluations ``P(x)`` (``n`` per exact step, ``num_samples`` per sampled step).
    profile: ``[n]`` the policy ``pi_t``.
    logits: ``[n]`` its parameters.
    baseline: ``[]`` moving average of past mean pseudo-rewards ``-f'(pi/p)``.
    key: PRNG key.
  """

  step: jax.Array
  oracle_calls: jax.Array
  profile: jax.Array
  logits: jax.Array
  baseline: jax.Array
  key: jax.Array


@_struct.dataclass
class _FDPGParams:
  divergence: Divergence
  lr: jax.Array
  baseline_ema: jax.Array
  decay: jax.Array
  init_scale: jax.Array
  num_samples: Optional[int] = _struct.field(static=True, default=None)
  geometry: str = _struct.field(static=True, default="natural")


def _target(problem: Any) -> TargetDistribution:
  if not isinstance(problem, TargetDistribution):
    raise ValueError(f"problem: f_dpg takes a TargetDistribution, got {type(problem).__name__}")
  return problem


def _fdpg_init(hp: _FDPGParams, problem: Any, key: jax.Array) -> FDPGState:
  t = _target(problem)
  k0, k1 = jax.random.split(key)
  logits = hp.init_scale * jax.random.normal(k0, t.log_base.shape, t.log_base.dtype)
  zero = jnp.zeros((), jnp.int32)
  return FDPGState(zero, zero, jax.nn.softmax(logits), logits, jnp.zeros((), logits.dtype), k1)


def _fdpg_step(hp: _FDPGParams, problem: Any, state: FDPGState) -> FDPGState:
  t = _target(problem)
  div = hp.divergence
  log_target = t.log_unnormalized
  key, k_s = jax.random.split(state.key)
  if hp.num_samples is None:
    log_z = t.log_partition

    def surrogate(logits):
      logp = jax.nn.log_softmax(logits)
      w = jax.lax.stop_gradient(jnp.exp(logp))  # exact expectation over x ~ pi
      per = losses.f_dpg_loss(logp, log_target, jax.lax.stop_gradient(logp), log_z, state.baseline, div)
      return jnp.sum(jnp.where(w > 0, w * per, 0.0))

    lp = jax.nn.log_softmax(state.logits)
    mean_reward = jnp.sum(jnp.exp(lp) * losses.f_dpg_pseudo_reward(lp, log_target, log_z, div))
    calls = t.num_outcomes
  else:
    x = jax.random.categorical(k_s, state.logits, shape=(hp.num_samples,))
    lp_all = jax.nn.log_softmax(state.logits)
    log_z = losses.log_partition_estimate(log_target[x], lp_all[x])

    def surrogate(logits):
      logp = jax.nn.log_softmax(logits)[x]
      per = losses.f_dpg_loss(logp, log_target[x], jax.lax.stop_gradient(logp), log_z, state.baseline, div)
      return jnp.mean(per)

    mean_reward = jnp.mean(losses.f_dpg_pseudo_reward(lp_all[x], log_target[x], log_z, div))
    calls = hp.num_samples
  grad = jax.grad(surrogate)(state.logits)
  lr = hp.lr * hp.decay ** state.step.astype(grad.dtype)
  if hp.geometry == "natural":
    # Exact mode only: grad_j = pi_j (a_j - E_pi a) with a = f'(pi/p) - B; the mirror step uses
    # a_j - E_pi a, weighted to be linearly implicit in f' (see f_dpg's docstring).
    pi = jnp.exp(jax.nn.log_softmax(state.logits))
    log_t = jnp.log(pi) - t.log_prob
    _, kappa = jax.jvp(lambda u: div.fprime_log(div.alpha, u), (log_t,), (jnp.ones_like(log_t),))
    w = 1.0 / (1.0 + lr * jnp.maximum(kappa, 0.0))
    nat = jnp.where(pi > 0, grad / jnp.where(pi > 0, pi, 1.0), 0.0)  # a_j - E_pi a
    step = w * (nat - jnp.sum(pi * w * nat) / jnp.sum(pi * w))
  else:
    step = grad
  logits = state.logits - lr * step
  # First step: the baseline starts at the first batch's mean (the authors' windowed average).
  first = state.step == 0
  baseline = jnp.where(first, mean_reward, hp.baseline_ema * state.baseline + (1.0 - hp.baseline_ema) * mean_reward)
  return FDPGState(state.step + 1, state.oracle_calls + calls, jax.nn.softmax(logits), logits,
                   jax.lax.stop_gradient(baseline), key)


def f_dpg(divergence: Divergence, lr: jax.typing.ArrayLike = 1.0, *, num_samples: Optional[int] = None,
          geometry: Optional[str] = None, baseline_ema: jax.typing.ArrayLike = 0.9,
          decay: jax.typing.ArrayLike = 1.0, init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  """f-DPG: minimises ``D_f(pi_theta || p)`` over a tabular softmax policy.

  ``grad`` is the gradient of ``losses.f_dpg_loss`` (the score function
  weighted by the pseudo-reward ``-f'(pi/p)`` minus a baseline), whose
  expectation is ``grad D_f(pi_theta || p)`` for any baseline.
  ``num_samples=None`` takes the expectation exactly (with the exact ``Z``);
  an integer draws that many on-policy samples per step and estimates ``Z``
  from them (``losses.log_partition_estimate``).

  ``geometry="euclidean"`` steps ``theta <- theta - lr_t grad`` (what a Flax
  policy does with SGD). ``"natural"`` (the default with exact expectations)
  divides by ``pi``, which turns the step into the mirror step
  ``theta_j -= lr_t w_j (a_j - c)`` with ``a = f'(pi/p)``, weighted by
  ``w = 1/(1 + lr_t d f'(e^s)/ds)`` so that it is linearly implicit in
  ``f'`` (stable for steep generators such as chi^2) and ``c`` keeping the
  step tangent; for reverse KL with ``lr = 1`` it lands on ``p`` in one step.
  ``lr_t = lr decay^t`` (``decay < 1`` for total variation, whose
  subgradient does not vanish at the optimum).

  Args:
    divergence: the ``Divergence`` to minimise (a path choice: every f has
      the optimum ``pi = p`` on a tabular policy).
    lr: step size on the logits.
    num_samples: None (exact) or samples per step (static).
    geometry: ``"natural"`` (exact mode only) or ``"euclidean"``; default
      natural when exact, euclidean when sampled.
    baseline_ema: weight of the old baseline in its moving average, in ``[0, 1)``.
    decay: per-step factor on ``lr``, in ``(0, 1]``.
    init_scale: scale of the random initial logits (0 = uniform start).

  Certifies:
    ``pi_t -> p``; ``solve`` stops on ``(1/2)|pi_t - p|_1``.

  References:
    Go et al., "Aligning Language Models with Preferences through
    f-divergence Minimization", ICML 2023, arXiv:2302.08215, Algorithm 1.
  """
  _check_divergence(divergence)
  if num_samples is not None and (isinstance(num_samples, bool) or int(num_samples) != num_samples
                                  or num_samples < 1):
    raise ValueError(f"num_samples: must be None (exact) or an integer >= 1, got {num_samples!r}")
  ema = c.hparam("baseline_ema", baseline_ema, strict=False)
  validate.number("baseline_ema", baseline_ema, lo=0.0, hi=1.0, hi_open=True)
  dec = c.hparam("decay", decay)
  validate.number("decay", decay, lo=0.0, lo_open=True, hi=1.0)
  if geometry is None:
    geometry = "natural" if num_samples is None else "euclidean"
  if geometry not in ("natural", "euclidean"):
    raise ValueError(f"geometry: must be 'natural' or 'euclidean', got {geometry!r}")
  if geometry == "natural" and num_samples is not None:
    raise ValueError("geometry: 'natural' needs exact expectations (num_samples=None); sampled f-DPG is euclidean")
  hp = _FDPGParams(divergence, c.hparam("lr", lr), ema, dec, c.hparam("init_scale", init_scale, strict=False),
                   None if num_samples is None else int(num_samples), geometry)
  return Solver(_fdpg_init, _fdpg_step, hp, "f_dpg")


# ----------------------------------------------------------------------------- f-regularised game


class FGameState(NamedTuple):
  """State of ``f_extragradient``.

  Attributes:
    step: ``int32[]``.
    oracle_calls: ``int32[]`` exact win-rate vectors ``P pi`` evaluated.
    profile: ``(x, y)`` the last iterate of both players.
    logits: ``(theta_x, theta_y)``.
    key: PRNG key (unused after init).
  """

  step: jax.Array
  oracle_calls: jax.Array
  profile: tuple
  logits: tuple
  key: jax.Array


@_struct.dataclass
class _FExtragradientParams:
  eta: Optional[jax.Array]
  init_scale: jax.Array


def _feg_eta(hp: _FExtragradientParams, game: FRegularizedGame) -> jax.Array:
  if hp.eta is not None:
    return hp.eta
  return jnp.minimum(1.0, 0.5 / game.beta)


def _fgame(game: Any) -> FRegularizedGame:
  if not isinstance(game, FRegularizedGame):
    raise ValueError(f"game: f_extragradient takes an FRegularizedGame (PreferenceGame.f_regularized), "
                     f"got {type(game).__name__}")
  return game


# Log-ratios below this are clipped in the field, where only the interior of the simplex
# matters; it keeps f'(x/ref) finite in float32 when a probability underflows.
_LOG_RATIO_FLOOR = -60.0


def _field(game: FRegularizedGame, eta, theta: jax.Array, opp: jax.Array) -> jax.Array:
  """Step direction on the logits, linearly implicit in the regulariser.

  With ``g = P opp - beta f'(x / ref)`` and ``kappa = d f'(e^s)/ds`` at
  ``s = log(x / ref)`` (the stiffness of the regulariser in log-space), the
  direction is ``d = w (g - c)``, ``w = 1 / (1 + eta beta kappa)``, with ``c``
  such that ``sum x d = 0``. ``w = 1`` is the entropic mirror step; the
  weights solve the step's linearisation ``d = g(theta + eta d) - c`` in the
  regulariser exactly, so steep generators (chi^2 at large ratios, forward
  KL at small ones) do not force a tiny ``eta``. Zero exactly where
  ``g`` is constant on the support: the equilibrium condition.
  """
  lx = jax.nn.log_softmax(theta)
  x = jnp.exp(lx)
  d = game.divergence
  s = jnp.maximum(lx - game.log_ref, _LOG_RATIO_FLOOR)
  fp, kappa = jax.jvp(lambda u: d.fprime_log(d.alpha, u), (s,), (jnp.ones_like(s),))
  g = game.preference @ opp - game.beta * fp
  w = 1.0 / (1.0 + eta * game.beta * jnp.maximum(kappa, 0.0))
  centre = jnp.sum(x * w * g) / jnp.sum(x * w)
  return w * (g - centre)


def _feg_init(hp: _FExtragradientParams, game: Any, key: jax.Array) -> FGameState:
  g = _fgame(game)
  k0, k1, k2 = jax.random.split(key, 3)
  n = g.num_actions
  tx = hp.init_scale * jax.random.normal(k0, (n,), g.preference.dtype)
  ty = hp.init_scale * jax.random.normal(k1, (n,), g.preference.dtype)
  zero = jnp.zeros((), jnp.int32)
  return FGameState(zero, zero, (jax.nn.softmax(tx), jax.nn.softmax(ty)), (tx, ty), k2)


def _feg_step(hp: _FExtragradientParams, game: Any, state: FGameState) -> FGameState:
  g = _fgame(game)
  tx, ty = state.logits
  x, y = state.profile
  eta = _feg_eta(hp, g)
  hx = tx + eta * _field(g, eta, tx, y)
  hy = ty + eta * _field(g, eta, ty, x)
  xh, yh = jax.nn.softmax(hx), jax.nn.softmax(hy)
  nx = tx + eta * _field(g, eta, hx, yh)
  ny = ty + eta * _field(g, eta, hy, xh)
  return FGameState(state.step + 1, state.oracle_calls + 4, (jax.nn.softmax(nx), jax.nn.softmax(ny)),
                    (nx, ny), state.key)


def f_extragradient(eta: Optional[jax.typing.ArrayLike] = None, *,
                    init_scale: jax.typing.ArrayLike = 1.0) -> Solver:
  """Mirror-prox (extragradient in the entropic geometry) for the f-regularised preference game.

  Each player ascends its own payoff ``<x, P y> - beta D_f(x || ref)`` (the
  symmetric game's two sides) with the gradient ``g = P y - beta f'(x / ref)``
  taken as a mirror step on the logits, ``theta += eta w (g - c)``, where the
  weights ``w = 1/(1 + eta beta d f'(e^s)/ds)`` make the step linearly
  implicit in the regulariser (for reverse KL, ``w`` is constant and the
  step is the KL mirror step of magnetic mirror descent). The extrapolated
  point supplies the update direction (Korpelevich 1976; Nemirovski 2004).
  For reverse KL the game, its gap and its equilibrium are those of
  ``PreferenceGame.regularized``. Total variation is not strictly convex
  (its equilibrium need not be unique) and the iterates need not settle;
  the gap still certifies whatever they reach.

  Args:
    eta: step size on the logits; default ``min(1, 1/(2 beta))``.
    init_scale: scale of the random initial logits.

  Certifies:
    the last iterate's exact duality gap (``nashax.metrics``), which is zero
    exactly at the equilibrium; ``solve`` stops on it.

  References:
    Korpelevich, "The extragradient method for finding saddle points and other
    problems", 1976. Nemirovski, "Prox-method with rate of convergence O(1/t)",
    SIAM J. Optim. 2004 (mirror-prox). Munos et al., "Nash learning from human feedback",
    ICML 2024 (the game); Go et al., ICML 2023 and Wang et al., ICLR 2024
    (the f-divergence regularisers).
  """
  hp = _FExtragradientParams(
      None if eta is None else c.hparam("eta", eta), c.hparam("init_scale", init_scale, strict=False))
  return Solver(_feg_init, _feg_step, hp, "f_extragradient")
