"""Certificates of optimality: duality gap, exploitability, NashConv, KL to an optimum.

All functions take one game and one profile and are jit/vmap-able. A profile
is a tuple with one mixed strategy per player (``(x, y)`` for a matrix game);
for a ``PreferenceGame`` a single ``[n]`` policy means the symmetric profile
``(pi, pi)``.

* ``duality_gap(x, y) = max_i (A y)_i - min_j (x^T A)_j >= 0`` for zero-sum
  games; zero exactly at a Nash equilibrium.
* ``nash_conv = sum_k [max_a u_k(a, sigma_-k) - u_k(sigma)]`` (OpenSpiel's
  convention); ``exploitability = nash_conv / num_players``.
* For an f-regularised game (``FRegularizedGame``),
  ``Gap(x, y) = h(P y) + beta D_f(y||ref) + h(P x) + beta D_f(x||ref) - 1`` with
  ``h(r) = max_pi <pi, r> - beta D_f(pi||ref)`` (``divergences.regularized_max``).
* For a regularised preference game, the exact gap of
  ``V(pi1, pi2) = pi1^T P pi2 - beta KL(pi1||ref) + beta KL(pi2||ref)``:
  ``Gap(x, y) = beta LSE_ref(P y / beta) + beta KL(y||ref)
  + beta LSE_ref(P x / beta) + beta KL(x||ref) - 1``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from nashax.core import divergences, simplex
from nashax.core.games import (ContextualPreferenceGame, FRegularizedGame, MatrixGame, NormalFormGame, PreferenceGame,
                               TargetDistribution)

_PREF = (PreferenceGame, ContextualPreferenceGame)
_SYM = _PREF + (FRegularizedGame,)  # games whose bare [n] profile means (pi, pi)

__all__ = [
    "Metrics",
    "metrics",
    "utilities",
    "duality_gap",
    "nash_conv",
    "exploitability",
    "preference_gap",
    "kl_to_optimum",
    "default_residual",
    "as_profile",
    "preference_value",
    "best_response",
    "target_distance",
]


class Metrics(NamedTuple):
  """Scalar certificates of one profile (a struct of arrays in a trace).

  Attributes:
    duality_gap: zero-sum duality gap (preference games: the exact gap of the
      possibly regularised game); None for general-sum games.
    exploitability: ``nash_conv / num_players``.
    nash_conv: sum over players of best-response improvements.
    kl_to_optimum: ``sum_k KL(opt_k || sigma_k)`` when an optimum is given, else None.
  """

  duality_gap: Optional[jax.Array]
  exploitability: jax.Array
  nash_conv: jax.Array
  kl_to_optimum: Optional[jax.Array] = None


def as_profile(game: Any, state_or_profile: Any) -> tuple:
  """The profile (a tuple of strategies) of a solver state or a bare profile."""
  profile = getattr(state_or_profile, "profile", state_or_profile)
  if isinstance(game, _SYM) and not isinstance(profile, (tuple, list)):
    return (profile, profile)
  return tuple(profile)


def _masked_max(u: jax.Array, mask) -> jax.Array:
  if mask is not None:
    u = jnp.where(mask, u, -jnp.inf)
  return jnp.max(u, axis=-1)


def utilities(game: Any, profile: tuple) -> tuple:
  """Each player's expected payoff for each of its pure actions.

  Args:
    game: ``MatrixGame``, ``NormalFormGame`` or (unregularised view of a)
      ``PreferenceGame``.
    profile: tuple of strategies ``([a_1], ..., [a_p])``.

  Returns:
    A tuple of ``[a_k]`` vectors ``u_k(a, sigma_-k)`` (payoff to player k).
  """
  if isinstance(game, PreferenceGame):
    game = game.as_matrix_game()
  if isinstance(game, MatrixGame):
    x, y = profile
    a = game.payoff
    return (a @ y, -(x @ a))
  if isinstance(game, NormalFormGame):
    p = game.payoffs.shape[0]
    out = []
    for k in range(p):
      t = game.payoffs[k]
      for j in reversed(range(p)):
        if j != k:
          t = jnp.tensordot(t, profile[j], axes=([j], [0]))
      out.append(t)
    return tuple(out)
  raise ValueError(f"game: unsupported game type {type(game).__name__}")


def nash_conv(game: Any, state_or_profile: Any) -> jax.Array:
  """``sum_k max_a u_k(a, sigma_-k) - u_k(sigma)`` over legal actions."""
  profile = as_profile(game, state_or_profile)
  if isinstance(game, (ContextualPreferenceGame, FRegularizedGame)) or (
      isinstance(game, PreferenceGame) and game.is_regularized):
    return preference_gap(game, profile)
  us = utilities(game, profile)
  masks = game.masks if not isinstance(game, PreferenceGame) else (game.action_mask,) * 2
  total = 0.0
  for u, s, mask in zip(us, profile, masks):
    total = total + _masked_max(u, mask) - jnp.sum(jnp.where(s > 0, s * u, 0.0), axis=-1)
  return total


def duality_gap(game: Any, state_or_profile: Any) -> jax.Array:
  """Duality gap of a zero-sum matrix game or (regularised) preference game."""
  profile = as_profile(game, state_or_profile)
  if isinstance(game, _SYM):
    return preference_gap(game, profile)
  if isinstance(game, MatrixGame):
    x, y = profile
    a = game.payoff
    return _masked_max(a @ y, game.row_mask) + _masked_max(-(x @ a), game.col_mask)
  raise ValueError(
      f"game: the duality gap is defined for zero-sum games; use nash_conv for "
      f"{type(game).__name__}"
  )


def exploitability(game: Any, state_or_profile: Any) -> jax.Array:
  """``nash_conv / num_players``."""
  profile = as_profile(game, state_or_profile)
  return nash_conv(game, profile) / len(profile)


def _win_rates(p: jax.Array, pi: jax.Array) -> jax.Array:
  """``(P pi)(y) = P(y > pi)`` per prompt (any leading axes)."""
  return jnp.einsum("...ij,...j->...i", p, pi)


def _log_ref(game: Any) -> jax.Array:
  """``log pi_ref``; uniform over legal actions for an unregularised game."""
  if game.log_ref is not None:
    return game.log_ref
  n = game.preference.shape[-1]
  shape = game.preference.shape[:-1]
  if game.action_mask is None:
    return jnp.full(shape, -jnp.log(n), game.preference.dtype)
  mask = jnp.broadcast_to(game.action_mask, shape)
  return jnp.where(mask, -jnp.log(jnp.sum(mask, -1, keepdims=True)), -jnp.inf).astype(game.preference.dtype)


def _prompt_mean(game: Any, v: jax.Array) -> jax.Array:
  if isinstance(game, ContextualPreferenceGame):
    return jnp.sum(game.prompt_weights * v, axis=-1)
  return v


def best_response(game: Any, opponent: jax.Array) -> jax.Array:
  """Best response to ``opponent`` in a (contextual) preference game.

  Regularised: ``pi_ref exp(P pi' / beta)``, normalised (Munos et al. 2024,
  "Nash Learning from Human Feedback", arXiv:2312.00886). Unregularised: uniform over the responses that attain
  ``max_y P(y > pi')`` (one of the optimal pure responses, mixed).

  Args:
    game: ``PreferenceGame`` ``[n]`` or ``ContextualPreferenceGame`` ``[x, n]``.
    opponent: the opponent's policy, same shape as the player's.
  """
  r = _win_rates(game.preference, opponent)
  if isinstance(game, FRegularizedGame):
    return jnp.exp(divergences.regularized_argmax(r, game.log_ref, game.beta, game.divergence))
  if game.is_regularized:
    return jax.nn.softmax(_log_ref(game) + r / game.beta, axis=-1)
  if game.action_mask is not None:
    r = jnp.where(game.action_mask, r, -jnp.inf)
  best = r >= jnp.max(r, axis=-1, keepdims=True) - 1e-12 * jnp.maximum(1.0, jnp.abs(r))
  return best / jnp.sum(best, axis=-1, keepdims=True)


def preference_value(game: Any, pi: jax.Array, pi_opp: jax.Array) -> jax.Array:
  """``V(pi, pi') = E_x[pi^T P pi' - beta KL(pi||ref) + beta KL(pi'||ref)]``."""
  v = jnp.sum(pi * _win_rates(game.preference, pi_opp), axis=-1)
  if isinstance(game, FRegularizedGame):
    d = game.divergence
    return v - game.beta * d(jnp.log(pi), game.log_ref) + game.beta * d(jnp.log(pi_opp), game.log_ref)
  if game.is_regularized:
    lr = game.log_ref
    v = v - game.beta * simplex.kl_from_logs(jnp.log(pi), lr) + game.beta * simplex.kl_from_logs(jnp.log(pi_opp), lr)
  return _prompt_mean(game, v)


def preference_gap(game: Any, state_or_profile: Any) -> jax.Array:
  """Exact duality gap of a (contextual, regularised) preference game.

  Unregularised: ``max_i (P y)_i + max_j (P x)_j - 1``; regularised:
  ``beta [LSE_ref(P y / beta) + KL(y||ref) + LSE_ref(P x / beta) + KL(x||ref)] - 1``.
  Both are >= 0 and zero exactly at the (regularised) equilibrium. A
  contextual game averages the per-prompt gaps with ``prompt_weights``.
  """
  x, y = as_profile(game, state_or_profile)
  p = game.preference
  if isinstance(game, FRegularizedGame):
    d, beta, lr = game.divergence, game.beta, game.log_ref
    half = lambda s, o: (divergences.regularized_max(_win_rates(p, o), lr, beta, d) + beta * d(jnp.log(s), lr))
    return half(y, y) + half(x, x) - 1.0
  if not game.is_regularized:
    g = _masked_max(_win_rates(p, y), game.action_mask) + _masked_max(_win_rates(p, x), game.action_mask) - 1.0
    return _prompt_mean(game, g)
  beta, lr = game.beta, game.log_ref
  half = lambda s, o: (logsumexp(lr + _win_rates(p, o) / beta, axis=-1) + simplex.kl_from_logs(jnp.log(s), lr))
  return _prompt_mean(game, beta * (half(y, y) + half(x, x)) - 1.0)


def kl_to_optimum(profile: tuple, optimum: tuple) -> jax.Array:
  """``sum_k KL(optimum_k || profile_k)``, the quantity last-iterate theorems bound."""
  return sum(simplex.kl(o, s) for o, s in zip(optimum, profile))


def metrics(game: Any, state_or_profile: Any, optimum: Optional[Any] = None) -> Metrics:
  """All certificates of a profile (or a solver state's ``profile``).

  Args:
    game: any nashax game.
    state_or_profile: a solver state (its ``profile`` is used) or a profile.
    optimum: optional known equilibrium profile; adds ``kl_to_optimum``.

  Returns:
    ``Metrics`` of scalars.

  >>> import jax.numpy as jnp
  >>> from nashax.games import rock_paper_scissors
  >>> m = metrics(rock_paper_scissors(), (jnp.ones(3) / 3, jnp.array([1., 0., 0.])))
  >>> float(m.duality_gap), float(m.nash_conv)
  (1.0, 1.0)
  """
  profile = as_profile(game, state_or_profile)
  nc = nash_conv(game, profile)
  gap = None
  if isinstance(game, (MatrixGame,) + _SYM):
    gap = duality_gap(game, profile)
  kl = None
  if optimum is not None:
    opt = as_profile(game, optimum)
    if isinstance(game, ContextualPreferenceGame):
      kl = sum(_prompt_mean(game, simplex.kl(o, s)) for o, s in zip(opt, profile))
    else:
      kl = kl_to_optimum(profile, opt)
  return Metrics(gap, nc / len(profile), nc, kl)


def default_residual(game: Any, state_or_profile: Any) -> jax.Array:
  """The certificate ``solve`` stops on: duality gap, NashConv if general-sum, or
  the natural residual ``|z - Pi_C(z - F z)|`` of an operator problem."""
  from nashax.core import operators

  if isinstance(game, (operators.Operator, operators.FiniteSumOperator)):
    return operators.residual(game, state_or_profile)
  if isinstance(game, TargetDistribution):
    return target_distance(game, state_or_profile)
  if isinstance(game, (MatrixGame,) + _SYM):
    return duality_gap(game, state_or_profile)
  return nash_conv(game, state_or_profile)


def target_distance(target: TargetDistribution, state_or_profile: Any) -> jax.Array:
  """Total-variation distance ``(1/2) sum_x |pi(x) - p(x)|`` to a ``TargetDistribution``."""
  pi = getattr(state_or_profile, "profile", state_or_profile)
  return 0.5 * jnp.sum(jnp.abs(pi - jnp.exp(target.log_prob)), axis=-1)


def entropy_regularized_gap(game: Any, state_or_profile: Any, tau: jax.typing.ArrayLike) -> jax.Array:
  """Exact gap of the entropy-regularised zero-sum game (uniform magnet).

  ``V_tau(x, y) = x^T A y - tau KL(x||u) + tau KL(y||u)``, with ``u`` uniform
  over legal actions; ``Gap_tau(x, y) = tau LSE_u(A y / tau) + tau LSE_u(-A^T x / tau)
  + tau KL(x||u) + tau KL(y||u) >= 0``, zero exactly at the quantal response
  equilibrium that magnetic mirror descent converges to (the regularised
  preference game's gap above, with the payoff ``x^T A y`` in place of ``pi^T P pi'``).
  """
  x, y = as_profile(game, state_or_profile)
  if isinstance(game, PreferenceGame):
    game = game.as_matrix_game()
  a = game.payoff
  tau = jnp.asarray(tau, a.dtype)

  def log_u(mask, n):
    if mask is None:
      return jnp.full((n,), -jnp.log(n), a.dtype)
    return jnp.where(mask, -jnp.log(jnp.sum(mask)), -jnp.inf)

  lx, ly = log_u(game.row_mask, a.shape[-2]), log_u(game.col_mask, a.shape[-1])
  gx = tau * logsumexp(lx + (a @ y) / tau) + tau * simplex.kl_from_logs(jnp.log(x), lx)
  gy = tau * logsumexp(ly - (x @ a) / tau) + tau * simplex.kl_from_logs(jnp.log(y), ly)
  return gx + gy


__all__.append("entropy_regularized_gap")
