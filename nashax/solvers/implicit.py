"""Gradients through equilibria and rankings by implicit differentiation.

Every solution here is the root ``z*`` of an optimality map ``R(z, theta) = 0``
(a fixed point, a first-order condition or an active-set system). The
forward pass runs nashax's certified solver; the derivative comes from the
implicit function theorem at ``z*``,

    dz = -(dR/dz)^{-1} (dR/dtheta) dtheta,

never from unrolling the solver's iterations. Each solution is a
``jax.custom_jvp``: the rule computes ``dR/dz`` at the forward solution (by
``jax.jacfwd`` of the hand-written map), inverts it once (``jnp.linalg.inv``,
O(d^3)) and applies the inverse to ``dR/dtheta dtheta`` (a ``jax.jvp`` of the
map, linear in the tangent). Since that tangent map is linear, JAX transposes
it for reverse mode: ``jax.grad``, ``jax.vjp``, ``jax.jacrev`` and
``jax.jacfwd`` all work from the one rule, under ``jit`` and ``vmap``, and the
backward pass reuses the forward solution and the inverse (a matrix-vector
product per cotangent). ``custom_vjp`` was not used: it gives no forward
mode (``jacfwd``, ``jvp``), which the sensitivity analyses here need.

**Status, not silent garbage.** Each function returns a NamedTuple with the
differentiable solution and, alongside, ``condition`` (the 1-norm condition
number of ``dR/dz``) and ``status``: ``SUCCESS`` (0), ``MAX_STEPS`` (1, the
forward solve did not reach its tolerance), ``NONFINITE`` (2),
``ILL_CONDITIONED`` (4, ``condition > max_condition``, default
``1 / sqrt(eps)``: the derivative is computed but has lost about
``log10(condition)`` digits) and ``DEGENERATE`` (5, no derivative exists,
e.g. an LP whose active set is not unique; the derivative is NaN there). To
get a gradient together with its status, return the status as auxiliary
data::

    def loss(p):
      sol = implicit.nash_equilibrium(game.replace(preference=p))
      return jnp.sum(sol.policy * target), sol.status
    grad, status = jax.grad(loss, has_aux=True)(game.preference)

``status`` and ``condition`` carry no derivative (they are functions of the
forward solution only).

References:
  Krantz & Parks, *The Implicit Function Theorem*, Birkhauser 2002, Thm 1.3.1;
  Blondel et al., "Efficient and Modular Implicit Differentiation",
  NeurIPS 2022, arXiv:2105.15183 (eqs. 1-2: root and fixed-point forms);
  Bai, Kolter & Koltun, "Deep Equilibrium Models", NeurIPS 2019,
  arXiv:1909.01377 (backward pass by the transposed linear system).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import metrics as metrics_lib
from nashax.core import simplex
from nashax.core import validate
from nashax.core.games import ContextualPreferenceGame, FRegularizedGame, MatrixGame, PreferenceGame
from nashax.core.solver import MAX_STEPS, NONFINITE, SUCCESS

__all__ = [
    "SUCCESS", "MAX_STEPS", "NONFINITE", "ILL_CONDITIONED", "DEGENERATE", "STATUS_NAMES",
    "ImplicitNash", "nash_equilibrium",
    "ImplicitQRE", "quantal_response_equilibrium",
    "ImplicitFNash", "f_nash_equilibrium",
    "ImplicitRank", "stationary_distribution", "alpharank",
    "ImplicitBT", "bradley_terry",
    "ImplicitLP", "zero_sum_equilibrium",
]

ILL_CONDITIONED, DEGENERATE = 4, 5
STATUS_NAMES = {SUCCESS: "success", MAX_STEPS: "max_steps", NONFINITE: "nonfinite",
                ILL_CONDITIONED: "ill_conditioned", DEGENERATE: "degenerate"}


# ----------------------------------------------------------------------------- the implicit-function core


def _norm1(m):
  """``||M||_1`` (max column sum) over the last two axes."""
  return jnp.max(jnp.sum(jnp.abs(m), axis=-2), axis=-1)


def _linearisation(residual, z, theta, aux):
  """``(dR/dz)^{-1}`` at the solution and the 1-norm condition number of ``dR/dz``."""
  m = jax.jacfwd(residual, argnums=0)(z, theta, aux)
  inv = jnp.linalg.inv(m)
  cond = _norm1(m) * _norm1(inv)
  cond = jnp.where(jnp.isfinite(cond), cond, jnp.inf)
  return inv, cond


def _implicit_tangent(residual, z, theta, aux, dtheta, inv):
  """``dz = -(dR/dz)^{-1} (dR/dtheta) dtheta``: linear in ``dtheta`` (so JAX can transpose it)."""
  _, r_dot = jax.jvp(lambda th: residual(z, th, aux), (theta,), (dtheta,))
  return -(inv @ r_dot)


def _zero_float0(x):
  return np.zeros(np.shape(x), jax.dtypes.float0)


def _default_max_condition(dtype) -> float:
  return float(1.0 / np.sqrt(np.finfo(dtype).eps))


def _status(finite, converged, cond, max_condition, degenerate=None):
  s = jnp.where(cond > max_condition, ILL_CONDITIONED, SUCCESS)
  if degenerate is not None:
    s = jnp.where(degenerate, DEGENERATE, s)
  s = jnp.where(converged, s, MAX_STEPS)
  return jnp.where(finite, s, NONFINITE).astype(jnp.int32)


def _check_max_condition(max_condition, dtype):
  if max_condition is None:
    return _default_max_condition(dtype)
  if isinstance(max_condition, bool) or not np.isfinite(max_condition) or max_condition <= 1:
    raise ValueError(f"max_condition: must be a finite number > 1, got {max_condition!r}")
  return float(max_condition)


def _check_tol(tol, dtype, default64, default32):
  if tol is None:
    return default64 if dtype == jnp.float64 else default32
  if isinstance(tol, bool) or not np.isfinite(tol) or tol <= 0:
    raise ValueError(f"tol: must be finite and > 0, got {tol!r}")
  return float(tol)


def _check_steps(steps, name):
  if isinstance(steps, bool) or int(steps) != steps or steps < 1:
    raise ValueError(f"{name}: must be a positive integer, got {steps!r}")
  return int(steps)


def _newton(residual, z, theta, aux, steps, project):
  """Newton steps on ``residual(z) = 0``, each kept only if it lowers ``|R|_inf``."""
  def body(z, _):
    r = residual(z, theta, aux)
    jac = jax.jacfwd(residual)(z, theta, aux)
    cand = project(z - jnp.linalg.solve(jac, r))
    better = jnp.all(jnp.isfinite(cand)) & (jnp.max(jnp.abs(residual(cand, theta, aux))) < jnp.max(jnp.abs(r)))
    return jnp.where(better, cand, z), None

  return jax.lax.scan(body, z, None, length=steps)[0]


# ----------------------------------------------------------------------------- KL-regularised Nash


class ImplicitNash(NamedTuple):
  """The KL-regularised Nash equilibrium with an implicit derivative.

  Attributes:
    policy: ``[..., n]`` ``pi*_beta``, differentiable w.r.t. the game's
      ``preference``, ``beta`` and ``log_ref``.
    gap: ``[...]`` its exact duality gap (the forward certificate).
    condition: ``[...]`` 1-norm condition number of ``I - J_s P / beta``.
    status: ``int32[...]`` (module docstring); one per prompt for a contextual game.
  """

  policy: Any
  gap: Any
  condition: Any
  status: Any


def _kl_residual(pi, theta, mask):
  """``R(pi) = pi - softmax(log pi_ref + P pi / beta)`` (Munos et al. 2024, Prop. 1's fixed point)."""
  p, beta, lr = theta
  return pi - simplex.masked_softmax(lr + p @ pi / beta, mask)


@functools.partial(jax.jit, static_argnums=(4, 5))
def _kl_forward(p, beta, lr, mask, tol, max_steps):
  """EGPO (mirror-prox, linear rate ``1 - eta beta``) to gap ``max(tol, 1e-9)``, then Newton steps on the fixed point.

  The same scheme as ``exact.regularized_nash``, leaner to compile (one solver
  loop, the Newton steps in a ``scan``): it is traced once per derivative.
  """
  from nashax.core.solver import _solve
  from nashax.solvers import nlhf

  game = PreferenceGame(p, beta, lr, mask)
  state, _ = _solve(nlhf.egpo(1.0 / (beta + 1.0), init_scale=0.0), game, jax.random.key(0), tol=max(tol, 1e-9),
                    max_steps=max_steps, check_every=1)

  def project(pi):
    q = jnp.clip(pi, 0.0, None) if mask is None else jnp.where(mask, jnp.clip(pi, 0.0, None), 0.0)
    return q / jnp.sum(q)

  pi = _newton(_kl_residual, state.profile, (p, beta, lr), mask, 4, project)
  return pi, metrics_lib.preference_gap(game, pi)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _kl_nash(p, beta, lr, mask, tol, max_steps):
  pi, gap = _kl_forward(p, beta, lr, mask, tol, max_steps)
  _, cond = _linearisation(_kl_residual, pi, (p, beta, lr), mask)
  return pi, gap, cond


@_kl_nash.defjvp
def _kl_nash_jvp(tol, max_steps, primals, tangents):
  p, beta, lr, mask = primals
  dp, dbeta, dlr, _ = tangents
  pi, gap = _kl_forward(p, beta, lr, mask, tol, max_steps)
  theta = (p, beta, lr)
  inv, cond = _linearisation(_kl_residual, pi, theta, mask)
  dlr = jnp.where(jnp.isfinite(lr), dlr, 0.0)  # padding actions (log_ref = -inf) carry no tangent
  dpi = _implicit_tangent(_kl_residual, pi, theta, mask, (dp, dbeta, dlr), inv)
  return (pi, gap, cond), (dpi, jnp.zeros_like(gap), jnp.zeros_like(cond))


# Jitted entry points: an eager call compiles one program (not op by op); inside jit they inline.
_kl_nash_jit = jax.jit(_kl_nash, static_argnums=(4, 5))


@functools.partial(jax.jit, static_argnums=(4, 5))
def _kl_contextual(p, beta, lr, mask, tol, max_steps):
  if mask is None:
    return jax.vmap(lambda pp, ll: _kl_nash(pp, beta, ll, None, tol, max_steps))(p, lr)
  return jax.vmap(lambda pp, ll, mm: _kl_nash(pp, beta, ll, mm, tol, max_steps))(p, lr, mask)


def nash_equilibrium(game: Any, *, tol: Optional[float] = None, max_steps: int = 100_000,
                     max_condition: Optional[float] = None) -> ImplicitNash:
  r"""The KL-regularised Nash equilibrium ``pi*_beta``, differentiable by the implicit function theorem.

  Forward: EGPO mirror-prox and Newton polish, as ``exact.regularized_nash``
  (gap certified to ``tol``). Derivative: at the fixed point
  ``F(pi) = pi - s(z) = 0``, ``z = log pi_ref + P pi / beta``,
  ``J_s = diag(pi) - pi pi^T``,

      dpi = (I - J_s P / beta)^{-1} J_s dz,
      dz = dlog pi_ref + dP pi / beta - P pi dbeta / beta^2.

  ``I - J_s P / beta`` is always invertible: ``J_s P = J_s (P - 11^T/2)`` is
  similar to a skew matrix, so its eigenvalues are ``1 - i lambda / beta``;
  its conditioning degrades only as ``beta -> 0``. The derivative w.r.t.
  ``P`` is that of the map for a free matrix (``dP_ij`` and ``dP_ji`` are
  separate inputs); a perturbation that keeps ``P + P^T = 1`` is ``dP``
  skew-symmetric. ``log_ref`` tangents are those of the normalised log
  reference; padding actions carry none. A contextual game's prompts are
  independent equilibria (its ``prompt_weights`` do not move them): the
  prompts are solved and differentiated as a batch.

  Args:
    game: a regularised ``PreferenceGame`` or ``ContextualPreferenceGame``
      (leading batch axes: use ``jax.vmap``).
    tol: forward gap (default 1e-12 in float64, 1e-6 in float32).
    max_steps: mirror-prox budget of the forward solve.
    max_condition: condition number above which ``status`` is
      ``ILL_CONDITIONED`` (default ``1 / sqrt(eps)``).

  Returns:
    ``ImplicitNash``.

  References:
    Munos et al., "Nash Learning from Human Feedback", ICML 2024,
    arXiv:2312.00886, Prop. 1 (the fixed point); Krantz & Parks 2002,
    Thm 1.3.1 (the implicit function theorem).
  """
  if not isinstance(game, (PreferenceGame, ContextualPreferenceGame)) or not game.is_regularized:
    raise ValueError("game: nash_equilibrium needs a KL-regularised (Contextual)PreferenceGame "
                     "(game.regularized(beta, pi_ref))")
  dtype = game.preference.dtype
  tol = _check_tol(tol, dtype, 1e-12, 1e-6)
  max_steps = _check_steps(max_steps, "max_steps")
  max_condition = _check_max_condition(max_condition, dtype)
  p, beta, lr, mask = game.preference, game.beta, game.log_ref, game.action_mask
  if isinstance(game, ContextualPreferenceGame):
    pi, gap, cond = _kl_contextual(p, beta, lr, mask, tol, max_steps)
  else:
    if p.ndim != 2:
      raise ValueError(f"game: expected one game (use jax.vmap for a batch), got preference shape {p.shape}")
    pi, gap, cond = _kl_nash_jit(p, beta, lr, mask, tol, max_steps)
  finite = jnp.all(jnp.isfinite(pi), axis=-1) & jnp.isfinite(gap)
  return ImplicitNash(pi, gap, cond, _status(finite, gap <= tol, cond, max_condition))


# ----------------------------------------------------------------------------- quantal response equilibrium


class ImplicitQRE(NamedTuple):
  """The quantal response (entropy-regularised) equilibrium of a zero-sum game.

  Attributes:
    x: ``[n]`` the row player's strategy, differentiable w.r.t. ``payoff`` and ``tau``.
    y: ``[m]`` the column player's.
    gap: ``[]`` ``metrics.entropy_regularized_gap`` (the forward certificate).
    condition: ``[]`` condition number of the optimality map's Jacobian.
    status: ``int32[]``.
  """

  x: Any
  y: Any
  gap: Any
  condition: Any
  status: Any


def _log_uniform(mask, n, dtype):
  if mask is None:
    return jnp.full((n,), -jnp.log(n), dtype)
  return jnp.where(mask, -jnp.log(jnp.sum(mask)), -jnp.inf).astype(dtype)


def _qre_residual(z, theta, aux):
  """``[x - softmax(log u + A y / tau), y - softmax(log u - A^T x / tau)]`` (uniform magnet ``u``)."""
  a, tau = theta
  rm, cm = aux
  n = a.shape[0]
  x, y = z[:n], z[n:]
  lx, ly = _log_uniform(rm, a.shape[0], a.dtype), _log_uniform(cm, a.shape[1], a.dtype)
  return jnp.concatenate([x - simplex.masked_softmax(lx + a @ y / tau, rm),
                          y - simplex.masked_softmax(ly - x @ a / tau, cm)])


@functools.partial(jax.jit, static_argnums=(4, 5))
def _qre_forward(a, tau, rm, cm, tol, max_steps):
  from nashax.core.solver import _solve
  from nashax.solvers.equilibrium import mmd

  game = MatrixGame(a, rm, cm)
  scale = jnp.maximum(jnp.max(jnp.abs(a)), jnp.finfo(a.dtype).tiny)
  eta = tau / scale ** 2  # the linear-rate step of Sokota et al. 2023, Thm 3.4
  res = functools.partial(metrics_lib.entropy_regularized_gap, tau=tau)
  state, _ = _solve(mmd(eta, tau, init_scale=0.0), game, jax.random.key(0), tol=max(tol, 1e-6),
                    max_steps=max_steps, check_every=1, residual_fn=res)
  x, y = state.profile
  n = a.shape[0]

  def project(z):
    xx, yy = jnp.clip(z[:n], 0.0, None), jnp.clip(z[n:], 0.0, None)
    return jnp.concatenate([xx / jnp.sum(xx), yy / jnp.sum(yy)])

  z = _newton(_qre_residual, jnp.concatenate([x, y]), (a, tau), (rm, cm), 8, project)
  return z, res(game, (z[:n], z[n:]))


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _qre(a, tau, rm, cm, tol, max_steps):
  z, gap = _qre_forward(a, tau, rm, cm, tol, max_steps)
  _, cond = _linearisation(_qre_residual, z, (a, tau), (rm, cm))
  return z, gap, cond


@_qre.defjvp
def _qre_jvp(tol, max_steps, primals, tangents):
  a, tau, rm, cm = primals
  da, dtau, _, _ = tangents
  z, gap = _qre_forward(a, tau, rm, cm, tol, max_steps)
  inv, cond = _linearisation(_qre_residual, z, (a, tau), (rm, cm))
  dz = _implicit_tangent(_qre_residual, z, (a, tau), (rm, cm), (da, dtau), inv)
  return (z, gap, cond), (dz, jnp.zeros_like(gap), jnp.zeros_like(cond))


_qre_jit = jax.jit(_qre, static_argnums=(4, 5))


def quantal_response_equilibrium(game: Any, tau: jax.typing.ArrayLike, *, tol: Optional[float] = None,
                                 max_steps: int = 100_000, max_condition: Optional[float] = None) -> ImplicitQRE:
  r"""The entropy-regularised equilibrium of a zero-sum game, differentiable w.r.t. payoffs and ``tau``.

  The QRE of ``V_tau(x, y) = x^T A y - tau KL(x||u) + tau KL(y||u)`` (``u``
  uniform over legal actions) is the root of
  ``R(x, y) = [x - softmax(log u + A y / tau), y - softmax(log u - A^T x / tau)]``;
  forward by magnetic mirror descent (``equilibrium.mmd``, step
  ``tau / max|A|^2``) to gap ``1e-6`` and Newton steps on ``R``. Its
  Jacobian ``[[I, -J_x A / tau], [J_y A^T / tau, I]]`` has the form
  ``I + (skew-like)``, invertible for every ``tau > 0``.

  Args:
    game: a ``MatrixGame`` (masks respected) or a payoff ``[n, m]``.
    tau: temperature ``> 0``.
    tol: forward gap (default 1e-12 in float64, 1e-6 in float32).
    max_steps: mirror-descent budget.
    max_condition: see ``nash_equilibrium``.

  Returns:
    ``ImplicitQRE``.

  References:
    McKelvey & Palfrey, "Quantal Response Equilibria for Normal Form Games",
    GEB 1995 (logit QRE); Sokota et al., ICLR 2023, arXiv:2206.05825,
    Alg. 3.1 / Thm 3.4 (the solver).
  """
  if isinstance(game, MatrixGame):
    a, rm, cm = game.payoff, game.row_mask, game.col_mask
  else:
    a, rm, cm = jnp.asarray(game), None, None
  if a.ndim != 2:
    raise ValueError(f"game: expected one payoff [n, m] (use jax.vmap for a batch), got shape {a.shape}")
  if not validate.traced(a):
    validate.finite_array(a, "game")
  if not validate.traced(tau):
    validate.positive_scalar(tau, "tau")
  tol = _check_tol(tol, a.dtype, 1e-12, 1e-6)
  max_steps = _check_steps(max_steps, "max_steps")
  max_condition = _check_max_condition(max_condition, a.dtype)
  z, gap, cond = _qre_jit(a, jnp.asarray(tau, a.dtype), rm, cm, tol, max_steps)
  n = a.shape[0]
  finite = jnp.all(jnp.isfinite(z)) & jnp.isfinite(gap)
  return ImplicitQRE(z[:n], z[n:], gap, cond, _status(finite, gap <= tol, cond, max_condition))


# ----------------------------------------------------------------------------- f-regularised Nash


class ImplicitFNash(NamedTuple):
  """The f-regularised preference game's equilibrium.

  Attributes:
    policy: ``[n]`` differentiable w.r.t. ``preference``, ``beta`` and ``log_ref``.
    gap: ``[]`` the game's exact duality gap.
    condition: ``[]`` condition number of the KKT system's Jacobian.
    status: ``int32[]``; ``DEGENERATE`` when the equilibrium touches the
      simplex boundary (some ``pi_i < sqrt(eps)``: the interior KKT system does not hold).
  """

  policy: Any
  gap: Any
  condition: Any
  status: Any


def _f_residual(z, theta, divergence):
  """KKT of ``pi = argmax_q <q, P pi> - beta D_f(q||ref)`` in the interior.

  ``R(pi, lam) = [P pi - beta f'(pi / ref) - lam 1; 1^T pi - 1]``.
  """
  p, beta, lr = theta
  pi, lam = z[:-1], z[-1]
  fp = divergence.fprime_log(divergence.alpha, jnp.log(pi) - lr)
  return jnp.concatenate([p @ pi - beta * fp - lam, jnp.sum(pi, keepdims=True) - 1.0])


@functools.partial(jax.jit, static_argnums=(4, 5))
def _f_forward(p, beta, lr, divergence, tol, max_steps):
  from nashax.core.solver import _solve
  from nashax.solvers.fdiv import f_extragradient

  game = FRegularizedGame(p, beta, lr, divergence)
  state, _ = _solve(f_extragradient(init_scale=0.0), game, jax.random.key(0), tol=max(tol, 1e-7),
                    max_steps=max_steps, check_every=1, residual_fn=metrics_lib.duality_gap)
  x, y = state.profile
  pi = 0.5 * (x + y)
  fp = divergence.fprime_log(divergence.alpha, jnp.log(pi) - lr)
  lam = jnp.sum(pi * (p @ pi - beta * fp))
  tiny = jnp.finfo(p.dtype).tiny

  def project(z):
    q = jnp.maximum(z[:-1], tiny)
    return jnp.concatenate([q / jnp.sum(q), z[-1:]])

  z = _newton(_f_residual, jnp.concatenate([pi, lam[None]]), (p, beta, lr), divergence, 8, project)
  pi = z[:-1]
  return z, metrics_lib.duality_gap(game, (pi, pi))


@functools.partial(jax.custom_jvp, nondiff_argnums=(4, 5))
def _f_nash(p, beta, lr, divergence, tol, max_steps):
  z, gap = _f_forward(p, beta, lr, divergence, tol, max_steps)
  _, cond = _linearisation(_f_residual, z, (p, beta, lr), divergence)
  return z, gap, cond


@_f_nash.defjvp
def _f_nash_jvp(tol, max_steps, primals, tangents):
  p, beta, lr, divergence = primals
  dp, dbeta, dlr, _ = tangents
  z, gap = _f_forward(p, beta, lr, divergence, tol, max_steps)
  inv, cond = _linearisation(_f_residual, z, (p, beta, lr), divergence)
  dz = _implicit_tangent(_f_residual, z, (p, beta, lr), divergence, (dp, dbeta, dlr), inv)
  return (z, gap, cond), (dz, jnp.zeros_like(gap), jnp.zeros_like(cond))


_f_nash_jit = jax.jit(_f_nash, static_argnums=(4, 5))


def f_nash_equilibrium(game: FRegularizedGame, *, tol: Optional[float] = None, max_steps: int = 200_000,
                       max_condition: Optional[float] = None) -> ImplicitFNash:
  r"""The equilibrium of the f-regularised preference game, for a strictly convex ``f``.

  For strictly convex ``f`` the symmetric equilibrium is unique and, in the
  interior of the simplex, the root of the KKT system
  ``P pi - beta f'(pi / ref) = lam 1``, ``1^T pi = 1`` (the best response of
  ``divergences.regularized_argmax`` at its own input). Its Jacobian
  ``[[P - beta diag(f''(pi/ref) / ref), -1], [1^T, 0]]`` is invertible: on
  ``1^T dpi = 0``, ``P`` acts as the skew ``P - 11^T/2`` and
  ``-beta diag(f'' / ref)`` is negative definite. Forward: ``fdiv.f_extragradient``
  to gap ``1e-7``, then Newton steps on the KKT system. Total variation (not
  strictly convex) is refused.

  Args:
    game: an ``FRegularizedGame`` (``PreferenceGame.f_regularized``).
    tol: forward gap (default 1e-11 in float64, 1e-5 in float32).
    max_steps: mirror-prox budget.
    max_condition: see ``nash_equilibrium``.

  Returns:
    ``ImplicitFNash``.

  References:
    Munos et al., ICML 2024, arXiv:2312.00886 (the game); Wang et al.,
    "Beyond Reverse KL", ICLR 2024, arXiv:2309.16240, Thm 1 (the KKT
    relation between reward and policy for f-divergences).
  """
  if not isinstance(game, FRegularizedGame):
    raise ValueError(f"game: f_nash_equilibrium takes an FRegularizedGame, got {type(game).__name__}")
  if game.divergence.name == "total_variation":
    raise ValueError("game: total variation is not strictly convex (no unique, differentiable equilibrium)")
  p = game.preference
  if p.ndim != 2:
    raise ValueError(f"game: expected one game (use jax.vmap for a batch), got preference shape {p.shape}")
  tol = _check_tol(tol, p.dtype, 1e-11, 1e-5)
  max_steps = _check_steps(max_steps, "max_steps")
  max_condition = _check_max_condition(max_condition, p.dtype)
  z, gap, cond = _f_nash_jit(p, game.beta, game.log_ref, game.divergence, tol, max_steps)
  pi = z[:-1]
  finite = jnp.all(jnp.isfinite(z)) & jnp.isfinite(gap)
  boundary = jnp.min(pi) < np.sqrt(np.finfo(p.dtype).eps)
  return ImplicitFNash(pi, gap, cond, _status(finite, gap <= tol, cond, max_condition, boundary))


# ----------------------------------------------------------------------------- alpha-rank


class ImplicitRank(NamedTuple):
  """alpha-rank's stationary distribution with an implicit, log-space derivative.

  Attributes:
    pi: ``[N]`` the stationary distribution (differentiable).
    log_pi: ``[N]`` its logarithm (differentiable; finite where ``pi`` underflows).
    condition: ``[]`` condition number of ``I - P_hat + 1 pi^T`` (see ``stationary_distribution``).
    status: ``int32[]``; ``ILL_CONDITIONED`` for a nearly reducible chain.
  """

  pi: Any
  log_pi: Any
  condition: Any
  status: Any


def _reversed_jump(lp, lr):
  """``P_hat[j, i] = pi_i q_ij / (pi_j sum_k q_jk)`` and ``P[j, k] = q_jk / sum_k q_jk``, from logs."""
  n = lr.shape[-1]
  off = ~jnp.eye(n, dtype=bool) & jnp.isfinite(lr)
  l = jnp.where(off, lr, -jnp.inf)
  lout = jax.scipy.special.logsumexp(l, axis=-1)  # log sum_k q_jk
  fwd = jnp.where(off, jnp.exp(l - lout[:, None]), 0.0)
  # log F_ij = lp_i + l_ij; log o_j = lp_j + lout_j; P_hat[j, i] = F_ij / o_j.
  back = jnp.where(off.T, jnp.exp(lp[None, :] + l.T - (lp + lout)[:, None]), 0.0)
  return back, fwd, off


def _stationary_system(lp, lr):
  back, fwd, off = _reversed_jump(lp, lr)
  n = lr.shape[-1]
  mat = jnp.eye(n, dtype=lr.dtype) - back + jnp.exp(lp)[None, :]
  inv = jnp.linalg.inv(mat)
  cond = _norm1(mat) * _norm1(inv)
  return inv, jnp.where(jnp.isfinite(cond), cond, jnp.inf), back, fwd, off


@jax.custom_jvp
def _stationary(lr):
  from nashax.solvers.alpharank import stationary_log

  lp = stationary_log(lr)
  _, cond, _, _, _ = _stationary_system(lp, lr)
  return lp, cond


@_stationary.defjvp
def _stationary_jvp(primals, tangents):
  from nashax.solvers.alpharank import stationary_log

  (lr,), (dlr,) = primals, tangents
  lp = stationary_log(lr)
  inv, cond, back, fwd, off = _stationary_system(lp, lr)
  dl = jnp.where(off, dlr, 0.0)
  # (I - P_hat) g = sum_i P_hat[j, i] dL_ij - sum_k P[j, k] dL_jk, pi^T g = 0, g = d log pi.
  rhs = jnp.sum(back * dl.T, axis=-1) - jnp.sum(fwd * dl, axis=-1)
  return (lp, cond), (inv @ rhs, jnp.zeros_like(cond))


_stationary_jit = jax.jit(_stationary)


def stationary_distribution(log_rates: jax.typing.ArrayLike, *, max_condition: Optional[float] = None) -> ImplicitRank:
  r"""Stationary distribution of a chain given by off-diagonal log-rates, differentiable in log space.

  Forward: ``alpharank.stationary_log`` (GTH state reduction on logs). With
  ``q_ij = e^{L_ij}``, ``pi Q = 0`` and ``g = d log pi``, differentiating
  gives ``sum_i pi_i q_ij g_i - pi_j g_j sum_k q_jk = -(pi dQ)_j``; divided by
  the out-flux ``pi_j sum_k q_jk`` this is

      (I - P_hat) g = r,   r_j = sum_i P_hat[j, i] dL_ij - sum_k P[j, k] dL_jk,   pi^T g = 0,

  with ``P`` the jump chain and ``P_hat`` its time reversal, both formed from
  log-rates and ``log pi`` (so every entry is a probability, finite however
  small the rates: alpha = 1e4 is fine). The system is solved as
  ``(I - P_hat + 1 pi^T) g = r`` (nonsingular for an irreducible chain). A
  nearly reducible jump chain (two groups of states joined only by rare
  jumps) makes it ill-conditioned: the status says so.

  Args:
    log_rates: ``[N, N]`` ``log C[s -> s']`` off the diagonal (``-inf``: no move).
    max_condition: see ``nash_equilibrium``.

  Returns:
    ``ImplicitRank``.

  References:
    Grassmann, Taksar & Heyman, Oper. Res. 1985 (GTH); Meyer, "The role of the
    group generalized inverse in the theory of finite Markov chains", SIAM
    Review 1975 (derivatives of stationary distributions); Omidshafiei et al.,
    Sci. Rep. 2019, arXiv:1903.01373 (alpha-rank).
  """
  lr = jnp.asarray(log_rates)
  if lr.ndim != 2 or lr.shape[0] != lr.shape[1]:
    raise ValueError(f"log_rates: expected a square [N, N] matrix, got shape {lr.shape}")
  max_condition = _check_max_condition(max_condition, lr.dtype)
  lp, cond = _stationary_jit(lr)
  finite = jnp.all(jnp.isfinite(lp))
  return ImplicitRank(jnp.exp(lp), lp, cond, _status(finite, True, cond, max_condition))


def alpharank(payoffs: jax.typing.ArrayLike, alpha: jax.typing.ArrayLike = 1.0, m: int = 50, *,
              single_population: bool = False, local_selection: bool = False,
              max_condition: Optional[float] = None) -> ImplicitRank:
  """alpha-rank (``alpharank.alpharank``) differentiable w.r.t. ``payoffs`` and ``alpha``.

  The log-rates (fixation probabilities in log space) are differentiated by
  autodiff; the stationary distribution by ``stationary_distribution``.
  ``alpha = inf`` (the limit chain, piecewise constant in the payoffs) is
  refused.

  Args:
    payoffs: ``[K, a_1, ..., a_K]`` or, with ``single_population``, ``[n, n]`` / ``[2, n, n]``.
    alpha: selection intensity ``>= 0`` (finite).
    m: population size (static).
    single_population, local_selection: as in ``alpharank.alpharank``.
    max_condition: see ``nash_equilibrium``.

  Returns:
    ``ImplicitRank`` over the chain's states.
  """
  from nashax.solvers import alpharank as A

  A._check(payoffs, alpha, m, single_population)
  if not validate.traced(alpha) and np.isinf(np.asarray(alpha, np.float64)).any():
    raise ValueError("alpha: must be finite for derivatives (the alpha = inf chain is piecewise constant)")
  x = jnp.asarray(payoffs)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    x = x.astype(jnp.result_type(float))
  if single_population:
    table = x if x.ndim == 2 else x[0]
    lr = A.single_population_log_rates(table, jnp.asarray(alpha, table.dtype), m, local_selection)
  else:
    lr = A.multi_population_log_rates(x, jnp.asarray(alpha, x.dtype), m)
  return stationary_distribution(lr, max_condition=max_condition)


# ----------------------------------------------------------------------------- Bradley-Terry


class ImplicitBT(NamedTuple):
  """Bradley-Terry maximum-likelihood strengths with an implicit derivative.

  Attributes:
    strengths: ``[n]`` centred (``sum = 0``), differentiable w.r.t. the counts.
    grad_norm: ``[]`` ``|grad of the mean log-likelihood|_inf`` at the fit (the forward certificate).
    condition: ``[]`` condition number of the gauge-fixed Hessian.
    status: ``int32[]``; ``DEGENERATE`` when no finite MLE exists (the win
      graph ``i -> j``, ``i`` beat ``j``, is not strongly connected: Zermelo
      1929, Ford 1957), ``MAX_STEPS`` when the fit did not reach ``tol``,
      ``ILL_CONDITIONED`` for a nearly disconnected comparison graph.
  """

  strengths: Any
  grad_norm: Any
  condition: Any
  status: Any


def _bt_loglik(s, counts):
  """Mean log-likelihood ``sum_ij W_ij log sigmoid(s_i - s_j) / sum W``."""
  d = s[:, None] - s[None, :]
  return jnp.sum(counts * jax.nn.log_sigmoid(d)) / jnp.sum(counts)


def _bt_residual(s, counts, _):
  """``grad l(s) - mean(s) 1``: zero exactly at the centred MLE (the gauge ``sum s = 0`` fixed)."""
  return jax.grad(_bt_loglik)(s, counts) - jnp.mean(s)


def _bt_forward(counts, steps):
  from nashax.solvers.baselines import fit_bradley_terry

  tot = counts + counts.T
  p = jnp.where(tot > 0, counts / jnp.where(tot > 0, tot, 1.0), 0.5)
  s = fit_bradley_terry(p, tot, steps=steps)
  return s, jnp.max(jnp.abs(jax.grad(_bt_loglik)(s, counts)))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _bt(counts, steps):
  s, g = _bt_forward(counts, steps)
  _, cond = _linearisation(_bt_residual, s, counts, None)
  return s, g, cond


@_bt.defjvp
def _bt_jvp(steps, primals, tangents):
  (counts,), (dcounts,) = primals, tangents
  s, g = _bt_forward(counts, steps)
  inv, cond = _linearisation(_bt_residual, s, counts, None)
  ds = _implicit_tangent(_bt_residual, s, counts, None, dcounts, inv)
  return (s, g, cond), (ds, jnp.zeros_like(g), jnp.zeros_like(cond))


def _bt_connected(counts, steps):
  """The fit, and whether the win graph ``i -> j`` (``i`` beat ``j``) is strongly connected (transitive closure)."""
  n = counts.shape[0]
  reach = (counts > 0) | jnp.eye(n, dtype=bool)
  for _ in range(max(1, int(np.ceil(np.log2(n))))):
    reach = (reach.astype(counts.dtype) @ reach.astype(counts.dtype)) > 0
  return (*_bt(counts, steps), jnp.all(reach))


_bt_jit = jax.jit(_bt_connected, static_argnums=(1,))


def bradley_terry(counts: jax.typing.ArrayLike, *, steps: int = 60, tol: Optional[float] = None,
                  max_condition: Optional[float] = None) -> ImplicitBT:
  r"""Bradley-Terry MLE strengths from win counts, differentiable w.r.t. the counts.

  ``counts[i, j]`` is the (possibly fractional) number of times ``i`` beat
  ``j``; the MLE maximises ``sum_ij W_ij log sigmoid(s_i - s_j)`` with the
  gauge ``sum_i s_i = 0``. Forward: ``baselines.fit_bradley_terry``
  (damped Newton). Derivative: at the optimum ``grad l(s, W) = 0``; the
  Hessian is a negative semidefinite graph Laplacian with null vector ``1``,
  so the map is ``R(s) = grad l(s) - mean(s) 1`` (whose root is the centred
  MLE and whose Jacobian ``H - 11^T / n`` is nonsingular for a connected
  comparison graph), and ``ds = -(H - 11^T/n)^{-1} d(grad l)/dW dW``.

  Args:
    counts: ``[n, n]`` nonnegative win counts (diagonal ignored).
    steps: Newton iterations of the fit (static).
    tol: stationarity ``|grad l|_inf`` needed for ``SUCCESS`` (default 1e-10 float64, 1e-5 float32).
    max_condition: see ``nash_equilibrium``.

  Returns:
    ``ImplicitBT``.

  References:
    Bradley & Terry, Biometrika 1952; Zermelo, Math. Z. 1929 and Ford,
    Amer. Math. Monthly 1957 (the MLE exists iff the win graph is strongly
    connected); Hunter, Ann. Stat. 2004.
  """
  w = jnp.asarray(counts)
  if not jnp.issubdtype(w.dtype, jnp.floating):
    w = w.astype(jnp.result_type(float))
  if w.ndim != 2 or w.shape[0] != w.shape[1] or w.shape[0] < 2:
    raise ValueError(f"counts: expected a square [n, n] matrix with n >= 2, got shape {w.shape}")
  if not validate.traced(w):
    a = validate.finite_array(w, "counts")
    if (a < 0).any():
      raise ValueError("counts: must be nonnegative")
    if not (a - np.diag(np.diag(a))).any():
      raise ValueError("counts: no comparisons off the diagonal")
  w = w * (1.0 - jnp.eye(w.shape[0], dtype=w.dtype))
  steps = _check_steps(steps, "steps")
  tol = _check_tol(tol, w.dtype, 1e-10, 1e-5)
  max_condition = _check_max_condition(max_condition, w.dtype)
  s, g, cond, connected = _bt_jit(w, steps)
  finite = jnp.all(jnp.isfinite(s))
  return ImplicitBT(s, g, cond, _status(finite, g <= tol, cond, max_condition, ~connected))


# ----------------------------------------------------------------------------- exact zero-sum equilibrium


class ImplicitLP(NamedTuple):
  """The exact equilibrium of a zero-sum game, differentiable on a nondegenerate active set.

  Attributes:
    value: ``[]`` the game value, differentiable w.r.t. the payoff.
    x: ``[n]`` maximin strategy, differentiable.
    y: ``[m]`` minimax strategy, differentiable.
    gap: ``[]`` the simplex solution's exact duality gap.
    condition: ``[]`` condition number of the active-set system.
    status: ``int32[]``: ``DEGENERATE`` (no derivative: the derivatives are
      NaN) when the supports differ in size, a zero-probability action is a
      best response (no strict complementarity), or the active system is
      singular; else as in ``simplex_equilibrium`` / ``ILL_CONDITIONED``.
  """

  value: Any
  x: Any
  y: Any
  gap: Any
  condition: Any
  status: Any


def _lp_residual(z, a, supports):
  """Active-set system in ``z = (x, y, v_row, v_col)``.

  ``(A y)_I = v``, ``(x^T A)_J = v``, zeros off the supports, both sums 1.
  """
  sx, sy = supports
  n, m = a.shape
  x, y, v1, v2 = z[:n], z[n:n + m], z[n + m], z[n + m + 1]
  rows = jnp.where(sx, a @ y - v1, x)
  cols = jnp.where(sy, x @ a - v2, y)
  return jnp.concatenate([rows, cols, jnp.stack([jnp.sum(x) - 1.0, jnp.sum(y) - 1.0])])


def _lp_forward(a, rm, cm, support_tol):
  from nashax.solvers.exact import _simplex_batched

  n, m = a.shape
  rmask = jnp.ones((n,), bool) if rm is None else rm
  cmask = jnp.ones((m,), bool) if cm is None else cm
  sol = _simplex_batched(a, rmask, cmask, 20 * (n + m), 8)
  x, y, v = sol.x, sol.y, sol.value
  scale = jnp.maximum(jnp.max(jnp.abs(jnp.where(rmask[:, None] & cmask[None, :], a, 0.0))), 1.0)
  sx, sy = x > support_tol, y > support_tol
  ay, xa = jnp.where(cmask[None, :], a, 0.0) @ y, x @ jnp.where(rmask[:, None], a, 0.0)
  margin = support_tol * scale
  strict = (jnp.all(jnp.where(rmask & ~sx, ay < v - margin, True))
            & jnp.all(jnp.where(cmask & ~sy, xa > v + margin, True)))
  square = jnp.sum(sx) == jnp.sum(sy)
  z = jnp.concatenate([x, y, jnp.stack([v, v])])
  return z, (sx, sy), strict & square, sol


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def _lp(a, rm, cm, support_tol):
  z, sup, ok, sol = _lp_forward(a, rm, cm, support_tol)
  _, cond = _linearisation(_lp_residual, z, a, sup)
  return z, sol.gap, sol.status, ok, cond


@_lp.defjvp
def _lp_jvp(support_tol, primals, tangents):
  a, rm, cm = primals
  da = tangents[0]
  z, sup, ok, sol = _lp_forward(a, rm, cm, support_tol)
  inv, cond = _linearisation(_lp_residual, z, a, sup)
  ok = ok & jnp.isfinite(cond)
  inv = jnp.where(jnp.isfinite(inv), inv, 0.0)
  # No derivative at a degenerate point: NaN in both modes (the input tangent and the output are scaled,
  # so every cotangent entry is NaN too), and the status says so.
  nan = jnp.where(ok, 1.0, jnp.nan).astype(z.dtype)
  dz = _implicit_tangent(_lp_residual, z, a, sup, da * nan, inv) * nan
  zero = lambda v: _zero_float0(v) if not jnp.issubdtype(v.dtype, jnp.floating) else jnp.zeros_like(v)
  return (z, sol.gap, sol.status, ok, cond), (dz, zero(sol.gap), zero(sol.status), zero(ok), zero(cond))


_lp_jit = jax.jit(_lp, static_argnums=(3,))


def zero_sum_equilibrium(game: Any, *, support_tol: Optional[float] = None,
                         max_condition: Optional[float] = None) -> ImplicitLP:
  r"""The exact (LP) equilibrium of a zero-sum game, differentiable where its active set is nondegenerate.

  Forward: ``exact.simplex_equilibrium`` (jit/vmap-able). With supports
  ``I = {x_i > tol}``, ``J = {y_j > tol}``, a nondegenerate equilibrium has
  ``|I| = |J|``, strict complementarity (``(A y)_i < v`` off ``I``,
  ``(x^T A)_j > v`` off ``J``) and a nonsingular bordered ``A_IJ``; then
  ``A_IJ y_J = v 1``, ``x_I^T A_IJ = v 1^T``, ``1^T x = 1^T y = 1`` is a square
  system whose root is locally unique and smooth in ``A`` (the equilibrium
  keeps its supports under small perturbations), and its implicit derivative
  is the derivative of the equilibrium. Elsewhere the equilibrium is not
  differentiable (supports switch, or it is not unique): ``status`` is
  ``DEGENERATE`` and the derivative NaN.

  Args:
    game: a ``MatrixGame``, an unregularised ``PreferenceGame`` (as ``P - 1/2``) or a payoff ``[n, m]``.
    support_tol: probability above which an action is in the support, and
      the complementarity margin (times ``max(1, max|A|)``); default ``sqrt(eps)``.
    max_condition: see ``nash_equilibrium``.

  Returns:
    ``ImplicitLP``.

  References:
    Shapley & Snow, "Basic solutions of discrete games", Ann. Math. Stud. 24,
    1950 (equilibria as square active-set systems); Mills, "Equilibrium
    points in finite games", J. SIAM 1960 (regularity); Dantzig 1951 (the LP).
  """
  from nashax.solvers.exact import _payoff_and_masks

  a, rm, cm = _payoff_and_masks(game, "zero_sum_equilibrium")
  if a.ndim != 2:
    raise ValueError(f"game: expected one payoff [n, m] (use jax.vmap for a batch), got shape {a.shape}")
  if not validate.traced(a):
    validate.finite_array(a, "game")
  if support_tol is None:
    support_tol = float(np.sqrt(np.finfo(a.dtype).eps))
  elif isinstance(support_tol, bool) or not np.isfinite(support_tol) or not 0 < support_tol < 1:
    raise ValueError(f"support_tol: must be in (0, 1), got {support_tol!r}")
  max_condition = _check_max_condition(max_condition, a.dtype)
  z, gap, lp_status, ok, cond = _lp_jit(a, rm, cm, float(support_tol))
  n, m = a.shape
  status = jnp.where(lp_status != SUCCESS, lp_status,
                     _status(True, True, cond, max_condition, ~ok | ~jnp.isfinite(cond))).astype(jnp.int32)
  return ImplicitLP(z[n + m], z[:n], z[n:n + m], gap, cond, status)
