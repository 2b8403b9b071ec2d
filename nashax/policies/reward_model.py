"""Preference models learned from oracle comparisons: Bradley-Terry and general (skew-symmetric).

Both embed a response (``[L]`` tokens) with a small MLP over token embeddings
and are trained by logistic regression on comparisons ``(y, y', won)``:

- ``bradley_terry``: a scalar reward ``r(y)``; ``P(y > y') = sigmoid(r(y) - r(y'))``.
  Transitive by construction: it cannot represent a preference cycle.
- ``general``: a vector ``v(y)`` in ``R^{2d}`` and ``P(y > y') =
  sigmoid(v(y)^T R v(y'))`` with ``R`` block-diagonal ``[[0, 1], [-1, 0]]``,
  skew-symmetric, so ``P(y > y') + P(y' > y) = 1`` exactly and cycles are
  representable (the general preference model of Zhang et al., "Beyond
  Bradley-Terry Models: A General Preference Model for Language Model
  Alignment", arXiv:2410.02197).

The same two formulas on a decoder backbone, reading the prompt too, are the
``bradley_terry`` and ``general`` heads of ``nashax.lm.preference`` (whose
general head adds the unit normalisation and prompt-dependent block scales of
Zhang et al.); the skew form is written once there (``skew_form``).

``fit(kind, oracle, key, ...)`` samples comparisons from the oracle, trains
with optax, and returns a ``PreferenceModel`` whose ``probability(y, y')``
plugs into the policy trainer in place of the oracle.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from nashax.lm.preference import skew_form
from nashax.policies.oracles import SequenceOracle

__all__ = ["PreferenceModel", "fit", "KINDS"]

KINDS = ("bradley_terry", "general")


class _Net(nnx.Module):
  def __init__(self, vocab: int, length: int, out: int, width: int, *, rngs: nnx.Rngs):
    self.embed = nnx.Embed(vocab, width, rngs=rngs)
    self.h = nnx.Linear(length * width, width, rngs=rngs)
    self.out = nnx.Linear(width, out, rngs=rngs)

  def __call__(self, y):
    e = self.embed(y).reshape(y.shape[:-1] + (-1,))
    return self.out(jax.nn.gelu(self.h(e)))


@dataclasses.dataclass(frozen=True)
class PreferenceModel:
  """A trained preference model (``graphdef`` static, ``params`` a pytree).

  Attributes:
    kind: ``"bradley_terry"`` or ``"general"``.
    graphdef, params: the network, split.
    dim: ``d`` of the general model (its embedding has ``2d`` entries).
    final_loss: mean training log-loss over the last 100 steps.
  """

  kind: str
  graphdef: Any
  params: Any
  dim: int
  final_loss: float

  def score(self, y: jax.Array) -> jax.Array:
    """``[...]`` reward (BT) or ``[..., 2d]`` embedding (general) of responses ``[..., L]``."""
    net = nnx.merge(self.graphdef, self.params)
    out = net(y)
    return out[..., 0] if self.kind == "bradley_terry" else out

  def probability(self, y: jax.Array, y2: jax.Array) -> jax.Array:
    """``P(y > y')`` for responses ``[..., L]``."""
    return _prob(self.kind, self.dim, nnx.merge(self.graphdef, self.params), y, y2)


def _prob(kind, dim, net, y, y2):
  a, b = net(y), net(y2)
  if kind == "bradley_terry":
    return jax.nn.sigmoid(a[..., 0] - b[..., 0])
  return jax.nn.sigmoid(skew_form(a, b))  # v(y)^T R v(y'), R = diag([[0, 1], [-1, 0]] x dim)


class _Fit(NamedTuple):
  params: Any
  opt: Any


def fit(kind: str, oracle: SequenceOracle, key: jax.Array, *, num_steps: int = 2000, batch_size: int = 256,
        width: int = 64, dim: int = 4, lr: float = 3e-3) -> PreferenceModel:
  """Trains a preference model on fresh oracle comparisons of uniformly random responses.

  Args:
    kind: ``"bradley_terry"`` or ``"general"``.
    oracle: the ``SequenceOracle`` that labels the pairs (noisy comparisons).
    key: PRNG key (initialisation and data).
    num_steps, batch_size, lr: Adam on the logistic loss.
    width: hidden width; dim: ``d`` of the general model.

  Raises:
    ValueError: for an unknown ``kind`` or non-positive sizes.
  """
  if kind not in KINDS:
    raise ValueError(f"kind: must be one of {KINDS}, got {kind!r}")
  for name, v in (("num_steps", num_steps), ("batch_size", batch_size), ("width", width), ("dim", dim)):
    if not isinstance(v, int) or v < 1:
      raise ValueError(f"{name}: must be a positive integer, got {v!r}")
  k_init, k_data = jax.random.split(key)
  out = 1 if kind == "bradley_terry" else 2 * dim
  net = _Net(oracle.vocab_size, oracle.response_len, out, width, rngs=nnx.Rngs(params=k_init))
  graphdef, params = nnx.split(net, nnx.Param)
  tx = optax.adam(lr)
  shape = (batch_size, oracle.response_len)

  def loss_fn(p, y, y2, won):
    prob = _prob(kind, dim, nnx.merge(graphdef, p), y, y2)
    prob = jnp.clip(prob, 1e-7, 1 - 1e-7)
    return -jnp.mean(won * jnp.log(prob) + (1 - won) * jnp.log1p(-prob))

  def step(carry, k):
    f = carry
    k1, k2, k3 = jax.random.split(k, 3)
    y = jax.random.randint(k1, shape, 1, oracle.vocab_size)
    y2 = jax.random.randint(k2, shape, 1, oracle.vocab_size)
    won = oracle.compare(k3, y, y2)
    loss, g = jax.value_and_grad(loss_fn)(f.params, y, y2, won)
    upd, opt = tx.update(g, f.opt, f.params)
    return _Fit(optax.apply_updates(f.params, upd), opt), loss

  run = jax.jit(lambda p, ks: jax.lax.scan(step, _Fit(p, tx.init(p)), ks))
  fitted, losses = run(params, jax.random.split(k_data, num_steps))
  return PreferenceModel(kind, graphdef, fitted.params, dim, float(jnp.mean(losses[-100:])))
