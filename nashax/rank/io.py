"""Readers of pairwise comparison logs: battle records and long-format win/loss/tie counts.

Battle records follow the field names of Chatbot Arena's published logs
(``lmsys/chatbot_arena_conversations``, ``arena-human-preference``):
``model_a``, ``model_b``, ``winner`` in ``{"model_a", "model_b", "tie",
"tie (bothbad)"}``, and optionally ``question_id`` (the prompt), ``judge``,
``turn``, ``language``, ``tstamp``; a ``category`` column is read when
present. Long-format counts have one row per pair: ``model_a``, ``model_b``,
``wins`` (``model_a`` won), ``losses``, ``ties`` and optionally
``ties_bothbad``, ``category``, ``judge``.

Every boundary is checked: a malformed row (bad JSON, a missing or non-text
model, a non-integer count) raises ``ValueError`` naming the file and line;
rows with an unknown winner, self-battles (``model_a == model_b``) and
duplicates (the same prompt, pair, judge, turn, timestamp and verdict, when
a prompt id is present) are skipped, counted and reported in
``ReadSummary``; nothing is dropped silently. JSONL, CSV and Parquet
(pyarrow, imported only when a Parquet file is read) are supported.

References:
  Chiang et al., "Chatbot Arena: An Open Platform for Evaluating LLMs by
  Human Preference", ICML 2024, arXiv:2403.04132 (the battle log format).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Iterator, Optional, Sequence

import numpy as np

__all__ = ["WINNERS", "ReadSummary", "Comparisons", "read_battles", "read_counts", "battles_from_records"]

# The winner spellings of Chatbot Arena's logs, and the outcome codes they map to.
WINNERS = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 3}
OUTCOME_NAMES = ("model_a", "model_b", "tie", "tie (bothbad)")
_FORMATS = ("jsonl", "csv", "parquet")


@dataclasses.dataclass(frozen=True)
class ReadSummary:
  """What a reader kept and what it skipped (each skip is counted, none silent).

  Attributes:
    path: the file read (or ``"<records>"``).
    rows: data rows in the file.
    kept: battles (or count rows) kept.
    filtered: rows outside the ``category`` / ``judge`` filter.
    unknown_winner: rows whose winner is none of ``WINNERS`` (by spelling, with how many of each).
    self_battles: rows with ``model_a == model_b``.
    unknown_models: rows naming a model outside the ``models`` list given to the reader.
    duplicates: repeated records (kept once unless ``keep_duplicates``).
    ties: kept ties, ``tie (bothbad)`` included; bothbad: of which ``tie (bothbad)``.
  """

  path: str
  rows: int
  kept: int
  filtered: int = 0
  unknown_winner: int = 0
  unknown_spellings: tuple = ()
  self_battles: int = 0
  duplicates: int = 0
  unknown_models: int = 0
  ties: int = 0
  bothbad: int = 0

  def __str__(self) -> str:
    s = (f"{self.path}: {self.rows} rows, kept {self.kept} ({self.ties} ties, {self.bothbad} both bad); "
         f"skipped {self.filtered} outside the filter, {self.unknown_winner} unknown winners, "
         f"{self.self_battles} self-battles, {self.duplicates} duplicates, {self.unknown_models} with unknown models")
    if self.unknown_spellings:
      s += " (unknown: " + ", ".join(f"{w!r} x{c}" for w, c in self.unknown_spellings) + ")"
    return s


@dataclasses.dataclass(frozen=True)
class Comparisons:
  """Pairwise comparisons of ``K`` models, as battles (ordered) or as counts per pair.

  Attributes:
    models: ``tuple[str]`` of length ``K``, sorted.
    a, b: ``int32[N]`` model indices of each battle or count row.
    counts: ``[N, 4]`` float64 counts of (a wins, b wins, tie, tie both bad) per row
      (one-hot for a battle).
    features: ``[N, d]`` float64 covariate differences (a minus b) or ``None``.
    feature_names: names of the ``d`` covariates.
    ordered: True for battles in log order (online Elo needs it), False for counts.
    summary: the reader's ``ReadSummary``.
  """

  models: tuple
  a: np.ndarray
  b: np.ndarray
  counts: np.ndarray
  features: Optional[np.ndarray] = None
  feature_names: tuple = ()
  ordered: bool = True
  summary: Optional[ReadSummary] = None

  @property
  def num_models(self) -> int:
    return len(self.models)

  @property
  def num_battles(self) -> int:
    return int(round(float(self.counts.sum())))


def _format_of(path: str, fmt: Optional[str]) -> str:
  if fmt is not None:
    if fmt not in _FORMATS:
      raise ValueError(f"format: expected one of {', '.join(_FORMATS)}, got {fmt!r}")
    return fmt
  ext = os.path.splitext(path)[1].lower().lstrip(".")
  ext = {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet", "tsv": "csv"}.get(ext, ext)
  if ext not in _FORMATS:
    raise ValueError(f"format: cannot tell the format of {path!r} from its extension; pass format= one of "
                     f"{', '.join(_FORMATS)}")
  return ext


def _rows(path: str, fmt: str) -> Iterator[tuple[int, dict]]:
  """(line number, record) for each data row; malformed syntax raises with the line."""
  if not os.path.isfile(path):
    raise ValueError(f"path: no such file {path!r}")
  if fmt == "jsonl":
    with open(path, encoding="utf-8") as f:
      first = f.read(1)
      f.seek(0)
      if first == "[":  # a JSON array of records (how some dumps are published)
        try:
          data = json.load(f)
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        for k, rec in enumerate(data):
          if not isinstance(rec, dict):
            raise ValueError(f"{path}: record {k + 1} of the JSON array is not an object")
          yield k + 1, rec
        return
      for line_no, line in enumerate(f, 1):
        if not line.strip():
          continue
        try:
          rec = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f"{path}:{line_no}: not valid JSON ({e.msg})") from None
        if not isinstance(rec, dict):
          raise ValueError(f"{path}:{line_no}: expected a JSON object, got {type(rec).__name__}")
        yield line_no, rec
  elif fmt == "csv":
    with open(path, newline="", encoding="utf-8") as f:
      delim = "\t" if path.lower().endswith(".tsv") else ","
      reader = csv.reader(f, delimiter=delim)
      try:
        header = next(reader)
      except StopIteration:
        raise ValueError(f"{path}: empty file (no header)") from None
      header = [h.strip() for h in header]
      for row in reader:
        line_no = reader.line_num
        if not row or all(not c.strip() for c in row):
          continue
        if len(row) != len(header):
          raise ValueError(f"{path}:{line_no}: {len(row)} fields, the header has {len(header)}")
        yield line_no, dict(zip(header, row))
  else:
    try:
      import pyarrow.parquet as pq
    except ImportError:
      raise ValueError("format: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
      table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own error types for a corrupt file
      raise ValueError(f"{path}: not a readable Parquet file ({e})") from None
    for k, rec in enumerate(table.to_pylist()):
      yield k + 1, rec  # Parquet has no lines: the number is the row (1-based)


def _text(rec, key, path, line, required=True):
  v = rec.get(key)
  if v is None or (isinstance(v, str) and not v.strip()):
    if required:
      raise ValueError(f"{path}:{line}: missing {key!r}")
    return None
  if isinstance(v, (dict, list)) or isinstance(v, bool):
    raise ValueError(f"{path}:{line}: {key!r} must be text, got {type(v).__name__}")
  if isinstance(v, float) and v != v:  # NaN from a Parquet/CSV null
    if required:
      raise ValueError(f"{path}:{line}: missing {key!r}")
    return None
  return str(v).strip()


def _number(rec, key, path, line, integer=False):
  v = rec.get(key)
  if v is None or (isinstance(v, str) and not v.strip()):
    raise ValueError(f"{path}:{line}: missing {key!r}")
  try:
    x = float(v)
  except (TypeError, ValueError):
    raise ValueError(f"{path}:{line}: {key!r} must be a number, got {v!r}") from None
  if not np.isfinite(x):
    raise ValueError(f"{path}:{line}: {key!r} must be finite, got {v!r}")
  if integer and (x < 0 or x != int(x)):
    raise ValueError(f"{path}:{line}: {key!r} must be a nonnegative integer count, got {v!r}")
  return x


def _matches(value, wanted) -> bool:
  if wanted is None:
    return True
  if isinstance(wanted, str):
    wanted = (wanted,)
  return value is not None and value in wanted


def battles_from_records(records, *, path: str = "<records>", category=None, judge=None,
                         covariates: Sequence[str] = (), keep_duplicates: bool = False,
                         models: Optional[Sequence[str]] = None) -> Comparisons:
  """Battles from an iterable of ``(line, record)`` or of records (dicts); see ``read_battles``."""
  kept_a, kept_b, kept_o, feats = [], [], [], []
  seen = set()
  rows = filtered = unknown = selfb = dups = unknown_models = 0
  spellings: dict = {}
  allowed = None if models is None else set(models)
  for item in records:
    line, rec = item if isinstance(item, tuple) else (rows + 1, item)
    rows += 1
    if not isinstance(rec, dict):
      raise ValueError(f"{path}:{line}: expected a record (mapping), got {type(rec).__name__}")
    ma, mb = _text(rec, "model_a", path, line), _text(rec, "model_b", path, line)
    w = _text(rec, "winner", path, line)
    if not (_matches(_text(rec, "category", path, line, False), category)
            and _matches(_text(rec, "judge", path, line, False), judge)):
      filtered += 1
      continue
    x = [(_number(rec, f"{c}_a", path, line), _number(rec, f"{c}_b", path, line)) for c in covariates]
    if w not in WINNERS:
      unknown += 1
      spellings[w] = spellings.get(w, 0) + 1
      continue
    if ma == mb:
      selfb += 1
      continue
    if allowed is not None and (ma not in allowed or mb not in allowed):
      unknown_models += 1
      continue
    qid = _text(rec, "question_id", path, line, False)
    if qid is not None and not keep_duplicates:
      key = (qid, ma, mb, _text(rec, "judge", path, line, False), _text(rec, "turn", path, line, False),
             _text(rec, "tstamp", path, line, False), w)
      if key in seen:
        dups += 1
        continue
      seen.add(key)
    kept_a.append(ma)
    kept_b.append(mb)
    kept_o.append(WINNERS[w])
    # Style control (Chiang et al.'s arena): a normalised difference (x_a - x_b) / (x_a + x_b).
    feats.append([(xa - xb) / (xa + xb) if xa + xb > 0 else xa - xb for xa, xb in x])
  outcomes = np.asarray(kept_o, np.int64)
  summary = ReadSummary(path, rows, len(kept_o), filtered, unknown, tuple(sorted(spellings.items(), key=str)),
                        selfb, dups, unknown_models, int(np.sum(outcomes >= 2)), int(np.sum(outcomes == 3)))
  names = tuple(sorted(set(kept_a) | set(kept_b))) if models is None else tuple(models)
  if len(names) < 2 or not kept_o:
    raise ValueError(f"{path}: need battles between at least 2 models after filtering; {summary}")
  index = {m: k for k, m in enumerate(names)}
  counts = np.zeros((len(kept_o), 4))
  counts[np.arange(len(kept_o)), outcomes] = 1.0
  f = np.asarray(feats, np.float64).reshape(len(kept_o), len(covariates)) if covariates else None
  return Comparisons(names, np.array([index[m] for m in kept_a], np.int32),
                     np.array([index[m] for m in kept_b], np.int32),
                     counts, f, tuple(covariates), True, summary)


def read_battles(path: str, *, format: Optional[str] = None, category=None, judge=None,
                 covariates: Sequence[str] = (), keep_duplicates: bool = False,
                 models: Optional[Sequence[str]] = None) -> Comparisons:
  """Reads a battle log (one battle per row, Chatbot Arena's field names).

  Args:
    path: a ``.jsonl`` / ``.json`` (JSON lines, or one JSON array), ``.csv`` or ``.parquet`` file.
    format: ``"jsonl"``, ``"csv"`` or ``"parquet"`` (default: from the extension).
    category, judge: keep only rows whose ``category`` / ``judge`` is this value (or one of these values).
    covariates: style features; feature ``c`` reads numeric columns ``c_a`` and ``c_b`` (e.g. a response
      length) and enters the fit as ``(c_a - c_b) / (c_a + c_b)``, as in the arena's style control.
    keep_duplicates: keep repeated records (default: keep the first, count the rest).
    models: the models to rank (default: every model in the file); battles naming another model are
      skipped and counted as ``unknown_models``.

  Returns:
    ``Comparisons`` with ``summary`` saying what was kept and skipped.
  """
  fmt = _format_of(path, format)
  return battles_from_records(_rows(path, fmt), path=path, category=category, judge=judge,
                              covariates=covariates, keep_duplicates=keep_duplicates, models=models)


def read_counts(path: str, *, format: Optional[str] = None, category=None, judge=None) -> Comparisons:
  """Reads long-format counts: one row per (ordered) pair with ``wins``, ``losses``, ``ties`` of ``model_a``.

  Optional columns: ``ties_bothbad`` (counted apart from ``ties``), ``category``, ``judge``.
  A row with ``model_a == model_b`` is a self-battle (skipped, counted); a repeated pair is
  summed (and counted in ``duplicates``). Counts must be nonnegative integers.
  """
  fmt = _format_of(path, format)
  agg: dict = {}
  rows = filtered = selfb = dups = 0
  for line, rec in _rows(path, fmt):
    rows += 1
    ma, mb = _text(rec, "model_a", path, line), _text(rec, "model_b", path, line)
    c = [_number(rec, k, path, line, integer=True) for k in ("wins", "losses", "ties")]
    bb = rec.get("ties_bothbad")
    c.append(0.0 if bb is None or (isinstance(bb, str) and not bb.strip()) else
             _number(rec, "ties_bothbad", path, line, integer=True))
    if not (_matches(_text(rec, "category", path, line, False), category)
            and _matches(_text(rec, "judge", path, line, False), judge)):
      filtered += 1
      continue
    if ma == mb:
      selfb += 1
      continue
    if (ma, mb) in agg:
      dups += 1
      agg[(ma, mb)] = [u + v for u, v in zip(agg[(ma, mb)], c)]
    else:
      agg[(ma, mb)] = c
  names = tuple(sorted({m for p in agg for m in p}))
  counts = np.array(list(agg.values()), np.float64).reshape(-1, 4)
  summary = ReadSummary(path, rows, len(agg), filtered, 0, (), selfb, dups, 0,
                        int(counts[:, 2:].sum()), int(counts[:, 3].sum()))
  if len(names) < 2 or counts.sum() == 0:
    raise ValueError(f"{path}: need comparisons between at least 2 models after filtering; {summary}")
  index = {m: k for k, m in enumerate(names)}
  a = np.array([index[p[0]] for p in agg], np.int32)
  b = np.array([index[p[1]] for p in agg], np.int32)
  return Comparisons(names, a, b, counts, None, (), False, summary)


def read(path: str, *, format: Optional[str] = None, category=None, judge=None, covariates: Sequence[str] = (),
         keep_duplicates: bool = False) -> Comparisons:
  """``read_counts`` when the file has a ``wins`` column, else ``read_battles``."""
  fmt = _format_of(path, format)
  first = next(iter(_rows(path, fmt)), None)
  if first is None:
    raise ValueError(f"{path}: no data rows")
  if "wins" in first[1]:
    if covariates:
      raise ValueError("covariates: counts have no per-battle features; covariates need a battle log")
    return read_counts(path, format=fmt, category=category, judge=judge)
  return read_battles(path, format=fmt, category=category, judge=judge, covariates=covariates,
                      keep_duplicates=keep_duplicates)
