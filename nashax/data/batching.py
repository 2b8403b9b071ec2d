"""Records to token arrays with masks and length limits, and resumable shuffled batches.

A tokenizer here is any object with ``apply_chat_template(messages,
add_generation_prompt=..., tokenize=True) -> list[int]``, ``encode(text) ->
list[int]``, ``eos_ids`` (a sequence of end-of-sequence ids, the first being
the one appended) and ``pad_id`` (``nashax.lm.Tokenizer`` has exactly these).

Conversations (``record.chat``) go through the chat template, as TRL's DPO
trainer does: the prompt is ``apply_chat_template(prompt,
add_generation_prompt=True)`` and a response is what
``apply_chat_template(prompt + response)`` adds after it (the template must
extend the prompt's tokens; a template that does not is refused). Plain-text
records (TRL's standard format) are ``encode(prompt)`` followed by
``encode(response)`` (less any leading tokens ``encode("")`` adds, such as a
BOS) and one EOS.

Layouts (all NumPy, ``int32`` tokens and ``bool`` masks):

- prompts for generation are **left**-padded with ``pad_id`` to ``[N, P]``, so
  every prompt ends at the last column;
- scoring sequences (prompt then response) are **right**-padded to ``[N, L]``
  with a ``mask`` of real tokens and a ``response_mask`` of the response
  tokens, the ``mask`` argument of a ``sequence_logp(tokens, mask)``.

``P`` and ``L`` are the longest kept prompt and sequence, so every batch of a
dataset has the same shapes (one compilation).
"""

from __future__ import annotations

import operator
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from nashax.data.records import PreferenceRecord, Summary

__all__ = [
    "PreferenceBatch",
    "PromptBatch",
    "tokenize_preferences",
    "tokenize_prompts",
    "num_batches",
    "batch_indices",
    "take",
    "batch_at",
    "iterate_batches",
]


class PreferenceBatch(NamedTuple):
  """Token arrays of preference pairs (``N`` pairs; ``P``, ``L`` the longest prompt and sequence).

  Attributes:
    prompt_tokens: ``[N, P]`` int32, left-padded prompts (for sampling from the policy).
    prompt_mask: ``[N, P]`` bool, the real prompt tokens.
    chosen_tokens: ``[N, L]`` int32, prompt + chosen response, right-padded.
    chosen_mask: ``[N, L]`` bool, the real tokens.
    chosen_response_mask: ``[N, L]`` bool, the chosen response tokens (what is scored).
    rejected_tokens: ``[N, L]`` int32, prompt + rejected response, right-padded.
    rejected_mask: ``[N, L]`` bool.
    rejected_response_mask: ``[N, L]`` bool.
    index: ``[N]`` int32, the record each row came from.
  """

  prompt_tokens: np.ndarray
  prompt_mask: np.ndarray
  chosen_tokens: np.ndarray
  chosen_mask: np.ndarray
  chosen_response_mask: np.ndarray
  rejected_tokens: np.ndarray
  rejected_mask: np.ndarray
  rejected_response_mask: np.ndarray
  index: np.ndarray


class PromptBatch(NamedTuple):
  """Left-padded prompts for online methods (``N`` prompts, ``P`` the longest).

  Attributes:
    tokens: ``[N, P]`` int32, left-padded with ``pad_id``.
    mask: ``[N, P]`` bool, the real tokens.
    index: ``[N]`` int32, the record each row came from.
  """

  tokens: np.ndarray
  mask: np.ndarray
  index: np.ndarray


def _ids(x: Any, what: str) -> List[int]:
  try:
    return [operator.index(t) for t in (x.tolist() if hasattr(x, "tolist") else x)]
  except TypeError:
    raise ValueError(f"tokenizer: {what} must return a list of token ids, got {type(x).__name__}") from None


def _check_tokenizer(tok: Any) -> Tuple[int, int]:
  for name in ("apply_chat_template", "encode", "eos_ids", "pad_id"):
    if not hasattr(tok, name):
      raise ValueError(f"tokenizer: has no {name!r} (needs apply_chat_template, encode, eos_ids, pad_id)")
  eos = tok.eos_ids
  eos = list(eos) if isinstance(eos, (list, tuple)) else sorted(eos)
  if not eos:
    raise ValueError("tokenizer: eos_ids is empty")
  return operator.index(eos[0]), operator.index(tok.pad_id)


def _check_limit(name: str, value: Optional[int]) -> None:
  if value is None:
    return
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{name}: must be a positive int or None, got {value!r}")


def _check_truncation(truncation: str) -> None:
  if truncation not in ("skip", "truncate", "raise"):
    raise ValueError(f"truncation: must be 'skip', 'truncate' or 'raise', got {truncation!r}")


def _where(rec) -> str:
  m = rec.metadata
  at = m.get("line", m.get("row"))
  return f"{m['source']}:{at}" if "source" in m and at is not None else "record"


class _Encoder:
  """Token ids of prompts and responses for one tokenizer."""

  def __init__(self, tok):
    self.tok = tok
    self.eos, self.pad = _check_tokenizer(tok)
    self.lead = _ids(tok.encode(""), "encode('')")

  def _template(self, messages, gen: bool) -> List[int]:
    out = self.tok.apply_chat_template([dict(m) for m in messages], add_generation_prompt=gen, tokenize=True)
    return _ids(out, "apply_chat_template")

  def prompt(self, rec) -> List[int]:
    if rec.chat:
      return self._template(rec.prompt, True)
    return _ids(self.tok.encode(rec.prompt[0]["content"]), "encode")

  def response(self, rec, prompt_ids: List[int], response) -> List[int]:
    if rec.chat:
      full = self._template(tuple(rec.prompt) + tuple(response), False)
      if full[:len(prompt_ids)] != prompt_ids:
        raise ValueError(f"tokenizer: at {_where(rec)} the chat template of prompt + response does not begin "
                         "with the template of the prompt (add_generation_prompt=True), so the response tokens "
                         "cannot be separated")
      return full[len(prompt_ids):]
    ids = _ids(self.tok.encode(response[0]["content"]), "encode")
    if self.lead and ids[:len(self.lead)] == self.lead:
      ids = ids[len(self.lead):]
    return ids + [self.eos]


def _left_pad(rows: List[List[int]], pad: int) -> Tuple[np.ndarray, np.ndarray]:
  width = max((len(r) for r in rows), default=0)
  tokens = np.full((len(rows), width), pad, np.int32)
  mask = np.zeros((len(rows), width), bool)
  for i, r in enumerate(rows):
    if r:
      tokens[i, width - len(r):] = r
      mask[i, width - len(r):] = True
  return tokens, mask


def _right_pad(rows: List[Tuple[List[int], List[int]]], pad: int, width: int):
  tokens = np.full((len(rows), width), pad, np.int32)
  mask = np.zeros((len(rows), width), bool)
  resp = np.zeros((len(rows), width), bool)
  for i, (p, r) in enumerate(rows):
    tokens[i, :len(p) + len(r)] = p + r
    mask[i, :len(p) + len(r)] = True
    resp[i, len(p):len(p) + len(r)] = True
  return tokens, mask, resp


def _limit_prompt(p, rec, k, max_prompt_len, truncation, summary) -> Optional[List[int]]:
  if max_prompt_len is None or len(p) <= max_prompt_len:
    return p
  if truncation == "raise":
    raise ValueError(f"max_prompt_len: the prompt at {_where(rec)} has {len(p)} tokens > {max_prompt_len}")
  if truncation == "skip":
    summary.skip("prompt_too_long", k)
    return None
  summary.count("prompt_truncated", k)
  return p[len(p) - max_prompt_len:]  # keep the end: the generation prompt


def tokenize_preferences(records: Sequence[PreferenceRecord], tokenizer: Any, *, max_prompt_len: Optional[int] = None,
                         max_len: Optional[int] = None,
                         truncation: str = "skip") -> Tuple[PreferenceBatch, Summary]:
  """Tokenizes preference records into prompt and prompt + response arrays with masks.

  Args:
    records: :class:`PreferenceRecord` items.
    tokenizer: an object with ``apply_chat_template``, ``encode``, ``eos_ids``,
      ``pad_id`` (module docstring).
    max_prompt_len: the most prompt tokens, or ``None``.
    max_len: the most prompt + response tokens, or ``None``; with both,
      ``max_prompt_len < max_len``.
    truncation: what happens to a record over a limit: ``"skip"`` (counted in
      the summary as ``prompt_too_long`` / ``sequence_too_long``),
      ``"truncate"`` (the prompt keeps its last ``max_prompt_len`` tokens, a
      response its first ``max_len - len(prompt)``; counted as
      ``prompt_truncated`` / ``chosen_truncated`` / ``rejected_truncated``; a
      prompt that leaves no room for a response is skipped as
      ``sequence_too_long``), or ``"raise"`` (``ValueError`` naming the record's
      file and line).

  Returns:
    ``(batch, summary)``: a :class:`PreferenceBatch` of the kept records, and a
    :class:`Summary` (``unit="records"``; ``where`` holds record indices).

  Examples:
    >>> from nashax.data import PreferenceRecord
    >>> class Chars:  # a byte tokenizer with a one-token-per-role template
    ...   eos_ids, pad_id = (1,), 0
    ...   def encode(self, text): return list(text.encode())
    ...   def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=True):
    ...     ids = [t for m in messages for t in [2 if m["role"] == "user" else 3] + self.encode(m["content"]) + [1]]
    ...     return ids + ([3] if add_generation_prompt else [])
    >>> rec = PreferenceRecord(({"role": "user", "content": "hi"},), ({"role": "assistant", "content": "yo"},),
    ...                        ({"role": "assistant", "content": "no"},))
    >>> batch, summary = tokenize_preferences([rec], Chars())
    >>> batch.prompt_tokens.tolist(), batch.chosen_tokens.tolist(), batch.chosen_response_mask.astype(int).tolist()
    ([[2, 104, 105, 1, 3]], [[2, 104, 105, 1, 3, 121, 111, 1]], [[0, 0, 0, 0, 0, 1, 1, 1]])
  """
  _check_limit("max_prompt_len", max_prompt_len)
  _check_limit("max_len", max_len)
  _check_truncation(truncation)
  if max_prompt_len is not None and max_len is not None and max_prompt_len >= max_len:
    raise ValueError(f"max_prompt_len: must be < max_len ({max_len}) to leave room for a response, "
                     f"got {max_prompt_len}")
  enc = _Encoder(tokenizer)
  summary = Summary(source=f"{len(records)} records", format="tokenize", unit="records", locator="record")
  prompts, chosen, rejected, index = [], [], [], []
  for k, rec in enumerate(records):
    if not isinstance(rec, PreferenceRecord):
      raise ValueError(f"records: item {k} is a {type(rec).__name__}, not a PreferenceRecord")
    summary.read += 1
    p_full = enc.prompt(rec)
    p = _limit_prompt(p_full, rec, k, max_prompt_len, truncation, summary)
    if p is None:
      continue
    pair, events = [], []
    for name, resp in (("chosen", rec.chosen), ("rejected", rec.rejected)):
      r = enc.response(rec, p_full, resp)
      if max_len is not None and len(p) + len(r) > max_len:
        if truncation == "raise":
          raise ValueError(f"max_len: prompt + {name} at {_where(rec)} has {len(p) + len(r)} tokens > {max_len}")
        if truncation == "skip" or len(p) >= max_len:
          pair = None
          break
        r = r[:max_len - len(p)]
        events.append(f"{name}_truncated")
      pair.append(r)
    if pair is None:
      summary.skip("sequence_too_long", k)
      continue
    for e in events:
      summary.count(e, k)
    prompts.append(p)
    chosen.append((p, pair[0]))
    rejected.append((p, pair[1]))
    index.append(k)
    summary.kept += 1
  width = max((len(p) + len(r) for p, r in chosen + rejected), default=0)
  pt, pm = _left_pad(prompts, enc.pad)
  ct, cm, cr = _right_pad(chosen, enc.pad, width)
  rt, rm, rr = _right_pad(rejected, enc.pad, width)
  return PreferenceBatch(pt, pm, ct, cm, cr, rt, rm, rr, np.asarray(index, np.int32)), summary


def tokenize_prompts(records: Sequence[Any], tokenizer: Any, *, max_prompt_len: Optional[int] = None,
                     truncation: str = "skip") -> Tuple[PromptBatch, Summary]:
  """Tokenizes prompts (of :class:`PromptRecord` or :class:`PreferenceRecord` items), left-padded for sampling.

  Args:
    records: items with ``prompt`` and ``chat`` (prompt or preference records).
    tokenizer: as :func:`tokenize_preferences`.
    max_prompt_len: the most prompt tokens, or ``None``.
    truncation: ``"skip"``, ``"truncate"`` (keep the last tokens) or ``"raise"``.

  Returns:
    ``(batch, summary)``: a :class:`PromptBatch` and a :class:`Summary`.
  """
  _check_limit("max_prompt_len", max_prompt_len)
  _check_truncation(truncation)
  enc = _Encoder(tokenizer)
  summary = Summary(source=f"{len(records)} records", format="tokenize prompts", unit="records", locator="record")
  rows, index = [], []
  for k, rec in enumerate(records):
    if not (hasattr(rec, "prompt") and hasattr(rec, "chat")):
      raise ValueError(f"records: item {k} is a {type(rec).__name__}, not a PromptRecord or PreferenceRecord")
    summary.read += 1
    p = _limit_prompt(enc.prompt(rec), rec, k, max_prompt_len, truncation, summary)
    if p is None:
      continue
    rows.append(p)
    index.append(k)
    summary.kept += 1
  tokens, mask = _left_pad(rows, enc.pad)
  return PromptBatch(tokens, mask, np.asarray(index, np.int32)), summary


# --- batches --------------------------------------------------------------------------------------


def _size(data: Any) -> int:
  if not (isinstance(data, tuple) and hasattr(data, "_fields")) or not data:
    raise ValueError(f"data: must be a PreferenceBatch, PromptBatch or another NamedTuple of arrays, "
                     f"got {type(data).__name__}")
  sizes = {np.shape(x)[0] for x in data}
  if len(sizes) != 1:
    raise ValueError(f"data: the arrays disagree on their first dimension {sorted(sizes)}")
  return sizes.pop()


def _check_int(name: str, value: Any, lo: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
    raise ValueError(f"{name}: must be an int >= {lo}, got {value!r}")
  return int(value)


def num_batches(n: int, batch_size: int, *, drop_last: bool = True) -> int:
  """Batches per epoch of ``n`` items: ``n // batch_size``, or rounded up when ``drop_last=False``."""
  n = _check_int("n", n, 0)
  batch_size = _check_int("batch_size", batch_size, 1)
  return n // batch_size if drop_last else -(-n // batch_size)


def batch_indices(n: int, batch_size: int, cursor: int, *, seed: int = 0, shuffle: bool = True,
                  drop_last: bool = True) -> np.ndarray:
  """The item indices of batch number ``cursor`` (counted over all epochs).

  Epoch ``e = cursor // num_batches(n, batch_size)`` visits the items in the
  order ``permutation(n)`` of NumPy's generator seeded with ``(seed, e)`` (or
  ``0 .. n-1`` when ``shuffle=False``), ``batch_size`` at a time. With
  ``drop_last=True`` the last ``n mod batch_size`` items of that order sit out
  the epoch (a different few each epoch); with ``False`` the epoch's last batch
  is smaller. A pure function of its arguments: a trainer checkpoints the
  integer ``cursor`` and resumes from it.

  Args:
    n: the number of items.
    batch_size: items per batch.
    cursor: the batch number, ``>= 0``.
    seed: the shuffling seed.
    shuffle: shuffle each epoch.
    drop_last: as above.

  Returns:
    ``[batch_size]`` int64 indices (fewer for a short last batch).

  Examples:
    >>> batch_indices(5, 2, 0, shuffle=False).tolist(), batch_indices(5, 2, 2, shuffle=False).tolist()
    ([0, 1], [0, 1])
  """
  per_epoch = num_batches(n, batch_size, drop_last=drop_last)
  cursor = _check_int("cursor", cursor, 0)
  if per_epoch == 0:
    raise ValueError(f"batch_size: {batch_size} is more than the {n} items (no full batch; pass drop_last=False "
                     "or a smaller batch_size)")
  epoch, b = divmod(cursor, per_epoch)
  if shuffle:
    order = np.random.default_rng(np.random.SeedSequence([_check_int("seed", seed, 0), epoch])).permutation(n)
  else:
    order = np.arange(n)
  return order[b * batch_size:(b + 1) * batch_size]


def take(data: Any, indices: Any) -> Any:
  """The rows ``indices`` of every array of a batch NamedTuple (a :class:`PreferenceBatch` or :class:`PromptBatch`)."""
  _size(data)
  idx = np.asarray(indices)
  return type(data)(*(np.asarray(x)[idx] for x in data))


def batch_at(data: Any, batch_size: int, cursor: int, *, seed: int = 0, shuffle: bool = True,
             drop_last: bool = True) -> Any:
  """Batch number ``cursor`` of ``data`` (:func:`batch_indices` then :func:`take`)."""
  return take(data, batch_indices(_size(data), batch_size, cursor, seed=seed, shuffle=shuffle, drop_last=drop_last))


def iterate_batches(data: Any, batch_size: int, *, seed: int = 0, start: int = 0, stop: Optional[int] = None,
                    shuffle: bool = True, drop_last: bool = True) -> Iterator[Tuple[int, Any]]:
  """Yields ``(cursor, batch)`` for batch numbers ``start, start + 1, ...`` (up to ``stop``, or forever).

  ``cursor`` is the number of the *next* batch, what a trainer saves with its
  state: ``iterate_batches(data, batch_size, seed=seed, start=cursor)`` resumes
  exactly where it stopped (same ``data``, ``batch_size``, ``seed``).

  Args:
    data: a :class:`PreferenceBatch` or :class:`PromptBatch` (any NamedTuple of arrays).
    batch_size, seed, shuffle, drop_last: as :func:`batch_indices`.
    start: the first batch number.
    stop: the batch number to stop before, or ``None``.

  Examples:
    >>> import numpy as np
    >>> data = PromptBatch(np.arange(6)[:, None], np.ones((6, 1), bool), np.arange(6))
    >>> first = [b.index.tolist() for _, b in iterate_batches(data, 2, seed=3, stop=4)]
    >>> cursor, _ = next(iterate_batches(data, 2, seed=3, start=0))
    >>> [b.index.tolist() for _, b in iterate_batches(data, 2, seed=3, start=cursor, stop=4)] == first[1:]
    True
  """
  n = _size(data)
  cursor = _check_int("start", start, 0)
  if stop is not None:
    _check_int("stop", stop, 0)
  while stop is None or cursor < stop:
    batch = take(data, batch_indices(n, batch_size, cursor, seed=seed, shuffle=shuffle, drop_last=drop_last))
    cursor += 1
    yield cursor, batch
