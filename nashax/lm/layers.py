"""Attention, rotary embeddings and RMSNorm, written once for every decoder in nashax.

Both the Llama-family decoder (``nashax.lm.decoder``) and the toy policy
transformer (``nashax.policies.transformer``) call these functions, so that
the attention arithmetic, its masking and its key/value cache exist in one
place.

Conventions: activations are ``[B, T, H, D]`` (batch, positions, heads, head
size); ``positions [B, T]`` are integer token positions, taken from the
attention mask for padded batches (``cumsum(mask) - 1``), so that a
left-padded row sees the same positions as the same row unpadded.
"""

from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["RMSNorm", "rope_frequencies", "apply_rope", "attend", "positions_from_mask"]


class RMSNorm(nnx.Module):
  """``x / sqrt(mean(x^2) + eps) * scale``, computed in float32 and cast back (as Hugging Face's LlamaRMSNorm)."""

  def __init__(self, dim: int, eps: float = 1e-6, *, param_dtype=jnp.float32):
    self.eps = eps
    self.scale = nnx.Param(jnp.ones((dim,), param_dtype))

  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    scale = self.scale[...]
    return scale.reshape((1,) * (x.ndim - 1) + scale.shape) * y.astype(x.dtype)


def rope_frequencies(head_dim: int, theta: float, scaling: Optional[dict] = None) -> jax.Array:
  """``[head_dim / 2]`` rotary inverse frequencies ``theta^(-2i/d)``, with Llama-3's scaling if given.

  Llama-3 scaling (``rope_type = "llama3"``; Meta's Llama 3.1 release, as in
  Hugging Face's ``_compute_llama3_parameters``): with wavelength
  ``w = 2 pi / f`` and ``L = original_max_position_embeddings``, frequencies
  with ``w > L / low_freq_factor`` are divided by ``factor``, those with
  ``w < L / high_freq_factor`` are kept, and those between are interpolated:
  ``(1 - s) f / factor + s f`` with ``s = (L / w - low) / (high - low)``.
  """
  inv = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
  if scaling is None:
    return inv
  factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
  old = scaling["original_max_position_embeddings"]
  wavelen = 2 * math.pi / inv
  scaled = jnp.where(wavelen > old / low, inv / factor, inv)
  s = (old / wavelen - low) / (high - low)
  smoothed = (1 - s) * scaled / factor + s * scaled
  medium = (wavelen >= old / high) & (wavelen <= old / low)
  return jnp.where(medium, smoothed, scaled)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
  """Rotates ``x [B, T, H, D]`` at ``positions [B, T]``; the pairs are ``(i, i + D/2)`` (Hugging Face's ``rotate_half``)."""
  ang = positions[..., None].astype(jnp.float32) * inv_freq[None, None, :]  # [B, T, D/2]
  sin, cos = jnp.sin(ang)[:, :, None, :], jnp.cos(ang)[:, :, None, :]
  d = x.shape[-1] // 2
  x1, x2 = x[..., :d].astype(jnp.float32), x[..., d:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).astype(x.dtype)


def positions_from_mask(mask: jax.Array) -> jax.Array:
  """``[B, T]`` positions ``cumsum(mask) - 1`` (0 on leading padding), so padding never shifts a row."""
  m = mask.astype(jnp.int32)
  return jnp.maximum(jnp.cumsum(m, axis=-1) - 1, 0)


def attend(q: jax.Array, k: jax.Array, v: jax.Array, q_pos: jax.Array, k_pos: jax.Array,
           k_valid: Optional[jax.Array] = None) -> jax.Array:
  """Causal grouped-query attention.

  Query ``t`` of row ``b`` attends to key ``s`` iff ``k_valid[b, s]`` and
  ``k_pos[b, s] <= q_pos[b, t]``. Scores and softmax are float32; a query with
  no key allowed (a padding position) gets uniform weights rather than NaN,
  and its output is meaningless (callers mask it).

  Args:
    q: ``[B, T, H, D]`` queries (rotary already applied).
    k, v: ``[B, S, G, D]`` keys and values, ``G`` key/value heads dividing ``H``.
    q_pos: ``[B, T]``, k_pos: ``[B, S]`` positions; k_valid: ``[B, S]`` bool or None (all valid).

  Returns:
    ``[B, T, H, D]`` in ``v``'s dtype.
  """
  b, t, h, d = q.shape
  g = k.shape[2]
  qg = q.reshape(b, t, g, h // g, d).astype(jnp.float32)
  scores = jnp.einsum("btgrd,bsgd->bgrts", qg, k.astype(jnp.float32)) / math.sqrt(d)
  allowed = k_pos[:, None, :] <= q_pos[:, :, None]  # [B, T, S]
  if k_valid is not None:
    allowed = allowed & k_valid[:, None, :].astype(bool)
  scores = jnp.where(allowed[:, None, None], scores, jnp.finfo(jnp.float32).min)
  w = jax.nn.softmax(scores, axis=-1)
  out = jnp.einsum("bgrts,bsgd->btgrd", w, v.astype(jnp.float32))
  return out.reshape(b, t, h, d).astype(v.dtype)
