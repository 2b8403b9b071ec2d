"""Game pytrees: zero-sum matrix games, n-player normal-form games, preference games.

Shapes follow OpenSpiel:

* ``MatrixGame.payoff: [n, m]``: zero-sum, the row player maximises ``x^T A y``.
* ``NormalFormGame.payoffs: [p, a_1, ..., a_p]``: the player axis first.
* ``PreferenceGame.preference: [n, n]``: ``P[i, j] = Pr(i > j)``, with
  ``P + P^T = 1``; the KL-regularised form adds ``beta: []`` and ``log_ref: [n]``.
* ``ContextualPreferenceGame.preference: [x, n, n]``: one preference game per
  prompt, with ``prompt_weights: [x]`` and (regularised) ``log_ref: [x, n]``.
* ``FRegularizedGame``: a preference game whose regulariser is any
  f-divergence ``D_f(pi || ref)`` (``core.divergences``).
* ``TargetDistribution``: an energy-based target ``p(x) ∝ a(x) b(x)`` over
  ``n`` outcomes, the problem f-DPG approximates.

Every number that defines the equilibrium is a field. The raw constructors do
not validate (they must work under ``vmap`` and ``jit``); the named
constructors (``from_payoff``, ``from_payoffs``, ``from_matrix``,
``regularized``) validate concrete input and raise ``ValueError``.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import _struct
from nashax.core import validate
from nashax.core.divergences import Divergence

__all__ = ["MatrixGame", "NormalFormGame", "PreferenceGame", "ContextualPreferenceGame", "FRegularizedGame",
           "TargetDistribution", "stack", "pad"]


@_struct.dataclass
class MatrixGame:
  """Two-player zero-sum game; the row player receives ``x^T A y``.

  Attributes:
    payoff: ``[n, m]`` payoff to the row (maximising) player.
    row_mask: optional ``bool[n]``; False marks a padding action (see ``pad``).
    col_mask: optional ``bool[m]``.

  >>> import jax.numpy as jnp
  >>> g = MatrixGame.from_payoff([[0., -1., 1.], [1., 0., -1.], [-1., 1., 0.]])
  >>> g.payoff.shape
  (3, 3)
  """

  payoff: jax.Array
  row_mask: Optional[jax.Array] = None
  col_mask: Optional[jax.Array] = None

  @classmethod
  def from_payoff(cls, payoff: jax.typing.ArrayLike, dtype: Any = None) -> "MatrixGame":
    """Validated constructor: a finite ``[n, m]`` matrix."""
    a = validate.payoff_matrix(payoff, "payoff")
    return cls(jnp.asarray(a, dtype=dtype or jnp.result_type(float)))

  @property
  def shape(self) -> tuple[int, int]:
    return self.payoff.shape[-2:]

  @property
  def masks(self) -> tuple:
    return (self.row_mask, self.col_mask)


@_struct.dataclass
class NormalFormGame:
  """General-sum game in normal form with ``p`` players.

  Attributes:
    payoffs: ``[p, a_1, ..., a_p]``; ``payoffs[k]`` is player k's payoff for
      every pure profile (OpenSpiel's convention).

  >>> g = NormalFormGame.from_payoffs([[[3., 0.], [5., 1.]], [[3., 5.], [0., 1.]]])
  >>> g.num_players
  2
  """

  payoffs: jax.Array

  @classmethod
  def from_payoffs(cls, payoffs: jax.typing.ArrayLike, dtype: Any = None) -> "NormalFormGame":
    """Validated constructor: a finite ``[p, a_1, ..., a_p]`` tensor."""
    a = validate.normal_form_payoffs(payoffs, "payoffs")
    return cls(jnp.asarray(a, dtype=dtype or jnp.result_type(float)))

  @classmethod
  def from_bimatrix(cls, a: jax.typing.ArrayLike, b: jax.typing.ArrayLike) -> "NormalFormGame":
    """Two-player game from the row payoff ``A: [n, m]`` and column payoff ``B: [n, m]``."""
    a = validate.payoff_matrix(a, "a")
    b = validate.payoff_matrix(b, "b")
    if a.shape != b.shape:
      raise ValueError(f"b: must have the shape of a {a.shape}, got {b.shape}")
    return cls.from_payoffs(np.stack([a, b]))

  @property
  def num_players(self) -> int:
    return self.payoffs.shape[0]

  @property
  def shape(self) -> tuple[int, ...]:
    return self.payoffs.shape[1:]

  @property
  def masks(self) -> tuple:
    return (None,) * self.num_players


def _log_reference(ref: np.ndarray, dtype) -> jax.Array:
  """``log pi_ref`` (normalised per row) of a validated reference; zeros are refused."""
  if (ref <= 0).any():
    idx = np.unravel_index(int(np.argmin(ref)), ref.shape)
    where = ", ".join(str(int(i)) for i in idx)
    raise ValueError(
        f"pi_ref: must be > 0 wherever the preference game has support "
        f"(KL to pi_ref is infinite otherwise), got pi_ref[{where}] = {ref[idx]}")
  return jnp.asarray(np.log(ref / ref.sum(-1, keepdims=True)), dtype)


@_struct.dataclass
class PreferenceGame:
  """Symmetric preference game over ``n`` responses, optionally KL-regularised.

  The unregularised game is the symmetric zero-sum game with payoff
  ``P - 1/2`` (value 0; its equilibria are the von Neumann / minimax winners).
  With ``beta`` and ``log_ref`` set, the value is
  ``V(pi, pi') = pi^T P pi' - beta KL(pi || pi_ref) + beta KL(pi' || pi_ref)``,
  whose unique symmetric equilibrium is the fixed point
  of ``pi = softmax(log pi_ref + P pi / beta)``.

  Attributes:
    preference: ``[n, n]`` with ``P[i, j] = Pr(i > j)`` and ``P + P^T = 1``.
    beta: ``[]`` KL strength, or None for the unregularised game.
    log_ref: ``[n]`` log-probabilities of the reference policy (with ``beta``).
    action_mask: optional ``bool[n]``.

  >>> g = PreferenceGame.from_matrix([[0.5, 0.9], [0.1, 0.5]]).regularized(0.1)
  >>> float(g.beta)
  0.1
  """

  preference: jax.Array
  beta: Optional[jax.Array] = None
  log_ref: Optional[jax.Array] = None
  action_mask: Optional[jax.Array] = None

  @classmethod
  def from_matrix(cls, preference: jax.typing.ArrayLike, dtype: Any = None) -> "PreferenceGame":
    """Validated constructor: square, entries in [0, 1], ``P + P^T = 1``."""
    p = validate.preference_matrix(preference, "preference")
    return cls(jnp.asarray(p, dtype=dtype or jnp.result_type(float)))

  def regularized(self, beta: jax.typing.ArrayLike, pi_ref: Optional[jax.typing.ArrayLike] = None) -> "PreferenceGame":
    """The KL-regularised game with strength ``beta > 0`` toward ``pi_ref``.

    Args:
      beta: ``[]`` KL strength, > 0.
      pi_ref: ``[n]`` reference policy with full support (default uniform).
    """
    n = self.preference.shape[-1]
    validate.positive_scalar(beta, "beta")
    ref = np.full(n, 1.0 / n) if pi_ref is None else validate.distribution(pi_ref, "pi_ref", size=n)
    return self.replace(beta=jnp.asarray(beta, self.preference.dtype), log_ref=_log_reference(ref, self.preference.dtype))

  def f_regularized(self, beta: jax.typing.ArrayLike, divergence: Divergence,
                    pi_ref: Optional[jax.typing.ArrayLike] = None) -> "FRegularizedGame":
    """The game regularised by ``beta D_f(pi || pi_ref)`` for any f-divergence.

    With ``divergences.reverse_kl()`` it is the game of ``regularized(beta, pi_ref)``.

    Args:
      beta: ``[]`` strength, > 0.
      divergence: a ``core.divergences.Divergence``.
      pi_ref: ``[n]`` reference policy with full support (default uniform).
    """
    if not isinstance(divergence, Divergence):
      raise ValueError(f"divergence: expected a core.divergences.Divergence, got {type(divergence).__name__}")
    if self.action_mask is not None:
      raise ValueError("game: f-regularised games take no action_mask; drop the masked actions first")
    g = self.regularized(beta, pi_ref)
    return FRegularizedGame(g.preference, g.beta, g.log_ref, divergence)

  @property
  def num_actions(self) -> int:
    return self.preference.shape[-1]

  @property
  def is_regularized(self) -> bool:
    return self.beta is not None

  def as_matrix_game(self) -> MatrixGame:
    """The unregularised game as a zero-sum matrix game with payoff ``P - 1/2``."""
    return MatrixGame(self.preference - 0.5, self.action_mask, self.action_mask)


@_struct.dataclass
class FRegularizedGame:
  """Symmetric preference game regularised by an f-divergence.

  ``V(pi1, pi2) = pi1^T P pi2 - beta D_f(pi1 || ref) + beta D_f(pi2 || ref)``:
  the NLHF game (Munos et al. 2024) with the KL replaced by ``D_f``, as f-DPG
  and f-DPO replace it in RLHF and DPO. For a strictly convex ``f`` its
  symmetric equilibrium is the unique fixed point of
  ``pi = argmax_q <q, P pi> - beta D_f(q || ref)``
  (``divergences.regularized_argmax``). Build it with
  ``PreferenceGame.f_regularized``.

  Attributes:
    preference: ``[n, n]`` with ``P + P^T = 1``.
    beta: ``[]`` regularisation strength.
    log_ref: ``[n]`` log reference policy.
    divergence: the ``Divergence`` (its ``alpha`` is traced).
  """

  preference: jax.Array
  beta: jax.Array
  log_ref: jax.Array
  divergence: Divergence

  @property
  def num_actions(self) -> int:
    return self.preference.shape[-1]

  @property
  def is_regularized(self) -> bool:
    return True

  @property
  def action_mask(self) -> None:
    return None


@_struct.dataclass
class TargetDistribution:
  """An energy-based target ``p(x) = a(x) b(x) / Z`` over ``n`` outcomes.

  ``a`` is the base model (a normalised distribution), ``b >= 0`` the
  preference: ``b = exp(r / beta)`` turns reverse-KL f-DPG into RLHF with a KL
  penalty, ``b = 1[x in C]`` into a hard constraint (GDC). Go et al.
  (ICML 2023) approximate ``p`` by minimising ``D_f(pi || p)``.

  Attributes:
    log_base: ``[n]`` ``log a`` (normalised).
    log_score: ``[n]`` ``log b`` (``-inf`` where ``b = 0``).
  """

  log_base: jax.Array
  log_score: jax.Array

  @classmethod
  def from_reward(cls, reward: jax.typing.ArrayLike, beta: jax.typing.ArrayLike,
                  base: Optional[jax.typing.ArrayLike] = None, dtype: Any = None) -> "TargetDistribution":
    """``p ∝ base exp(reward / beta)``: the optimum of ``E_pi r - beta KL(pi || base)``."""
    r = validate.finite_array(reward, "reward")
    if r.ndim != 1 or r.size < 2:
      raise ValueError(f"reward: expected a vector of at least 2 outcomes, got shape {r.shape}")
    validate.positive_scalar(beta, "beta")
    a = np.full(r.size, 1.0 / r.size) if base is None else validate.distribution(base, "base", size=r.size)
    dtype = dtype or jnp.result_type(float)
    with np.errstate(divide="ignore"):
      la = np.log(np.clip(a, 0.0, None))
    return cls(jnp.asarray(la, dtype), jnp.asarray(r / float(beta), dtype))

  @classmethod
  def from_constraint(cls, satisfied: jax.typing.ArrayLike, base: Optional[jax.typing.ArrayLike] = None,
                      dtype: Any = None) -> "TargetDistribution":
    """``p ∝ base 1[satisfied]``: the base model conditioned on a constraint."""
    c = np.asarray(satisfied, bool)
    if c.ndim != 1 or c.size < 2:
      raise ValueError(f"satisfied: expected a boolean vector of at least 2 outcomes, got shape {c.shape}")
    a = np.full(c.size, 1.0 / c.size) if base is None else validate.distribution(base, "base", size=c.size)
    if not (a[c] > 0).any():
      raise ValueError("satisfied: no outcome with positive base probability satisfies the constraint")
    dtype = dtype or jnp.result_type(float)
    with np.errstate(divide="ignore"):
      la = np.log(np.clip(a, 0.0, None))
    return cls(jnp.asarray(la, dtype), jnp.asarray(np.where(c, 0.0, -np.inf), dtype))

  @property
  def num_outcomes(self) -> int:
    return self.log_base.shape[-1]

  @property
  def log_unnormalized(self) -> jax.Array:
    """``log P = log a + log b``."""
    return self.log_base + self.log_score

  @property
  def log_partition(self) -> jax.Array:
    """``log Z = log sum_x a(x) b(x)``."""
    return jax.scipy.special.logsumexp(self.log_unnormalized, axis=-1)

  @property
  def log_prob(self) -> jax.Array:
    """``log p`` (normalised)."""
    return jax.nn.log_softmax(self.log_unnormalized, axis=-1)


@_struct.dataclass
class ContextualPreferenceGame:
  """Preference games over prompts: ``P(y > y' | x)`` for ``x`` drawn with ``prompt_weights``.

  The NLHF objective (Munos et al. 2024, eq. 1) averages the per-prompt game
  over prompts: ``V(pi, pi') = sum_x w_x [pi_x^T P_x pi'_x - beta KL(pi_x||ref_x)
  + beta KL(pi'_x||ref_x)]``. Policies are ``[x, n]`` arrays (one distribution
  per prompt). Prompts with fewer than ``n`` responses are padded with an
  ``action_mask`` (as ``pad`` does for a single game).

  Attributes:
    preference: ``[x, n, n]``, each slice a preference matrix.
    prompt_weights: ``[x]`` probabilities of the prompts.
    beta: ``[]`` KL strength, or None for the unregularised game.
    log_ref: ``[x, n]`` log-probabilities of the reference policy per prompt.
    action_mask: optional ``bool[x, n]``.

  >>> import numpy as np
  >>> p = np.array([[[0.5, 0.9], [0.1, 0.5]], [[0.5, 0.2], [0.8, 0.5]]])
  >>> g = ContextualPreferenceGame.from_matrices(p, [0.25, 0.75]).regularized(0.5)
  >>> g.num_prompts, g.num_actions, g.log_ref.shape
  (2, 2, (2, 2))
  """

  preference: jax.Array
  prompt_weights: jax.Array
  beta: Optional[jax.Array] = None
  log_ref: Optional[jax.Array] = None
  action_mask: Optional[jax.Array] = None

  @classmethod
  def from_matrices(cls, preference: jax.typing.ArrayLike, prompt_weights: Optional[jax.typing.ArrayLike] = None,
                    dtype: Any = None) -> "ContextualPreferenceGame":
    """Validated constructor from ``[x, n, n]`` preference matrices (uniform prompts by default)."""
    p = validate.finite_array(preference, "preference")
    if p.ndim != 3:
      raise ValueError(f"preference: expected [prompts, n, n], got shape {p.shape}")
    for i in range(p.shape[0]):
      validate.preference_matrix(p[i], f"preference[{i}]")
    x = p.shape[0]
    w = np.full(x, 1.0 / x) if prompt_weights is None else validate.distribution(prompt_weights, "prompt_weights", size=x)
    dt = dtype or jnp.result_type(float)
    return cls(jnp.asarray(p, dt), jnp.asarray(w / w.sum(), dt))

  @classmethod
  def from_games(cls, games: Sequence[PreferenceGame], prompt_weights: Optional[jax.typing.ArrayLike] = None
                 ) -> "ContextualPreferenceGame":
    """Stacks unregularised games of one size, one per prompt."""
    if not games:
      raise ValueError("games: expected at least one PreferenceGame")
    return cls.from_matrices(np.stack([np.asarray(g.preference) for g in games]), prompt_weights)

  def regularized(self, beta: jax.typing.ArrayLike, pi_ref: Optional[jax.typing.ArrayLike] = None
                  ) -> "ContextualPreferenceGame":
    """The KL-regularised game; ``pi_ref`` is ``[n]`` (shared) or ``[x, n]`` (per prompt)."""
    x, n = self.preference.shape[-3], self.preference.shape[-1]
    validate.positive_scalar(beta, "beta")
    dtype = self.preference.dtype
    if pi_ref is None:
      ref = np.full((x, n), 1.0 / n)
    else:
      ref = validate.finite_array(pi_ref, "pi_ref")
      if ref.shape == (n,):
        ref = np.broadcast_to(ref, (x, n))
      if ref.shape != (x, n):
        raise ValueError(f"pi_ref: expected shape ({n},) or ({x}, {n}), got {ref.shape}")
      for i in range(x):
        validate.distribution(ref[i], f"pi_ref[{i}]", size=n)
    return self.replace(beta=jnp.asarray(beta, dtype), log_ref=_log_reference(ref, dtype))

  @property
  def num_prompts(self) -> int:
    return self.preference.shape[-3]

  @property
  def num_actions(self) -> int:
    return self.preference.shape[-1]

  @property
  def is_regularized(self) -> bool:
    return self.beta is not None

  def prompt(self, i: int) -> PreferenceGame:
    """The (possibly regularised) preference game of prompt ``i``."""
    lr = None if self.log_ref is None else self.log_ref[i]
    mask = None if self.action_mask is None else self.action_mask[i]
    return PreferenceGame(self.preference[i], self.beta, lr, mask)


def stack(games: Sequence[Any]) -> Any:
  """Stacks games of one type and shape into a batch (leading axis)."""
  if not games:
    raise ValueError("games: expected at least one game")
  return jax.tree.map(lambda *xs: jnp.stack(xs), *games)


def pad(game: Any, *sizes: int) -> Any:
  """Pads a matrix or preference game with illegal actions up to ``sizes``.

  Padding actions carry payoff 0 (preference 1/2) and a False mask, so every
  solver ignores them: the padded game has the same equilibrium as the
  original, and games of different sizes can share a shape in one batch.

  Args:
    game: a ``MatrixGame`` (sizes ``n, m``) or ``PreferenceGame`` (size ``n``).
    *sizes: the padded sizes, each at least the current one.
  """
  if isinstance(game, MatrixGame):
    if len(sizes) != 2:
      raise ValueError(f"sizes: a MatrixGame is padded to (n, m), got {sizes}")
    n0, m0 = game.payoff.shape[-2:]
    n, m = sizes
    if n < n0 or m < m0:
      raise ValueError(f"sizes: ({n}, {m}) is smaller than the game ({n0}, {m0})")
    a = jnp.zeros(game.payoff.shape[:-2] + (n, m), game.payoff.dtype)
    a = a.at[..., :n0, :m0].set(game.payoff)
    rm = jnp.arange(n) < n0 if game.row_mask is None else jnp.pad(game.row_mask, (0, n - n0))
    cm = jnp.arange(m) < m0 if game.col_mask is None else jnp.pad(game.col_mask, (0, m - m0))
    return MatrixGame(a, rm, cm)
  if isinstance(game, PreferenceGame):
    if len(sizes) != 1:
      raise ValueError(f"sizes: a PreferenceGame is padded to (n,), got {sizes}")
    n0 = game.preference.shape[-1]
    (n,) = sizes
    if n < n0:
      raise ValueError(f"sizes: {n} is smaller than the game ({n0})")
    p = jnp.full(game.preference.shape[:-2] + (n, n), 0.5, game.preference.dtype)
    p = p.at[..., :n0, :n0].set(game.preference)
    mask = jnp.arange(n) < n0 if game.action_mask is None else jnp.pad(game.action_mask, (0, n - n0))
    log_ref = None
    if game.log_ref is not None:
      log_ref = jnp.pad(game.log_ref, (0, n - n0), constant_values=-jnp.inf)
    return PreferenceGame(p, game.beta, log_ref, mask)
  raise ValueError(f"game: pad supports MatrixGame and PreferenceGame, got {type(game).__name__}")
