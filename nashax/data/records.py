"""Normalised preference records and the read summary that accounts for every row.

Every reader in :mod:`nashax.data` turns its format into the same few record
types: a :class:`PreferenceRecord` (a prompt and a chosen and a rejected
response, each a tuple of ``{"role", "content"}`` messages, with metadata), a
:class:`PromptRecord` (a prompt alone, for online methods), and for raw
UltraFeedback a record that keeps every completion
(:class:`nashax.data.UltraFeedbackRecord`). Every reader also returns a
:class:`Summary`: rows read, kept and skipped by reason, with the first line
numbers of each reason, so no row is dropped silently.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Tuple

__all__ = ["ROLES", "REASONS", "PreferenceRecord", "PromptRecord", "Summary"]

#: The message roles a record may hold.
ROLES = ("system", "user", "assistant")

#: Why a row can be refused (the keys of ``Summary.skipped``), with what each means.
REASONS = {
    "bad_json": "the line is not valid JSON (or not UTF-8)",
    "duplicate_key": "a JSON object repeats a key (JSON readers would keep only the last)",
    "not_an_object": "the row is not a JSON object",
    "missing_key": "a required key is absent or null",
    "wrong_type": "a value has the wrong type (e.g. a string where messages belong)",
    "bad_role": "a message role is not system, user or assistant",
    "bad_turns": "the turns do not split into a prompt and assistant responses",
    "bad_score": "a score or rating is not a finite number (or 'N/A' for a rating)",
    "empty_prompt": "the prompt is empty or blank",
    "empty_response": "a response is empty or blank",
    "identical_responses": "chosen and rejected are the same",
    "no_shared_prompt": "chosen and rejected share no prefix to take as the prompt",
    "duplicate": "the same prompt and responses as an earlier row (with on_duplicate='skip')",
    "prompt_too_long": "the prompt has more than max_prompt_len tokens (truncation='skip')",
    "sequence_too_long": "prompt + response has more than max_len tokens (truncation='skip')",
    "tie": "neither completion is preferred under the criterion (ultrafeedback_pairs)",
    "unrated": "a completion has no rating under the criterion (ultrafeedback_pairs)",
}

Messages = Tuple[Dict[str, str], ...]


def _messages_key(messages: Messages) -> tuple:
  return tuple((m["role"], m["content"]) for m in messages)


@dataclasses.dataclass(frozen=True)
class PreferenceRecord:
  """One preference pair: ``chosen`` is preferred to ``rejected`` after ``prompt``.

  Attributes:
    prompt: the conversation so far, a tuple of ``{"role", "content"}`` messages.
    chosen: the preferred response, messages (starting with an assistant message).
    rejected: the other response, messages.
    metadata: ``source`` (file), ``line`` (1-based line, or row for Parquet),
      ``format``, and what the format carries (``prompt_id``, ``score_chosen``,
      ``score_rejected``, models and aspect ratings for UltraFeedback pairs).
    chat: ``True`` for conversations (tokenized through the chat template);
      ``False`` for TRL's *standard* plain-text format, where the prompt is one
      user message and each response one assistant message holding raw text that
      is tokenized as a continuation, without a template.

  Two records are equal when their messages and ``chat`` are; metadata is not compared.
  """

  prompt: Messages
  chosen: Messages
  rejected: Messages
  metadata: Dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
  chat: bool = True

  def key(self) -> tuple:
    """What makes two records duplicates: the same prompt and both responses."""
    return (_messages_key(self.prompt), _messages_key(self.chosen), _messages_key(self.rejected), self.chat)

  def to_dict(self) -> dict:
    """The row in TRL's conversational format (standard format for ``chat=False``)."""
    if self.chat:
      return {"prompt": [dict(m) for m in self.prompt], "chosen": [dict(m) for m in self.chosen],
              "rejected": [dict(m) for m in self.rejected]}
    return {"prompt": self.prompt[0]["content"], "chosen": self.chosen[0]["content"],
            "rejected": self.rejected[0]["content"]}


@dataclasses.dataclass(frozen=True)
class PromptRecord:
  """One prompt (TRL's prompt-only format), for online methods that sample responses.

  Attributes:
    prompt: a tuple of ``{"role", "content"}`` messages.
    metadata: ``source``, ``line``, ``format``.
    chat: as :class:`PreferenceRecord` (``False``: a plain-text prompt).
  """

  prompt: Messages
  metadata: Dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)
  chat: bool = True

  def key(self) -> tuple:
    """What makes two prompt records duplicates: the same prompt."""
    return (_messages_key(self.prompt), self.chat)

  def to_dict(self) -> dict:
    """The row in TRL's prompt-only format."""
    return {"prompt": [dict(m) for m in self.prompt] if self.chat else self.prompt[0]["content"]}


_SHOW = 5  # line numbers kept per reason


@dataclasses.dataclass
class Summary:
  """What a reader (or tokenizer, or pair builder) did with each item.

  ``read == kept + sum(skipped.values())`` always holds. ``counted`` holds events
  that did not drop the item (a kept duplicate, a truncation, a blank line), and
  ``where`` the first few line numbers of each reason or event.

  Attributes:
    source: the file (or what was processed).
    format: the format read (or the step: ``"tokenize"``, ``"pairs"``).
    unit: what ``read`` counts (``"rows"``, ``"records"``, ``"pairs"``).
    locator: what the numbers in ``where`` are (``"line"``, ``"row"``, ``"record"``).
    read: items seen.
    kept: items returned.
    skipped: reason -> count of items refused (reasons: :data:`REASONS`).
    counted: event -> count of items kept but worth knowing about.
    where: reason or event -> the first few distinct line numbers.
  """

  source: str
  format: str
  unit: str = "rows"
  locator: str = "line"
  read: int = 0
  kept: int = 0
  skipped: Dict[str, int] = dataclasses.field(default_factory=dict)
  counted: Dict[str, int] = dataclasses.field(default_factory=dict)
  where: Dict[str, List[int]] = dataclasses.field(default_factory=dict)

  def _note(self, table: Dict[str, int], reason: str, at) -> None:
    table[reason] = table.get(reason, 0) + 1
    if at is not None:
      seen = self.where.setdefault(reason, [])
      if len(seen) < _SHOW and at not in seen:
        seen.append(at)

  def skip(self, reason: str, at=None) -> None:
    """Counts one refused item (call after counting it in ``read``)."""
    self._note(self.skipped, reason, at)

  def count(self, event: str, at=None) -> None:
    """Counts an event on an item that is kept (or on something that is not an item)."""
    self._note(self.counted, event, at)

  @property
  def num_skipped(self) -> int:
    """The total of ``skipped``."""
    return sum(self.skipped.values())

  def _where(self, reason: str, total: int) -> str:
    seen = self.where.get(reason, [])
    if not seen:
      return ""
    more = ", ..." if len(seen) == _SHOW and total > _SHOW else ""
    word = self.locator if len(seen) == 1 and not more else self.locator + "s"
    return f"  ({word} {', '.join(map(str, seen))}{more})"

  def __str__(self) -> str:
    lines = [f"{self.source} ({self.format}): {self.read} {self.unit} read, {self.kept} kept, "
             f"{self.num_skipped} skipped"]
    width = max([len(r) for r in list(self.skipped) + list(self.counted)] + [1])
    for reason, n in sorted(self.skipped.items()):
      lines.append(f"  skipped  {reason:<{width}} {n:>6}{self._where(reason, n)}")
    for event, n in sorted(self.counted.items()):
      lines.append(f"  counted  {event:<{width}} {n:>6}{self._where(event, n)}")
    return "\n".join(lines)
