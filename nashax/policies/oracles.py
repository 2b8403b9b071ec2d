"""Synthetic preference oracles over token sequences whose equilibrium is known exactly.

A response ``y`` (a fixed-length token sequence, tokens ``1 .. V-1``) is mapped
by a fixed feature function to one of ``K`` classes,
``c(y) = (sum_i (y_i - 1)) mod K``, and the oracle prefers ``y`` to ``y'`` with
probability ``P[c(y), c(y')]`` for a ``K x K`` preference matrix ``P``
(``P + P^T = 1``; intransitive for the interesting oracles). A sampled
comparison is a Bernoulli draw of that probability (the noise).

Because the preference sees only classes, the KL-regularised game over
sequences reduces to a ``K``-class game: the best response to a policy ``pi``
is ``pi_ref`` tilted by ``exp((P q_pi)_{c(y)} / beta)``, and the exact duality
gap of ``pi`` is

.. math:: \\mathrm{Gap}(\\pi) = 2\\beta \\log \\sum_k q_{ref}(k) e^{(P q_\\pi)_k/\\beta}
          + 2\\beta\\,\\mathrm{KL}(\\pi \\| \\pi_{ref}) - 1

where ``q`` are class marginals. For ``beta = 0`` (the unregularised game) it
is ``2 max_k (P q_pi)_k - 1``. Small response spaces (``(V-1)^L`` sequences)
are enumerated, so both are computed exactly for a neural policy.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import _struct, validate
from nashax.core.games import PreferenceGame

__all__ = [
    "SequenceOracle",
    "sequence_oracle",
    "cyclic_oracle",
    "cyclic_preference",
    "check_cyclic",
    "all_responses",
    "exact_gap",
    "class_marginals",
]


@_struct.dataclass
class SequenceOracle:
  """A class-based preference oracle over responses of ``response_len`` tokens.

  Attributes:
    preference: ``[K, K]`` ``P[k, l] = Pr(class k > class l)``.
    vocab_size: the model vocabulary (token 0 is BOS; responses use ``1 .. V-1``).
    response_len: tokens per response.
  """

  preference: jax.Array
  vocab_size: int = _struct.field(static=True, default=2)
  response_len: int = _struct.field(static=True, default=1)

  @property
  def num_classes(self) -> int:
    return self.preference.shape[-1]

  def classes(self, responses: jax.Array) -> jax.Array:
    """``[...]`` class of each response ``[..., L]`` (tokens ``1 .. V-1``)."""
    return jnp.sum(responses - 1, axis=-1) % self.num_classes

  def probability(self, y: jax.Array, y2: jax.Array) -> jax.Array:
    """``Pr(y > y2)`` for responses ``[..., L]``."""
    return self.preference[self.classes(y), self.classes(y2)]

  def prob(self, prompt: jax.Array, a: jax.Array, b: jax.Array, *, prompt_mask: Optional[jax.Array] = None,
           a_mask: Optional[jax.Array] = None, b_mask: Optional[jax.Array] = None) -> jax.Array:
    """The oracle interface of ``nashax.lm.preference.PreferenceOracle``: ``P(a > b)`` ``[B]``.

    Equals ``probability(a, b)``: the class oracle is context-free, so
    ``prompt`` (and ``prompt_mask``) are accepted and ignored, and a response
    is exactly ``response_len`` tokens, so ``a`` and ``b`` are ``[..., L]``
    with masks ``None`` or all ``True``.

    Raises:
      ValueError: if ``a`` or ``b`` is not ``[..., response_len]``, or a
        concrete mask marks a padded token.
    """
    for name, y, m in (("a", a, a_mask), ("b", b, b_mask)):
      if jnp.shape(y)[-1:] != (self.response_len,):
        raise ValueError(f"{name}: class-oracle responses are [..., {self.response_len}] tokens, "
                         f"got shape {jnp.shape(y)}")
      if m is not None:
        if jnp.shape(m) != jnp.shape(y):
          raise ValueError(f"{name}_mask: shape {jnp.shape(m)} differs from {name}'s {jnp.shape(y)}")
        if not validate.traced(m) and not bool(np.all(np.asarray(m))):
          raise ValueError(f"{name}_mask: a class-oracle response has exactly {self.response_len} real tokens; "
                           "the mask marks padding")
    return self.probability(a, b)

  def compare(self, key: jax.Array, y: jax.Array, y2: jax.Array) -> jax.Array:
    """A noisy comparison: 1.0 where ``y`` wins (Bernoulli of ``probability``)."""
    p = self.probability(y, y2)
    return (jax.random.uniform(key, p.shape) < p).astype(p.dtype)

  def class_game(self, beta: Optional[float], q_ref: Optional[jax.Array] = None) -> PreferenceGame:
    """The induced ``K``-class preference game (regularised toward ``q_ref`` when ``beta`` is given)."""
    g = PreferenceGame(self.preference)
    return g if beta is None else g.regularized(beta, q_ref)


def _check_sizes(num_classes: int, vocab_size: int, response_len: int) -> None:
  if isinstance(response_len, bool) or not isinstance(response_len, int) or response_len < 1:
    raise ValueError(f"response_len: must be a positive integer, got {response_len!r}")
  if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size - 1 < num_classes:
    raise ValueError(f"vocab_size: the oracle has {num_classes} classes and needs at least {num_classes} response "
                     f"tokens (vocab_size >= {num_classes + 1} with BOS), got {vocab_size!r}")


def sequence_oracle(preference: Any, vocab_size: int, response_len: int) -> SequenceOracle:
  """Builds and checks an oracle.

  Raises:
    ValueError: if ``preference`` is not a preference matrix, or the
      vocabulary cannot express every class in one token (``vocab_size - 1 <
      K``: a response must be able to reach any class by its first token).
  """
  p = validate.preference_matrix(preference)
  _check_sizes(p.shape[0], vocab_size, response_len)
  return SequenceOracle(jnp.asarray(p, jnp.result_type(float)), vocab_size, response_len)


def cyclic_preference(num_classes: int, *, margin: float = 0.3, noise: float = 0.1, seed: int = 0) -> np.ndarray:
  """The ``[K, K]`` matrix of ``cyclic_oracle`` (NumPy; checks its arguments, compiles nothing)."""
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 3 or num_classes % 2 == 0:
    raise ValueError(f"num_classes: a regular tournament needs an odd number >= 3, got {num_classes}")
  if not 0 < margin < 0.5 or not 0 <= noise < 0.5 - margin:
    raise ValueError(f"margin/noise: need 0 < margin < 1/2 and 0 <= noise < 1/2 - margin, got {margin}, {noise}")
  rng = np.random.default_rng(seed)
  k = num_classes
  a = np.zeros((k, k))
  for i in range(k):
    for s in range(1, (k - 1) // 2 + 1):
      j = (i + s) % k
      a[i, j] = margin + rng.uniform(-noise, noise)
      a[j, i] = -a[i, j]
  return 0.5 + a


def check_cyclic(num_classes: int, vocab_size: int, response_len: int, *, margin: float = 0.3,
                 noise: float = 0.1) -> None:
  """Raises what ``cyclic_oracle`` would raise, without building anything (config validation)."""
  cyclic_preference(num_classes, margin=margin, noise=noise)
  _check_sizes(num_classes, vocab_size, response_len)


def cyclic_oracle(num_classes: int, vocab_size: int, response_len: int, *, margin: float = 0.3,
                  noise: float = 0.1, seed: int = 0) -> SequenceOracle:
  """An intransitive oracle: class ``k`` beats the next ``(K-1)/2`` classes (a regular tournament).

  ``P[k, l] = 1/2 + margin`` when ``k`` beats ``l``, perturbed by
  ``Uniform(-noise, noise)`` (kept skew-symmetric and in ``(0, 1)``).
  ``num_classes`` must be odd.
  """
  p = cyclic_preference(num_classes, margin=margin, noise=noise, seed=seed)
  return sequence_oracle(p, vocab_size, response_len)


def all_responses(vocab_size: int, response_len: int, limit: int = 1 << 16) -> np.ndarray:
  """Every response ``[(V-1)^L, L]`` in lexicographic order (refuses more than ``limit``)."""
  n = (vocab_size - 1) ** response_len
  if n > limit:
    raise ValueError(f"response_len: {n} responses (vocab {vocab_size}, length {response_len}) exceed {limit}; "
                     "the exact metrics need an enumerable response space")
  return np.asarray(list(itertools.product(range(1, vocab_size), repeat=response_len)), np.int32)


def class_marginals(oracle: SequenceOracle, logp_all: jax.Array, responses: jax.Array) -> jax.Array:
  """``[K]`` class marginals of a policy given its log-probabilities of every response."""
  c = oracle.classes(responses)
  return jax.ops.segment_sum(jnp.exp(logp_all), c, num_segments=oracle.num_classes)


def exact_gap(oracle: SequenceOracle, logp_all: jax.Array, ref_logp_all: jax.Array, responses: jax.Array,
              beta: jax.typing.ArrayLike) -> jax.Array:
  """The exact duality gap of a policy in the KL-regularised sequence game (module docstring).

  Written once: the ``K``-class game's gap (``nashax.metrics.duality_gap`` of
  the class marginals, regularised toward ``q_ref``) plus
  ``2 beta (KL(pi || pi_ref) - KL(q_pi || q_ref))``, the within-class KL that
  only the sequence-level policy carries (the best responses tilt ``pi_ref``
  by class, so they carry none).

  Args:
    logp_all, ref_logp_all: ``[N]`` log-probabilities of every response under
      the policy and the reference (each sums to one in probability).
    responses: ``[N, L]`` the responses, as from ``all_responses``.
    beta: KL strength, ``> 0``; ``0`` gives the unregularised gap.
  """
  from nashax.core.metrics import duality_gap

  q = class_marginals(oracle, logp_all, responses)
  q_ref = class_marginals(oracle, ref_logp_all, responses)
  beta = jnp.asarray(beta, q.dtype)
  safe = jnp.where(beta > 0, beta, 1.0)
  log_q_ref = jnp.log(q_ref)
  game = PreferenceGame(oracle.preference.astype(q.dtype), beta=safe, log_ref=log_q_ref)
  kl_seq = jnp.sum(jnp.exp(logp_all) * (logp_all - ref_logp_all))
  kl_cls = jnp.sum(jnp.where(q > 0, q * (jnp.log(jnp.where(q > 0, q, 1.0)) - log_q_ref), 0.0))
  reg = duality_gap(game, q) + 2.0 * safe * (kl_seq - kl_cls)
  unreg = duality_gap(PreferenceGame(oracle.preference.astype(q.dtype)), q)
  return jnp.where(beta > 0, reg, unreg)
