"""Preference oracles with one interface, and preference models on the decoder backbone.

**The oracle interface.** Everything that judges a pair of responses, here or
elsewhere in nashax, has one method (:class:`PreferenceOracle`)::

    oracle.prob(prompt, a, b, *, prompt_mask=None, a_mask=None, b_mask=None) -> P(a > b | prompt)

over token arrays: ``prompt [B, P]`` (left-padded, as prompts for sampling
are), ``a [B, Ra]`` and ``b [B, Rb]`` (the responses alone, right-padded, as a
sampler returns them), each with a boolean mask of its real tokens (default:
all real), returning ``[B]`` probabilities in ``[0, 1]`` with
``prob(x, a, b) + prob(x, b, a) = 1``. Rank-1 inputs (one example) give a
scalar. The masks may have holes anywhere: the decoder takes positions from
the mask, so ``prompt ++ a`` with a left-padded prompt and a right-padded
response is the same sequence as the two unpadded ones joined. Implemented by

- :class:`LearnedPreference`: the three models below on a decoder backbone;
- ``nashax.lm.judge.LLMJudge``: an instruct model asked which response is better;
- :class:`RuleJudge`: a verifiable rule, a JAX function of a response;
- ``nashax.policies.oracles.SequenceOracle``: the synthetic class oracles with
  exact exploitability (the prompt is ignored: they are context-free).

Each ``prob`` is a pure function of the oracle's arrays, so an oracle is a
pytree argument of a jitted train step (its static parts, such as the graph
definition and the template, are hashable tree metadata).

**Preference models on the backbone.** The decoder's final-norm hidden state
at the last real token of a sequence, ``h(s) in R^E``, feeds one of three
heads (``PreferenceHead.kind``):

- ``"bradley_terry"``: a reward ``r(x, y) = w^T h(x ++ y)`` and
  ``P(a > b) = sigmoid(r(x, a) - r(x, b))`` (Bradley & Terry 1952; the reward
  model of Ouyang et al. 2022). Transitive: it cannot represent a cycle.
- ``"pairwise"``: ``f(x, a, b) = w^T h(x ++ a ++ sep ++ b)`` reads the pair, and
  ``P(a > b) = sigmoid(f(x, a, b) - f(x, b, a))``, so ``P(a > b) + P(b > a) = 1``
  exactly (the PairRM/PairPM models that Zhang et al. 2024 compare against,
  made consistent by the difference of the two orders).
- ``"general"``: the general preference model of Zhang et al. 2024: unit
  embeddings ``v(x, y) in R^{2k}`` and ``P(a > b) = sigmoid(v_a^T R(x) v_b)``
  with ``R(x) = diag(lambda_1(x) J, ..., lambda_k(x) J)``, ``J = [[0, 1], [-1, 0]]``
  skew-symmetric and ``lambda(x) = softplus(.) >= 0`` a gate on the prompt (read
  at the prompt's last token, which causal attention keeps free of the
  response). Skew-symmetry gives ``P(a > b) + P(b > a) = 1``; any real
  skew-symmetric preference-logit matrix is representable, cycles included.

The toy models of ``nashax.policies.reward_model`` are the same two formulas
on a response-only MLP (no prompt): its ``bradley_terry`` kind is the first
head, and its ``general`` kind is :func:`skew_form` with ``lambda = 1`` and
no normalisation (that module calls :func:`skew_form`).

The heads are pure functions of ``(graphdef, params)`` rather than one NNX
module: the decoder is already split at its boundary, so a head is a small
pytree beside its parameters, and freezing, sharding and checkpointing are
operations on plain pytrees, as for the decoder and the sampler.
Parameters are ``{"backbone": decoder params, "head": head params}``; the
backbone can be frozen (:func:`train_step` then differentiates and updates
only the head, and its optimizer state covers only the head). Training uses
:class:`PreferencePairs` (``pairs_from_batch`` turns the token batches of
``nashax.data.tokenize_preferences`` into them) and the logistic loss with
soft labels.

References:
  Bradley, Terry, "Rank Analysis of Incomplete Block Designs: I. The Method of
  Paired Comparisons", Biometrika 39, 1952 (the model ``sigmoid(r_a - r_b)``).
  Ouyang et al., "Training language models to follow instructions with human
  feedback", arXiv:2203.02155, 2022 (eq. 1: the reward-model loss).
  Zhang, Zhang, Wu, Xu, Gu, "Beyond Bradley-Terry Models: A General Preference
  Model for Language Model Alignment", arXiv:2410.02197, 2024 (Sec. 3:
  preference embeddings, the block-diagonal skew-symmetric operator with
  eigenvalue scale gate, and the pairwise preference models it generalises).
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, Callable, NamedTuple, Optional, Protocol, Tuple, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nashax.core import _struct
from nashax.lm.decoder import hidden_states

__all__ = [
    "HEAD_KINDS",
    "PreferenceOracle",
    "PreferenceHead",
    "PreferencePairs",
    "LearnedPreference",
    "RuleJudge",
    "as_pair_batch",
    "concat_segments",
    "last_index",
    "last_token_hidden",
    "skew_form",
    "init_head",
    "reward",
    "preference_logit",
    "preference_prob",
    "preference_loss",
    "init_opt_state",
    "train_step",
    "fit",
    "pairs_from_batch",
    "save_preference",
    "load_preference",
]

HEAD_KINDS = ("bradley_terry", "pairwise", "general")


@runtime_checkable
class PreferenceOracle(Protocol):
  """What every preference oracle implements: ``prob(prompt, a, b)`` (module docstring).

  ``prob(prompt [B, P], a [B, Ra], b [B, Rb], *, prompt_mask=None, a_mask=None,
  b_mask=None) -> [B]`` is ``P(a > b | prompt)`` in ``[0, 1]``, with
  ``prob(x, a, b) + prob(x, b, a) = 1``; masks are boolean, ``True`` on real
  tokens (``None``: all real); rank-1 inputs give a scalar. The trainer calls
  nothing else.
  """

  def prob(self, prompt: jax.typing.ArrayLike, a: jax.typing.ArrayLike, b: jax.typing.ArrayLike, *,
           prompt_mask: Optional[jax.typing.ArrayLike] = None, a_mask: Optional[jax.typing.ArrayLike] = None,
           b_mask: Optional[jax.typing.ArrayLike] = None) -> jax.Array:
    ...


# --- inputs -----------------------------------------------------------------------------------------


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _segment(name: str, tokens, mask):
  tokens = jnp.asarray(tokens)
  if tokens.ndim not in (1, 2):
    raise ValueError(f"{name}: expected token ids [B, T] (or [T] for one example), got shape {tokens.shape}")
  if not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f"{name}: expected integer token ids, got dtype {tokens.dtype}")
  if mask is None:
    mask = jnp.ones(tokens.shape, bool)
  else:
    mask = jnp.asarray(mask)
    if mask.shape != tokens.shape:
      raise ValueError(f"{name}_mask: shape {mask.shape} differs from {name}'s {tokens.shape}")
    mask = mask.astype(bool)
  return tokens.astype(jnp.int32), mask


def as_pair_batch(prompt, a, b, prompt_mask=None, a_mask=None, b_mask=None):
  """Checks and batches the arguments of ``prob``: ``((p, pm), (a, am), (b, bm), unbatched)``.

  Args:
    prompt: ``[B, P]`` (or ``[P]``) token ids; a, b: ``[B, Ra]``, ``[B, Rb]`` (or rank 1).
    prompt_mask, a_mask, b_mask: boolean masks of the same shapes, or ``None`` (all real).

  Returns:
    Three ``(tokens int32 [B, T], mask bool [B, T])`` pairs and whether the
    inputs were rank 1 (the caller then returns ``out[0]``).

  Raises:
    ValueError: on ranks, dtypes or shapes that disagree (static, so also
      under jit), or, for concrete masks, a pair with no real token at all.
  """
  segs = [_segment(n, t, m) for n, t, m in (("prompt", prompt, prompt_mask), ("a", a, a_mask), ("b", b, b_mask))]
  ranks = {s[0].ndim for s in segs}
  if len(ranks) != 1:
    raise ValueError(f"prompt, a, b: all rank 1 or all rank 2, got shapes {[s[0].shape for s in segs]}")
  unbatched = ranks.pop() == 1
  if unbatched:
    segs = [(t[None], m[None]) for t, m in segs]
  sizes = {s[0].shape[0] for s in segs}
  if len(sizes) != 1:
    raise ValueError(f"prompt, a, b: batch sizes differ {[s[0].shape[0] for s in segs]}")
  (p, pm), (ta, am), (tb, bm) = segs
  if all(_is_concrete(m) for m in (pm, am, bm)):
    empty = ~(np.asarray(pm).any(1) | np.asarray(am).any(1) | np.asarray(bm).any(1))
    if empty.any():
      raise ValueError(f"prompt, a, b: rows {np.flatnonzero(empty).tolist()} have no real token "
                       "in any of the three masks")
  return (p, pm), (ta, am), (tb, bm), unbatched


def concat_segments(*segments: Tuple[jax.Array, jax.Array]) -> Tuple[jax.Array, jax.Array]:
  """Joins ``(tokens [B, T_i], mask [B, T_i])`` segments into one ``([B, sum T_i], mask)`` sequence.

  A constant segment may be given as ``(ids [T_i], None)`` and is broadcast
  over the batch, all real. Padding stays in place as holes in the mask, which
  the decoder skips exactly (positions are ``cumsum(mask) - 1``; padded keys
  are never attended to).
  """
  b = next(t.shape[0] for t, m in segments if m is not None)
  toks, masks = [], []
  for t, m in segments:
    if m is None:
      t = jnp.broadcast_to(jnp.asarray(t, jnp.int32)[None], (b, len(t)))
      m = jnp.ones(t.shape, bool)
    toks.append(t.astype(jnp.int32))
    masks.append(m.astype(bool))
  return jnp.concatenate(toks, axis=1), jnp.concatenate(masks, axis=1)


def last_index(mask: jax.Array) -> jax.Array:
  """``[B]`` int32 index of the last ``True`` of each row of ``mask [B, T]`` (``T - 1`` for an empty row)."""
  t = mask.shape[-1]
  return (t - 1 - jnp.argmax(mask[..., ::-1], axis=-1)).astype(jnp.int32)


def _take(h: jax.Array, idx: jax.Array) -> jax.Array:
  """``h[b, idx[b]]`` as a one-hot contraction (its gradient is a product, not a scatter)."""
  return jnp.einsum("bt,bte->be", jax.nn.one_hot(idx, h.shape[1], dtype=h.dtype), h)


def last_token_hidden(graphdef: Any, params: Any, tokens: jax.Array, mask: jax.Array) -> jax.Array:
  """``[B, E]`` the decoder's final-norm hidden state at each row's last real token.

  Args:
    graphdef, params: the decoder (``nashax.lm.decoder.init_decoder``).
    tokens: ``[B, T]`` int token ids; mask: ``[B, T]`` bool, the real tokens (holes allowed).
  """
  return _take(hidden_states(graphdef, params, tokens, mask), last_index(mask))


def skew_form(v_a: jax.Array, v_b: jax.Array, scale: Optional[jax.Array] = None) -> jax.Array:
  r"""The skew-symmetric bilinear form ``v_a^T R v_b``, ``R = diag(lambda_l J)``, ``J = [[0, 1], [-1, 0]]``.

  .. math:: s(a, b) = \sum_{l=1}^{k} \lambda_l \,(v_{a,2l-1} v_{b,2l} - v_{a,2l} v_{b,2l-1})

  written term by term, so ``skew_form(v_b, v_a, scale) = -skew_form(v_a, v_b, scale)``
  exactly in floating point (each term changes sign; the sum is taken in the same order).

  Args:
    v_a, v_b: ``[..., 2k]`` embeddings (leading axes broadcast).
    scale: ``[..., k]`` the non-negative block scales ``lambda``, or ``None`` (all one).

  Returns:
    ``[...]`` the preference logit, ``P(a > b) = sigmoid(s)``.

  References:
    Zhang et al., "Beyond Bradley-Terry Models: A General Preference Model for
    Language Model Alignment", arXiv:2410.02197, 2024 (Sec. 3, the preference
    score ``<R^> v_a, v_b>``).
  """
  if v_a.shape[-1] % 2 or v_a.shape[-1] != v_b.shape[-1]:
    raise ValueError(f"v_a, v_b: need a last axis of the same even size 2k, got {v_a.shape} and {v_b.shape}")
  a = v_a.reshape(v_a.shape[:-1] + (-1, 2))
  b = v_b.reshape(v_b.shape[:-1] + (-1, 2))
  cross = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
  if scale is not None:
    cross = scale * cross
  return jnp.sum(cross, axis=-1)


# --- heads ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PreferenceHead:
  """What sits on the backbone (frozen, hashable: a static argument).

  Attributes:
    kind: one of ``HEAD_KINDS`` (module docstring).
    dim: ``k``, the number of skew blocks of the ``"general"`` head (its
      embedding has ``2k`` entries).
    separator: token ids put between the two responses of the ``"pairwise"``
      head's sequence ``x ++ a ++ separator ++ b`` (e.g. an end-of-turn id).
  """

  kind: str
  dim: int = 2
  separator: Tuple[int, ...] = ()

  def __post_init__(self):
    if self.kind not in HEAD_KINDS:
      raise ValueError(f"kind: must be one of {HEAD_KINDS}, got {self.kind!r}")
    if isinstance(self.dim, bool) or not isinstance(self.dim, int) or self.dim < 1:
      raise ValueError(f"dim: must be a positive integer, got {self.dim!r}")
    try:
      sep = tuple(int(t) for t in self.separator)
    except (TypeError, ValueError):
      raise ValueError(f"separator: must be a sequence of token ids, got {self.separator!r}") from None
    if any(t < 0 for t in sep):
      raise ValueError(f"separator: token ids must be >= 0, got {sep}")
    object.__setattr__(self, "separator", sep)


_SOFTPLUS_INV_1 = math.log(math.e - 1.0)  # softplus(x) = 1


def init_head(head: PreferenceHead, hidden_size: int, key: jax.Array, dtype=jnp.float32) -> dict:
  """Random head parameters for a backbone of width ``E = hidden_size``.

  ``"bradley_terry"`` and ``"pairwise"``: ``{"w": [E]}``; ``"general"``:
  ``{"v": [E, 2k], "gate_w": [E, k], "gate_b": [k]}`` with the gate starting
  at ``lambda = 1``. Weights are normal with std ``1 / sqrt(E)``.
  """
  if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
    raise ValueError(f"hidden_size: must be a positive integer, got {hidden_size!r}")
  std = 1.0 / math.sqrt(hidden_size)
  k1, k2 = jax.random.split(key)
  if head.kind != "general":
    return {"w": std * jax.random.normal(k1, (hidden_size,), dtype)}
  return {"v": std * jax.random.normal(k1, (hidden_size, 2 * head.dim), dtype),
          "gate_w": 0.1 * std * jax.random.normal(k2, (hidden_size, head.dim), dtype),
          "gate_b": jnp.full((head.dim,), _SOFTPLUS_INV_1, dtype)}


def _check_params(params):
  if not (isinstance(params, dict) and set(params) == {"backbone", "head"}):
    raise ValueError("params: expected {'backbone': decoder params, 'head': head params}")


def reward(graphdef: Any, params: dict, prompt: jax.Array, response: jax.Array, *,
           prompt_mask: Optional[jax.Array] = None, response_mask: Optional[jax.Array] = None) -> jax.Array:
  """``[B]`` the Bradley-Terry reward ``r(x, y) = w^T h(x ++ y)`` (a ``"bradley_terry"`` head's ``params``).

  Args:
    graphdef: the decoder's graph definition.
    params: ``{"backbone", "head"}`` with a Bradley-Terry head.
    prompt: ``[B, P]``; response: ``[B, R]`` token ids; masks bool or ``None``.
  """
  _check_params(params)
  p, pm = _segment("prompt", prompt, prompt_mask)
  y, ym = _segment("response", response, response_mask)
  tokens, mask = concat_segments((p, pm), (y, ym))
  return last_token_hidden(graphdef, params["backbone"], tokens, mask) @ params["head"]["w"]


def _two_rows(x, y):
  return jnp.concatenate([x, y], axis=0)


def _logit(head: PreferenceHead, graphdef, params, p, pm, a, am, b, bm):
  backbone, w = params["backbone"], params["head"]
  n = p.shape[0]
  if head.kind == "pairwise":
    sep = (np.asarray(head.separator, np.int32), None)
    ab = concat_segments((p, pm), (a, am), sep, (b, bm))
    ba = concat_segments((p, pm), (b, bm), sep, (a, am))
    tokens, mask = _two_rows(ab[0], ba[0]), _two_rows(ab[1], ba[1])
    f = last_token_hidden(graphdef, backbone, tokens, mask) @ w["w"]
    return f[:n] - f[n:]
  xa = concat_segments((p, pm), (a, am))
  xb = concat_segments((p, pm), (b, bm))
  if xa[0].shape[1] != xb[0].shape[1]:  # widths differ when Ra != Rb: pad the shorter with holes
    width = max(xa[0].shape[1], xb[0].shape[1])
    xa, xb = (tuple(jnp.pad(z, ((0, 0), (0, width - z.shape[1]))) for z in s) for s in (xa, xb))
  tokens, mask = _two_rows(xa[0], xb[0]), _two_rows(xa[1], xb[1])
  h = hidden_states(graphdef, backbone, tokens, mask)
  h_y = _take(h, last_index(mask))
  if head.kind == "bradley_terry":
    r = h_y @ w["w"]
    return r[:n] - r[n:]
  # general: unit embeddings, and the gate read at the prompt's last real token (a causal function of x alone)
  v = h_y @ w["v"]
  v = v * jax.lax.rsqrt(jnp.sum(v * v, axis=-1, keepdims=True) + 1e-12)
  has_prompt = jnp.any(pm, axis=1)
  h_x = _take(h, _two_rows(last_index(pm), last_index(pm)))
  h_x = jnp.where(_two_rows(has_prompt, has_prompt)[:, None], h_x, 0.0)
  g = h_x @ w["gate_w"]
  lam = jax.nn.softplus((g[:n] + g[n:]) / 2.0 + w["gate_b"][None])  # symmetric in (a, b): keeps s skew exactly
  return skew_form(v[:n], v[n:], lam)


def preference_logit(head: PreferenceHead, graphdef: Any, params: dict, prompt: jax.Array, a: jax.Array,
                     b: jax.Array, *, prompt_mask: Optional[jax.Array] = None, a_mask: Optional[jax.Array] = None,
                     b_mask: Optional[jax.Array] = None) -> jax.Array:
  r"""The preference logit ``s(x, a, b)``, ``P(a > b) = sigmoid(s)``, ``s(x, b, a) = -s(x, a, b)``.

  .. math:: s_{BT} = r(x,a) - r(x,b),\quad s_{pair} = f(x,a,b) - f(x,b,a),\quad
            s_{gen} = v(x,a)^T R(x)\, v(x,b)

  Args:
    head: the :class:`PreferenceHead`.
    graphdef: the decoder's graph definition.
    params: ``{"backbone": decoder params, "head": init_head(...)}``.
    prompt: ``[B, P]``; a: ``[B, Ra]``; b: ``[B, Rb]`` token ids (or rank 1).
    prompt_mask, a_mask, b_mask: bool masks of real tokens, or ``None``.

  Returns:
    ``[B]`` float32 (a scalar for rank-1 inputs).

  References:
    Zhang et al., arXiv:2410.02197, 2024 (Sec. 3; module docstring).
  """
  _check_params(params)
  (p, pm), (ta, am), (tb, bm), unbatched = as_pair_batch(prompt, a, b, prompt_mask, a_mask, b_mask)
  s = _logit(head, graphdef, params, p, pm, ta, am, tb, bm)
  return s[0] if unbatched else s


def preference_prob(head: PreferenceHead, graphdef: Any, params: dict, prompt: jax.Array, a: jax.Array,
                    b: jax.Array, **masks) -> jax.Array:
  """``sigmoid(preference_logit(...))``: ``P(a > b | prompt)``, ``[B]`` (same arguments)."""
  return jax.nn.sigmoid(preference_logit(head, graphdef, params, prompt, a, b, **masks))


# --- the oracle classes -----------------------------------------------------------------------------


@_struct.dataclass
class LearnedPreference:
  """A preference model on the decoder backbone as a :class:`PreferenceOracle` (a pytree).

  Attributes:
    params: ``{"backbone", "head"}``.
    graphdef: the decoder's graph definition (static).
    head: the :class:`PreferenceHead` (static).
  """

  params: Any
  graphdef: Any = _struct.field(static=True)
  head: PreferenceHead = _struct.field(static=True)

  def prob(self, prompt, a, b, *, prompt_mask=None, a_mask=None, b_mask=None) -> jax.Array:
    """``P(a > b | prompt)`` ``[B]`` (:class:`PreferenceOracle`)."""
    return preference_prob(self.head, self.graphdef, self.params, prompt, a, b, prompt_mask=prompt_mask,
                           a_mask=a_mask, b_mask=b_mask)

  def logit(self, prompt, a, b, *, prompt_mask=None, a_mask=None, b_mask=None) -> jax.Array:
    """``[B]`` the preference logit (:func:`preference_logit`)."""
    return preference_logit(self.head, self.graphdef, self.params, prompt, a, b, prompt_mask=prompt_mask,
                            a_mask=a_mask, b_mask=b_mask)


@_struct.dataclass
class RuleJudge:
  r"""A rule-based judge: a verifiable score of each response, compared.

  ``rule(prompt [B, P], prompt_mask, response [B, R], response_mask) -> [B]``
  is a JAX function (a verifiable reward: 1 if the answer checks out, a count
  of satisfied constraints, ...). With ``temperature=None``

  .. math:: P(a > b) = 1[r_a > r_b] + \tfrac12\,1[r_a = r_b]

  and otherwise ``sigmoid((r_a - r_b) / temperature)``. Both give
  ``P(a > b) + P(b > a) = 1`` exactly. (A rule written in plain Python can be
  wrapped with ``jax.pure_callback``.)

  Examples:
    >>> import jax.numpy as jnp
    >>> def count_7(prompt, prompt_mask, y, y_mask):  # the number of 7s in the response
    ...   return jnp.sum((y == 7) & y_mask, axis=-1)
    >>> judge = RuleJudge(count_7)
    >>> judge.prob(jnp.array([[1], [1]]), jnp.array([[7, 7], [7, 0]]), jnp.array([[7, 0], [7, 0]])).tolist()
    [1.0, 0.5]

  Attributes:
    rule: the scoring function (static; a module-level function, so that it hashes stably).
    temperature: ``None`` (hard comparison) or a positive number (traced).
  """

  rule: Callable = _struct.field(static=True)
  temperature: Any = None

  def prob(self, prompt, a, b, *, prompt_mask=None, a_mask=None, b_mask=None) -> jax.Array:
    """``P(a > b | prompt)`` ``[B]`` (:class:`PreferenceOracle`)."""
    (p, pm), (ta, am), (tb, bm), unbatched = as_pair_batch(prompt, a, b, prompt_mask, a_mask, b_mask)
    r_a = jnp.asarray(self.rule(p, pm, ta, am), jnp.float32)
    r_b = jnp.asarray(self.rule(p, pm, tb, bm), jnp.float32)
    if r_a.shape != (p.shape[0],):
      raise ValueError(f"rule: must return one score per row, shape ({p.shape[0]},), got {r_a.shape}")
    if self.temperature is None:
      out = jnp.where(r_a > r_b, 1.0, jnp.where(r_a == r_b, 0.5, 0.0))
    else:
      if _is_concrete(self.temperature) and not float(self.temperature) > 0:
        raise ValueError(f"temperature: must be > 0 or None, got {self.temperature!r}")
      out = jax.nn.sigmoid((r_a - r_b) / self.temperature)
    return out[0] if unbatched else out


# --- training ---------------------------------------------------------------------------------------


class PreferencePairs(NamedTuple):
  """Training pairs for :func:`train_step` (``N`` pairs).

  Attributes:
    prompt: ``[N, P]`` int32, left-padded prompts.
    prompt_mask: ``[N, P]`` bool.
    a: ``[N, R]`` int32, the first responses alone, right-padded.
    a_mask: ``[N, R]`` bool.
    b: ``[N, R]`` int32, the second responses.
    b_mask: ``[N, R]`` bool.
    label: ``[N]`` float32, the target ``P(a > b)`` (1 where ``a`` was chosen; soft labels allowed).
  """

  prompt: Any
  prompt_mask: Any
  a: Any
  a_mask: Any
  b: Any
  b_mask: Any
  label: Any


def pairs_from_batch(batch: Any, pad_id: int = 0) -> PreferencePairs:
  """The pairs of a ``nashax.data.PreferenceBatch``: ``a`` chosen, ``b`` rejected, label 1 (NumPy).

  The responses are cut out of ``chosen_tokens`` / ``rejected_tokens`` with
  their response masks and right-padded with ``pad_id`` to the longest one, so
  ``prompt ++ a`` is the batch's ``chosen_tokens`` row without its padding.
  """
  for f in ("prompt_tokens", "prompt_mask", "chosen_tokens", "chosen_response_mask", "rejected_tokens",
            "rejected_response_mask"):
    if not hasattr(batch, f):
      raise ValueError(f"batch: has no {f!r} (expected a nashax.data.PreferenceBatch)")

  def cut(tokens, resp):
    tokens, resp = np.asarray(tokens), np.asarray(resp, bool)
    width = max(int(resp.sum(1).max(initial=0)), 1)
    out = np.full((tokens.shape[0], width), pad_id, np.int32)
    mask = np.zeros((tokens.shape[0], width), bool)
    for i in range(tokens.shape[0]):
      r = tokens[i][resp[i]]
      out[i, :len(r)] = r
      mask[i, :len(r)] = True
    return out, mask

  a, am = cut(batch.chosen_tokens, batch.chosen_response_mask)
  b, bm = cut(batch.rejected_tokens, batch.rejected_response_mask)
  width = max(a.shape[1], b.shape[1])
  a, am, b, bm = (np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=pad_id if x.dtype != bool else False)
                  for x in (a, am, b, bm))
  n = a.shape[0]
  return PreferencePairs(np.asarray(batch.prompt_tokens, np.int32), np.asarray(batch.prompt_mask, bool), a, am, b, bm,
                         np.ones((n,), np.float32))


def preference_loss(head: PreferenceHead, graphdef: Any, params: dict, pairs: PreferencePairs) -> Tuple[jax.Array, dict]:
  r"""The logistic loss with soft labels, and metrics.

  .. math:: \ell = -\frac1N \sum_i y_i \log\sigma(s_i) + (1 - y_i)\log\sigma(-s_i),
            \quad s_i = s(x_i, a_i, b_i)

  (Ouyang et al. 2022, eq. 1, for ``y = 1``). Its minimum over a model that
  can represent every ``P`` is at ``sigmoid(s_i) = y_i``.

  Returns:
    ``(loss [], {"loss", "accuracy"})`` (accuracy: ``s > 0`` agrees with ``y > 1/2``).
  """
  s = preference_logit(head, graphdef, params, pairs.prompt, pairs.a, pairs.b, prompt_mask=pairs.prompt_mask,
                       a_mask=pairs.a_mask, b_mask=pairs.b_mask)
  y = jnp.asarray(pairs.label, s.dtype)
  loss = -jnp.mean(y * jax.nn.log_sigmoid(s) + (1.0 - y) * jax.nn.log_sigmoid(-s))
  acc = jnp.mean(((s > 0) == (y > 0.5)).astype(s.dtype))
  return loss, {"loss": loss, "accuracy": acc}


def init_opt_state(tx: optax.GradientTransformation, params: dict, *, freeze_backbone: bool = False) -> Any:
  """``tx.init`` of what :func:`train_step` updates: the head alone when ``freeze_backbone``, else all."""
  _check_params(params)
  return tx.init(params["head"] if freeze_backbone else params)


@partial(jax.jit, static_argnames=("head", "graphdef", "tx", "freeze_backbone"))
def train_step(params: dict, opt_state: Any, pairs: PreferencePairs, *, head: PreferenceHead, graphdef: Any,
               tx: optax.GradientTransformation, freeze_backbone: bool = False):
  """One optax step on :func:`preference_loss` (pure, jitted; the static arguments are hashable).

  Args:
    params: ``{"backbone", "head"}``.
    opt_state: from :func:`init_opt_state` (with the same ``freeze_backbone``).
    pairs: a :class:`PreferencePairs` batch.
    head, graphdef: the model (static).
    tx: the optax transformation (static: reuse one object, or every new one compiles anew).
    freeze_backbone: differentiate and update only the head.

  Returns:
    ``(params, opt_state, metrics)``.

  When the backbone trains too, give it a smaller step than the head, e.g.
  ``optax.multi_transform({"b": optax.adam(1e-3), "h": optax.adam(5e-2)},
  {"backbone": "b", "head": "h"})``: with one large step for both, the
  general model on a tiny random decoder was seen to collapse the three
  responses onto one embedding (``P = 1/2`` everywhere) instead of learning.
  """
  if freeze_backbone:
    backbone = jax.lax.stop_gradient(params["backbone"])
    loss_fn = lambda h: preference_loss(head, graphdef, {"backbone": backbone, "head": h}, pairs)
    (_, metrics), g = jax.value_and_grad(loss_fn, has_aux=True)(params["head"])
    upd, opt_state = tx.update(g, opt_state, params["head"])
    return {"backbone": params["backbone"], "head": optax.apply_updates(params["head"], upd)}, opt_state, metrics
  (_, metrics), g = jax.value_and_grad(lambda q: preference_loss(head, graphdef, q, pairs), has_aux=True)(params)
  upd, opt_state = tx.update(g, opt_state, params)
  return optax.apply_updates(params, upd), opt_state, metrics


def fit(head: PreferenceHead, graphdef: Any, params: dict, pairs: PreferencePairs, tx: optax.GradientTransformation,
        *, num_steps: int, batch_size: Optional[int] = None, seed: int = 0, freeze_backbone: bool = False,
        opt_state: Any = None, start: int = 0):
  """Trains with :func:`train_step` on batches of ``pairs`` (``nashax.data.batch_at``, resumable).

  Args:
    head, graphdef, params, tx, freeze_backbone: as :func:`train_step`.
    pairs: all the training pairs (NumPy or JAX arrays).
    num_steps: optimizer steps.
    batch_size: pairs per step (shuffled each epoch), or ``None`` for all of them every step.
    seed: the shuffling seed.
    opt_state: an optimizer state to continue from (default: a fresh one).
    start: the batch cursor to start from (a resumed run passes the step count it stopped at).

  Returns:
    ``(params, opt_state, losses [num_steps])``.
  """
  from nashax.data.batching import batch_at

  if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
    raise ValueError(f"num_steps: must be a positive integer, got {num_steps!r}")
  if opt_state is None:
    opt_state = init_opt_state(tx, params, freeze_backbone=freeze_backbone)
  losses = []
  for t in range(start, start + num_steps):
    batch = pairs if batch_size is None else batch_at(pairs, batch_size, t, seed=seed)
    params, opt_state, m = train_step(params, opt_state, PreferencePairs(*batch), head=head, graphdef=graphdef,
                                      tx=tx, freeze_backbone=freeze_backbone)
    losses.append(m["loss"])
  return params, opt_state, np.asarray(jnp.stack(losses))


# --- on disk ----------------------------------------------------------------------------------------


def save_preference(path: str, config: Any, model: LearnedPreference) -> str:
  """Writes a learned preference model: the backbone as a Hugging Face folder, the head beside it.

  ``path/`` gets ``config.json`` and ``model.safetensors`` (``save_pretrained``)
  and ``preference_head.safetensors`` with ``preference_head.json`` (the
  head's kind, dim and separator), which ``load_preference`` reads back.

  Args:
    path: the folder (created).
    config: the backbone's ``DecoderConfig``.
    model: the ``LearnedPreference``.
  """
  import json
  import os

  from safetensors.numpy import save_file

  from nashax.lm.checkpoint import save_pretrained

  _check_params(model.params)
  save_pretrained(path, config, model.params["backbone"])
  save_file({k: np.asarray(jax.device_get(v)) for k, v in model.params["head"].items()},
            os.path.join(path, "preference_head.safetensors"))
  with open(os.path.join(path, "preference_head.json"), "w") as f:
    json.dump({"kind": model.head.kind, "dim": model.head.dim, "separator": list(model.head.separator)}, f)
  return path


def load_preference(path: str) -> LearnedPreference:
  """Reads a preference model written by ``save_preference``.

  Raises:
    ValueError: naming ``path`` when a file is missing or damaged.
  """
  import json
  import os

  from safetensors.numpy import load_file

  from nashax.lm.checkpoint import load_pretrained

  meta = os.path.join(path, "preference_head.json")
  try:
    with open(meta) as f:
      h = json.load(f)
    head = PreferenceHead(h["kind"], int(h["dim"]), tuple(h["separator"]))
    tensors = load_file(os.path.join(path, "preference_head.safetensors"))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise ValueError(f"path: {path!r} holds no readable preference model ({type(e).__name__}: {e})") from None
  pre = load_pretrained(path, dtype=jnp.float32)
  params = {"backbone": pre.params, "head": {k: jnp.asarray(v) for k, v in tensors.items()}}
  return LearnedPreference(params, pre.graphdef, head)
