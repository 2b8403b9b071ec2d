r"""An LLM judge: an instruct model asked which of two responses is better, as a preference oracle.

The judge prompt is a chat conversation (an optional system message and one
user message holding the instruction, the question and the two responses)
rendered with the judge tokenizer's chat template, ending with the assistant
turn opened (``add_generation_prompt=True``). The judge's answer is its next
token: with ``z`` the next-token logits and ``(A, B)`` the ids of the two
answer labels, the restricted softmax over the two is

.. math:: p(\text{first}) = \frac{e^{z_A}}{e^{z_A} + e^{z_B}} = \sigma(z_A - z_B).

**Order average.** Let ``d_1 = z_A - z_B`` when ``a`` is shown first (as
response A) and ``b`` second, and ``d_2 = z_A - z_B`` when ``b`` is shown
first. In the first order ``a`` wins with ``sigma(d_1)`` (the judge says A),
in the second with ``sigma(-d_2) = 1 - sigma(d_2)`` (the judge says B), and

.. math:: P(a \succ b) = \tfrac12\left(\sigma(d_1) + \sigma(-d_2)\right),

that is, ``(P(judge says A | a shown first) + P(judge says B | b shown first)) / 2
= (P(A | a first) + 1 - P(A | b first)) / 2``.

Swapping ``a`` and ``b`` swaps ``d_1`` and ``d_2``, so ``P(a > b) + P(b > a) =
1``: the average removes the position bias (the tendency to prefer whichever
response comes first) that a single order has. It is a pure function of the
two logit vectors (:func:`judge_prob_from_logits`).

**Tokens.** The oracle works on token arrays, so the judge must share the
policy's tokenizer: the token ids of the question and of both responses are
spliced between the token ids of the rendered template's pieces (the template
is rendered once, with sentinel strings where the three go, and split there).
This equals tokenizing the whole rendered text up to merges across the splice
points. The ``prompt`` the judge receives should be the question's tokens
(``tokenizer.encode(question)``), not a chat-templated prompt; ids in
``drop_ids`` (by default the tokenizer's EOS ids, which would close the user
turn early) are masked out of all three.

References:
  Zheng et al., "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena",
  arXiv:2306.05685, 2023 (the pairwise-comparison judge prompt; position
  bias, and judging both orders).
  Wang et al., "Large Language Models are not Fair Evaluators",
  arXiv:2305.17926, 2023 (balanced position calibration: the judgement
  averaged over both orders of the pair).
  Munos et al., "Nash Learning from Human Feedback", arXiv:2312.00886, 2023
  (a pairwise preference model as the oracle of the preference game).
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nashax.core import _struct
from nashax.lm.decoder import hidden_states
from nashax.lm.preference import as_pair_batch, concat_segments, last_index

__all__ = ["DEFAULT_INSTRUCTION", "JudgeTemplate", "judge_template", "judge_inputs", "judge_prob_from_logits",
           "judge_order_logits", "judge_prob", "LLMJudge"]

DEFAULT_INSTRUCTION = (
    "Please act as an impartial judge and decide which of the two responses below answers the user's question "
    "better. Do not let the order of the responses or their length influence you. Reply with a single letter: "
    "{label_a} if Response {label_a} is better, {label_b} if Response {label_b} is better.\n\n"
    "[Question]\n{prompt}\n\n[Response {label_a}]\n{a}\n\n[Response {label_b}]\n{b}")

_SENTINELS = ("\u27e6nashax:prompt\u27e7", "\u27e6nashax:a\u27e7", "\u27e6nashax:b\u27e7")


class JudgeTemplate(NamedTuple):
  """The token pieces of a rendered judge prompt (hashable: a static argument).

  The judge sequence for ``(x, first, second)`` is
  ``pieces[0] ++ x ++ pieces[1] ++ first ++ pieces[2] ++ second ++ pieces[3]``.

  Attributes:
    pieces: four tuples of token ids.
    answer_ids: ``(id of the first label, id of the second)``, e.g. ``"A"``, ``"B"``.
    drop_ids: ids masked out of the question and the responses.
  """

  pieces: Tuple[Tuple[int, ...], ...]
  answer_ids: Tuple[int, int]
  drop_ids: Tuple[int, ...]


def _ids(x: Any, what: str) -> Tuple[int, ...]:
  try:
    return tuple(operator.index(t) for t in (x.tolist() if hasattr(x, "tolist") else x))
  except TypeError:
    raise ValueError(f"tokenizer: {what} must return a list of token ids, got {type(x).__name__}") from None


def judge_template(tokenizer: Any, *, instruction: str = DEFAULT_INSTRUCTION, system: Optional[str] = None,
                   labels: Sequence[str] = ("A", "B"), answer_prefix: str = "",
                   drop_ids: Optional[Sequence[int]] = None) -> JudgeTemplate:
  """Renders the judge conversation once and cuts it into token pieces.

  Args:
    tokenizer: an object with ``apply_chat_template(messages,
      add_generation_prompt=..., tokenize=False) -> str``, ``encode(text) ->
      list[int]`` (mapping the template's special-token text to their ids, as
      ``nashax.lm.Tokenizer`` does) and optionally ``eos_ids``.
    instruction: the user message, with ``{prompt}``, ``{a}`` and ``{b}`` once
      each and in that order (``{a}`` is the response shown first), and
      optionally ``{label_a}``, ``{label_b}`` (the labels).
    system: an optional system message.
    labels: the two answer strings; each must encode to one token.
    answer_prefix: text put after the opened assistant turn, before the answer
      (e.g. ``"Response "``); empty by default.
    drop_ids: ids to mask out of the spliced tokens (default: ``tokenizer.eos_ids``).

  Returns:
    A :class:`JudgeTemplate`.

  Raises:
    ValueError: if the tokenizer has no chat template, the instruction lacks a
      placeholder, the template drops or reorders the content, or a label is
      not a single token.
  """
  for name in ("apply_chat_template", "encode"):
    if not hasattr(tokenizer, name):
      raise ValueError(f"tokenizer: has no {name!r} (the judge needs apply_chat_template and encode)")
  if getattr(tokenizer, "chat_template", "") is None:
    raise ValueError("tokenizer: has no chat template (chat_template is None); the judge prompt is a chat "
                     "conversation, so load an instruct model's tokenizer or set one")
  if not isinstance(instruction, str):
    raise ValueError(f"instruction: must be a string, got {type(instruction).__name__}")
  pos = [instruction.find("{" + k + "}") for k in ("prompt", "a", "b")]
  for k, p in zip(("prompt", "a", "b"), pos):
    if p < 0 or instruction.count("{" + k + "}") != 1:
      raise ValueError(f"instruction: must contain {{{k}}} exactly once")
  if not pos[0] < pos[1] < pos[2]:
    raise ValueError("instruction: the placeholders must come in the order {prompt}, {a}, {b}")
  if len(labels) != 2 or not all(isinstance(x, str) and x for x in labels) or labels[0] == labels[1]:
    raise ValueError(f"labels: must be two different non-empty strings, got {labels!r}")
  content = instruction
  for k, s in zip(("prompt", "a", "b"), _SENTINELS):
    content = content.replace("{" + k + "}", s)
  content = content.replace("{label_a}", labels[0]).replace("{label_b}", labels[1])
  messages = ([{"role": "system", "content": system}] if system is not None else []) + \
      [{"role": "user", "content": content}]
  try:
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
  except ValueError as e:
    raise ValueError(f"tokenizer: cannot render the judge conversation with its chat template ({e})") from None
  if not isinstance(text, str):
    raise ValueError(f"tokenizer: apply_chat_template(tokenize=False) must return a string, got {type(text).__name__}")
  parts, rest = [], text
  for s in _SENTINELS:
    if rest.count(s) != 1:
      raise ValueError("tokenizer: the chat template did not keep the user message intact (a placeholder for the "
                       "question or a response went missing or repeated)")
    head, rest = rest.split(s)
    parts.append(head)
  parts.append(rest + answer_prefix)
  lead = _ids(tokenizer.encode(""), "encode('')")

  def enc(t, strip):
    ids = _ids(tokenizer.encode(t), "encode")
    return ids[len(lead):] if strip and lead and ids[:len(lead)] == lead else ids

  pieces = tuple(enc(t, i > 0) for i, t in enumerate(parts))
  answer = []
  for lab in labels:
    ids = enc(lab, True)
    if len(ids) != 1:
      raise ValueError(f"labels: {lab!r} encodes to {len(ids)} tokens {list(ids)}; each label must be one token")
    answer.append(ids[0])
  if drop_ids is None:
    eos = getattr(tokenizer, "eos_ids", ())
    drop_ids = tuple(eos) if isinstance(eos, (list, tuple)) else tuple(sorted(eos))
  return JudgeTemplate(pieces, (answer[0], answer[1]), tuple(operator.index(i) for i in drop_ids))


def _keep(tokens, mask, drop_ids):
  if not drop_ids:
    return mask
  return mask & ~jnp.isin(tokens, jnp.asarray(drop_ids, tokens.dtype))


def judge_inputs(template: JudgeTemplate, prompt: jax.Array, a: jax.Array, b: jax.Array, *,
                 prompt_mask: Optional[jax.Array] = None, a_mask: Optional[jax.Array] = None,
                 b_mask: Optional[jax.Array] = None) -> Tuple[jax.Array, jax.Array]:
  """The judge sequences of both orders: ``(tokens [2B, T], mask [2B, T])``.

  Rows ``0 .. B-1`` show ``a`` first, rows ``B .. 2B-1`` show ``b`` first; the
  last real token of every row is the last token of ``pieces[3]`` (the opened
  assistant turn), where the answer is read. Padding stays as holes in the mask.
  """
  (p, pm), (ta, am), (tb, bm), _ = as_pair_batch(prompt, a, b, prompt_mask, a_mask, b_mask)
  pm, am, bm = (_keep(t, m, template.drop_ids) for t, m in ((p, pm), (ta, am), (tb, bm)))
  c = [(np.asarray(x, np.int32), None) for x in template.pieces]
  first = concat_segments(c[0], (p, pm), c[1], (ta, am), c[2], (tb, bm), c[3])
  second = concat_segments(c[0], (p, pm), c[1], (tb, bm), c[2], (ta, am), c[3])
  return jnp.concatenate([first[0], second[0]], 0), jnp.concatenate([first[1], second[1]], 0)


def judge_prob_from_logits(logits_ab: jax.Array, logits_ba: jax.Array, answer_ids: Tuple[int, int]) -> jax.Array:
  r"""``P(a > b) = (sigma(d_1) + sigma(-d_2)) / 2`` from the judge's next-token logits of both orders.

  Args:
    logits_ab: ``[..., V]`` next-token logits when ``a`` is shown first.
    logits_ba: ``[..., V]`` the same when ``b`` is shown first.
    answer_ids: ids of the first and second answer labels.

  Returns:
    ``[...]`` with ``d_1 = z_A - z_B`` of ``logits_ab`` and ``d_2`` of
    ``logits_ba`` (module docstring).
  """
  ia, ib = answer_ids
  d1 = logits_ab[..., ia] - logits_ab[..., ib]
  d2 = logits_ba[..., ia] - logits_ba[..., ib]
  return 0.5 * (jax.nn.sigmoid(d1) + jax.nn.sigmoid(-d2))


def judge_order_logits(graphdef: Any, params: Any, template: JudgeTemplate, prompt, a, b, **masks):
  """``(logits_ab [B, V], logits_ba [B, V])``: the judge's next-token logits after each order's prompt.

  Unembeds only the last real position of each row (the full ``[2B, T, V]``
  logits are never formed).
  """
  tokens, mask = judge_inputs(template, prompt, a, b, **masks)
  model = nnx.merge(graphdef, params)
  h = hidden_states(graphdef, params, tokens, mask)
  h_last = jnp.take_along_axis(h, last_index(mask)[:, None, None], axis=1)[:, 0]
  z = model.unembed(h_last)
  n = tokens.shape[0] // 2
  return z[:n], z[n:]


def judge_prob(graphdef: Any, params: Any, template: JudgeTemplate, prompt: jax.Array, a: jax.Array, b: jax.Array, *,
               prompt_mask: Optional[jax.Array] = None, a_mask: Optional[jax.Array] = None,
               b_mask: Optional[jax.Array] = None) -> jax.Array:
  """``P(a > b | prompt)`` ``[B]`` by the order-averaged judge (one forward pass over both orders).

  Args:
    graphdef, params: the judge decoder (``nashax.lm.load_pretrained`` or ``init_decoder``).
    template: from :func:`judge_template` with the judge's tokenizer.
    prompt: ``[B, P]`` the question's tokens; a, b: ``[B, Ra]``, ``[B, Rb]``
      responses (or rank 1); masks bool or ``None``.

  References:
    Wang et al., arXiv:2305.17926, 2023 (averaging over both orders).
  """
  unbatched = jnp.ndim(prompt) == 1
  z_ab, z_ba = judge_order_logits(graphdef, params, template, prompt, a, b, prompt_mask=prompt_mask, a_mask=a_mask,
                                  b_mask=b_mask)
  out = judge_prob_from_logits(z_ab, z_ba, template.answer_ids)
  return out[0] if unbatched else out


@_struct.dataclass
class LLMJudge:
  """An LLM judge as a ``nashax.lm.preference.PreferenceOracle`` (a pytree).

  Attributes:
    params: the judge decoder's parameters.
    graphdef: its graph definition (static).
    template: the :class:`JudgeTemplate` (static).
  """

  params: Any
  graphdef: Any = _struct.field(static=True)
  template: JudgeTemplate = _struct.field(static=True)

  def prob(self, prompt, a, b, *, prompt_mask=None, a_mask=None, b_mask=None) -> jax.Array:
    """``P(a > b | prompt)`` ``[B]``: :func:`judge_prob`."""
    return judge_prob(self.graphdef, self.params, self.template, prompt, a, b, prompt_mask=prompt_mask,
                      a_mask=a_mask, b_mask=b_mask)
