"""Reward-model baselines of NLHF: Bradley-Terry fits, the RLHF and DPO optima, MaxMin-RLHF.

These are what Nash learning from human feedback is measured against: a
single Bradley-Terry reward fitted to (possibly intransitive, possibly
pooled) preferences, and the KL-regularised optimum of that reward. All are
closed forms or short Newton solves, jit/vmap-able, over any leading axes
(prompts).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import simplex
from nashax.core import validate
from nashax.core.games import ContextualPreferenceGame, PreferenceGame
from nashax.core import metrics as metrics_lib
from nashax.solvers import losses

__all__ = [
    "fit_bradley_terry",
    "rlhf_optimum",
    "dpo_optimum",
    "regularized_objective",
    "MaxMinSolution",
    "maxmin_rlhf",
    "pooled_rlhf",
]


def _check_bradley_terry(preference, pair_weights) -> None:
  """Concrete inputs of ``fit_bradley_terry``: a finite square ``[..., n, n]`` of probabilities, and
  finite nonnegative pair weights of a broadcastable shape (traced ones are not checked)."""
  if validate.traced(preference):
    return
  p = validate.finite_array(preference, "preference")
  if p.ndim < 2 or p.shape[-1] != p.shape[-2] or p.shape[-1] < 1:
    raise ValueError(f"preference: expected a square [..., n, n] table with n >= 1, got shape {p.shape}")
  if (p < 0).any() or (p > 1).any():
    raise ValueError("preference: entries must be probabilities in [0, 1]")
  if pair_weights is not None and not validate.traced(pair_weights):
    w = validate.finite_array(pair_weights, "pair_weights")
    try:
      np.broadcast_shapes(w.shape, p.shape)
    except ValueError:
      raise ValueError(f"pair_weights: shape {w.shape} does not broadcast to preference's {p.shape}") from None
    if (w < 0).any():
      raise ValueError("pair_weights: weights must be >= 0")


def fit_bradley_terry(preference: jax.typing.ArrayLike, pair_weights: Optional[jax.typing.ArrayLike] = None, *,
                      mask: Optional[jax.Array] = None, steps: int = 30, ridge: float = 1e-9) -> jax.Array:
  r"""Maximum-likelihood Bradley-Terry rewards from pairwise preference probabilities.

  Maximises ``sum_{i,j} w_ij P_ij log sigmoid(r_i - r_j)`` (each ordered pair
  ``(i, j)`` is compared with weight ``w_ij`` and ``i`` wins w.p. ``P_ij``) by
  damped Newton steps; rewards are centred (the likelihood ignores an
  additive constant; a tiny ``ridge`` on the Newton system only, not on the
  objective, keeps it solvable).

  Args:
    preference: ``[..., n, n]`` preference probabilities.
    pair_weights: ``[..., n, n]`` nonnegative weights of the compared pairs
      (default: all pairs equally).
    mask: optional ``bool[..., n]``; masked responses get reward 0 and no pairs.
    steps: Newton iterations (static).
    ridge: Levenberg-Marquardt damping of the Newton system.

  Returns:
    ``[..., n]`` rewards.

  References:
    Bradley and Terry, "Rank Analysis of Incomplete Block Designs", Biometrika 1952;
    Hunter, "MM algorithms for generalized Bradley-Terry models", Ann. Stat. 2004.
  """
  _check_bradley_terry(preference, pair_weights)
  steps = validate.size("steps", steps, hi=1_000_000)
  ridge = validate.number("ridge", ridge, lo=0.0)
  p = jnp.asarray(preference)
  if not jnp.issubdtype(p.dtype, jnp.floating):
    p = p.astype(jnp.result_type(float))
  w = jnp.ones_like(p) if pair_weights is None else jnp.asarray(pair_weights, p.dtype)
  n = p.shape[-1]
  eye = jnp.eye(n, dtype=p.dtype)
  w = w * (1.0 - eye)
  if mask is not None:
    w = w * mask[..., :, None] * mask[..., None, :]
  live = jnp.ones(p.shape[:-1], p.dtype) if mask is None else mask.astype(p.dtype)
  wp = w * p
  scale = jnp.maximum(jnp.sum(w, axis=(-2, -1), keepdims=True), jnp.finfo(p.dtype).tiny)
  wp = wp / scale

  def newton(r, _):
    s = jax.nn.sigmoid(r[..., :, None] - r[..., None, :])
    a = wp * (1.0 - s)
    g = -jnp.sum(a, -1) + jnp.sum(a, -2)
    b = wp * s * (1.0 - s)
    bb = b + jnp.swapaxes(b, -1, -2)
    lap = jnp.sum(bb, -1)[..., :, None] * eye - bb
    # The Hessian is a graph Laplacian: singular along the constant vector (and zero on masked rows).
    # g sums to 0 over the live responses, so adding c m m^T / |m| (and 1 on masked diagonals)
    # changes no Newton step but keeps the system invertible in float32 (a bare ridge of 1e-9 is
    # below float32 resolution and gave NaN once the gradient vanished).
    c = jnp.maximum(jnp.sum(jnp.diagonal(lap, 0, -2, -1) * live, -1) / jnp.sum(live, -1), jnp.finfo(p.dtype).tiny)
    h = (lap + (c / jnp.sum(live, -1))[..., None, None] * live[..., :, None] * live[..., None, :]
         + (1.0 - live)[..., :, None] * eye + ridge * eye)
    d = jnp.linalg.solve(h, g[..., None])[..., 0]
    size = jnp.max(jnp.abs(d), axis=-1, keepdims=True)
    d = d * jnp.minimum(1.0, 2.0 / jnp.maximum(size, 1e-30))  # trust region of 2 nats per step
    r = r - d
    if mask is None:
      return r - jnp.mean(r, -1, keepdims=True), None
    r = jnp.where(mask, r, 0.0)
    return r - jnp.sum(r, -1, keepdims=True) / jnp.sum(mask, -1, keepdims=True) * mask, None

  r, _ = jax.lax.scan(newton, jnp.zeros(p.shape[:-1], p.dtype), None, length=steps)
  if mask is not None:
    r = jnp.where(mask, r, 0.0)
  return r


def _ref(game: Any) -> jax.Array:
  return metrics_lib._log_ref(game)


def _require(game: Any, what: str) -> None:
  if not isinstance(game, (PreferenceGame, ContextualPreferenceGame)):
    raise ValueError(f"game: {what} takes a PreferenceGame or ContextualPreferenceGame, got {type(game).__name__}")
  if not game.is_regularized:
    raise ValueError(f"game: {what} needs a KL-regularised game (game.regularized(beta, pi_ref))")


def rlhf_optimum(game: Any, pair_weights: Optional[jax.typing.ArrayLike] = None, *, steps: int = 30) -> jax.Array:
  r"""RLHF's policy: the KL-regularised optimum of a fitted Bradley-Terry reward.

  ``pi ∝ pi_ref exp(r̂ / beta)`` with ``r̂ = fit_bradley_terry(P, w)``; the
  comparisons are drawn from ``pi_ref x pi_ref`` by default (the SFT policy
  generates the preference data).

  Args:
    game: a regularised (contextual) preference game.
    pair_weights: ``[..., n, n]`` weights of the compared pairs.
    steps: Newton iterations of the fit.

  Returns:
    ``[..., n]`` the policy.

  References:
    Ouyang et al., "Training language models to follow instructions with
    human feedback", NeurIPS 2022; the closed form of the KL-regularised
    optimum: Rafailov et al. 2023, eq. 4.
  """
  _require(game, "rlhf_optimum")
  lr = _ref(game)
  if pair_weights is None:
    ref = jnp.exp(lr)
    pair_weights = ref[..., :, None] * ref[..., None, :]
  r = fit_bradley_terry(game.preference, pair_weights, mask=game.action_mask, steps=steps)
  return simplex.masked_softmax(lr + r / game.beta, game.action_mask)


def dpo_optimum(game: Any, *, steps: int = 40) -> jax.Array:
  r"""The population minimiser of the DPO loss over a tabular policy, pairs from ``pi_ref``.

  Minimises ``sum_{y,y'} pi_ref(y) pi_ref(y') P(y > y') dpo_loss(y, y')``
  over the log-probability table by Newton steps on ``losses.dpo_loss``
  (autodiff Hessian; computed independently of ``fit_bradley_terry``). It
  equals ``rlhf_optimum`` with the default pair weights (Rafailov et al.
  2023, section 5).

  Args:
    game: a regularised ``PreferenceGame`` (or contextual: prompts are mapped).
    steps: Newton iterations (static).

  Returns:
    ``[..., n]`` the policy.
  """
  _require(game, "dpo_optimum")
  lr = _ref(game)
  p = game.preference
  beta = game.beta

  def one(p1, lr1):
    ref = jnp.exp(lr1)
    w = ref[:, None] * ref[None, :] * p1 * (1.0 - jnp.eye(p1.shape[-1], dtype=p1.dtype))
    safe_lr = jnp.where(jnp.isfinite(lr1), lr1, 0.0)

    def loss(u):  # u: free log-ratio log(pi / pi_ref); the loss only sees differences
      lp = safe_lr + u
      per = losses.dpo_loss(lp[:, None], lp[None, :], safe_lr[:, None], safe_lr[None, :], beta)
      return jnp.sum(w * per)

    def newton(u, _):
      g = jax.grad(loss)(u)
      h = jax.hessian(loss)(u) + 1e-12 * jnp.eye(u.shape[-1], dtype=u.dtype)
      d = jnp.linalg.solve(h, g)
      d = d * jnp.minimum(1.0, 2.0 / jnp.maximum(jnp.max(jnp.abs(d)) * beta, 1e-30))
      return u - d, None

    u, _ = jax.lax.scan(newton, jnp.zeros_like(lr1), None, length=steps)
    return lr1 + u

  flat_p = p.reshape((-1,) + p.shape[-2:])
  flat_lr = jnp.broadcast_to(lr, p.shape[:-1]).reshape((-1, p.shape[-1]))
  logits = jax.vmap(one)(flat_p, flat_lr).reshape(p.shape[:-1])
  return simplex.masked_softmax(logits, game.action_mask)


def regularized_objective(rewards: jax.typing.ArrayLike, policy: jax.typing.ArrayLike, beta: jax.typing.ArrayLike,
                          pi_ref: jax.typing.ArrayLike) -> jax.Array:
  """``F_r(pi) = E_pi[r] - beta KL(pi || pi_ref)`` for each reward in ``rewards: [..., n]``."""
  policy, rewards = jnp.asarray(policy), jnp.asarray(rewards)
  shape = jnp.broadcast_shapes(policy.shape, rewards.shape)
  pol = jnp.broadcast_to(policy, shape)
  return jnp.sum(pol * jnp.broadcast_to(rewards, shape), -1) - beta * simplex.kl(pol, jnp.broadcast_to(jnp.asarray(pi_ref), shape))


class MaxMinSolution(NamedTuple):
  """MaxMin-RLHF's policy and certificate.

  Attributes:
    policy: ``[n]`` the egalitarian policy ``argmax_pi min_u F_u(pi)``.
    group_weights: ``[U]`` the minimising mixture of groups (dual variables).
    value: ``[]`` ``min_u F_u(policy)``.
    upper_bound: ``[]`` the dual value ``min_w max_pi sum_u w_u F_u(pi)`` at
      ``group_weights`` (>= the optimum); ``upper_bound - value`` certifies it.
  """

  policy: jax.Array
  group_weights: jax.Array
  value: jax.Array
  upper_bound: jax.Array


def _check_policy_inputs(rewards, beta, pi_ref, what: str):
  """Concrete checks before jit: finite rewards [U, n], beta > 0, pi_ref a full-support [n] distribution."""
  if validate.traced(rewards) or validate.traced(pi_ref):
    return
  r = validate.finite_array(rewards, "rewards")
  if r.ndim != 2:
    raise ValueError(f"rewards: {what} expects [groups, n], got shape {r.shape}")
  if not validate.traced(beta):
    validate.positive_scalar(beta, "beta")
  ref = validate.distribution(pi_ref, "pi_ref", size=r.shape[1])
  if (ref <= 0).any():
    raise ValueError(f"pi_ref: must be > 0 everywhere (KL to pi_ref is infinite otherwise), got {ref.tolist()}")


def maxmin_rlhf(rewards: jax.typing.ArrayLike, beta: jax.typing.ArrayLike, pi_ref: jax.typing.ArrayLike, *,
                steps: int = 2_000, eta: float = 1.0) -> MaxMinSolution:
  r"""MaxMin-RLHF: the policy that maximises the worst group's regularised objective.

  ``max_pi min_u F_u(pi)`` with ``F_u(pi) = E_pi[r_u] - beta KL(pi||pi_ref)``
  is concave-convex; by Sion's theorem it equals
  ``min_{w in simplex} beta log sum_y pi_ref(y) exp(sum_u w_u r_u(y) / beta)``,
  solved here by exponentiated-gradient steps on ``w`` (whose gradient is
  ``E_{pi_w}[r_u]``) with the best iterate kept; the policy is
  ``pi_w ∝ pi_ref exp(r_w / beta)`` at the averaged weights.

  Args:
    rewards: ``[U, n]`` one reward per group.
    beta: KL strength.
    pi_ref: ``[n]`` reference policy.
    steps: iterations of the dual solver (static).
    eta: dual step size.

  Returns:
    ``MaxMinSolution`` with a primal value and a dual upper bound.

  References:
    Chakraborty et al., "MaxMin-RLHF: Alignment with Diverse Human
    Preferences", ICML 2024, arXiv:2402.08925 (the egalitarian objective).
  """
  _check_policy_inputs(rewards, beta, pi_ref, "maxmin_rlhf")
  return _maxmin_rlhf(rewards, beta, pi_ref, steps, eta)


@functools.partial(jax.jit, static_argnums=(3,))
def _maxmin_rlhf(rewards, beta, pi_ref, steps: int, eta) -> MaxMinSolution:
  r = jnp.asarray(rewards)
  lr = jnp.log(jnp.asarray(pi_ref, r.dtype))
  u = r.shape[0]

  def policy_of(w):
    return jax.nn.softmax(lr + (w @ r) / beta)

  def dual(w):
    return beta * jax.scipy.special.logsumexp(lr + (w @ r) / beta)

  def body(carry, _):
    logw, avg, t = carry
    w = jax.nn.softmax(logw)
    grad = r @ policy_of(w)  # d dual / d w_u = E_{pi_w}[r_u]
    scale = jnp.maximum(jnp.max(jnp.abs(r)), 1e-30)
    logw = jax.nn.log_softmax(logw - eta * grad / scale / jnp.sqrt(t + 1.0))
    avg = avg + (jax.nn.softmax(logw) - avg) / (t + 2.0)
    return (logw, avg, t + 1.0), None

  w0 = jnp.full((u,), 1.0 / u, r.dtype)
  (logw, avg, _), _ = jax.lax.scan(body, (jnp.log(w0), w0, jnp.zeros((), r.dtype)), None, length=steps)
  candidates = jnp.stack([avg, jax.nn.softmax(logw)])
  pols = jax.vmap(policy_of)(candidates)
  vals = jnp.min(jax.vmap(lambda pi: regularized_objective(r, pi, beta, jnp.exp(lr)))(pols), axis=-1)
  best = jnp.argmax(vals)
  ub = jnp.min(jax.vmap(dual)(candidates))
  return MaxMinSolution(pols[best], candidates[best], vals[best], ub)


def pooled_rlhf(rewards: jax.typing.ArrayLike, group_weights: jax.typing.ArrayLike, beta: jax.typing.ArrayLike,
                pi_ref: jax.typing.ArrayLike, *, steps: int = 50) -> tuple[jax.Array, jax.Array]:
  r"""Single-reward RLHF on pooled data from several Bradley-Terry groups.

  The pooled preference is ``P = sum_u eta_u sigmoid(r_u,i - r_u,j)``; one
  Bradley-Terry reward is fitted to it (pairs from ``pi_ref``) and the policy
  is its regularised optimum ``pi_ref exp(r̂ / beta)`` (MaxMin-RLHF's
  "single reward" baseline).

  Args:
    rewards: ``[U, n]`` group rewards.
    group_weights: ``[U]`` population shares.
    beta: KL strength.
    pi_ref: ``[n]`` reference policy.
    steps: Newton iterations of the fit.

  Returns:
    ``(policy [n], fitted reward [n])``.
  """
  _check_policy_inputs(rewards, beta, pi_ref, "pooled_rlhf")
  if not validate.traced(group_weights):
    validate.distribution(group_weights, "group_weights", size=np.shape(rewards)[0])
  return _pooled_rlhf(rewards, group_weights, beta, pi_ref, steps)


@functools.partial(jax.jit, static_argnums=(4,))
def _pooled_rlhf(rewards, group_weights, beta, pi_ref, steps: int):
  r = jnp.asarray(rewards)
  w = jnp.asarray(group_weights, r.dtype)
  ref = jnp.asarray(pi_ref, r.dtype)
  p = jnp.einsum("u,uij->ij", w, jax.nn.sigmoid(r[:, :, None] - r[:, None, :]))
  rhat = fit_bradley_terry(p, ref[:, None] * ref[None, :], steps=steps)
  return jax.nn.softmax(jnp.log(ref) + rhat / beta), rhat
