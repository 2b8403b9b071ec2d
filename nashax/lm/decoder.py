"""The Llama-family decoder in Flax NNX, used through pure functions.

``init_decoder(config, key)`` (random weights) and ``load_pretrained(path)``
(``nashax.lm.checkpoint``) return ``(graphdef, params)``: the NNX module split
at once into a static graph definition and a pytree of arrays. Everything
after that is a pure function of ``params``, with the contract of the toy
policy transformer:

- ``logits(graphdef, params, tokens, attention_mask)``: ``[B, T, V]``;
- ``sequence_logp(graphdef, params, tokens, mask, attention_mask=None)``: ``[B]``;
- sampling with a key/value cache in ``nashax.lm.sampling``.

These four functions are jitted with the graph definition static, so an
eager call compiles once per shape; inside a caller's ``jit`` they inline.

The block (Touvron et al. 2023, "Llama 2", arXiv:2307.09288; Qwen2/Qwen3 and
Mistral differ only in the options of ``DecoderConfig``):

.. math::

  h = x + W_o \\,\\mathrm{Attn}(\\mathrm{RoPE}(W_q n_1(x)), \\mathrm{RoPE}(W_k n_1(x)), W_v n_1(x)),\\quad
  y = h + W_{down}(\\mathrm{silu}(W_{gate} n_2(h)) \\odot W_{up} n_2(h))

with RMSNorms ``n_1, n_2``, grouped-query attention (``num_kv_heads`` key/value
heads shared by groups of query heads), a final RMSNorm and the unembedding
(tied to the embedding or not). Parameter names follow Hugging Face's module
names (``layers[i].self_attn.q_proj.kernel`` is ``model.layers.i.self_attn.q_proj.weight``
transposed), so that ``nashax.lm.checkpoint`` maps a checkpoint by name.

Padding: rows may be left- or right-padded; positions come from the attention
mask (``cumsum(mask) - 1``) and padded keys are never attended to, so a padded
row computes the same logits at its real tokens as the row alone.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from nashax.lm.config import DecoderConfig
from nashax.lm.layers import RMSNorm, apply_rope, attend, positions_from_mask, rope_frequencies

__all__ = ["Decoder", "init_decoder", "graphdef_of", "logits", "hidden_states", "sequence_logp",
           "token_logp", "init_cache", "num_params", "params_dtype"]


def _linear(i: int, o: int, bias: bool, dtype, rngs: nnx.Rngs, std: float = 0.02) -> nnx.Linear:
  return nnx.Linear(i, o, use_bias=bias, param_dtype=dtype, kernel_init=nnx.initializers.normal(std), rngs=rngs)


class Attention(nnx.Module):
  """Grouped-query self-attention with rotary embeddings (and ``qwen3``'s q/k norms)."""

  def __init__(self, cfg: DecoderConfig, dtype, rngs: nnx.Rngs):
    h, g, d, e = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.hidden_size
    self.q_proj = _linear(e, h * d, cfg.qkv_bias, dtype, rngs)
    self.k_proj = _linear(e, g * d, cfg.qkv_bias, dtype, rngs)
    self.v_proj = _linear(e, g * d, cfg.qkv_bias, dtype, rngs)
    self.o_proj = _linear(h * d, e, cfg.o_bias, dtype, rngs)
    if cfg.qk_norm:
      self.q_norm = RMSNorm(d, cfg.rms_norm_eps, param_dtype=dtype)
      self.k_norm = RMSNorm(d, cfg.rms_norm_eps, param_dtype=dtype)
    self.cfg = cfg

  def __call__(self, x, positions, valid, inv_freq, kv):
    """``kv``: ``(k_cache, v_cache, k_pos, k_valid, index)`` or ``None`` (the keys are the tokens themselves,
    valid where ``valid``); returns ``(out, (k, v))``."""
    cfg = self.cfg
    b, t, _ = x.shape
    q = self.q_proj(x).reshape(b, t, cfg.num_heads, cfg.head_dim)
    k = self.k_proj(x).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
    v = self.v_proj(x).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
    if cfg.qk_norm:
      q, k = self.q_norm(q), self.k_norm(k)
    q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
    if kv is None:
      out = attend(q, k, v, positions, positions, valid)
      new = (k, v)
    else:
      k_cache, v_cache, k_pos, k_valid, index = kv
      k_all = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, index, 0, 0))
      v_all = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, index, 0, 0))
      out = attend(q, k_all, v_all, positions, k_pos, k_valid)
      new = (k_all, v_all)
    return self.o_proj(out.reshape(b, t, -1)), new


class Block(nnx.Module):
  """Pre-norm residual block: attention, then a SwiGLU MLP."""

  def __init__(self, cfg: DecoderConfig, dtype, rngs: nnx.Rngs):
    e, f = cfg.hidden_size, cfg.intermediate_size
    self.input_layernorm = RMSNorm(e, cfg.rms_norm_eps, param_dtype=dtype)
    self.self_attn = Attention(cfg, dtype, rngs)
    self.post_attention_layernorm = RMSNorm(e, cfg.rms_norm_eps, param_dtype=dtype)
    self.gate_proj = _linear(e, f, cfg.mlp_bias, dtype, rngs)
    self.up_proj = _linear(e, f, cfg.mlp_bias, dtype, rngs)
    self.down_proj = _linear(f, e, cfg.mlp_bias, dtype, rngs)

  def __call__(self, x, positions, valid, inv_freq, kv):
    a, new = self.self_attn(self.input_layernorm(x), positions, valid, inv_freq, kv)
    x = x + a
    n = self.post_attention_layernorm(x)
    return x + self.down_proj(jax.nn.silu(self.gate_proj(n)) * self.up_proj(n)), new


class Decoder(nnx.Module):
  """``tokens [B, T]`` (with ``positions`` and key validity) ``-> logits [B, T, V]`` (float32)."""

  def __init__(self, cfg: DecoderConfig, *, rngs: nnx.Rngs, param_dtype=jnp.float32, remat: bool = False):
    self.cfg = cfg
    self.remat = remat
    self.embed_tokens = nnx.Embed(cfg.vocab_size, cfg.hidden_size, param_dtype=param_dtype,
                                  embedding_init=nnx.initializers.normal(0.02), rngs=rngs)
    self.layers = nnx.List([Block(cfg, param_dtype, rngs) for _ in range(cfg.num_layers)])
    self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype=param_dtype)
    if not cfg.tie_word_embeddings:
      self.lm_head = _linear(cfg.hidden_size, cfg.vocab_size, False, param_dtype, rngs)

  def hidden(self, tokens, positions, valid, cache=None, index=None):
    """Final-norm hidden states ``[B, T, E]`` and the updated cache (or ``None``)."""
    cfg = self.cfg
    inv_freq = rope_frequencies(cfg.head_dim, cfg.rope_theta, cfg.rope_scaling_dict())
    x = self.embed_tokens(tokens)
    k_pos = k_valid = None
    if cache is not None:
      k_pos = jax.lax.dynamic_update_slice(cache["pos"], positions.astype(jnp.int32), (0, index))
      k_valid = jax.lax.dynamic_update_slice(cache["valid"], valid.astype(bool), (0, index))
    x, kv = self._blocks(x, positions, valid.astype(bool), inv_freq, cache, k_pos, k_valid, index)
    x = self.norm(x)
    if cache is None:
      return x, None
    return x, {"k": kv[0], "v": kv[1], "pos": k_pos, "valid": k_valid}

  def _blocks(self, x, positions, valid, inv_freq, cache, k_pos, k_valid, index):
    """The residual stream through every block: one ``lax.scan`` over the layers' stacked weights.

    The blocks are split into one graph definition and their weights stacked
    along a new leading axis at each call, so the program holds one block
    whatever the depth: a 30-layer model compiles as fast as a 1-layer one,
    where unrolling the Python loop made XLA compile every layer anew. The
    stacking copies the weights once per call (memory traffic of one weight
    read, small beside the blocks' matmuls); its gradient is the matching
    slice. With ``remat`` the scanned block is ``jax.checkpoint``-ed, so the
    backward pass keeps only the residual stream between layers. Returns the
    stream and, with a cache, the stacked new keys and values ``[L, B, S, G, D]``.
    """
    splits = [nnx.split(blk) for blk in self.layers]
    block_def = splits[0][0]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *[state for _, state in splits])

    def body(h, layer):
      state, kc, vc = layer
      blk = nnx.merge(block_def, state)
      kv = None if cache is None else (kc, vc, k_pos, k_valid, index)
      h, (k, v) = blk(h, positions, valid, inv_freq, kv)
      return h, (None if cache is None else (k, v))

    if self.remat and cache is None:
      body = jax.checkpoint(body)
    layer_kv = (None, None) if cache is None else (cache["k"], cache["v"])
    return jax.lax.scan(body, x, (stacked, *layer_kv))

  def unembed(self, x):
    if self.cfg.tie_word_embeddings:
      z = x @ self.embed_tokens.embedding[...].T
    else:
      z = self.lm_head(x)
    return z.astype(jnp.float32)

  def __call__(self, tokens, positions, valid, cache=None, index=None):
    x, cache = self.hidden(tokens, positions, valid, cache, index)
    return self.unembed(x), cache


def _as_dtype(dtype):
  return jnp.dtype(dtype if dtype is not None else jnp.float32)


def init_decoder(config: DecoderConfig, key: jax.Array, *, dtype=jnp.float32, remat: bool = False):
  """Random weights (normal, std 0.02; norms 1): ``(graphdef, params)``."""
  model = Decoder(config, rngs=nnx.Rngs(params=key), param_dtype=_as_dtype(dtype), remat=remat)
  return nnx.split(model, nnx.Param)


def graphdef_of(config: DecoderConfig, *, dtype=jnp.float32, remat: bool = False):
  """``(graphdef, abstract params)`` built by abstract evaluation: no weight is computed."""
  abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(params=0), param_dtype=_as_dtype(dtype),
                                            remat=remat))
  return nnx.split(abstract, nnx.Param)


def _mask_or_ones(tokens, attention_mask):
  return jnp.ones(tokens.shape, bool) if attention_mask is None else attention_mask.astype(bool)


@partial(jax.jit, static_argnums=0)
def logits(graphdef: Any, params: Any, tokens: jax.Array, attention_mask: Optional[jax.Array] = None) -> jax.Array:
  """``[B, T, V]`` float32 next-token logits after each prefix of ``tokens [B, T]``.

  ``attention_mask [B, T]`` marks real tokens (left or right padding); the
  logits at padded positions are meaningless.
  """
  model = nnx.merge(graphdef, params)
  valid = _mask_or_ones(tokens, attention_mask)
  z, _ = model(tokens, positions_from_mask(valid), valid)
  return z


@partial(jax.jit, static_argnums=0)
def hidden_states(graphdef: Any, params: Any, tokens: jax.Array, attention_mask: Optional[jax.Array] = None):
  """``[B, T, E]`` final-norm hidden states (the backbone of the preference and reward heads)."""
  model = nnx.merge(graphdef, params)
  valid = _mask_or_ones(tokens, attention_mask)
  x, _ = model.hidden(tokens, positions_from_mask(valid), valid)
  return x


@partial(jax.jit, static_argnums=0)
def token_logp(graphdef: Any, params: Any, tokens: jax.Array, attention_mask: Optional[jax.Array] = None):
  """``[B, T - 1]``: ``log pi(tokens[:, t + 1] | tokens[:, :t + 1])``."""
  z = logits(graphdef, params, tokens[:, :-1], None if attention_mask is None else attention_mask[:, :-1])
  lp = jax.nn.log_softmax(z, axis=-1)
  return jnp.take_along_axis(lp, tokens[:, 1:, None].astype(jnp.int32), axis=-1)[..., 0]


@partial(jax.jit, static_argnums=0)
def sequence_logp(graphdef: Any, params: Any, tokens: jax.Array, mask: jax.Array,
                  attention_mask: Optional[jax.Array] = None) -> jax.Array:
  """``[B]`` ``sum_t mask[t] log pi(tokens[t] | tokens[:t])`` (``mask[:, 0]`` is ignored).

  Args:
    tokens: ``[B, T]`` prompt then response, padded.
    mask: ``[B, T]`` 1 on the response tokens to score.
    attention_mask: ``[B, T]`` 1 on real tokens (default: all).
  """
  lp = token_logp(graphdef, params, tokens, attention_mask)
  return jnp.sum(jnp.where(mask[:, 1:] > 0, lp, 0.0), axis=-1)


def init_cache(config: DecoderConfig, batch: int, length: int, dtype=jnp.float32) -> dict:
  """An empty key/value cache of ``length`` slots: ``k, v [L, B, S, G, D]``, ``pos [B, S]``, ``valid [B, S]``."""
  shape = (config.num_layers, batch, length, config.num_kv_heads, config.head_dim)
  return {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype),
          "pos": jnp.zeros((batch, length), jnp.int32), "valid": jnp.zeros((batch, length), bool)}


def params_dtype(params: Any):
  """The dtype of the first parameter leaf."""
  return jax.tree.leaves(params)[0].dtype


def num_params(params: Any) -> int:
  """The number of scalar parameters."""
  return int(sum(x.size for x in jax.tree.leaves(params)))
