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


def _maximin(a: np.ndarray, duals: bool = False):
  """max_x min_j (x^T A)_j as an LP over (x, v); with ``duals``, also y from the column constraints' duals."""
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
  if duals:
    y = np.clip(-res.ineqlin.marginals, 0.0, None)
    return float(res.x[-1]), x / x.sum(), y / y.sum()
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


def _unregularised(game: Any, who: str) -> Any:
  """A preference game as its zero-sum ``P - 1/2``; a regularised one is refused (the LP ignores beta)."""
  if isinstance(game, PreferenceGame):
    if game.is_regularized:
      raise ValueError(f"game: {who} solves unregularised games (the LP); got beta set")
    game = game.as_matrix_game()
  return game


def exact_equilibrium(game: Any) -> ExactSolution:
  """The LP equilibrium of one (possibly padded) zero-sum game.

  Args:
    game: a ``MatrixGame`` or an unregularised ``PreferenceGame`` (solved as
      ``P - 1/2``), unbatched.

  Returns:
    ``ExactSolution``; padding actions get probability 0.
  """
  game = _unregularised(game, "exact_equilibrium")
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
    Munos et al. 2024, Prop. 1 (existence and uniqueness).
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


# --------------------------------------------------------------------------
# The simplex method in JAX: exact equilibria inside jit/vmap.
# --------------------------------------------------------------------------


class SimplexSolution(NamedTuple):
  """An exact equilibrium found by pivoting, with its certificate.

  Attributes:
    value: ``[...]`` the game value ``max_x min_y x^T A y``.
    x: ``[..., n]`` an optimal (maximin) row strategy; 0 on padding actions.
    y: ``[..., m]`` an optimal (minimax) column strategy; 0 on padding actions.
    gap: ``[...]`` the exact duality gap of ``(x, y)`` (the certificate:
      ~1e-13 in float64 when ``status`` is SUCCESS; float32 gives ~1e-4).
    pivots: ``int32[...]`` simplex pivots taken.
    status: ``int32[...]``: ``SUCCESS`` (an optimal basis whose value is
      finite and whose gap is within ``eps^(1/3)`` of the payoff range),
      ``MAX_STEPS`` (the pivot budget ran out, or round-off left the basis
      uncertified) or ``NONFINITE`` (NaN/inf payoffs, or subnormal payoffs
      under jit, which XLA's CPU arithmetic flushes to zero; then ``value``,
      ``x``, ``y`` and ``gap`` are NaN); the codes of ``nashax.solve``.
  """

  value: Any
  x: Any
  y: Any
  gap: Any
  pivots: Any
  status: Any


def _payoff_and_masks(game, where: str):
  """``(payoff, row_mask, col_mask)`` of a matrix game, a plain payoff array or an unregularised preference
  game (as its zero-sum game ``P - 1/2``); integer payoffs become floats."""
  game = _unregularised(game, where)
  if isinstance(game, MatrixGame):
    a, rm, cm = game.payoff, game.row_mask, game.col_mask
  else:
    a, rm, cm = jnp.asarray(game), None, None
  if not jnp.issubdtype(a.dtype, jnp.floating):
    a = a.astype(jnp.result_type(float))
  return a, rm, cm


def simplex_equilibrium(game: Any, *, max_pivots: int | None = None, chunk: int | None = None) -> SimplexSolution:
  r"""Exact equilibria of zero-sum games by the simplex method, jit/vmap-able.

  The reference LP (``solve_lp``) runs in scipy, one game at a time, outside
  jit. This is the same LP solved in JAX, so that thousands of games are
  solved exactly in one compiled call, on any device, inside ``vmap`` or
  ``jit``. With ``A' = (A - min A) / (max A - min A) + 1 > 0`` the column
  player's LP is ``max 1^T w  s.t.  A' w <= 1, w >= 0``, whose slack basis is
  feasible: no phase one. Each pivot of the condensed (Tucker) tableau is one
  rank-one update. The entering column maximises ``d_j^2 / ||a_j||^2`` over
  the negative reduced costs ``d_j``, with the column norms of the first
  tableau (Dantzig's rule on scaled columns: on random 32x32 games ~32 pivots
  against ~38 for the plain rule; exact steepest edge takes ~26 but its norms
  cost as much as the pivot); the leaving row comes from the ratio test, ties to the
  smallest label. After ``2 (n + m)`` pivots the rule switches to Bland's
  (smallest eligible label), which cannot cycle.
  Each game is first multiplied by the power of two ``2^k`` that brings
  ``max |A|`` into ``[1, 2)`` (exact, so a range such as float32's +-3e38,
  whose width overflows, is solved; concrete subnormal payoffs are scaled in
  NumPy before the call), and the value and gap are scaled back.
  At the optimum ``y = w / 1^T w``, ``x`` is the slacks' dual over its sum and
  ``v = (1 / 1^T w - 1) (max A - min A) + min A``. The returned ``gap`` is
  recomputed from ``(x, y)`` and the original payoff: it certifies the answer
  whatever the arithmetic did.

  A batch (leading axes on the payoff) is solved in chunks of ``chunk``
  games that pivot together (``lax.map`` over chunks of a ``vmap``): a game
  that needs many pivots holds back only its own chunk.

  Args:
    game: a ``MatrixGame`` (masks respected), an unregularised
      ``PreferenceGame`` (solved as ``P - 1/2``) or a payoff array
      ``[..., n, m]``.
    max_pivots: pivot budget per game (default ``20 (n + m)``).
    chunk: games pivoting together, for batched input (default: 8 on a CPU,
      where small chunks wait least for their slowest game; 4096 on an
      accelerator, where each loop iteration has a fixed launch cost).

  Returns:
    ``SimplexSolution`` in the payoff's dtype (enable x64 for ~1e-13 gaps).

  Raises:
    ValueError: for concrete non-finite payoffs, a regularised game, or a bad
      ``max_pivots`` / ``chunk``. Under jit, NaN payoffs (or a traced mask
      that leaves a player no legal action) give ``NONFINITE`` and NaN outputs.

  References:
    Dantzig, "A proof of the equivalence of the programming problem and the
    game problem", 1951; Tucker's condensed tableau and the pivot method for
    games (Ferguson, *Game Theory*, 2nd ed., II.4.5); Goldfarb & Reid 1977
    (steepest edge); Bland 1977 (finite pivoting rule).

  >>> import jax.numpy as jnp
  >>> sol = simplex_equilibrium(jnp.array([[0., -1., 1.], [1., 0., -1.], [-1., 1., 0.]]))
  >>> int(sol.status), round(float(sol.value), 6) + 0.0, sol.x.round(6).tolist()
  (0, 0.0, [0.333333, 0.333333, 0.333333])
  """
  a, rm, cm = _payoff_and_masks(game, "simplex_equilibrium")
  if a.ndim < 2 or min(a.shape[-2:]) < 1:
    raise ValueError(f"game: expected a payoff of shape [..., n, m] with n, m >= 1, got {a.shape}")
  if not validate.traced(a):
    validate.finite_array(a, "game")
    for mask, who in ((rm, "row_mask"), (cm, "col_mask")):
      if mask is not None and not validate.traced(mask) and not np.asarray(mask).any(-1).all():
        raise ValueError(f"game.{who}: every game needs at least one legal action for each player")
  n, m = a.shape[-2:]
  if max_pivots is None:
    max_pivots = 20 * (n + m)
  if isinstance(max_pivots, bool) or int(max_pivots) != max_pivots or max_pivots < 1:
    raise ValueError(f"max_pivots: must be a positive integer, got {max_pivots!r}")
  if chunk is None:
    chunk = 8 if jax.default_backend() == "cpu" else 4096
  if isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1:
    raise ValueError(f"chunk: must be a positive integer, got {chunk!r}")
  rm = jnp.ones(a.shape[:-1], bool) if rm is None else jnp.broadcast_to(rm, a.shape[:-1])
  cm = jnp.ones(a.shape[:-2] + (m,), bool) if cm is None else jnp.broadcast_to(cm, a.shape[:-2] + (m,))
  if not jnp.issubdtype(a.dtype, jnp.floating):
    a = a.astype(jnp.result_type(float))
  k = _subnormal_prescale(a)
  if k is not None:  # concrete payoffs with subnormal entries: scale them up here, in NumPy (exact)
    an = np.ldexp(np.asarray(a), k[..., None, None])
    sol = _simplex_batched(jnp.asarray(an.astype(a.dtype)), rm, cm, int(max_pivots), int(chunk))
    back = lambda v: jnp.asarray(np.ldexp(np.asarray(v), -k).astype(a.dtype))
    return sol._replace(value=back(sol.value), gap=back(sol.gap))
  return _simplex_batched(a, rm, cm, int(max_pivots), int(chunk))


def _subnormal_prescale(a):
  """Per game, ``k`` with ``max |A| 2^k`` in ``[1, 2)`` when some concrete entry is subnormal; else None.

  Subnormal numbers are flushed to zero by XLA's CPU arithmetic, so such a
  game cannot be scaled inside the compiled solver (there it is NONFINITE).
  """
  if validate.traced(a) or np.dtype(a.dtype) not in _FLOAT_BITS:
    return None
  an = np.abs(np.asarray(a))
  tiny = np.finfo(an.dtype).tiny
  if not ((an > 0) & (an < tiny)).any():
    return None
  amax = an.astype(np.float64).max(axis=(-2, -1))
  return np.where(amax > 0, -np.floor(np.log2(np.where(amax > 0, amax, 1.0))), 0.0).astype(np.int64)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _simplex_batched(a, rm, cm, max_pivots: int, chunk: int) -> SimplexSolution:
  lead, (n, m) = a.shape[:-2], a.shape[-2:]
  if not lead:
    return _solve_one(a, rm, cm, max_pivots)
  b = int(np.prod(lead))
  flat = [z.reshape((b,) + z.shape[len(lead):]) for z in (a, rm, cm)]
  sol = _lockstep(*flat, max_pivots=max_pivots, chunk=min(chunk, b))
  return jax.tree.map(lambda z: z.reshape(lead + z.shape[1:]), sol)


class _Tableau(NamedTuple):
  """One game's simplex state: the condensed tableau and its row/column labels."""

  t: Any          # [n + 1, m + 1]: A' | 1 over the reduced costs | objective
  price: Any      # [m] pricing weights: 1 / squared norms of the initial columns
  rows: Any       # [n] the basic variable of each row (w_j: j < m; slack s_i: m + i)
  cols: Any       # [m] the nonbasic variable of each column
  pivots: Any     # int32[]
  optimal: Any    # bool[]: no negative reduced cost left
  stop: Any       # bool[]: optimal, no leaving row, or NaN payoffs


def _prepared(a, rm, cm):
  """The payoff with padding and NaN games zeroed, its masked range and finiteness."""
  live = rm[:, None] & cm[None, :]
  finite = jnp.all(jnp.isfinite(jnp.where(live, a, 0.0)))
  a = jnp.where(finite & live, a, 0.0)
  lo = jnp.min(jnp.where(live, a, jnp.inf))
  hi = jnp.max(jnp.where(live, a, -jnp.inf))
  return a, lo, jnp.where(hi > lo, hi - lo, 1.0), finite


def _tableau(a, rm, cm) -> _Tableau:
  """The slack basis of ``max 1^T w s.t. A' w <= 1``: feasible, as ``A' >= 1`` and the right side is 1.

  Padding rows are empty constraints (never binding: their slack stays basic,
  their dual is 0); padding columns have reduced cost 0 (never enter).
  """
  n, m = a.shape
  a, lo, scale, finite = _prepared(a, rm, cm)
  t = jnp.zeros((n + 1, m + 1), a.dtype)
  t = t.at[:n, :m].set(jnp.where(rm[:, None], (a - lo) / scale + 1.0, 0.0))
  t = t.at[:n, m].set(1.0).at[n, :m].set(jnp.where(cm, -1.0, 0.0))
  price = 1.0 / (1.0 + jnp.sum(t[:n, :m] ** 2, axis=0))
  zero = jnp.zeros_like(finite, jnp.int32)  # derived from the payoff, so the carry is per-shard under shard_map
  return _Tableau(t, price, jnp.arange(m, m + n) + zero, jnp.arange(m) + zero, zero, zero > 0, ~finite)


def _active(c: _Tableau, max_pivots: int):
  return ~c.stop & (c.pivots < max_pivots)


def _pivot(c: _Tableau, max_pivots: int) -> _Tableau:
  """One pivot (a no-op once the game stopped or spent its budget)."""
  t, rlab, clab = c.t, c.rows, c.cols
  n, m = t.shape[0] - 1, t.shape[1] - 1
  dt = t.dtype
  eps = jnp.asarray(64 * jnp.finfo(dt).eps, dt)
  rows, cols = jnp.arange(n + 1), jnp.arange(m + 1)
  obj = t[n, :m]
  neg = obj < -eps
  optimal = ~jnp.any(neg)
  # Entering column, among the negative reduced costs d_j: Dantzig's rule on
  # scaled columns (the largest d_j^2 / ||a_j||^2, with the column norms of the
  # first tableau), then Bland's (the smallest label).
  dantzig = c.pivots < 2 * (n + m)
  key = jnp.where(neg, jnp.where(dantzig, -obj * obj * c.price, clab.astype(dt)), n + m)
  q = jnp.min(jnp.where(key == jnp.min(key), cols[:m], m - 1))  # the first minimiser (argmin is slow on CPU)
  eq = (cols == q).astype(dt)
  col = jax.lax.dynamic_index_in_dim(t, q, axis=1, keepdims=False)  # a gather: cheaper than t @ eq
  ok = col[:n] > eps
  ratio = jnp.where(ok, t[:n, m] / jnp.where(ok, col[:n], 1.0), jnp.inf)
  tie = ratio <= jnp.min(ratio) * (1.0 + eps) + eps
  leaving = jnp.min(jnp.where(tie, rlab, n + m))  # labels are distinct: a min, not an argmin (slow on CPU)
  p = jnp.sum(jnp.where(rlab == leaving, rows[:n], 0))
  # A bounded LP (A' > 0 on the real rows) always has a leaving row; were
  # there none, the game stops (status MAX_STEPS) rather than divide by 0.
  swap = _active(c, max_pivots) & ~optimal & jnp.any(ok)
  ep = (rows == p).astype(dt)
  row = jax.lax.dynamic_index_in_dim(t, p, axis=0, keepdims=False)
  # The whole pivot as one rank-one update: row p -> row / pivot, column
  # q -> -column / pivot, (p, q) -> 1 / pivot, the rest t - col row / pivot.
  t = t - jnp.outer(jnp.where(swap, col - ep, 0.0), (row + eq) / jnp.where(swap, row[q], 1.0))
  rlab, clab = (jnp.where((rows[:n] == p) & swap, clab[q], rlab),
                jnp.where((cols[:m] == q) & swap, leaving, clab))
  return _Tableau(t, c.price, rlab, clab, c.pivots + swap.astype(jnp.int32), c.optimal | optimal,
                  c.stop | (_active(c, max_pivots) & ~swap))


def _read(c: _Tableau):
  """``1^T w``, the basic ``w`` (rows labelled j < m) and the slacks' duals ``u`` (columns labelled m + i)."""
  t = c.t
  n, m = t.shape[0] - 1, t.shape[1] - 1
  w = jnp.zeros(n + m, t.dtype).at[c.rows].set(t[:n, m])[:m]
  u = jnp.zeros(n + m, t.dtype).at[c.cols].set(t[n, :m])[m:]
  return t[n, m], w, u


_FLOAT_BITS = {np.dtype(np.float32): (np.int32, 23, 127), np.dtype(np.float64): (np.int64, 52, 1023)}


def _pow2(j, dt):
  """``2.0 ** j`` in ``dt``, built from its bits (exact; ``j`` within the normal exponent range)."""
  ib, mbits, bias = _FLOAT_BITS[np.dtype(dt)]
  return jax.lax.bitcast_convert_type((j.astype(ib) + bias) << mbits, dt)


def _exponent_scale(a, rm, cm):
  """``k`` with ``max |A| 2^k`` in ``[1, 2)`` over the live finite entries, and whether any is subnormal.

  Read from the bits, not by arithmetic: XLA on a CPU flushes subnormal
  numbers to zero in arithmetic and comparisons, so ``|a| > 0`` is False for
  ``a = 1e-40`` in float32.
  """
  if np.dtype(a.dtype) not in _FLOAT_BITS:
    return jnp.zeros((), jnp.int32), jnp.zeros((), bool)
  ib, mbits, bias = _FLOAT_BITS[np.dtype(a.dtype)]
  bits = jax.lax.bitcast_convert_type(a, ib) & np.array(np.iinfo(ib).max, ib)
  expo = bits >> mbits
  live = rm[:, None] & cm[None, :]
  subnormal = jnp.any(live & (expo == 0) & (bits != 0))
  emax = jnp.max(jnp.where(live & (expo < 2 * bias + 1), expo, 0))
  return jnp.where(emax > 0, bias - emax, 0).astype(jnp.int32), subnormal


def _times_pow2(v, k):
  """``v * 2^k`` exactly, in two factors that stay in the normal range."""
  if np.dtype(v.dtype) not in _FLOAT_BITS:
    return v
  h = k // 2
  return v * _pow2(h, v.dtype) * _pow2(k - h, v.dtype)


def _finish(a, rm, cm, z, w, u, pivots, optimal, k, subnormal) -> SimplexSolution:
  """Strategies, value, certificate and status of one game from its final basis.

  ``a`` is the payoff times ``2^k``: the value and the gap are scaled back.
  SUCCESS needs an optimal basis, a finite value and a gap within
  ``eps^(1/3)`` of the (scaled) payoff range; otherwise the status is
  MAX_STEPS (round-off spoilt the basis) or NONFINITE.
  """
  from nashax.core.solver import MAX_STEPS, NONFINITE, SUCCESS

  a, lo, scale, finite = _prepared(a, rm, cm)
  finite = finite & jnp.any(rm) & jnp.any(cm) & ~subnormal  # a player without a legal action has no equilibrium either
  w = jnp.where(cm, jnp.maximum(w, 0.0), 0.0)
  u = jnp.where(rm, jnp.maximum(u, 0.0), 0.0)
  y, x = w / jnp.sum(w), u / jnp.sum(u)
  value = (1.0 / z - 1.0) * scale + lo
  gap = metrics_lib.duality_gap(MatrixGame(a, rm, cm), (x, y))
  tol = jnp.finfo(a.dtype).eps ** (1.0 / 3.0) * jnp.maximum(scale, 1.0)
  certified = jnp.isfinite(value) & jnp.isfinite(gap) & (gap <= tol)
  finite = finite & jnp.isfinite(value)
  status = jnp.where(~finite, NONFINITE, jnp.where(optimal & certified, SUCCESS, MAX_STEPS)).astype(jnp.int32)
  nan = lambda v: jnp.where(finite, v, jnp.nan)
  value, gap = _times_pow2(value, -k), _times_pow2(gap, -k)
  return SimplexSolution(nan(value), nan(x), nan(y), nan(gap), pivots, status)


def _solve_one(a, rm, cm, max_pivots: int) -> SimplexSolution:
  """One game: scale by a power of two, pivot from the slack basis until optimal (or out of budget),
  then read the basis."""
  k, subnormal = _exponent_scale(a, rm, cm)
  a = _times_pow2(a, k)
  c = jax.lax.while_loop(lambda c: _active(c, max_pivots), lambda c: _pivot(c, max_pivots), _tableau(a, rm, cm))
  return _finish(a, rm, cm, *_read(c), c.pivots, c.optimal, k, subnormal)


def _lockstep(a, rm, cm, *, max_pivots: int, chunk: int) -> SimplexSolution:
  """A batch in chunks of ``chunk`` games, each chunk a ``vmap`` of the pivot loop.

  A chunk runs as long as its slowest game (for chunks of 128 random 32x32
  games ~1.55x the mean pivots, of 8 ~1.3x). Refilling finished slots with new
  games avoids that wait but, on two CPU cores, cost more than it saved.
  """
  b = a.shape[0]
  pad = -b % chunk  # padding games are copies of the first, dropped at the end

  one = functools.partial(_solve_one, max_pivots=max_pivots)
  args = [jnp.concatenate([z, jnp.broadcast_to(z[:1], (pad,) + z.shape[1:])]) for z in (a, rm, cm)]
  args = [z.reshape((-1, chunk) + z.shape[1:]) for z in args]
  out = jax.lax.map(lambda c: jax.vmap(one)(*c), args)
  return jax.tree.map(lambda z: z.reshape((-1,) + z.shape[2:])[:b], out)


__all__ += ["SimplexSolution", "simplex_equilibrium"]
