"""f-divergences as pytrees: the generator ``f``, its derivative ``f'`` and its conjugate ``f*``.

For a convex ``f: [0, inf) -> R u {inf}`` with ``f(1) = 0``,

    D_f(p || q) = sum_x q(x) f(p(x) / q(x)),

with the limits ``q f(0)`` where ``p = 0 < q`` and ``p f'(inf)`` (the slope
``lim f(t)/t``) where ``q = 0 < p``. Names follow the alignment literature,
in which the first argument is the policy ``pi`` and the second the target or
reference: ``reverse_kl()(log pi, log p) = KL(pi || p)`` (RLHF's penalty),
``forward_kl()(log pi, log p) = KL(p || pi)`` (DPG / GDC).

Every function is written in log-space, in ``s = log t``, so that ratios of
probabilities that differ by hundreds of orders of magnitude neither overflow
nor lose their digits (``expm1``, ``log1p``, ``softplus`` forms).

| constructor            | f(t)                                        | f'(t)                  |
|------------------------|---------------------------------------------|------------------------|
| ``reverse_kl``         | ``t log t``                                 | ``log t + 1``          |
| ``forward_kl``         | ``-log t``                                  | ``-1/t``               |
| ``jensen_shannon``     | ``t log(2t/(1+t)) + log(2/(1+t))``          | ``log(2t/(1+t))``      |
| ``total_variation``    | ``|t - 1| / 2``                              | ``sign(t - 1) / 2``    |
| ``chi_squared``        | ``(t - 1)^2``                               | ``2 (t - 1)``          |
| ``squared_hellinger``  | ``(sqrt t - 1)^2``                          | ``1 - t^(-1/2)``       |
| ``alpha_divergence(a)``| ``(t^(1-a) - (1-a) t - a) / (a (a - 1))``   | ``(1 - t^(-a)) / a``   |

``jensen_shannon`` is ``KL(p||m) + KL(q||m)`` with ``m = (p+q)/2`` (twice the
textbook JS, as in Go et al.). The alpha family is continuous in ``a`` and
contains ``t log t - t + 1`` (reverse KL) at ``a = 0``, ``t - 1 - log t``
(forward KL) at ``a = 1``, ``2 (sqrt t - 1)^2`` at ``a = 1/2``, ``(t-1)^2/2``
at ``a = -1``; the affine term ``c (t - 1)`` by which these generators differ
from the table changes neither ``D_f`` between distributions nor ``f'``
differences.

References:
  Go et al., "Aligning Language Models with Preferences through f-divergence
  Minimization", ICML 2023, arXiv:2302.08215, Table 1 (generators, ``f'``).
  Wang et al., "Beyond Reverse KL: Generalizing Direct Preference
  Optimization with Diverse Divergence Constraints", ICLR 2024,
  arXiv:2309.16240, Table 1 (the alpha family and ``f'``).
  Nowozin, Cseke & Tomioka, "f-GAN", NeurIPS 2016, Table 1 (conjugates).
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import _struct, validate

__all__ = [
    "Divergence",
    "reverse_kl",
    "forward_kl",
    "jensen_shannon",
    "total_variation",
    "chi_squared",
    "squared_hellinger",
    "alpha_divergence",
    "get",
    "switch",
    "NAMES",
    "regularized_argmax",
    "regularized_max",
]

_LOG2 = math.log(2.0)


@_struct.dataclass
class Divergence:
  """An f-divergence: module-level generator functions (static) and a traced parameter.

  All functions take ``(alpha, x)`` and are elementwise; ``alpha`` is the
  family parameter (``None`` for the fixed divergences), so ``jax.vmap`` over a
  batch of ``alpha_divergence`` objects sweeps the family without recompiling.

  Attributes:
    name: label (static).
    f_log: ``(alpha, s) -> f(exp(s))`` for finite ``s``.
    fprime_log: ``(alpha, s) -> f'(exp(s))``.
    link_log: ``(alpha, s) -> f'(exp(s)) - f'(1)`` (what f-DPO uses; exact, not
      computed by subtraction).
    conjugate_fn: ``(alpha, u) -> f*(u) = sup_{t >= 0} (u t - f(t))`` (``inf`` off its domain).
    inverse_log: ``(alpha, u) -> log t`` with ``f'(t) = u``, clipped to ``-inf``
      (``t = 0``) below the range of ``f'`` and ``+inf`` above it; None when
      ``f'`` is not invertible (total variation).
    f_zero: ``alpha -> f(0)`` (may be ``inf``).
    slope_inf: ``alpha -> lim_{t -> inf} f(t)/t`` (may be ``inf``).
    alpha: the family parameter, or None (``switch``: ``(index, member alphas)``).
  """

  name: str = _struct.field(static=True)
  f_log: Callable = _struct.field(static=True)
  fprime_log: Callable = _struct.field(static=True)
  link_log: Callable = _struct.field(static=True)
  conjugate_fn: Callable = _struct.field(static=True)
  inverse_log: Optional[Callable] = _struct.field(static=True)
  f_zero: Callable = _struct.field(static=True)
  slope_inf: Callable = _struct.field(static=True)
  alpha: Optional[jax.Array] = None

  # -- the generator and its derivatives at t = p/q ---------------------------------------

  def f(self, t: jax.typing.ArrayLike) -> jax.Array:
    """``f(t)`` for ``t >= 0`` (``t = 0`` gives ``f(0)``)."""
    t = jnp.asarray(t)
    pos = t > 0
    s = jnp.log(jnp.where(pos, t, 1.0))
    return jnp.where(pos, self.f_log(self.alpha, s), self.f_zero(self.alpha))

  def fprime(self, t: jax.typing.ArrayLike) -> jax.Array:
    """``f'(t)`` for ``t > 0``."""
    return self.fprime_log(self.alpha, jnp.log(jnp.asarray(t)))

  def conjugate(self, u: jax.typing.ArrayLike) -> jax.Array:
    """``f*(u) = sup_{t >= 0} (u t - f(t))``."""
    return self.conjugate_fn(self.alpha, jnp.asarray(u))

  def fprime_inverse(self, u: jax.typing.ArrayLike) -> jax.Array:
    """``t >= 0`` with ``f'(t) = u`` (``0`` below the range of ``f'``, ``inf`` above)."""
    if self.inverse_log is None:
      raise ValueError(f"divergence: f' of {self.name} is not invertible")
    return jnp.exp(self.inverse_log(self.alpha, jnp.asarray(u)))

  # -- the divergence between distributions given as log-probabilities ----------------------

  def __call__(self, log_p: jax.typing.ArrayLike, log_q: jax.typing.ArrayLike, axis: int = -1) -> jax.Array:
    """``D_f(p || q) = sum_x q f(p/q)`` from log-probabilities (``-inf`` for zero mass).

    Zero masses take their limits (``q f(0)``, ``p f'(inf)``, ``0`` where both
    vanish) without NaN in the value or its gradient.
    """
    log_p, log_q = jnp.asarray(log_p), jnp.asarray(log_q)
    _broadcastable("log_p", log_p, "log_q", log_q)
    p_pos, q_pos = log_p != -jnp.inf, log_q != -jnp.inf  # NaN counts as positive mass: it propagates
    both = p_pos & q_pos
    s = jnp.where(both, log_p, 0.0) - jnp.where(both, log_q, 0.0)
    q = jnp.exp(jnp.where(q_pos, log_q, 0.0))
    p = jnp.exp(jnp.where(p_pos, log_p, 0.0))
    inner = jnp.where(both, q * self.f_log(self.alpha, s), 0.0)
    # The limits may be +inf: mask the factor too, so unselected entries carry 0 * 0, not 0 * inf
    # (whose gradient would be NaN).
    only_p, only_q = p_pos & ~q_pos, q_pos & ~p_pos
    p_only = jnp.where(only_p, p * jnp.where(only_p, self.slope_inf(self.alpha), 0.0), 0.0)
    q_only = jnp.where(only_q, q * jnp.where(only_q, self.f_zero(self.alpha), 0.0), 0.0)
    return jnp.sum(inner + p_only + q_only, axis=axis)

  def link(self, log_ratio: jax.typing.ArrayLike) -> jax.Array:
    """``f'(exp(s)) - f'(1)`` of a log-ratio ``s = log(pi/pi_ref)``: f-DPO's implicit reward."""
    return self.link_log(self.alpha, jnp.asarray(log_ratio))


# ------------------------------------------------------------------ safe helpers


def _expm1_over(x, a):
  """``expm1(a x) / a`` with its limit ``x`` at ``a = 0``."""
  zero = a == 0
  a_safe = jnp.where(zero, 1.0, a)
  return jnp.where(zero, x, jnp.expm1(a_safe * x) / a_safe)


def _log1p_over(u, a):
  """``log1p(-a u) / a`` with its limit ``-u`` at ``a = 0`` (``nan``-free; ``-inf`` at ``a u = 1``)."""
  zero = a == 0
  a_safe = jnp.where(zero, 1.0, a)
  arg = jnp.where(zero, 0.0, -a_safe * u)
  arg = jnp.maximum(arg, -1.0)
  return jnp.where(zero, -u, jnp.log1p(arg) / a_safe)


def _inf_like(x):
  return jnp.full(jnp.shape(x), jnp.inf, jnp.result_type(x, float))


# ------------------------------------------------------------------ reverse KL: f = t log t


def _rkl_f(alpha, s):
  return jnp.exp(s) * s


def _rkl_fp(alpha, s):
  return s + 1.0


def _rkl_link(alpha, s):
  return s


def _rkl_conj(alpha, u):
  return jnp.exp(u - 1.0)


def _rkl_inv(alpha, u):
  return u - 1.0


def _zero(alpha):
  return 0.0


def _inf(alpha):
  return jnp.inf


def reverse_kl() -> Divergence:
  """``f(t) = t log t``: ``D_f(pi || p) = KL(pi || p)`` (RLHF's penalty; mode-seeking)."""
  return Divergence("reverse_kl", _rkl_f, _rkl_fp, _rkl_link, _rkl_conj, _rkl_inv, _zero, _inf)


# ------------------------------------------------------------------ forward KL: f = -log t


def _fkl_f(alpha, s):
  return -s


def _fkl_fp(alpha, s):
  return -jnp.exp(-s)


def _fkl_link(alpha, s):
  return -jnp.expm1(-s)


def _fkl_conj(alpha, u):
  neg = u < 0
  return jnp.where(neg, -1.0 - jnp.log(jnp.where(neg, -u, 1.0)), jnp.inf)


def _fkl_inv(alpha, u):
  neg = u < 0
  return jnp.where(neg, -jnp.log(jnp.where(neg, -u, 1.0)), jnp.inf)


def forward_kl() -> Divergence:
  """``f(t) = -log t``: ``D_f(pi || p) = KL(p || pi)`` (DPG / GDC; mass-covering)."""
  return Divergence("forward_kl", _fkl_f, _fkl_fp, _fkl_link, _fkl_conj, _fkl_inv, _inf, _zero)


# ------------------------------------------------------------------ Jensen-Shannon


def _js_f(alpha, s):
  # t (log 2 + log sigmoid(s)) + log 2 + log sigmoid(-s), with log(2t/(1+t)) = log 2 + log sigmoid(s).
  return jnp.exp(s) * (_LOG2 + jax.nn.log_sigmoid(s)) + _LOG2 + jax.nn.log_sigmoid(-s)


def _js_fp(alpha, s):
  return _LOG2 + jax.nn.log_sigmoid(s)


def _js_conj(alpha, u):
  ok = u < _LOG2
  return jnp.where(ok, -jnp.log(2.0 - jnp.exp(jnp.where(ok, u, 0.0))), jnp.inf)


def _js_inv(alpha, u):
  # log 2 + log sigmoid(s) = u  <=>  s = logit(e^u / 2) = u - log(2 - e^u).
  ok = u < _LOG2
  return jnp.where(ok, u - jnp.log(2.0 - jnp.exp(jnp.where(ok, u, 0.0))), jnp.inf)


def _log2(alpha):
  return _LOG2


def jensen_shannon() -> Divergence:
  """``f(t) = t log(2t/(1+t)) + log(2/(1+t))``: ``KL(pi || m) + KL(p || m)``, ``m = (pi + p)/2``."""
  return Divergence("jensen_shannon", _js_f, _js_fp, _js_fp, _js_conj, _js_inv, _log2, _log2)


# ------------------------------------------------------------------ total variation


def _tv_f(alpha, s):
  return 0.5 * jnp.abs(jnp.expm1(s))


def _tv_fp(alpha, s):
  return 0.5 * jnp.sign(s)


def _tv_conj(alpha, u):
  return jnp.where(u <= 0.5, jnp.maximum(u, -0.5), jnp.inf)


def _half(alpha):
  return 0.5


def total_variation() -> Divergence:
  """``f(t) = |t - 1| / 2``: ``D_f = (1/2) sum |pi - p|`` (``f'`` is not invertible)."""
  return Divergence("total_variation", _tv_f, _tv_fp, _tv_fp, _tv_conj, None, _half, _half)


# ------------------------------------------------------------------ Pearson chi^2


def _chi_f(alpha, s):
  return jnp.square(jnp.expm1(s))


def _chi_fp(alpha, s):
  return 2.0 * jnp.expm1(s)


def _chi_conj(alpha, u):
  return jnp.where(u >= -2.0, u + 0.25 * u * u, -1.0)


def _chi_inv(alpha, u):
  t = 1.0 + 0.5 * u
  pos = t > 0
  return jnp.where(pos, jnp.log(jnp.where(pos, t, 1.0)), -jnp.inf)


def _one(alpha):
  return 1.0


def chi_squared() -> Divergence:
  """``f(t) = (t - 1)^2``: Pearson's ``sum (pi - p)^2 / p``."""
  return Divergence("chi_squared", _chi_f, _chi_fp, _chi_fp, _chi_conj, _chi_inv, _one, _inf)


# ------------------------------------------------------------------ squared Hellinger


def _hel_f(alpha, s):
  return jnp.square(jnp.expm1(0.5 * s))


def _hel_fp(alpha, s):
  return -jnp.expm1(-0.5 * s)


def _hel_conj(alpha, u):
  ok = u < 1.0
  return jnp.where(ok, u / (1.0 - jnp.where(ok, u, 0.0)), jnp.inf)


def _hel_inv(alpha, u):
  ok = u < 1.0
  return jnp.where(ok, -2.0 * jnp.log1p(-jnp.where(ok, u, 0.0)), jnp.inf)


def squared_hellinger() -> Divergence:
  """``f(t) = (sqrt t - 1)^2``: ``sum (sqrt pi - sqrt p)^2``."""
  return Divergence("squared_hellinger", _hel_f, _hel_fp, _hel_fp, _hel_conj, _hel_inv, _one, _one)


# ------------------------------------------------------------------ the alpha family


def _alpha_f(alpha, s):
  a = jnp.asarray(alpha, jnp.result_type(s, float))
  b = 1.0 - a
  # Form A (a <= 1/2): f = -[e^s expm1(-a s)/a + expm1(s)] / (1 - a); e^s expm1(-a s) is
  # evaluated as exp((1-a) s) - exp(s) where -a s > 1 (no cancellation there, and no overflow).
  big = -a * s > 1.0
  es_e = jnp.where(big, (jnp.exp(b * s) - jnp.exp(s)) / jnp.where(a == 0, 1.0, a),
                   jnp.exp(s) * _expm1_over(-s, a))
  lo = a <= 0.5
  form_a = -(es_e + jnp.expm1(s)) / jnp.where(lo, b, 1.0)
  # Form B (a > 1/2): f = [expm1(s) - expm1((1-a) s)/(1-a)] / a.
  form_b = (jnp.expm1(s) - _expm1_over(s, b)) / jnp.where(lo, 1.0, a)
  return jnp.where(lo, form_a, form_b)


def _alpha_fp(alpha, s):
  a = jnp.asarray(alpha, jnp.result_type(s, float))
  return -_expm1_over(-s, a)


def _alpha_conj(alpha, u):
  # f*(u) = (1 - (1 - a u)^((a-1)/a)) / (a - 1) = -expm1((a-1) L)/(a-1), L = log1p(-a u)/a,
  # on 1 - a u > 0; off it: +inf for a > 0 (u >= 1/a) and -f(0) = -1/(1-a) for a < 0 (u <= 1/a).
  a = jnp.asarray(alpha, jnp.result_type(u, float))
  inside = 1.0 - a * u > 0
  lval = _log1p_over(jnp.where(inside, u, 0.0), a)
  val = -_expm1_over(lval, a - 1.0)
  edge = jnp.where(a > 0, jnp.inf, -1.0 / (1.0 - jnp.minimum(a, 0.0)))
  return jnp.where(inside, val, edge)


def _alpha_inv(alpha, u):
  a = jnp.asarray(alpha, jnp.result_type(u, float))
  inside = 1.0 - a * u > 0
  val = -_log1p_over(jnp.where(inside, u, 0.0), a)
  edge = jnp.where(a > 0, jnp.inf, -jnp.inf)
  return jnp.where(inside, val, edge)


def _alpha_f0(alpha):
  # f(0) = (0^(1-a) - a) / (a (a - 1)): 1/(1-a) for a < 1, +inf for a >= 1.
  a = jnp.asarray(alpha)
  below = a < 1.0
  return jnp.where(below, 1.0 / (1.0 - jnp.where(below, a, 0.0)), jnp.inf)


def _alpha_slope(alpha):
  # lim f(t)/t = 1/a for a > 0, +inf for a <= 0.
  a = jnp.asarray(alpha)
  return jnp.where(a > 0, 1.0 / jnp.where(a > 0, a, 1.0), jnp.inf)


def alpha_divergence(alpha: jax.typing.ArrayLike = 0.5) -> Divergence:
  """``f(t) = (t^(1-a) - (1-a) t - a) / (a (a - 1))``, any real ``a`` (limits at 0 and 1 exact).

  ``a -> 0`` is reverse KL, ``a -> 1`` forward KL, ``a = 1/2`` twice the
  squared Hellinger distance, ``a = -1`` half of Pearson's chi^2.
  """
  validate.number("alpha", alpha)
  return Divergence("alpha", _alpha_f, _alpha_fp, _alpha_fp, _alpha_conj, _alpha_inv, _alpha_f0,
                    _alpha_slope, jnp.asarray(alpha, jnp.result_type(float)))


_FACTORIES = {
    "reverse_kl": reverse_kl,
    "forward_kl": forward_kl,
    "jensen_shannon": jensen_shannon,
    "total_variation": total_variation,
    "chi_squared": chi_squared,
    "squared_hellinger": squared_hellinger,
}
NAMES = tuple(_FACTORIES) + ("alpha",)


def get(name: str, alpha: Optional[jax.typing.ArrayLike] = None) -> Divergence:
  """A divergence by name (``NAMES``); ``alpha`` only for ``"alpha"``."""
  if name == "alpha":
    return alpha_divergence(0.5 if alpha is None else alpha)
  if name not in _FACTORIES:
    raise ValueError(f"name: unknown divergence {name!r}; choose one of {NAMES}")
  if alpha is not None:
    raise ValueError(f"alpha: only the 'alpha' family takes a parameter, not {name!r}")
  return _FACTORIES[name]()


class _Dispatch:
  """One generator function of a ``switch``: calls member ``index``'s function (``lax.switch``).

  Static and hashable by its members' (module-level) functions, so two
  ``switch`` divergences over the same members are the same jit cache entry
  whatever their index.
  """

  def __init__(self, fns: tuple, has_alpha: tuple):
    self.fns, self.has_alpha = fns, has_alpha

  def __eq__(self, other):
    return isinstance(other, _Dispatch) and (self.fns, self.has_alpha) == (other.fns, other.has_alpha)

  def __hash__(self):
    return hash((self.fns, self.has_alpha))

  def __call__(self, alpha, *x):
    index, params = alpha
    dt = jnp.result_type(*x, float) if x else params.dtype
    shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in x)) if x else ()

    def branch(k):
      def g(params, *x):
        out = self.fns[k](params[k] if self.has_alpha[k] else None, *x)
        return jnp.broadcast_to(jnp.asarray(out, dt), shape)
      return g

    return jax.lax.switch(index, [branch(k) for k in range(len(self.fns))], params, *x)


def switch(members, index: jax.typing.ArrayLike) -> Divergence:
  """Member ``index`` of a fixed list of divergences, as one pytree whose index is a traced leaf.

  Every ``switch`` over the same ``members`` has the same static structure,
  so a jitted function of a divergence compiles once for the whole list:

      sweep = [D.reverse_kl(), D.chi_squared(), D.alpha_divergence(0.3)]
      f = jax.jit(lambda d, logits: d(jax.nn.log_softmax(logits), log_ref))
      values = [f(D.switch(sweep, i), logits) for i in range(len(sweep))]   # one compile

  With an unbatched index each function is a ``lax.cond``: only the selected
  member runs, under ``grad`` too. A batched index (``vmap`` over ``index``)
  evaluates every member and selects; reverse-mode gradients then pass zero
  cotangents through the unselected members, which gives NaN where one of
  them is infinite on the inputs, so differentiate only with an unbatched
  index. Closed forms keyed on the name (reverse KL's ``regularized_argmax``)
  are replaced by the generic path: the same values to rounding.

  Args:
    members: a non-empty sequence of ``Divergence``s (an alpha member keeps its ``alpha``).
    index: an integer in ``[0, len(members))``.

  Returns:
    A ``Divergence`` named ``"switch(...)"`` whose ``alpha`` leaf is
    ``(index, member alphas)``; it has no inverse of ``f'`` when a member
    has none (total variation).

  Raises:
    ValueError: ``members`` empty or not divergences, or a concrete ``index``
      that is not an integer in range.
  """
  members = tuple(members)
  if not members or not all(isinstance(m, Divergence) for m in members):
    raise ValueError(f"members: a non-empty sequence of Divergence objects, got {members!r}")
  if not validate.traced(index):
    i = np.asarray(index)
    if i.shape != () or not np.issubdtype(i.dtype, np.integer) or not 0 <= int(i) < len(members):
      raise ValueError(f"index: an integer in [0, {len(members)}), got {index!r}")
  has_alpha = tuple(m.alpha is not None for m in members)
  params = jnp.stack([jnp.asarray(m.alpha if h else 0.0, jnp.result_type(float)) for m, h in zip(members, has_alpha)])

  def dispatch(attr):
    fns = tuple(getattr(m, attr) for m in members)
    return None if any(f is None for f in fns) else _Dispatch(fns, has_alpha)

  name = "switch(" + ",".join(m.name for m in members) + ")"
  return Divergence(name, dispatch("f_log"), dispatch("fprime_log"), dispatch("link_log"), dispatch("conjugate_fn"),
                    dispatch("inverse_log"), dispatch("f_zero"), dispatch("slope_inf"),
                    (jnp.asarray(index, jnp.int32), params))


# ------------------------------------------------------------------ f-regularized best response


def _broadcastable(name_a: str, a, name_b: str, b) -> None:
  """Shapes are static (also under jit): a mismatch is a ``ValueError`` naming both arguments."""
  try:
    np.broadcast_shapes(np.shape(a), np.shape(b))
  except ValueError:
    raise ValueError(f"{name_a}, {name_b}: shapes {tuple(np.shape(a))} and {tuple(np.shape(b))} do not match "
                     "(nor broadcast)") from None


def _check_nan(name: str, x) -> None:
  """A concrete NaN is refused (it would come back as a NaN policy); ``-inf`` is allowed."""
  if validate.traced(x):
    return
  a = np.asarray(x)
  if np.issubdtype(a.dtype, np.floating) and np.isnan(a).any():
    raise ValueError(f"{name}: {int(np.isnan(a).sum())} NaN entries, first at "
                     f"{[int(i) for i in np.argwhere(np.isnan(a))[0]]}")


def _check_beta(beta) -> None:
  """Concrete ``beta`` must be finite and > 0 (a traced one, inside a game's metrics, is the game's own)."""
  if validate.traced(beta):
    return
  b = np.asarray(beta, np.float64)
  if not (np.isfinite(b).all() and (b > 0).all()):
    raise ValueError(f"beta: must be finite and > 0, got {beta!r}")


def regularized_argmax(reward: jax.typing.ArrayLike, log_ref: jax.typing.ArrayLike, beta: jax.typing.ArrayLike,
                       divergence: Divergence, iters: int = 200) -> jax.Array:
  """``argmax_pi <pi, r> - beta D_f(pi || ref)`` over the simplex, as log-probabilities.

  By the KKT conditions ``pi(y) = ref(y) (f')^{-1}((r(y) - lam) / beta)``
  (clipped at 0 where ``r`` is below the range of ``f'``), with the scalar
  ``lam`` found by bisection so that ``pi`` sums to one. This is the f-DPO
  relation between a reward and its optimal policy (Wang et al. 2024, Thm. 1)
  and the best response of the f-regularized preference game. Reverse KL
  uses its closed form ``softmax(log ref + r / beta)``. Total variation
  (``f'`` not invertible): every action whose reward is more than ``beta``
  below the best gives its mass to the (first) best action.

  Args:
    reward: ``[..., n]``.
    log_ref: ``[..., n]`` log reference probabilities (``-inf`` = excluded action).
    beta: ``> 0``.
    divergence: the ``Divergence``.
    iters: bisection steps (static).
  """
  _check_beta(beta)
  _check_nan("reward", reward)
  _check_nan("log_ref", log_ref)
  if not validate.traced(reward) and np.isposinf(np.asarray(reward, np.float64)).any():
    raise ValueError("reward: +inf entries (a reward must be finite, or -inf to exclude an action via log_ref)")
  validate.size("iters", iters, hi=100_000)
  r = jnp.asarray(reward)
  if not jnp.issubdtype(r.dtype, jnp.floating):
    r = r.astype(jnp.result_type(float))
  _broadcastable("reward", r, "log_ref", log_ref)
  lr = jnp.broadcast_to(jnp.asarray(log_ref, r.dtype), r.shape)
  beta = jnp.asarray(beta, r.dtype)
  legal = lr > -jnp.inf
  if divergence.name == "reverse_kl":
    return jax.nn.log_softmax(jnp.where(legal, lr + r / beta, -jnp.inf), axis=-1)
  r_leg = jnp.where(legal, r, -jnp.inf)
  rmax = jnp.max(r_leg, axis=-1, keepdims=True)
  if divergence.inverse_log is None:  # total variation
    best = jnp.argmax(r_leg, axis=-1)
    top = jax.nn.one_hot(best, r.shape[-1], dtype=r.dtype) > 0
    ref = jnp.exp(lr)
    drop = legal & (r < rmax - beta) & ~top
    moved = jnp.sum(jnp.where(drop, ref, 0.0), axis=-1, keepdims=True)
    pi = jnp.where(drop, 0.0, ref) + jnp.where(top, moved, 0.0)
    return jnp.log(pi)
  ref = jnp.exp(lr)
  ref_top = jnp.max(jnp.where(r_leg >= rmax, ref, 0.0), axis=-1, keepdims=True)
  dt = r.dtype
  # Bracket: at lam_hi every t <= 1 (mass <= 1); at lam_lo the best action alone has t = 1/ref_top.
  lam_hi = rmax - beta * divergence.fprime(jnp.ones((), dt))
  lam_lo = rmax - beta * divergence.fprime(1.0 / ref_top)
  lam_lo = jnp.minimum(lam_lo, lam_hi)

  def mass(lam):
    log_t = divergence.inverse_log(divergence.alpha, (r - lam) / beta)
    return jnp.sum(jnp.where(legal, ref * jnp.exp(log_t), 0.0), axis=-1, keepdims=True)

  def body(_, lohi):
    lo, hi = lohi
    mid = 0.5 * (lo + hi)
    big = mass(mid) >= 1.0
    return jnp.where(big, mid, lo), jnp.where(big, hi, mid)

  lo, hi = jax.lax.fori_loop(0, iters, body, (lam_lo, lam_hi))
  lam = 0.5 * (lo + hi)
  log_t = divergence.inverse_log(divergence.alpha, (r - lam) / beta)
  log_w = jnp.where(legal, lr + log_t, -jnp.inf)
  return jax.nn.log_softmax(log_w, axis=-1)


def regularized_max(reward: jax.typing.ArrayLike, log_ref: jax.typing.ArrayLike, beta: jax.typing.ArrayLike,
                    divergence: Divergence) -> jax.Array:
  """``max_pi <pi, r> - beta D_f(pi || ref)`` (reverse KL: ``beta log sum ref e^{r/beta}``)."""
  _check_beta(beta)
  r = jnp.asarray(reward)
  lr = jnp.broadcast_to(jnp.asarray(log_ref, r.dtype), r.shape)
  if divergence.name == "reverse_kl":
    legal = lr > -jnp.inf
    return beta * jax.scipy.special.logsumexp(jnp.where(legal, lr + r / beta, -jnp.inf), axis=-1)
  lp = regularized_argmax(r, lr, beta, divergence)
  pi = jnp.exp(lp)
  return jnp.sum(jnp.where(pi == 0, 0.0, pi * r), axis=-1) - beta * divergence(lp, lr)  # NaN propagates

