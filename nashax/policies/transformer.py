"""A small decoder-only transformer in Flax NNX, used through pure functions.

``init_model(config, key)`` builds the NNX module and splits it at once into a
static ``graphdef`` and a ``params`` pytree (``nnx.split``); everything after
that is a pure function of ``params``:

- ``logits(graphdef, params, tokens)``: ``[B, T, V]`` next-token logits;
- ``sequence_logp(graphdef, params, tokens, mask)``: ``[B]`` the log-probability
  of the tokens marked by ``mask`` (the response), each given its prefix;
- ``sample(graphdef, params, key, prompts, max_len, temperature)``: responses
  by ancestral sampling with a key/value cache, one token per step.

The architecture: token embedding, ``num_layers`` pre-norm blocks (RMSNorm,
multi-head causal self-attention with rotary position embeddings, RMSNorm,
GELU MLP), a final RMSNorm and an unembedding with bias; the attention, rotary
and RMSNorm code is ``nashax.lm.layers``, shared with the Llama-family decoder. Token 0 is the
beginning-of-sequence token: it appears only in prompts, and its logit is
removed from every next-token distribution, so responses use tokens
``1 .. vocab_size - 1`` and ``sample`` and ``sequence_logp`` describe the same
distribution.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import nnx

from nashax.lm.layers import RMSNorm, apply_rope, attend, rope_frequencies

__all__ = [
    "BOS",
    "TransformerConfig",
    "Transformer",
    "init_model",
    "graphdef_of",
    "logits",
    "next_token_logits",
    "sequence_logp",
    "sample",
    "num_params",
    "flops_per_token",
]

BOS = 0


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Sizes of the model (frozen; validated by ``validate``).

  Attributes:
    vocab_size: tokens, including the BOS token 0.
    num_layers, num_heads, embed_dim: depth, heads and width (``embed_dim``
      divisible by ``num_heads``, head size even for rotary embeddings).
    mlp_dim: hidden size of the MLP (default ``4 embed_dim``).
    max_len: the longest prompt + response.
    rope_base: rotary embedding base.
  """

  vocab_size: int
  num_layers: int = 2
  num_heads: int = 4
  embed_dim: int = 64
  mlp_dim: Optional[int] = None
  max_len: int = 32
  rope_base: float = 10_000.0

  def validate(self) -> "TransformerConfig":
    """Raises ``ValueError`` naming the field for an impossible size."""
    for name in ("vocab_size", "num_layers", "num_heads", "embed_dim", "max_len"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"model.{name}: must be a positive integer, got {v!r}")
    if self.vocab_size < 2:
      raise ValueError(f"model.vocab_size: needs the BOS token and at least one response token, got {self.vocab_size}")
    if self.embed_dim % self.num_heads:
      raise ValueError(f"model.embed_dim: {self.embed_dim} is not divisible by num_heads={self.num_heads}")
    if (self.embed_dim // self.num_heads) % 2:
      raise ValueError(f"model.embed_dim: the head size {self.embed_dim // self.num_heads} must be even (rotary)")
    if self.mlp_dim is not None and (not isinstance(self.mlp_dim, int) or self.mlp_dim < 1):
      raise ValueError(f"model.mlp_dim: must be a positive integer or None, got {self.mlp_dim!r}")
    if not (isinstance(self.rope_base, (int, float)) and self.rope_base > 1):
      raise ValueError(f"model.rope_base: must be > 1, got {self.rope_base!r}")
    return self

  @property
  def head_dim(self) -> int:
    return self.embed_dim // self.num_heads

  @property
  def hidden(self) -> int:
    return self.mlp_dim or 4 * self.embed_dim


class Attention(nnx.Module):
  """Causal multi-head self-attention with rotary embeddings and an optional KV cache."""

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    e, h, d = cfg.embed_dim, cfg.num_heads, cfg.head_dim
    self.q = nnx.Linear(e, h * d, use_bias=False, rngs=rngs)
    self.k = nnx.Linear(e, h * d, use_bias=False, rngs=rngs)
    self.v = nnx.Linear(e, h * d, use_bias=False, rngs=rngs)
    self.o = nnx.Linear(h * d, e, use_bias=False,
                        kernel_init=nnx.initializers.normal(0.02 / math.sqrt(2 * cfg.num_layers)), rngs=rngs)

  def __call__(self, x, positions, cache=None):
    b, t, _ = x.shape
    h, d = self.cfg.num_heads, self.cfg.head_dim
    inv_freq = rope_frequencies(d, self.cfg.rope_base)
    q = apply_rope(self.q(x).reshape(b, t, h, d), positions, inv_freq)
    k = apply_rope(self.k(x).reshape(b, t, h, d), positions, inv_freq)
    v = self.v(x).reshape(b, t, h, d)
    if cache is None:
      kk, vv = k, v
      key_pos = positions
    else:  # one new position per call: write it into the cache, attend over everything written
      idx = positions[0, 0]
      kk = jax.lax.dynamic_update_slice(cache["k"], k, (0, idx, 0, 0))
      vv = jax.lax.dynamic_update_slice(cache["v"], v, (0, idx, 0, 0))
      cache = {"k": kk, "v": vv}
      key_pos = jnp.broadcast_to(jnp.arange(kk.shape[1])[None, :], (b, kk.shape[1]))
    out = attend(q, kk, vv, positions, key_pos).reshape(b, t, h * d)
    return self.o(out), cache


class Block(nnx.Module):
  """Pre-norm residual block: attention then MLP."""

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    self.norm1 = RMSNorm(cfg.embed_dim)
    self.attn = Attention(cfg, rngs=rngs)
    self.norm2 = RMSNorm(cfg.embed_dim)
    self.up = nnx.Linear(cfg.embed_dim, cfg.hidden, rngs=rngs)
    self.down = nnx.Linear(cfg.hidden, cfg.embed_dim,
                           kernel_init=nnx.initializers.normal(0.02 / math.sqrt(2 * cfg.num_layers)), rngs=rngs)

  def __call__(self, x, positions, cache=None):
    a, cache = self.attn(self.norm1(x), positions, cache)
    x = x + a
    x = x + self.down(jax.nn.gelu(self.up(self.norm2(x))))
    return x, cache


class Transformer(nnx.Module):
  """Decoder-only language model: ``tokens [B, T] -> logits [B, T, V]``."""

  def __init__(self, cfg: TransformerConfig, *, rngs: nnx.Rngs):
    self.cfg = cfg
    self.embed = nnx.Embed(cfg.vocab_size, cfg.embed_dim, embedding_init=nnx.initializers.normal(0.02), rngs=rngs)
    self.blocks = nnx.List([Block(cfg, rngs=rngs) for _ in range(cfg.num_layers)])
    self.norm = RMSNorm(cfg.embed_dim)
    self.unembed = nnx.Linear(cfg.embed_dim, cfg.vocab_size, kernel_init=nnx.initializers.normal(0.02), rngs=rngs)

  def __call__(self, tokens, positions=None, caches=None):
    b, t = tokens.shape
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(t)[None, :], (b, t))
    x = self.embed(tokens)
    new = []
    for i, blk in enumerate(self.blocks):
      x, c = blk(x, positions, None if caches is None else caches[i])
      new.append(c)
    z = self.unembed(self.norm(x))
    z = z.at[..., BOS].set(-jnp.inf)  # the model never emits BOS
    return z, (None if caches is None else new)


def init_model(config: TransformerConfig, key: jax.Array) -> tuple[Any, Any]:
  """Builds the model and splits it: ``(graphdef, params)``; ``params`` is a pytree of arrays."""
  config.validate()
  model = Transformer(config, rngs=nnx.Rngs(params=key))
  graphdef, params = nnx.split(model, nnx.Param)
  return graphdef, params


def graphdef_of(config: TransformerConfig) -> Any:
  """The model's graph definition alone (built abstractly: no parameter is computed)."""
  config.validate()
  abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(params=0)))
  return nnx.split(abstract, nnx.Param)[0]


def logits(graphdef: Any, params: Any, tokens: jax.Array) -> jax.Array:
  """``[B, T, V]`` logits of the next token after each prefix of ``tokens [B, T]``."""
  model = nnx.merge(graphdef, params)
  z, _ = model(tokens)
  return z


def sequence_logp(graphdef: Any, params: Any, tokens: jax.Array, mask: jax.Array) -> jax.Array:
  """``[B]`` ``sum_t mask[t] log pi(tokens[t] | tokens[:t])`` (``mask[:, 0]`` is ignored).

  Args:
    tokens: ``[B, T]`` prompt followed by response.
    mask: ``[B, T]`` 1 on the response tokens to score.
  """
  z = logits(graphdef, params, tokens[:, :-1])
  lp = jax.nn.log_softmax(z, axis=-1)
  tok = jnp.take_along_axis(lp, tokens[:, 1:, None], axis=-1)[..., 0]
  m = mask[:, 1:].astype(lp.dtype)
  return jnp.sum(jnp.where(m > 0, tok, 0.0), axis=-1)


def next_token_logits(graphdef: Any, params: Any, tokens: jax.Array) -> jax.Array:
  """``[B, V]`` logits of the token after the full ``tokens [B, T]`` (one forward pass)."""
  return logits(graphdef, params, tokens)[:, -1]


def _empty_caches(cfg: TransformerConfig, batch: int, length: int, dtype) -> list:
  shape = (batch, length, cfg.num_heads, cfg.head_dim)
  return [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)} for _ in range(cfg.num_layers)]


def sample(graphdef: Any, params: Any, key: jax.Array, prompts: jax.Array, max_len: int,
           temperature: jax.typing.ArrayLike = 1.0) -> jax.Array:
  """Samples ``max_len`` response tokens after ``prompts [B, P]`` with a key/value cache.

  One position per step: the prompt tokens are fed as they are, then each new
  token is drawn from ``softmax(logits / temperature)`` (``temperature -> 0``
  is greedy only in the limit; pass a small positive number). The cache holds
  ``P + max_len`` positions.

  Returns:
    ``[B, P + max_len]`` prompts followed by the sampled responses.
  """
  model = nnx.merge(graphdef, params)
  cfg = model.cfg
  b, p = prompts.shape
  total = p + max_len
  caches = _empty_caches(cfg, b, total, params_dtype(params))
  tokens = jnp.concatenate([prompts, jnp.zeros((b, max_len), prompts.dtype)], axis=1)
  keys = jax.random.split(key, total)

  def step(carry, i):
    toks, caches = carry
    cur = jax.lax.dynamic_slice(toks, (0, i), (b, 1))
    pos = jnp.full((b, 1), i)
    z, caches = model(cur, pos, caches)
    nxt = jax.random.categorical(keys[i], z[:, 0] / temperature, axis=-1).astype(toks.dtype)
    write = jnp.where(i + 1 >= p, nxt, jax.lax.dynamic_slice(toks, (0, jnp.minimum(i + 1, total - 1)), (b, 1))[:, 0])
    toks = jax.lax.dynamic_update_slice(toks, write[:, None], (0, jnp.minimum(i + 1, total - 1)))
    return (toks, caches), None

  (tokens, _), _ = jax.lax.scan(step, (tokens, caches), jnp.arange(total - 1))
  return tokens


def params_dtype(params: Any):
  return jax.tree.leaves(params)[0].dtype


def num_params(params: Any) -> int:
  """The number of scalar parameters."""
  return int(sum(x.size for x in jax.tree.leaves(params)))


def flops_per_token(config: TransformerConfig, seq_len: int, *, training: bool = True) -> float:
  """Model FLOPs per token (Kaplan et al. 2020; PaLM's MFU convention).

  ``2 N + 2 n_layer T d`` for a forward pass (``N`` the non-embedding
  parameters: ``12 n_layer d^2`` with a ``4d`` MLP, or ``n_layer (4 d^2 + 2 d
  d_ff)`` in general, plus the unembedding ``d V``; the second term the
  attention scores and values over ``T`` positions), and three times that
  (``6 N + 6 n_layer T d``) for a training step (forward and backward).
  """
  d, L, V = config.embed_dim, config.num_layers, config.vocab_size
  n = L * (4 * d * d + 2 * d * config.hidden) + d * V
  fwd = 2 * n + 2 * L * seq_len * d
  return float(3 * fwd if training else fwd)
