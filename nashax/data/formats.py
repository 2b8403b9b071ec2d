"""Readers for local preference data: JSONL and Parquet in the formats researchers download.

Formats (``format=`` of the readers; ``"auto"`` detects it from the first row):

- ``standard``: TRL's plain-text preference rows, ``{"prompt": str, "chosen": str, "rejected": str}``.
- ``conversational``: TRL's conversational rows, ``prompt``, ``chosen`` and
  ``rejected`` lists of ``{"role", "content"}`` messages.
- ``implicit_prompt``: ``chosen`` and ``rejected`` only, both conversations (or
  both strings) that share a prefix. As TRL's ``extract_prompt`` does, the
  longest shared prefix is the prompt (messages compared whole; for strings,
  characters, with a space just before the split moved to the responses).
- ``prompt_only``: ``{"prompt": str | messages}``; read with :func:`read_prompts`.
- ``ultrafeedback_binarized``: ``prompt`` (str), ``prompt_id``, ``chosen`` and
  ``rejected`` full conversations (the user turn, then the response),
  ``score_chosen``, ``score_rejected``.
- ``ultrafeedback``: raw UltraFeedback, ``instruction`` and ``completions``
  (each with ``model``, ``response``, ``annotations`` per aspect with a
  ``Rating``, ``overall_score``, ``fine-grained_score``); read with
  :func:`nashax.data.read_ultrafeedback`, which keeps every completion.
- ``hh_rlhf``: Anthropic HH-RLHF, ``chosen`` and ``rejected`` transcripts
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``, split into turns, the shared turns
  being the prompt.

A malformed row (bad JSON, a repeated key, a missing key, a wrong type, a role
other than system/user/assistant, an empty prompt or response, identical
responses) is refused with ``ValueError("file:line: ...")`` under
``on_error="raise"`` (the default), or counted in the summary under
``on_error="skip"``. Rows with the same prompt and both responses as an earlier
row are counted, and kept or skipped by ``on_duplicate``.

References:
  von Werra et al., "TRL: Transformer Reinforcement Learning" (dataset formats
  and ``extract_prompt``), https://github.com/huggingface/trl, 2020-2026.
  Cui et al., "UltraFeedback: Boosting Language Models with Scaled AI
  Feedback", arXiv:2310.01377, 2023 (the raw format, Sec. 2; the binarized
  version is Tunstall et al., "Zephyr: Direct Distillation of LM Alignment",
  arXiv:2310.16944, 2023).
  Bai et al., "Training a Helpful and Harmless Assistant with Reinforcement
  Learning from Human Feedback", arXiv:2204.05862, 2022 (HH-RLHF).
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from nashax.data.records import ROLES, PreferenceRecord, PromptRecord, Summary

__all__ = ["FORMATS", "PAIR_FORMATS", "detect_format", "read_preferences", "read_prompts", "write_jsonl"]

#: The formats the readers know.
FORMATS = ("standard", "conversational", "implicit_prompt", "prompt_only", "ultrafeedback_binarized",
           "ultrafeedback", "hh_rlhf")
#: The formats whose rows are preference pairs (:func:`read_preferences`).
PAIR_FORMATS = ("standard", "conversational", "implicit_prompt", "ultrafeedback_binarized", "hh_rlhf")

PathLike = Union[str, "os.PathLike[str]"]


class _RowError(Exception):
  """A refused row: ``reason`` (a key of ``REASONS``) and a message."""

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason
    self.message = message


# --- rows of a file -------------------------------------------------------------------------------


def _no_duplicate_keys(pairs):
  out = {}
  for k, v in pairs:
    if k in out:
      raise _RowError("duplicate_key", f"the object repeats the key {k!r}")
    out[k] = v
  return out


def _jsonl_rows(path: str) -> Iterator[Tuple[int, Any]]:
  """``(line, row or _RowError or None for a blank line)`` of a JSON-lines file."""
  with open(path, "rb") as f:
    for n, raw in enumerate(f, start=1):
      try:
        text = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        yield n, _RowError("bad_json", f"the line is not UTF-8 ({e.reason} at byte {e.start})")
        continue
      if not text.strip():
        yield n, None
        continue
      try:
        yield n, json.loads(text, object_pairs_hook=_no_duplicate_keys)
      except _RowError as e:
        yield n, e
      except json.JSONDecodeError as e:
        yield n, _RowError("bad_json", f"invalid JSON ({e.msg} at column {e.colno})")


def _parquet_rows(path: str) -> Iterator[Tuple[int, Any]]:
  """``(row, dict)`` of a Parquet file (1-based rows); needs pyarrow (the ``data`` extra)."""
  try:
    import pyarrow.parquet as pq
  except ImportError:
    raise ValueError(f"path: reading Parquet ({path}) needs pyarrow; install the `data` extra "
                     "(pip install 'nashax[data]')") from None
  try:
    pfile = pq.ParquetFile(path)
  except Exception as e:  # pyarrow raises its own ArrowInvalid for a file that is not Parquet
    raise ValueError(f"path: {path} is not a readable Parquet file ({e})") from None
  n = 0
  for batch in pfile.iter_batches(batch_size=1024):
    for row in batch.to_pylist():
      n += 1
      yield n, row


def _rows_of(path: PathLike) -> Tuple[str, str, Iterator[Tuple[int, Any]]]:
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"path: no such file {path!r}")
  ext = os.path.splitext(path)[1].lower()
  if ext in (".jsonl", ".json", ".ndjson"):
    return path, "line", _jsonl_rows(path)
  if ext in (".parquet", ".pq"):
    return path, "row", _parquet_rows(path)
  raise ValueError(f"path: {path!r} is neither JSON lines (.jsonl, .json, .ndjson) nor Parquet (.parquet)")


# --- values ---------------------------------------------------------------------------------------


def _get(row: dict, key: str) -> Any:
  value = row.get(key)
  if value is None:
    raise _RowError("missing_key", f"missing key {key!r}" if key not in row else f"{key!r} is null")
  return value


def _string(value: Any, name: str) -> str:
  if not isinstance(value, str):
    raise _RowError("wrong_type", f"{name} must be a string, got {type(value).__name__}")
  return value


def _messages(value: Any, name: str) -> Tuple[Dict[str, str], ...]:
  if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
    raise _RowError("wrong_type", f"{name} must be a list of {{role, content}} messages, got {type(value).__name__}")
  out = []
  for i, m in enumerate(value):
    if not isinstance(m, dict):
      raise _RowError("wrong_type", f"{name}[{i}] must be an object with role and content, got {type(m).__name__}")
    for k in ("role", "content"):
      if m.get(k) is None:
        raise _RowError("missing_key", f"{name}[{i}] has no {k!r}")
    role, content = m["role"], m["content"]
    if not isinstance(role, str):
      raise _RowError("wrong_type", f"{name}[{i}].role must be a string, got {type(role).__name__}")
    if role not in ROLES:
      raise _RowError("bad_role", f"{name}[{i}].role is {role!r}; allowed: {', '.join(ROLES)}")
    if not isinstance(content, str):
      raise _RowError("wrong_type", f"{name}[{i}].content must be a string, got {type(content).__name__}")
    out.append({"role": role, "content": content})
  return tuple(out)


def _score(value: Any, name: str) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise _RowError("bad_score", f"{name} must be a finite number, got {value!r}")
  return float(value)


def _check_prompt(prompt, name: str = "prompt") -> None:
  if not prompt or not any(m["content"].strip() for m in prompt):
    raise _RowError("empty_prompt", f"{name} is empty")


def _check_response(response, name: str) -> None:
  if not response:
    raise _RowError("empty_response", f"{name} is empty (nothing after the prompt)")
  if response[0]["role"] != "assistant":
    raise _RowError("bad_turns", f"{name} must start with an assistant message, got {response[0]['role']!r}")
  for i, m in enumerate(response):
    if m["role"] == "assistant" and not m["content"].strip():
      raise _RowError("empty_response", f"{name}[{i}] is an empty assistant message")


def _check_pair(chosen, rejected) -> None:
  _check_response(chosen, "chosen")
  _check_response(rejected, "rejected")
  if chosen == rejected:
    raise _RowError("identical_responses", "chosen and rejected are the same")


def _user(text: str):
  return ({"role": "user", "content": text},)


def _assistant(text: str):
  return ({"role": "assistant", "content": text},)


def _split_shared(chosen, rejected):
  """Longest shared prefix of two message tuples: ``(prompt, chosen_rest, rejected_rest)``."""
  k = 0
  while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
    k += 1
  if k == len(chosen) and k == len(rejected):
    raise _RowError("identical_responses", "chosen and rejected are the same")
  return chosen[:k], chosen[k:], rejected[k:]


# --- one parser per format: row -> (prompt, chosen, rejected, chat, extra metadata) ---------------


def _parse_standard(row):
  prompt = _string(_get(row, "prompt"), "prompt")
  chosen = _string(_get(row, "chosen"), "chosen")
  rejected = _string(_get(row, "rejected"), "rejected")
  if not prompt.strip():
    raise _RowError("empty_prompt", "prompt is empty")
  for name, text in (("chosen", chosen), ("rejected", rejected)):
    if not text.strip():
      raise _RowError("empty_response", f"{name} is empty")
  if chosen == rejected:
    raise _RowError("identical_responses", "chosen and rejected are the same")
  return _user(prompt), _assistant(chosen), _assistant(rejected), False, {}


def _parse_conversational(row):
  prompt = _messages(_get(row, "prompt"), "prompt")
  chosen = _messages(_get(row, "chosen"), "chosen")
  rejected = _messages(_get(row, "rejected"), "rejected")
  _check_prompt(prompt)
  _check_pair(chosen, rejected)
  return prompt, chosen, rejected, True, {}


def _split_text(chosen: str, rejected: str):
  """TRL's implicit-prompt split of two strings: the shared prefix, a space before the split going right."""
  k = 0
  m = min(len(chosen), len(rejected))
  while k < m and chosen[k] == rejected[k]:
    k += 1
  if chosen == rejected:
    raise _RowError("identical_responses", "chosen and rejected are the same")
  if k == m:
    raise _RowError("empty_response", f"{'chosen' if len(chosen) == m else 'rejected'} is a prefix of the other "
                    "(nothing left after the shared prompt)")
  if k > 0 and chosen[k - 1] == " ":
    k -= 1
  return chosen[:k], chosen[k:], rejected[k:]


def _parse_implicit(row):
  if "prompt" in row and row["prompt"] is not None:
    raise _RowError("wrong_type", "an implicit-prompt row has no 'prompt' key (this row has one)")
  chosen, rejected = _get(row, "chosen"), _get(row, "rejected")
  if isinstance(chosen, str) and isinstance(rejected, str):
    prompt, c, r = _split_text(chosen, rejected)
    if not prompt.strip():
      raise _RowError("no_shared_prompt", "chosen and rejected share no prefix to take as the prompt")
    for name, text in (("chosen", c), ("rejected", r)):
      if not text.strip():
        raise _RowError("empty_response", f"{name} is empty after the shared prompt")
    return _user(prompt), _assistant(c), _assistant(r), False, {}
  chosen, rejected = _messages(chosen, "chosen"), _messages(rejected, "rejected")
  prompt, c, r = _split_shared(chosen, rejected)
  if not prompt:
    raise _RowError("no_shared_prompt", "chosen and rejected differ from their first message")
  _check_prompt(prompt)
  _check_pair(c, r)
  return prompt, c, r, True, {}


def _parse_binarized(row):
  prompt_text = _string(_get(row, "prompt"), "prompt")
  chosen = _messages(_get(row, "chosen"), "chosen")
  rejected = _messages(_get(row, "rejected"), "rejected")
  extra = {"score_chosen": _score(_get(row, "score_chosen"), "score_chosen"),
           "score_rejected": _score(_get(row, "score_rejected"), "score_rejected")}
  if row.get("prompt_id") is not None:
    extra["prompt_id"] = _string(row["prompt_id"], "prompt_id")
  prompt, c, r = _split_shared(chosen, rejected)
  if not prompt:  # responses given without the user turn: the prompt string is the turn
    prompt = _user(prompt_text)
  _check_prompt(prompt)
  _check_pair(c, r)
  return prompt, c, r, True, extra


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def _hh_turns(text: str, name: str):
  if text.startswith(("Human:", "Assistant:")):
    text = "\n\n" + text
  parts = _HH_TURN.split(text)
  if parts[0].strip():
    raise _RowError("bad_turns", f"{name} has text before its first '\\n\\nHuman:' turn")
  if len(parts) == 1:
    raise _RowError("bad_turns", f"{name} has no '\\n\\nHuman:' or '\\n\\nAssistant:' turns")
  role = {"Human": "user", "Assistant": "assistant"}
  return tuple({"role": role[parts[i]], "content": parts[i + 1].strip()} for i in range(1, len(parts), 2))


def _parse_hh(row):
  chosen = _hh_turns(_string(_get(row, "chosen"), "chosen"), "chosen")
  rejected = _hh_turns(_string(_get(row, "rejected"), "rejected"), "rejected")
  prompt, c, r = _split_shared(chosen, rejected)
  if not prompt:
    raise _RowError("no_shared_prompt", "chosen and rejected differ from their first turn")
  _check_prompt(prompt)
  _check_pair(c, r)
  return prompt, c, r, True, {}


def _parse_prompt_only(row):
  value = _get(row, "prompt")
  if isinstance(value, str):
    if not value.strip():
      raise _RowError("empty_prompt", "prompt is empty")
    return _user(value), False, {}
  prompt = _messages(value, "prompt")
  _check_prompt(prompt)
  return prompt, True, {}


_PAIR_PARSERS: Dict[str, Callable] = {
    "standard": _parse_standard,
    "conversational": _parse_conversational,
    "implicit_prompt": _parse_implicit,
    "ultrafeedback_binarized": _parse_binarized,
    "hh_rlhf": _parse_hh,
}


def _detect_row(row: dict) -> Optional[str]:
  keys = set(k for k, v in row.items() if v is not None)
  if {"instruction", "completions"} <= keys:
    return "ultrafeedback"
  if {"chosen", "rejected", "score_chosen", "score_rejected"} <= keys:
    return "ultrafeedback_binarized"
  if {"prompt", "chosen", "rejected"} <= keys:
    return "standard" if isinstance(row["prompt"], str) else "conversational"
  if {"chosen", "rejected"} <= keys:
    c = row["chosen"]
    if isinstance(c, str) and ("\n\nHuman:" in c or c.startswith("Human:")):
      return "hh_rlhf"
    return "implicit_prompt"
  if "prompt" in keys:
    return "prompt_only"
  return None


def _unknown(path: str, locator: str, at: int, row: Any) -> ValueError:
  keys = sorted(row) if isinstance(row, dict) else type(row).__name__
  return ValueError(f"{path}:{at}: cannot tell the format from the keys {keys}; known formats: "
                    f"{', '.join(FORMATS)} (pass format=... to choose one)")


def _check_format(format: str, allowed: Tuple[str, ...]) -> None:
  if not isinstance(format, str) or (format != "auto" and format not in FORMATS):
    raise ValueError(f"format: unknown format {format!r}; known formats: auto, {', '.join(FORMATS)}")
  if format != "auto" and format not in allowed:
    raise ValueError(f"format: {format!r} cannot be read here (this reader takes {', '.join(allowed)})")


def _check_policy(on_error: str, on_duplicate: str) -> None:
  if on_error not in ("raise", "skip"):
    raise ValueError(f"on_error: must be 'raise' or 'skip', got {on_error!r}")
  if on_duplicate not in ("keep", "skip"):
    raise ValueError(f"on_duplicate: must be 'keep' or 'skip', got {on_duplicate!r}")


def detect_format(path: PathLike) -> str:
  """The format of a file, from its first JSON-object row.

  Args:
    path: a ``.jsonl``/``.json`` (JSON lines) or ``.parquet`` file.

  Returns:
    One of :data:`FORMATS`.

  Raises:
    ValueError: no such file, no JSON-object row to look at, or keys that fit
      no known format (the message lists the known ones).
  """
  path, locator, rows = _rows_of(path)
  for at, row in rows:
    if isinstance(row, dict):
      fmt = _detect_row(row)
      if fmt is None:
        raise _unknown(path, locator, at, row)
      return fmt
  raise ValueError(f"path: {path} has no JSON-object row to detect the format from; pass format=...")


def _read_rows(path: PathLike, format: str, allowed: Tuple[str, ...], on_error: str, on_duplicate: str,
               parse_row: Callable[[str, dict], Any], what: str):
  """The shared loop: rows -> records, every row accounted for in the summary.

  ``parse_row(fmt, row)`` returns ``(record_factory(metadata), duplicate_key)`` or raises ``_RowError``.
  """
  _check_format(format, allowed)
  _check_policy(on_error, on_duplicate)
  path, locator, rows = _rows_of(path)
  fmt = None if format == "auto" else format
  summary = Summary(source=path, format=fmt or "auto", locator=locator)
  records, seen = [], {}

  def refuse(at: int, err: _RowError) -> None:
    if on_error == "raise":
      raise ValueError(f"{path}:{at}: {err.message} [{err.reason}]" + (f" (format {fmt})" if fmt else ""))
    summary.skip(err.reason, at)

  for at, row in rows:
    if row is None:
      summary.count("blank_line", at)
      continue
    summary.read += 1
    if isinstance(row, _RowError):
      refuse(at, row)
      continue
    if not isinstance(row, dict):
      refuse(at, _RowError("not_an_object", f"the row is a JSON {type(row).__name__}, not an object"))
      continue
    if fmt is None:
      fmt = _detect_row(row)
      if fmt is None:
        raise _unknown(path, locator, at, row)
      if fmt not in allowed:
        raise ValueError(f"{path}:{at}: the rows are in the {fmt!r} format, which {what} does not read"
                         + _HINTS.get(fmt, ""))
      summary.format = fmt
    try:
      make, key = parse_row(fmt, row)
    except _RowError as err:
      refuse(at, err)
      continue
    if key in seen:
      if on_duplicate == "skip":
        summary.skip("duplicate", at)
        continue
      summary.count("duplicate", at)
    else:
      seen[key] = at
    records.append(make({"source": path, locator: at, "format": fmt}))
    summary.kept += 1
  if fmt is None:
    summary.format = format
  return records, summary


_HINTS = {
    "prompt_only": "; use read_prompts",
    "ultrafeedback": "; use read_ultrafeedback (it keeps every completion) and ultrafeedback_pairs",
}


def _pair_row(fmt: str, row: dict):
  prompt, chosen, rejected, chat, extra = _PAIR_PARSERS[fmt](row)
  rec = PreferenceRecord(prompt, chosen, rejected, {}, chat)

  def make(meta):
    meta.update(extra)
    return PreferenceRecord(prompt, chosen, rejected, meta, chat)
  return make, rec.key()


def read_preferences(path: PathLike, *, format: str = "auto", on_error: str = "raise",
                     on_duplicate: str = "keep") -> Tuple[List[PreferenceRecord], Summary]:
  """Reads preference pairs from a JSON-lines or Parquet file, normalised to :class:`PreferenceRecord`.

  Args:
    path: a ``.jsonl``/``.json`` (one JSON object a line) or ``.parquet`` file
      (Parquet needs pyarrow, the ``data`` extra).
    format: ``"auto"`` (detected from the first row) or one of
      :data:`PAIR_FORMATS`.
    on_error: ``"raise"``: a malformed row raises ``ValueError("file:line:
      what [reason]")``; ``"skip"``: it is counted in ``summary.skipped``.
    on_duplicate: a row with the same prompt and both responses as an earlier
      one is counted in the summary and ``"keep"``-t or ``"skip"``-ped.

  Returns:
    ``(records, summary)``; ``summary.read == summary.kept + summary.num_skipped``.

  Raises:
    ValueError: a bad argument, a missing file, an unknown format (the message
      lists the known ones), or a malformed row under ``on_error="raise"``.

  Examples:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "p.jsonl")
    >>> with open(path, "w") as f:
    ...   _ = f.write(json.dumps({"chosen": "The sky is blue.", "rejected": "The sky is green."}) + "\\n")
    ...   _ = f.write("{not json\\n")
    >>> records, summary = read_preferences(path, on_error="skip")
    >>> records[0].prompt[0]["content"], records[0].chosen[0]["content"]
    ('The sky is', ' blue.')
    >>> print(str(summary).replace(path, "p.jsonl"))
    p.jsonl (implicit_prompt): 2 rows read, 1 kept, 1 skipped
      skipped  bad_json      1  (line 2)
  """
  return _read_rows(path, format, PAIR_FORMATS, on_error, on_duplicate, _pair_row, "read_preferences")


def _prompt_row(fmt: str, row: dict):
  if fmt == "prompt_only":
    prompt, chat, extra = _parse_prompt_only(row)
  else:
    prompt, _, _, chat, extra = _PAIR_PARSERS[fmt](row)
    extra = {k: v for k, v in extra.items() if k == "prompt_id"}
  rec = PromptRecord(prompt, {}, chat)

  def make(meta):
    meta.update(extra)
    return PromptRecord(prompt, meta, chat)
  return make, rec.key()


def read_prompts(path: PathLike, *, format: str = "auto", on_error: str = "raise",
                 on_duplicate: str = "keep") -> Tuple[List[PromptRecord], Summary]:
  """Reads prompts (TRL's prompt-only format, or the prompts of a preference file) for online methods.

  A preference row gives its prompt (the whole row is still validated, so a
  malformed pair is refused here as in :func:`read_preferences`); repeated
  prompts, common in preference files, are counted as duplicates and kept or
  skipped by ``on_duplicate``.

  Args:
    path: a ``.jsonl``/``.json`` or ``.parquet`` file.
    format: ``"auto"``, ``"prompt_only"`` or one of :data:`PAIR_FORMATS`.
    on_error: ``"raise"`` or ``"skip"``, as in :func:`read_preferences`.
    on_duplicate: ``"keep"`` or ``"skip"``.

  Returns:
    ``(records, summary)`` of :class:`PromptRecord`.
  """
  return _read_rows(path, format, ("prompt_only",) + PAIR_FORMATS, on_error, on_duplicate, _prompt_row,
                    "read_prompts")


def write_jsonl(records, path: PathLike) -> None:
  """Writes records as JSON lines in TRL's format (``record.to_dict()``: conversational or standard).

  Args:
    records: :class:`PreferenceRecord` or :class:`PromptRecord` items.
    path: the file to write (overwritten).
  """
  with open(os.fspath(path), "w", encoding="utf-8") as f:
    for i, rec in enumerate(records):
      if not hasattr(rec, "to_dict"):
        raise ValueError(f"records: item {i} is a {type(rec).__name__}, not a PreferenceRecord or PromptRecord")
      f.write(json.dumps(rec.to_dict(), ensure_ascii=False) + "\n")
