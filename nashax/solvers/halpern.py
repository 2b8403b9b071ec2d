"""Anchored methods for monotone inclusions: Halpern, EAG, FEG and variance-reduced Halpern.

Every factory returns a ``Solver`` for the problem ``0 in F(z) + N_C(z)``. The
problem is an ``operators.Operator``, an ``operators.FiniteSumOperator`` or a
matrix / preference game (converted by ``operators.as_operator``; the
variance-reduced methods split a matrix game by rows). The state header is the
shared one (``step``, ``oracle_calls``, ``profile``, ``key``) plus ``z``, the
flat iterate, and ``anchor``, the point ``z_0`` every step pulls toward.
``profile`` is the game profile ``(x, y)`` for games, ``z`` otherwise, so
``nashax.solve`` stops on the duality gap for games and on the natural
residual ``|z - Pi_C(z - F z)|`` for operators.

Oracle calls are counted in component evaluations, as Cai, Alacaoglu &
Diakonikolas (2024) count them: a full ``F`` of a finite sum of ``n`` costs
``n``, a plain ``Operator`` (or game) counts 1 per evaluation of ``F``.

Starts are random unless ``x0`` is given: ``init_scale * N(0, I)`` projected
on ``C`` for operators, ``softmax(init_scale * N(0, I))`` per player for games.
Default step sizes come from the constants the operator states (``lipschitz``
or ``cocoercivity``); ``operators.check_constants`` tests those constants.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from nashax.core import _struct
from nashax.core import operators as ops
from nashax.core.games import MatrixGame, PreferenceGame
from nashax.core.solver import Solver
from nashax.solvers import _common as c

__all__ = [
    "forward_step",
    "resolvent_step",
    "halpern",
    "eag",
    "feg",
    "projected_extragradient",
    "vr_halpern",
    "vr_halpern_resolvent",
]


@_struct.dataclass
class OperatorState:
  """State of every solver in this module.

  Attributes:
    step: ``int32[]`` iterations done.
    oracle_calls: ``int32[]`` component evaluations (see the module docstring).
    profile: the game profile ``(x, y)`` of ``z`` for games, else ``z``.
    z: ``[d]`` the current iterate (the one the theorems bound).
    anchor: ``[d]`` the anchor ``z_0``.
    aux: method-specific arrays (a step size, a previous operator value, ...).
    key: PRNG key (stochastic methods).
  """

  step: jax.Array
  oracle_calls: jax.Array
  profile: Any
  z: jax.Array
  anchor: jax.Array
  aux: Any
  key: jax.Array


def _is_game(problem) -> bool:
  return isinstance(problem, (MatrixGame, PreferenceGame))


def _profile(problem, z):
  if _is_game(problem):
    n = problem.num_actions if isinstance(problem, PreferenceGame) else problem.payoff.shape[-2]
    return (z[:n], z[n:])
  return z


def _start(problem, op, key, x0, init_scale):
  """The starting point: ``x0`` projected, or a random point of ``C``."""
  con = op.constraint
  dtype = con.lower.dtype
  if x0 is not None:
    x0 = jnp.asarray(x0, dtype)
    if x0.shape != (con.dim,):
      raise ValueError(f"x0: expected shape ({con.dim},) for this problem, got {x0.shape}")
    return con.project(x0)
  if _is_game(problem):
    sizes = con.sizes
    masks = tuple(con.blocks(con.mask))
    logs = c.random_log_probs(key, sizes, masks, init_scale, dtype)
    z = jnp.concatenate([jnp.exp(lp) for lp in logs])
    return con.project(z)
  return con.project(init_scale * jax.random.normal(key, (con.dim,), dtype))


def _header(problem, op, key, hp, aux, calls=0):
  k_start, k_run = jax.random.split(key)
  z0 = _start(problem, op, k_start, hp.x0, hp.init_scale)
  return OperatorState(jnp.zeros((), jnp.int32), jnp.asarray(calls, jnp.int32), _profile(problem, z0), z0, z0,
                       aux(z0), k_run)


def _cost(problem) -> int:
  """Component evaluations of one full ``F``."""
  return problem.num_components if isinstance(problem, ops.FiniteSumOperator) else 1


def _advance(problem, state, z, aux, calls, key=None):
  return state.replace(step=state.step + 1, oracle_calls=state.oracle_calls + jnp.asarray(calls, jnp.int32),
                       profile=_profile(problem, z), z=z, aux=aux, key=state.key if key is None else key)


def _const(value, name, what):
  if value is None:
    raise ValueError(f"{name}: no default step size: the operator states no {what} constant; pass {name}")
  return value


def _opt(name, value, strict=True):
  return None if value is None else c.hparam(name, value, strict=strict)


def _point(x0):
  """A starting point: None, or a finite vector (checked when concrete)."""
  if x0 is None or isinstance(x0, jax.core.Tracer):
    return x0
  arr = jnp.asarray(x0)
  if arr.ndim != 1 or not bool(jnp.all(jnp.isfinite(arr))):
    raise ValueError(f"x0: must be a finite 1-D vector, got shape {arr.shape}")
  return arr


# ----------------------------------------------------------------------------- base maps


@_struct.dataclass
class BaseMap:
  """A nonexpansive map ``T`` built from an operator, for ``halpern``.

  Attributes:
    setup_fn: module-level ``(hparams, op) -> params`` (static), run once at init
      (step sizes from the operator's constants).
    apply_fn: module-level ``(params, op, z, warm, k) -> (T z, warm, calls)`` (static).
    hparams: pytree of its numbers.
    name: a label (static).
  """

  setup_fn: Callable = _struct.field(static=True)
  apply_fn: Callable = _struct.field(static=True)
  hparams: Any = None
  name: str = _struct.field(static=True, default="")


def _forward_setup(eta, op):
  return eta if eta is not None else 1.0 / _const(op.cocoercivity, "eta", "cocoercivity")


def _forward_apply(eta, op, z, warm, k):
  return op.constraint.project(z - eta * op(z)), warm, 1


def forward_step(eta: Any = None) -> BaseMap:
  """``T(z) = Pi_C(z - eta F(z))``: nonexpansive when ``F`` is ``1/L_c``-cocoercive and ``eta <= 2/L_c``.

  Args:
    eta: step size; default ``1/L_c`` from the operator's ``cocoercivity``.
  """
  return BaseMap(_forward_setup, _forward_apply, _opt("eta", eta), "forward")


@_struct.dataclass
class _ResolventParams:
  eta: Optional[jax.Array]
  inner_steps: jax.Array


def _resolvent_setup(hp, op):
  lip = op.lipschitz
  if hp.eta is None:
    eta = 0.5 / _const(lip, "eta", "Lipschitz")
    q = jnp.asarray(0.5, eta.dtype)
  else:
    eta = hp.eta
    q = jnp.asarray(0.5) if lip is None else jnp.clip(eta * lip, 1e-3, 0.99)
  return (eta, q, hp.inner_steps)


def _resolvent_apply(params, op, z, warm, k):
  eta, q, inner = params
  # v -> Pi_C(z - eta F(v)) contracts with factor q = eta L < 1; its fixed point is J(z).
  # Inner steps grow like log(k)/log(1/q) so the errors are summable against Halpern's 1/k.
  extra = jnp.ceil(2.0 * jnp.log(k.astype(z.dtype) + 2.0) / -jnp.log(q.astype(z.dtype))).astype(jnp.int32)
  m = inner.astype(jnp.int32) + extra
  v = jax.lax.fori_loop(0, m, lambda _, v: op.constraint.project(z - eta * op(v)), warm)
  return v, v, m


def resolvent_step(eta: Any = None, inner_steps: int = 10) -> BaseMap:
  """``T = J_{eta(F + N_C)}``, the resolvent, nonexpansive for any monotone ``F``.

  Computed inexactly by the contraction ``v <- Pi_C(z - eta F(v))`` (factor
  ``eta L``), warm-started at the previous output, for ``inner_steps +
  2 log(k+2)/log(1/(eta L))`` steps at outer step ``k`` (Diakonikolas 2020's
  inexact Halpern for monotone Lipschitz operators).

  Args:
    eta: resolvent parameter, ``< 1/L``; default ``1/(2L)`` from the operator's ``lipschitz``.
    inner_steps: inner steps at ``k = 0``.
  """
  if int(inner_steps) < 1:
    raise ValueError(f"inner_steps: must be >= 1, got {inner_steps}")
  return BaseMap(_resolvent_setup, _resolvent_apply,
                 _ResolventParams(_opt("eta", eta), jnp.asarray(int(inner_steps))), "resolvent")


# ----------------------------------------------------------------------------- Halpern


@_struct.dataclass
class _HalpernParams:
  base: BaseMap
  x0: Any
  init_scale: jax.Array


def _halpern_init(hp, problem, key):
  op = ops.as_operator(problem)
  params = hp.base.setup_fn(hp.base.hparams, op)
  return _header(problem, op, key, hp, lambda z0: (z0, jax.tree.map(lambda a: jnp.asarray(a, z0.dtype), params)))


def _halpern_step(hp, problem, state):
  op = ops.as_operator(problem, constants=False)
  k = state.step
  warm, params = state.aux
  tz, warm, calls = hp.base.apply_fn(params, op, state.z, warm, k)
  lam = 1.0 / (k.astype(state.z.dtype) + 2.0)
  z = lam * state.anchor + (1.0 - lam) * tz
  return _advance(problem, state, z, (warm, params), calls * _cost(problem))


def halpern(base: Optional[BaseMap] = None, *, x0: Any = None, init_scale: float = 1.0) -> Solver:
  """Halpern iteration ``z_{k+1} = z_0/(k+2) + (1 - 1/(k+2)) T(z_k)`` around a base map.

  A combinator: ``halpern(forward_step())`` for cocoercive operators,
  ``halpern(resolvent_step())`` (the default) for monotone Lipschitz ones.

  Args:
    base: the nonexpansive map ``T`` (default ``resolvent_step()``).
    x0: optional starting point (the anchor); default a random point of ``C``.
    init_scale: scale of the random start.

  Certifies:
    ``|z_k - T z_k| <= 2 |z_0 - z*| / (k + 1)`` for every ``k`` and every fixed
    point ``z*`` (tight). For ``T = Pi_C(I - eta F)`` the
    natural residual is ``|z - T z| / eta``.

  References:
    Halpern, "Fixed points of nonexpanding maps", Bull. AMS 73, 1967.
    Lieder, "On the convergence rate of the Halpern-iteration", Optim. Lett. 15, 2021, Thm 2.1.
    Diakonikolas, "Halpern iteration for near-optimal and parameter-free monotone
    inclusion and strong solutions to variational inequalities", COLT 2020.
  """
  base = resolvent_step() if base is None else base
  if not isinstance(base, BaseMap):
    raise ValueError(f"base: expected a BaseMap (forward_step() or resolvent_step()), got {type(base).__name__}")
  hp = _HalpernParams(base, _point(x0), c.hparam("init_scale", init_scale, strict=False))
  return Solver(_halpern_init, _halpern_step, hp, "halpern")


# ----------------------------------------------------------------------------- EAG


@_struct.dataclass
class _EAGParams:
  alpha: Optional[jax.Array]
  x0: Any
  init_scale: jax.Array
  variant: str = _struct.field(static=True, default="constant")


def _eag_alpha0(hp, op):
  if hp.alpha is not None:
    return hp.alpha
  lip = _const(op.lipschitz, "alpha", "Lipschitz")
  return (1.0 / (8.0 * lip)) if hp.variant == "constant" else (0.618 / lip)


def _eag_init(hp, problem, key):
  op = ops.as_operator(problem)
  lip = op.lipschitz if op.lipschitz is not None else jnp.zeros(())
  if hp.variant == "varying":
    lip = _const(op.lipschitz, "alpha", "Lipschitz")
  return _header(problem, op, key, hp,
                 lambda z0: (jnp.asarray(_eag_alpha0(hp, op), z0.dtype), jnp.asarray(lip, z0.dtype)))


def _eag_step(hp, problem, state):
  op = ops.as_operator(problem, constants=False)
  k = state.step.astype(state.z.dtype)
  beta = 1.0 / (k + 2.0)
  alpha, lip = state.aux
  z, z0, proj = state.z, state.anchor, op.constraint.project
  pull = z + beta * (z0 - z)
  half = proj(pull - alpha * op(z))
  new = proj(pull - alpha * op(half))
  if hp.variant == "varying":
    a2l2 = (alpha * lip) ** 2
    alpha = alpha * (1.0 - a2l2 / ((k + 1.0) * (k + 3.0) * (1.0 - a2l2)))
  return _advance(problem, state, new, (alpha, lip), 2 * _cost(problem))


def eag(alpha: Any = None, *, variant: str = "constant", x0: Any = None, init_scale: float = 1.0) -> Solver:
  """Extra-anchored gradient: an extragradient step pulled toward ``z_0`` by ``beta_k = 1/(k+2)``.

  ``z_{k+1/2} = Pi(z_k + beta_k(z_0 - z_k) - alpha_k F z_k)``,
  ``z_{k+1} = Pi(z_k + beta_k(z_0 - z_k) - alpha_k F z_{k+1/2})`` (``Pi`` is the
  identity without constraints, Yoon & Ryu's method; with constraints the
  projected form of Cai, Oikonomou & Zheng 2022).

  Args:
    alpha: step size; default ``1/(8L)`` (EAG-C) or ``alpha_0 = 0.618/L`` (EAG-V).
    variant: ``"constant"`` (EAG-C) or ``"varying"`` (EAG-V: ``alpha_{k+1} =
      alpha_k (1 - alpha_k^2 L^2 / ((k+1)(k+3)(1 - alpha_k^2 L^2)))``).
    x0: optional start; init_scale: scale of the random start.

  Certifies:
    EAG-C: ``|F z_k|^2 <= 4(1 + aL + a^2L^2)/(a^2(1 + aL)) |z_0 - z*|^2/(k+1)^2``;
    EAG-V: ``|F z_k|^2 <= 4(1 + a_0 a_inf L^2)/a_inf^2 |z_0 - z*|^2/((k+1)(k+2))``
    (unconstrained, monotone L-Lipschitz ``F``).

  References:
    Yoon & Ryu, "Accelerated algorithms for smooth convex-concave minimax
    problems with O(1/k^2) rate on squared gradient norm", ICML 2021, arXiv 2102.07922.
    Cai, Oikonomou & Zheng, "Accelerated algorithms for constrained
    nonconvex-nonconcave min-max optimization and comonotone inclusion", arXiv 2206.05248.
  """
  c.check_option("variant", variant, ("constant", "varying"))
  hp = _EAGParams(_opt("alpha", alpha), _point(x0), c.hparam("init_scale", init_scale, strict=False), variant)
  return Solver(_eag_init, _eag_step, hp, f"eag_{variant}")


# ----------------------------------------------------------------------------- FEG


@_struct.dataclass
class _FEGParams:
  lipschitz: Optional[jax.Array]
  rho: jax.Array
  x0: Any
  init_scale: jax.Array


def _feg_init(hp, problem, key):
  op = ops.as_operator(problem)
  lip = hp.lipschitz if hp.lipschitz is not None else _const(op.lipschitz, "lipschitz", "Lipschitz")
  return _header(problem, op, key, hp, lambda z0: jnp.asarray(lip, z0.dtype))


def _feg_step(hp, problem, state):
  op = ops.as_operator(problem, constants=False)
  beta = 1.0 / (state.step.astype(state.z.dtype) + 1.0)
  inv_l, rho = 1.0 / state.aux, hp.rho
  z, z0, proj = state.z, state.anchor, op.constraint.project
  fz = op(z)
  pull = z + beta * (z0 - z)
  w = proj(pull - (1.0 - beta) * (inv_l + 2.0 * rho) * fz)
  new = proj(pull - inv_l * op(w) - (1.0 - beta) * 2.0 * rho * fz)
  return _advance(problem, state, new, state.aux, 2 * _cost(problem))


def feg(lipschitz: Any = None, rho: Any = 0.0, *, x0: Any = None, init_scale: float = 1.0) -> Solver:
  """Fast extragradient for ``L``-Lipschitz, ``rho``-comonotone ``F`` (``rho > -1/(2L)``).

  With ``beta_k = 1/(k+1)``: ``w_k = z_k + beta_k(z_0 - z_k) - (1-beta_k)(1/L + 2 rho) F z_k``,
  ``z_{k+1} = z_k + beta_k(z_0 - z_k) - F(w_k)/L - (1-beta_k) 2 rho F z_k``
  (projected onto ``C`` when there is one).

  Args:
    lipschitz: ``L``; default the operator's ``lipschitz``.
    rho: comonotonicity (0 for monotone; negative allowed down to ``-1/(2L)``).
    x0: optional start; init_scale: scale of the random start.

  Certifies:
    ``|F z_k|^2 <= 4 |z_0 - z*|^2 / ((1/L + 2 rho)^2 k^2)`` for ``k >= 1``
    (unconstrained), 4x the lower bound at ``rho = 0``.

  References:
    Lee & Kim, "Fast extra gradient methods for smooth structured
    nonconvex-nonconcave minimax problems", NeurIPS 2021, arXiv 2106.02326.
  """
  rho_arr = jnp.asarray(rho)
  if not isinstance(rho, jax.core.Tracer) and not math.isfinite(float(rho)):
    raise ValueError(f"rho: must be finite, got {rho}")
  lip = _opt("lipschitz", lipschitz)
  if lip is not None and not isinstance(lip, jax.core.Tracer) and not isinstance(rho, jax.core.Tracer):
    if float(rho) <= -0.5 / float(lip):
      raise ValueError(f"rho: must be > -1/(2L) = {-0.5 / float(lip):.4g}, got {rho}")
  hp = _FEGParams(lip, rho_arr, _point(x0), c.hparam("init_scale", init_scale, strict=False))
  return Solver(_feg_init, _feg_step, hp, "feg")


# ----------------------------------------------------------------------------- EG (operator form)


@_struct.dataclass
class _EGParams:
  eta: Optional[jax.Array]
  x0: Any
  init_scale: jax.Array


def _eg_init(hp, problem, key):
  op = ops.as_operator(problem)
  eta = hp.eta if hp.eta is not None else 0.5 / _const(op.lipschitz, "eta", "Lipschitz")
  return _header(problem, op, key, hp, lambda z0: jnp.asarray(eta, z0.dtype))


def _eg_step(hp, problem, state):
  op = ops.as_operator(problem, constants=False)
  proj, eta, z = op.constraint.project, state.aux, state.z
  half = proj(z - eta * op(z))
  new = proj(z - eta * op(half))
  return _advance(problem, state, new, eta, 2 * _cost(problem))


def projected_extragradient(eta: Any = None, *, x0: Any = None, init_scale: float = 1.0) -> Solver:
  """Korpelevich's extragradient on an operator: ``z+ = Pi(z - eta F(Pi(z - eta F z)))`` (last iterate).

  The baseline the anchored methods improve on (no anchor). On a matrix game it
  is ``solvers.extragradient(eta, geometry="euclidean", iterate="last")`` step
  for step (a test checks it); this form takes any operator and finite sum.

  Args:
    eta: step size, ``< 1/L``; default ``1/(2L)``.
    x0: optional start; init_scale: scale of the random start.

  Certifies:
    last-iterate ``|F z_k| = O(1/sqrt(k))`` (Gorbunov, Loizou & Gidel 2022), against
    ``O(1/k)`` for EAG/FEG.

  References:
    Korpelevich, "The extragradient method for finding saddle points and other
    problems", Matecon 12, 1976.
    Gorbunov, Loizou & Gidel, "Extragradient method: O(1/K) last-iterate convergence
    for monotone variational inequalities and connections with cocoercivity", AISTATS 2022.
  """
  hp = _EGParams(_opt("eta", eta), _point(x0), c.hparam("init_scale", init_scale, strict=False))
  return Solver(_eg_init, _eg_step, hp, "projected_extragradient")


# ----------------------------------------------------------------------------- VR-Halpern (cocoercive)


@_struct.dataclass
class _VRParams:
  eta: Optional[jax.Array]
  batch_size: Optional[int] = _struct.field(static=True, default=None)
  x0: Any = None
  init_scale: Any = 1.0


def _batch(n, batch_size):
  return max(1, int(math.isqrt(n))) if batch_size is None else int(batch_size)


def _vr_init(hp, problem, key):
  fs = ops.as_finite_sum(problem)
  eta = hp.eta if hp.eta is not None else 0.5 / _const(fs.cocoercivity, "eta", "average cocoercivity")
  state = _header(problem, fs.full(), key, hp, lambda z0: (fs(z0), jnp.asarray(eta, z0.dtype)),
                  calls=fs.num_components)
  return state


def _vr_step(hp, problem, state):
  fs = ops.as_finite_sum(problem)
  n = fs.num_components
  b = _batch(n, hp.batch_size)
  k = state.step.astype(state.z.dtype)
  est, eta = state.aux
  lam = 2.0 / (k + 4.0)
  z = fs.constraint.project(lam * state.anchor + (1.0 - lam) * state.z - eta * est)
  # PAGE estimator for the new point: a full pass with probability p_{k+1}, else a
  # minibatch correction of the old estimate.
  kn = k + 1.0
  p = jnp.where(kn <= 1.0, 1.0, jnp.maximum(4.0 / (kn + 4.0), 4.0 / (math.sqrt(n) + 5.0)))
  key, k_coin, k_idx = jax.random.split(state.key, 3)
  full = jax.random.uniform(k_coin, (), z.dtype) < p
  idx = jax.random.randint(k_idx, (b,), 0, n)
  new_est = jax.lax.cond(full, lambda: fs(z), lambda: est + fs.batch_difference(idx, z, state.z))
  calls = jnp.where(full, n, 2 * b)
  return _advance(problem, state, z, (new_est, eta), calls, key)


def vr_halpern(eta: Any = None, *, batch_size: Optional[int] = None, x0: Any = None,
               init_scale: float = 1.0) -> Solver:
  """Variance-reduced Halpern for finite sums that are cocoercive on average (Algorithm 1).

  ``z_{k+1} = Pi_C(lambda_k z_0 + (1 - lambda_k) z_k - eta Ft_k)`` with ``lambda_k = 2/(k+4)``
  and the PAGE estimator ``Ft_k``: ``F(z_k)`` (``n`` calls) with probability
  ``p_k`` (1 for ``k <= 1``, then ``max(4/(k+4), 4/(sqrt(n)+5))``), else
  ``Ft_{k-1} + (1/b) sum_{i in S_k} (F_i(z_k) - F_i(z_{k-1}))`` (``2b`` calls,
  ``b = floor(sqrt(n))``; indices drawn with replacement).

  Args:
    eta: step size; default ``1/(2L)`` with ``L`` the average cocoercivity.
    batch_size: ``b`` (static); default ``floor(sqrt(n))``.
    x0: optional start; init_scale: scale of the random start.

  Certifies:
    ``E|F z_k| <= eps`` after ``O(n + sqrt(n) L / eps)`` component evaluations
    (last iterate).

  References:
    Cai, Alacaoglu & Diakonikolas, "Variance reduced Halpern iteration for
    finite-sum monotone inclusions", ICLR 2024, arXiv 2310.02987, Alg. 1;
    authors' code github.com/zephyr-cai/Finite-Sum-Halpern-Iteration.
    Li, Bao, Zhang & Richtarik, "PAGE: a simple and optimal probabilistic gradient
    estimator for nonconvex optimization", ICML 2021.
  """
  if batch_size is not None and int(batch_size) < 1:
    raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
  hp = _VRParams(_opt("eta", eta), batch_size, _point(x0), c.hparam("init_scale", init_scale, strict=False))
  return Solver(_vr_init, _vr_step, hp, "vr_halpern")


# ----------------------------------------------------------------------------- VR-Halpern (monotone Lipschitz)


@_struct.dataclass
class _VRResParams:
  scale: Optional[jax.Array]
  inner_factor: jax.Array
  gamma: jax.Array
  x0: Any = None
  init_scale: Any = 1.0
  batch_size: Optional[int] = _struct.field(static=True, default=None)


def _vrr_init(hp, problem, key):
  fs = ops.as_finite_sum(problem)
  n = fs.num_components
  lip = _const(fs.lipschitz, "scale", "average Lipschitz")
  cpar = hp.scale if hp.scale is not None else math.sqrt(n) / lip
  return _header(problem, fs.full(), key, hp,
                 lambda z0: (z0, jnp.asarray(cpar, z0.dtype), jnp.asarray(lip, z0.dtype)))


def _vrr_inner_step(fs, u, cpar, tau, p, b, carry):
  """One EG-VR step on ``Psi_i(v) = c F_i(v) + v - u``: a minibatch of ``b`` i.i.d. indices in one ``vmap``.

  ``carry = (t, v, w, psi_w, key, calls)``; the snapshot ``w`` is refreshed with
  probability ``p`` (``n`` calls). With ``b = 1`` this is the sequential
  loopless-SVRG extragradient step, draw for draw.
  """
  n = fs.num_components
  proj = fs.constraint.project
  t, v, w, psi_w, key, calls = carry
  key, k_i, k_coin = jax.random.split(key, 3)
  vbar = (1.0 - p) * v + p * w
  half = proj(vbar - tau * psi_w)
  idx = jax.random.randint(k_i, (b,), 0, n)
  corr = cpar * fs.batch_difference(idx, half, w) + (half - w)
  v_new = proj(vbar - tau * (psi_w + corr))
  snap = jax.random.uniform(k_coin, (), v.dtype) < p
  w_new = jnp.where(snap, v_new, w)
  psi_new = jax.lax.cond(snap, lambda: cpar * fs(v_new) + v_new - u, lambda: psi_w)
  return t + 1, v_new, w_new, psi_new, key, calls + 2 * b + jnp.where(snap, n, 0)


def _vrr_step(hp, problem, state):
  """One outer Halpern step on the resolvent J_{c(F + N_C)}, computed by loopless-SVRG extragradient."""
  fs = ops.as_finite_sum(problem)
  n = fs.num_components
  b = max(1, math.isqrt(n)) if hp.batch_size is None else min(int(hp.batch_size), n)
  warm, cpar, lip = state.aux
  u, dtype = state.z, state.z.dtype
  # Inner problem: 0 in Psi(v) + N_C(v), Psi_i(v) = c F_i(v) + v - u: 1-strongly monotone,
  # average-Lipschitz c L + 1. EG-VR parameters with minibatches of b: snapshot probability
  # p = b/n (a full pass costs what 1/p minibatches cost), alpha = 1 - p, tau = sqrt(p) gamma / L_Psi
  # (Alacaoglu & Malitsky 2022, with L_Psi bounding the minibatch estimator's Lipschitz constant too).
  p = b / n
  l_psi = cpar * lip + 1.0
  tau = math.sqrt(p) * hp.gamma / l_psi
  k = state.step.astype(dtype)
  # inner_factor * log(k+2) expected snapshot epochs of n/b steps: the same component work for every b.
  m = jnp.ceil(hp.inner_factor * (n / b) * jnp.log(k + 2.0)).astype(jnp.int32)
  key, k_inner = jax.random.split(state.key)
  init = (jnp.zeros((), jnp.int32), warm, warm, cpar * fs(warm) + warm - u, k_inner, jnp.asarray(n, jnp.int32))
  _, v, _, _, _, calls = jax.lax.while_loop(
      lambda cr: cr[0] < m, lambda cr: _vrr_inner_step(fs, u, cpar, tau, p, b, cr), init)
  lam = 1.0 / (k + 2.0)
  z = lam * state.anchor + (1.0 - lam) * v
  return _advance(problem, state, z, (v, cpar, lip), calls, key)


def vr_halpern_resolvent(scale: Any = None, *, inner_factor: float = 1.0, gamma: float = 0.5,
                         batch_size: Optional[int] = None, x0: Any = None, init_scale: float = 1.0) -> Solver:
  """Variance-reduced inexact Halpern for monotone Lipschitz finite sums (Algorithm 2).

  Outer: ``u_{k+1} = u_0/(k+2) + (1 - 1/(k+2)) Jt_k`` with ``Jt_k`` approximating
  the resolvent ``J_{c(F + N_C)}(u_k)``. Inner: the strongly monotone problem
  ``0 in c F(v) + v - u_k + N_C(v)`` solved by loopless-SVRG extragradient
  (EG-VR; the paper uses VR-FoRB of the same family), warm-started, for
  ``ceil(inner_factor * n * log(k+2))`` steps (the authors' code uses
  ``0.05 n log(k+2)`` VR-FoRB steps; EG-VR's step ``sqrt(p) gamma / L_Psi`` is
  smaller, so the factor is larger).

  Args:
    scale: resolvent parameter ``c``; default ``sqrt(n)/L`` (``L`` average Lipschitz).
    inner_factor: inner steps per ``n log(k+2)``.
    gamma: EG-VR step factor in (0, 1).
    batch_size: ``b`` (static), components per inner step, evaluated in one
      ``vmap``; the snapshot probability is ``b/n`` and the step ``sqrt(b/n)
      gamma / L_Psi``, for ``inner_factor (n/b) log(k+2)`` inner steps (the same
      expected component work as ``b = 1``, the sequential method). Default
      ``floor(sqrt(n))``: the same evaluations to 1e-3 on ``bench_halpern``'s
      bilinear sum at ``n = 1000`` as ``b = 1``, in 1/7.5 of the wall time.
    x0: optional start; init_scale: scale of the random start.

  Certifies:
    last-iterate residual ``eps`` after ``O~(n + sqrt(n) L / eps)`` component
    evaluations.

  References:
    Cai, Alacaoglu & Diakonikolas, "Variance reduced Halpern iteration for
    finite-sum monotone inclusions", ICLR 2024, arXiv 2310.02987, Alg. 2-3.
    Alacaoglu & Malitsky, "Stochastic variance reduction for variational
    inequality methods", COLT 2022 (EG-VR, loopless SVRG).
  """
  if not 0 < float(gamma) < 1:
    raise ValueError(f"gamma: must be in (0, 1), got {gamma}")
  if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1):
    raise ValueError(f"batch_size: must be a positive integer, got {batch_size!r}")
  hp = _VRResParams(_opt("scale", scale), c.hparam("inner_factor", inner_factor), jnp.asarray(float(gamma)),
                    _point(x0), c.hparam("init_scale", init_scale, strict=False),
                    None if batch_size is None else int(batch_size))
  return Solver(_vrr_init, _vrr_step, hp, "vr_halpern_resolvent")
