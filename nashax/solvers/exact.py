"""Exact equilibria of zero-sum matrix games by linear programming.

The reference every solver is tested against. The LPs run in numpy/scipy
(HiGHS), outside jit, one game at a time; batched inputs are solved in a
Python loop. The regularised Nash equilibrium of a preference game (no LP:
a smooth fixed point) is computed in jitted JAX and certified by its gap.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

from nashax.core import metrics as metrics_lib
from nashax.core import simplex
from nashax.core import validate
from nashax.core.games import MatrixGame, PreferenceGame

__all__ = ["ExactSolution", "solve_lp", "exact_equilibrium", "von_neumann_winner"]


class ExactSolution(NamedTuple):
  """Value and optimal strategies of a zero-sum game (numpy float64).

  Attributes:
    value: ``[...]`` the game value ``max_x min_y x^T A y``.
    x: ``[..., n]`` an optimal (maximin) row strategy.
    y: ``[..., m]`` an optimal (minimax) column strategy.
  """

  value: np.ndarray
  x: np.ndarray
  y: np.ndarray


def _maximin(a: np.ndarray) -> tuple[float, np.ndarray]:
  """max_x min_j (x^T A)_j as an LP over (x, v)."""
  n, m = a.shape
  c = np.zeros(n + 1)
  c[-1] = -1.0
  a_ub = np.hstack([-a.T, np.ones((m, 1))])
  a_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
  res = optimize.linprog(
      c, A_ub=a_ub, b_ub=np.zeros(m), A_eq=a_eq, b_eq=[1.0],
      bounds=[(0, None)] * n + [(None, None)], method="highs",
  )
  if res.status != 0:
    raise RuntimeError(f"linprog failed: {res.message}")
  x = np.clip(res.x[:n], 0.0, None)
  return float(res.x[-1]), x / x.sum()


def solve_lp(payoff: Any) -> ExactSolution:
  """Value and optimal strategies of the zero-sum game ``x^T A y`` (row maximises).

  Args:
    payoff: ``[..., n, m]`` finite payoffs; leading axes are solved one by one.

  Returns:
    ``ExactSolution`` in float64; ``x`` maximin, ``y`` minimax.

  References:
    von Neumann, "Zur Theorie der Gesellschaftsspiele", Math. Ann. 100, 1928;
    Dantzig, "A proof of the equivalence of the programming problem and the
    game problem", 1951 (the LP formulation).

  >>> sol = solve_lp([[1., -1.], [-1., 1.]])
  >>> round(float(sol.value), 9) + 0.0, sol.x.round(6).tolist(), sol.y.round(6).tolist()
  (0.0, [0.5, 0.5], [0.5, 0.5])
  """
  a = np.asarray(payoff, np.float64)
  if a.ndim > 2:
    sols = [solve_lp(ai) for ai in a.reshape((-1,) + a.shape[-2:])]
    lead = a.shape[:-2]
    return ExactSolution(
        np.array([s.value for s in sols]).reshape(lead),
        np.stack([s.x for s in sols]).reshape(lead + (a.shape[-2],)),
        np.stack([s.y for s in sols]).reshape(lead + (a.shape[-1],)),
    )
  a = validate.payoff_matrix(a, "payoff")
  v, x = _maximin(a)
  _, y = _maximin(-a.T)
  return ExactSolution(np.float64(v), x, y)


def _masked(game: MatrixGame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  a = np.asarray(game.payoff, np.float64)
  rm = np.ones(a.shape[-2], bool) if game.row_mask is None else np.asarray(game.row_mask, bool)
  cm = np.ones(a.shape[-1], bool) if game.col_mask is None else np.asarray(game.col_mask, bool)
  return a, rm, cm


def exact_equilibrium(game: Any) -> ExactSolution:
  """The LP equilibrium of one (possibly padded) zero-sum game.

  Args:
    game: a ``MatrixGame`` or an unregularised ``PreferenceGame`` (solved as
      ``P - 1/2``), unbatched.

  Returns:
    ``ExactSolution``; padding actions get probability 0.
  """
  if isinstance(game, PreferenceGame):
    if game.is_regularized:
      raise ValueError("game: exact_equilibrium solves unregularised games (the LP); got beta set")
    game = game.as_matrix_game()
  if not isinstance(game, MatrixGame):
    raise ValueError(f"game: expected a MatrixGame or PreferenceGame, got {type(game).__name__}")
  a, rm, cm = _masked(game)
  if a.ndim != 2:
    raise ValueError(f"game: expected one game, got a batch with payoff shape {a.shape}")
  sol = solve_lp(a[np.ix_(rm, cm)])
  x = np.zeros(a.shape[0]); x[rm] = sol.x
  y = np.zeros(a.shape[1]); y[cm] = sol.y
  return ExactSolution(sol.value, x, y)


def von_neumann_winner(preference: Any) -> np.ndarray:
  """The minimax (von Neumann) winner of a preference matrix: ``argmax_p min_q p^T P q``.

  Args:
    preference: ``[n, n]`` with ``P + P^T = 1``.

  Returns:
    ``[n]`` a distribution ``p`` with ``p^T P q >= 1/2`` for every ``q``.

  >>> von_neumann_winner([[0.5, 0.9], [0.1, 0.5]]).round(6).tolist()
  [1.0, 0.0]
  """
  p = validate.preference_matrix(preference, "preference")
  return solve_lp(p - 0.5).x


class RegularizedNash(NamedTuple):
  """The regularised Nash equilibrium of a (contextual) preference game, certified.

  Attributes:
    policy: ``[..., n]`` the fixed point of ``pi = softmax(log pi_ref + P pi / beta)``.
    gap: ``[]`` its exact duality gap (the certificate; ~1e-12 in float64).
    steps: ``int32[]`` mirror-prox steps taken before the Newton polish.
  """

  policy: Any
  gap: Any
  steps: Any


def regularized_nash(game: Any, *, tol: float = None, max_steps: int = 100_000) -> RegularizedNash:
  r"""The unique equilibrium ``pi*_beta`` of a KL-regularised preference game, to a certified gap.

  ``nashax.solve`` of ``nlhf.egpo`` (mirror-prox, linear rate
  ``1 - eta beta`` with ``eta = 1 / (beta + 1)``) runs until the exact gap is
  below ``1e-4``; Newton steps on ``u = log pi_ref + P softmax(u) / beta``
  then polish the fixed point (each accepted only if the gap decreases);
  should that fall short of ``tol``, mirror-prox is run to ``tol`` directly.
  jit/vmap-able; ``tol`` and ``max_steps`` are checked at the boundary.

  Args:
    game: a regularised ``PreferenceGame`` or ``ContextualPreferenceGame``.
    tol: gap to reach (default: 1e-12 in float64, 1e-6 in float32).
    max_steps: mirror-prox budget.

  Returns:
    ``RegularizedNash``; ``gap <= tol`` unless the budget ran out (check it).

  References:
    Munos et al. 2024, Prop. 1 (existence and uniqueness); THEORY.md section 0.
  """
  if not getattr(game, "is_regularized", False):
    raise ValueError("game: regularized_nash needs a KL-regularised preference game (game.regularized(beta))")
  if tol is None:
    tol = 1e-12 if game.preference.dtype == jnp.float64 else 1e-6
  if not np.isfinite(tol) or tol <= 0:
    raise ValueError(f"tol: must be finite and > 0, got {tol}")
  if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 1:
    raise ValueError(f"max_steps: must be a positive integer, got {max_steps!r}")
  return _regularized_nash(game, float(tol), int(max_steps))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _regularized_nash(game: Any, tol: float, max_steps: int) -> RegularizedNash:
  from nashax.core.solver import _solve
  from nashax.solvers import nlhf

  p, lr, beta, mask = game.preference, game.log_ref, game.beta, game.action_mask
  n = p.shape[-1]
  eta = 1.0 / (beta + 1.0)
  egpo = nlhf.egpo(eta, init_scale=0.0)  # mirror-prox from the uniform policy, linear rate 1 - eta beta
  gap = lambda lp: metrics_lib.preference_gap(game, jnp.exp(lp))
  norm = lambda x: simplex.masked_log_softmax(x, mask)
  zlr = lr if mask is None else jnp.where(mask, lr, 0.0)

  def newton(lp):
    """One Newton step on F(u) = u - log ref - P softmax(u) / beta = 0, from u = log ref + P pi / beta."""
    u = lr + metrics_lib._win_rates(p, jnp.exp(lp)) / beta
    u = u if mask is None else jnp.where(mask, u, 0.0)
    pi = jnp.exp(norm(u))
    f = u - zlr - metrics_lib._win_rates(p, pi) / beta
    eye = jnp.broadcast_to(jnp.eye(n, dtype=p.dtype), p.shape)
    jac_s = pi[..., :, None] * (eye - pi[..., None, :])  # d softmax / d u
    jm = eye - jnp.einsum("...ij,...jk->...ik", p, jac_s) / beta
    if mask is not None:
      f = jnp.where(mask, f, 0.0)
      jm = jnp.where(mask[..., :, None] & mask[..., None, :], jm, eye)
    return norm(u - jnp.linalg.solve(jm, f[..., None])[..., 0])

  key = jax.random.key(0)
  state, info = _solve(egpo, game, key, tol=max(tol, 1e-4), max_steps=max_steps, check_every=1)
  lp = state.log_probs
  for _ in range(8):
    cand = newton(lp)
    ok = jnp.isfinite(gap(cand)) & (gap(cand) < gap(lp))
    lp = jnp.where(ok, cand, lp)
  # If the polish fell short of tol (it converges quadratically from 1e-4, so rarely), solve to tol directly.
  def direct(lp):
    st, di = _solve(egpo, game, key, tol=tol, max_steps=max_steps, check_every=1)
    better = di.residual < gap(lp)
    return jnp.where(better, st.log_probs, lp), jnp.where(better, di.num_steps, 0)

  lp, extra = jax.lax.cond(gap(lp) > tol, direct, lambda lp: (lp, jnp.zeros((), jnp.int32)), lp)
  return RegularizedNash(jnp.exp(lp), gap(lp), info.num_steps + extra)


def minimax_winners(game: Any) -> np.ndarray:
  """The von Neumann winner of every prompt of an unregularised (contextual) preference game (LP).

  Args:
    game: ``PreferenceGame`` or ``ContextualPreferenceGame`` (its ``beta`` is ignored).

  Returns:
    ``[n]`` or ``[x, n]`` float64 distributions; padding actions get 0.
  """
  from nashax.core.games import ContextualPreferenceGame

  if isinstance(game, ContextualPreferenceGame):
    return np.stack([minimax_winners(game.prompt(i).replace(beta=None, log_ref=None))
                     for i in range(game.num_prompts)])
  if not isinstance(game, PreferenceGame):
    raise ValueError(f"game: expected a preference game, got {type(game).__name__}")
  return exact_equilibrium(game.replace(beta=None, log_ref=None)).x


__all__ += ["RegularizedNash", "regularized_nash", "minimax_winners"]
