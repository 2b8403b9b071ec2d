"""Batched generation with a key/value cache, and the token-level geometric mixture of two models.

``generate`` prefills the (left-padded) prompts in one pass, then draws one
token per step for every row until each row has emitted one of ``eos_ids`` or
``max_new_tokens`` are drawn. A row that has stopped emits ``pad_id`` with
mask 0. Each step samples from ``softmax(z / temperature)`` restricted to the
nucleus of mass ``top_p`` (Holtzman et al. 2020, "The Curious Case of Neural
Text Degeneration", arXiv:1904.09751); ``temperature = 0`` is greedy. The
returned log-probabilities are the *model's* (temperature 1, no nucleus), so
they equal ``sequence_logp`` of the sampled tokens, which is what the NLHF
losses need.

``generate_mixture`` samples from the token-level geometric mixture of a
policy and a reference: at every step

.. math::  \\log q(y_t \\mid y_{<t}) = \\mathrm{log\\_softmax}\\big((1 - m) \\log\\pi(\\cdot \\mid y_{<t})
           + m \\log\\pi_{ref}(\\cdot \\mid y_{<t})\\big),

with one cache per model. This is *not* the sequence-level mixture
``pi^(1-m) pi_ref^m / Z`` over whole responses that Nash-MD's theory uses
(Munos et al. 2024, "Nash Learning from Human Feedback", arXiv:2312.00886,
eq. 11): normalising per token gives every prefix the same total mass as the
product of per-step normalisers, while the sequence-level mixture
renormalises once, so the two differ whenever the per-step normalisers
``Z_t(y_{<t}) = sum_y pi^(1-m) pi_ref^m`` depend on the prefix. The token-level
sampler is exact for its own distribution and cheap (one pass); the
sequence-level one (``nashax.policies.train``, by sampling-importance-
resampling) targets the theory's mixture but is only asymptotically exact.
``tests/test_lm_sampling.py`` measures the total-variation distance between
the two on an enumerable toy.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nashax.lm.decoder import init_cache, params_dtype
from nashax.lm.layers import positions_from_mask

__all__ = ["Generation", "generate", "generate_mixture", "nucleus_logits"]


class Generation(NamedTuple):
  """Sampled continuations.

  Attributes:
    tokens: ``[B, P + N]`` prompts followed by the new tokens (``pad_id`` after a row stops).
    attention_mask: ``[B, P + N]`` 1 on real tokens (prompt and response, EOS included).
    response_mask: ``[B, P + N]`` 1 on the new tokens up to and including each row's EOS.
    logp: ``[B]`` the first model's log-probability of each response (``sequence_logp``).
    token_logp: ``[M, B, N]`` per-token log-probabilities under each model (0 after a stop).
    sample_logp: ``[B]`` log-probability under the distribution actually sampled
      (temperature, nucleus, mixture): the proposal density for importance weights.
  """

  tokens: jax.Array
  attention_mask: jax.Array
  response_mask: jax.Array
  logp: jax.Array
  token_logp: jax.Array
  sample_logp: jax.Array


def nucleus_logits(z: jax.Array, temperature: jax.Array, top_p: jax.Array) -> jax.Array:
  """``[..., V]`` log-probabilities of the tempered nucleus distribution (``-inf`` outside the nucleus).

  The nucleus is the smallest set of most likely tokens whose mass reaches
  ``top_p``; the most likely token is always kept.
  """
  t = jnp.maximum(temperature, 1e-6)
  lp = jax.nn.log_softmax(z / t, axis=-1)
  # top_p = 1 keeps every token: skip the two vocabulary-wide sorts (most of a CPU decode step at 49k tokens).
  return jax.lax.cond(jnp.all(top_p >= 1.0), lambda: lp, lambda: _nucleus(lp, top_p))


def _nucleus(lp: jax.Array, top_p: jax.Array) -> jax.Array:
  order = jnp.argsort(-lp, axis=-1)
  sorted_lp = jnp.take_along_axis(lp, order, axis=-1)
  mass_before = jnp.cumsum(jnp.exp(sorted_lp), axis=-1) - jnp.exp(sorted_lp)
  keep_sorted = mass_before < top_p
  keep = jnp.take_along_axis(keep_sorted, jnp.argsort(order, axis=-1), axis=-1)
  return jax.nn.log_softmax(jnp.where(keep, lp, -jnp.inf), axis=-1)


def _decode(graphdefs, params_list, weights, key, prompts, prompt_mask, temperature, top_p, *, max_new_tokens,
            eos_ids, pad_id):
  models = [nnx.merge(g, p) for g, p in zip(graphdefs, params_list)]
  b, p = prompts.shape
  total = p + max_new_tokens
  valid = prompt_mask.astype(bool)
  pos = positions_from_mask(valid)
  caches, z = [], []
  for m, prm in zip(models, params_list):
    c = init_cache(m.cfg, b, total, params_dtype(prm))
    zi, c = m(prompts, pos, valid, c, 0)
    caches.append(c)
    z.append(zi[:, -1])
  next_pos = jnp.sum(valid, axis=-1).astype(jnp.int32)
  eos = jnp.asarray(eos_ids if eos_ids else (-1,), jnp.int32)
  nm = len(models)

  def cond(carry):
    i, _, _, done, *_ = carry
    return (i < max_new_tokens) & ~jnp.all(done)

  def body(carry):
    i, z, caches, done, toks, tlp, slp, pos, key = carry
    key, sub = jax.random.split(key)
    lps = [jax.nn.log_softmax(zj, axis=-1) for zj in z]
    mix = jax.nn.log_softmax(sum(w * lp for w, lp in zip(weights, lps)), axis=-1)
    proposal = nucleus_logits(mix, temperature, top_p)
    drawn = jax.random.categorical(sub, proposal, axis=-1)
    tok = jnp.where(temperature > 0, drawn, jnp.argmax(mix, axis=-1)).astype(jnp.int32)
    tok = jnp.where(done, pad_id, tok)
    live = ~done
    per_model = jnp.stack([jnp.take_along_axis(lp, tok[:, None], -1)[:, 0] for lp in lps])
    tlp = tlp.at[:, :, i].set(jnp.where(live, per_model, 0.0))
    s = jnp.where(temperature > 0, jnp.take_along_axis(proposal, tok[:, None], -1)[:, 0], 0.0)
    slp = slp + jnp.where(live, s, 0.0)
    toks = toks.at[:, i].set(tok)
    new_done = done | jnp.any(tok[:, None] == eos[None, :], axis=-1)
    z_new, c_new = [], []
    for m, c in zip(models, caches):
      zi, c = m(tok[:, None], pos[:, None], live[:, None], c, p + i)
      z_new.append(zi[:, 0])
      c_new.append(c)
    return i + 1, z_new, c_new, new_done, toks, tlp, slp, pos + live.astype(jnp.int32), key

  init = (jnp.int32(0), z, caches, jnp.zeros((b,), bool), jnp.full((b, max_new_tokens), pad_id, jnp.int32),
          jnp.zeros((nm, b, max_new_tokens), jnp.float32), jnp.zeros((b,), jnp.float32), next_pos, key)
  _, _, _, _, new, tlp, slp, _, _ = jax.lax.while_loop(cond, body, init)
  # A row is live at step t iff no EOS came before t.
  is_eos = jnp.any(new[:, :, None] == eos[None, None, :], axis=-1)
  before = jnp.cumsum(is_eos, axis=-1) - is_eos
  live = before == 0  # the loop exits early only once every row has its EOS, so this is exact
  tokens = jnp.concatenate([prompts.astype(jnp.int32), new], axis=1)
  resp = jnp.concatenate([jnp.zeros((b, p), jnp.int32), live.astype(jnp.int32)], axis=1)
  attn = jnp.concatenate([valid.astype(jnp.int32), live.astype(jnp.int32)], axis=1)
  return Generation(tokens, attn, resp, jnp.sum(tlp[0], -1), tlp, slp)


_decode_jit = jax.jit(_decode, static_argnums=(0,), static_argnames=("max_new_tokens", "eos_ids", "pad_id"))


def _check(prompts, prompt_mask, max_new_tokens, temperature, top_p, eos_ids, configs):
  if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
    raise ValueError(f"max_new_tokens: must be a positive integer, got {max_new_tokens!r}")
  if np.ndim(prompts) != 2:
    raise ValueError(f"prompt_tokens: expected [B, P], got shape {np.shape(prompts)}")
  if np.shape(prompt_mask) != np.shape(prompts):
    raise ValueError(f"prompt_mask: shape {np.shape(prompt_mask)} differs from prompt_tokens {np.shape(prompts)}")
  for name, v, lo, hi in (("temperature", temperature, 0.0, np.inf), ("top_p", top_p, 0.0, 1.0)):
    if isinstance(v, jax.core.Tracer):
      continue
    if isinstance(v, bool) or not np.isscalar(v) and np.ndim(v) != 0:
      raise ValueError(f"{name}: must be a number, got {v!r}")
    fv = float(v)
    if not (lo <= fv <= hi) or (name == "top_p" and fv <= 0):
      raise ValueError(f"{name}: must be in {'(0, 1]' if name == 'top_p' else '[0, inf)'}, got {v!r}")
  if not isinstance(prompt_mask, jax.core.Tracer):
    m = np.asarray(prompt_mask)
    if m.size and not np.all(m[:, -1]):
      raise ValueError("prompt_mask: prompts must be left-padded (every row's last position a real token)")
  for cfg in configs:
    for e in eos_ids:
      if not 0 <= e < cfg.vocab_size:
        raise ValueError(f"eos_ids: {e} is outside the vocabulary of {cfg.vocab_size}")
    if np.shape(prompts)[1] + max_new_tokens > cfg.max_position_embeddings:
      raise ValueError(f"max_new_tokens: prompt length {np.shape(prompts)[1]} + {max_new_tokens} exceeds the "
                       f"model's max_position_embeddings={cfg.max_position_embeddings}")


def _eos_tuple(eos_ids) -> tuple:
  if eos_ids is None:
    return ()
  if isinstance(eos_ids, (int, np.integer)):
    return (int(eos_ids),)
  return tuple(int(e) for e in eos_ids)


def generate(graphdef: Any, params: Any, key: jax.Array, prompt_tokens: jax.Array, prompt_mask: jax.Array, *,
             max_new_tokens: int, eos_ids: Optional[Sequence[int]] = (), temperature: float = 1.0,
             top_p: float = 1.0, pad_id: int = 0) -> Generation:
  """Samples up to ``max_new_tokens`` after left-padded ``prompt_tokens [B, P]`` (jitted; cache of ``P + N``).

  Args:
    graphdef, params: a decoder (``init_decoder``/``load_pretrained``).
    key: PRNG key.
    prompt_tokens: ``[B, P]`` int; prompt_mask: ``[B, P]`` 1 on real tokens, left-padded.
    max_new_tokens: ``N``.
    eos_ids: a row stops after emitting any of these (its EOS is kept, masked 1).
    temperature: ``0`` for greedy; top_p: the nucleus mass in ``(0, 1]``.
    pad_id: written after a row stops.

  Returns:
    A ``Generation``; ``token_logp`` has one model (``M = 1``).
  """
  eos = _eos_tuple(eos_ids)
  cfg = nnx.merge(graphdef, params).cfg
  _check(prompt_tokens, prompt_mask, max_new_tokens, temperature, top_p, eos, [cfg])
  return _decode_jit((graphdef,), [params], (1.0,), key, jnp.asarray(prompt_tokens), jnp.asarray(prompt_mask),
                     jnp.asarray(temperature, jnp.float32), jnp.asarray(top_p, jnp.float32),
                     max_new_tokens=int(max_new_tokens), eos_ids=eos, pad_id=int(pad_id))


def generate_mixture(policy: tuple, reference: tuple, key: jax.Array, prompt_tokens: jax.Array,
                     prompt_mask: jax.Array, *, mixture: float, max_new_tokens: int,
                     eos_ids: Optional[Sequence[int]] = (), temperature: float = 1.0, top_p: float = 1.0,
                     pad_id: int = 0) -> Generation:
  """Samples from the token-level geometric mixture ``softmax((1 - m) log pi + m log pi_ref)`` (two caches).

  Args:
    policy, reference: ``(graphdef, params)`` of two decoders with the same vocabulary.
    mixture: ``m`` in ``[0, 1]`` (Nash-MD uses ``m = eta beta``).
    others: as ``generate``.

  Returns:
    A ``Generation`` with ``token_logp[0]`` the policy's and ``token_logp[1]``
    the reference's per-token log-probabilities, and ``sample_logp`` the mixture's.
  """
  if isinstance(mixture, bool) or (not isinstance(mixture, jax.core.Tracer) and not 0 <= float(mixture) <= 1):
    raise ValueError(f"mixture: must be in [0, 1], got {mixture!r}")
  eos = _eos_tuple(eos_ids)
  cfgs = [nnx.merge(*policy).cfg, nnx.merge(*reference).cfg]
  if cfgs[0].vocab_size != cfgs[1].vocab_size:
    raise ValueError(f"reference: vocabulary {cfgs[1].vocab_size} differs from the policy's {cfgs[0].vocab_size}")
  _check(prompt_tokens, prompt_mask, max_new_tokens, temperature, top_p, eos, cfgs)
  m = jnp.asarray(mixture, jnp.float32)
  return _decode_jit((policy[0], reference[0]), [policy[1], reference[1]], (1.0 - m, m), key,
                     jnp.asarray(prompt_tokens), jnp.asarray(prompt_mask), jnp.asarray(temperature, jnp.float32),
                     jnp.asarray(top_p, jnp.float32), max_new_tokens=int(max_new_tokens), eos_ids=eos,
                     pad_id=int(pad_id))
