"""Raw UltraFeedback: every completion with its aspect ratings, pairs from them, and cyclic triads.

A raw UltraFeedback row holds one ``instruction`` and several ``completions``,
each rated by GPT-4 on four aspects (``helpfulness``, ``honesty``,
``instruction_following``, ``truthfulness``: an ``annotations[aspect]["Rating"]``
string ``"1"``..``"5"``, or ``"N/A"``), plus an ``overall_score`` (1-10, from
the critique) and a ``fine-grained_score`` (the mean of the aspect ratings).
:func:`read_ultrafeedback` keeps all of it; :func:`ultrafeedback_pairs` turns a
record into preference pairs under one criterion.

**Aspect majority.** The four aspects vote as four voters with weak orders
(Condorcet's pairwise majority rule, with indifferent voters abstaining, May
1952): completion ``a`` beats ``b`` when the aspects that rate ``a`` higher
outnumber those that rate ``b`` higher. An aspect abstains when the two ratings
are equal or either is ``"N/A"``; equal counts (2-2, 1-1, 0-0) are a tie, with
no preference either way. Such a majority relation can be cyclic
(``a > b > c > a``), which a Bradley-Terry reward cannot represent and which the
Nash methods are built for; :func:`intransitive_triads` counts the cyclic
triads.

References:
  Cui et al., "UltraFeedback: Boosting Language Models with Scaled AI
  Feedback", arXiv:2310.01377, 2023 (Sec. 2.2, the four aspects and ratings).
  May, "A set of independent necessary and sufficient conditions for simple
  majority decision", Econometrica 20(4), 1952 (pairwise majority with abstention).
  Kendall and Babington Smith, "On the method of paired comparisons",
  Biometrika 31, 1940 (circular triads; ``C(n,3) - sum_i C(s_i, 2)`` for a tournament).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from nashax.data import formats as _f
from nashax.data.records import PreferenceRecord, Summary, _messages_key

__all__ = [
    "ASPECTS",
    "CRITERIA",
    "Completion",
    "UltraFeedbackRecord",
    "read_ultrafeedback",
    "preference_matrix",
    "aspect_majority",
    "intransitive_triads",
    "ultrafeedback_pairs",
]

#: UltraFeedback's four rated aspects (the keys of ``annotations``).
ASPECTS = ("helpfulness", "honesty", "instruction_following", "truthfulness")
#: The criteria :func:`ultrafeedback_pairs` and :func:`preference_matrix` take.
CRITERIA = ("overall", "fine_grained") + ASPECTS + ("aspect_majority",)


@dataclasses.dataclass(frozen=True)
class Completion:
  """One rated completion of a raw UltraFeedback row.

  Attributes:
    model: the model that wrote it.
    response: its text (non-empty).
    ratings: aspect -> rating (a float; ``None`` for ``"N/A"``), for each of :data:`ASPECTS`.
    overall_score: the critique's overall score, or ``None`` if the row has none.
    fine_grained_score: the row's ``fine-grained_score``, or ``None`` if absent.
    principle: the principle the model was prompted with, or ``None``.
  """

  model: str
  response: str
  ratings: Dict[str, Optional[float]]
  overall_score: Optional[float] = None
  fine_grained_score: Optional[float] = None
  principle: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class UltraFeedbackRecord:
  """A raw UltraFeedback row: the instruction as a one-message prompt and every completion.

  Attributes:
    prompt: ``({"role": "user", "content": instruction},)``.
    completions: the completions, in file order.
    metadata: ``source`` (file), ``line`` (or ``row``), ``format``, and the
      row's own ``origin`` (its ``source`` field, e.g. the instruction's dataset)
      when present.
  """

  prompt: Tuple[Dict[str, str], ...]
  completions: Tuple[Completion, ...]
  metadata: Dict[str, Any] = dataclasses.field(default_factory=dict, compare=False)


def _rating(value: Any, name: str) -> Optional[float]:
  if isinstance(value, str):
    text = value.strip()
    if text.upper() == "N/A":
      return None
    try:
      value = float(text)
    except ValueError:
      raise _f._RowError("bad_score", f"{name} must be a number or 'N/A', got {value!r}") from None
  return _f._score(value, name)


def _optional_score(c: dict, key: str, name: str) -> Optional[float]:
  return None if c.get(key) is None else _f._score(c[key], name)


def _parse_completion(c: Any, i: int) -> Completion:
  name = f"completions[{i}]"
  if not isinstance(c, dict):
    raise _f._RowError("wrong_type", f"{name} must be an object, got {type(c).__name__}")
  if c.get("model") is None or c.get("response") is None:
    raise _f._RowError("missing_key", f"{name} has no {'model' if c.get('model') is None else 'response'!r}")
  model = _f._string(c["model"], f"{name}.model")
  response = _f._string(c["response"], f"{name}.response")
  if not response.strip():
    raise _f._RowError("empty_response", f"{name}.response is empty")
  ann = c.get("annotations")
  if ann is None:
    raise _f._RowError("missing_key", f"{name} has no 'annotations'")
  if not isinstance(ann, dict):
    raise _f._RowError("wrong_type", f"{name}.annotations must be an object, got {type(ann).__name__}")
  ratings = {}
  for aspect in ASPECTS:
    a = ann.get(aspect)
    if a is None:
      raise _f._RowError("missing_key", f"{name}.annotations has no {aspect!r}")
    if not isinstance(a, dict):
      raise _f._RowError("wrong_type", f"{name}.annotations.{aspect} must be an object, got {type(a).__name__}")
    if a.get("Rating") is None:
      raise _f._RowError("missing_key", f"{name}.annotations.{aspect} has no 'Rating'")
    ratings[aspect] = _rating(a["Rating"], f"{name}.annotations.{aspect}.Rating")
  principle = c.get("principle")
  return Completion(model, response, ratings, _optional_score(c, "overall_score", f"{name}.overall_score"),
                    _optional_score(c, "fine-grained_score", f"{name}.fine-grained_score"),
                    principle if isinstance(principle, str) else None)


def _uf_row(fmt: str, row: dict):
  instruction = _f._string(_f._get(row, "instruction"), "instruction")
  if not instruction.strip():
    raise _f._RowError("empty_prompt", "instruction is empty")
  comps = _f._get(row, "completions")
  if isinstance(comps, (str, dict)) or not isinstance(comps, (list, tuple)):
    raise _f._RowError("wrong_type", f"completions must be a list, got {type(comps).__name__}")
  if not comps:
    raise _f._RowError("empty_response", "completions is empty")
  completions = tuple(_parse_completion(c, i) for i, c in enumerate(comps))
  prompt = _f._user(instruction)
  origin = row.get("source")
  key = (_messages_key(prompt), tuple(c.response for c in completions))

  def make(meta):
    if isinstance(origin, str):
      meta["origin"] = origin
    return UltraFeedbackRecord(prompt, completions, meta)
  return make, key


def read_ultrafeedback(path: _f.PathLike, *, on_error: str = "raise",
                       on_duplicate: str = "keep") -> Tuple[List[UltraFeedbackRecord], Summary]:
  """Reads raw UltraFeedback (``instruction``, ``completions`` with aspect ratings), keeping every completion.

  A row is refused (raised with ``file:line``, or counted under
  ``on_error="skip"``) when a completion lacks ``response`` or ``annotations``
  or one of the four aspects or its ``Rating``, when a rating is neither a
  number nor ``"N/A"``, or when a response is empty (the whole row: a record
  keeps all its completions or none). Duplicates are rows with the same
  instruction and the same responses.

  Args:
    path: a ``.jsonl``/``.json`` or ``.parquet`` file.
    on_error: ``"raise"`` or ``"skip"``.
    on_duplicate: ``"keep"`` or ``"skip"``.

  Returns:
    ``(records, summary)`` of :class:`UltraFeedbackRecord`.
  """
  return _f._read_rows(path, "ultrafeedback", ("ultrafeedback",), on_error, on_duplicate, _uf_row,
                       "read_ultrafeedback")


def _scores(record: UltraFeedbackRecord, by: str) -> List[Optional[float]]:
  if by == "overall":
    return [c.overall_score for c in record.completions]
  if by == "fine_grained":
    return [c.fine_grained_score for c in record.completions]
  return [c.ratings[by] for c in record.completions]


def _check_by(by: str) -> None:
  if by not in CRITERIA:
    raise ValueError(f"by: unknown criterion {by!r}; known: {', '.join(CRITERIA)}")


def aspect_majority(record: UltraFeedbackRecord) -> Tuple[np.ndarray, np.ndarray]:
  """Pairwise aspect votes of a record's completions.

  Args:
    record: an :class:`UltraFeedbackRecord` with ``n`` completions.

  Returns:
    ``(beats, votes)``: ``beats [n, n]`` bool, ``beats[i, j]`` when more aspects
    rate ``i`` higher than ``j`` than the other way round (module docstring:
    equal ratings and ``"N/A"`` abstain, equal counts tie); ``votes [n, n]``
    int32, the number of aspects rating ``i`` strictly higher than ``j``.
  """
  n = len(record.completions)
  votes = np.zeros((n, n), np.int32)
  for aspect in ASPECTS:
    r = [c.ratings[aspect] for c in record.completions]
    for i, j in itertools.permutations(range(n), 2):
      if r[i] is not None and r[j] is not None and r[i] > r[j]:
        votes[i, j] += 1
  return votes > votes.T, votes


def preference_matrix(record: UltraFeedbackRecord, by: str = "aspect_majority") -> np.ndarray:
  """``beats [n, n]`` bool: completion ``i`` is strictly preferred to ``j`` under ``by``.

  Args:
    record: an :class:`UltraFeedbackRecord`.
    by: one of :data:`CRITERIA`: a score (``"overall"``, ``"fine_grained"``, an
      aspect; unrated completions beat nothing and lose to nothing, equal scores
      tie) or ``"aspect_majority"`` (:func:`aspect_majority`).
  """
  _check_by(by)
  if by == "aspect_majority":
    return aspect_majority(record)[0]
  s = _scores(record, by)
  n = len(s)
  beats = np.zeros((n, n), bool)
  for i, j in itertools.permutations(range(n), 2):
    beats[i, j] = s[i] is not None and s[j] is not None and s[i] > s[j]
  return beats


def intransitive_triads(beats: Any) -> int:
  """The number of cyclic triads ``{a, b, c}`` with ``a > b > c > a`` in a strict preference relation.

  A triad with a tie (no preference between two of its members) is not cyclic.
  Computed as ``trace(B^3) / 3``: each cyclic triad is a directed 3-cycle,
  counted once from each of its three members.

  Args:
    beats: ``[n, n]`` bool (or 0/1), ``beats[i, j]``: ``i`` is preferred to
      ``j``; asymmetric (never both ``[i, j]`` and ``[j, i]``), false diagonal.

  Returns:
    The count (an ``int``).

  Raises:
    ValueError: not square, or not asymmetric.

  Examples:
    >>> import numpy as np
    >>> intransitive_triads(np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]]))  # rock-paper-scissors
    1
  """
  b = np.asarray(beats)
  if b.ndim != 2 or b.shape[0] != b.shape[1]:
    raise ValueError(f"beats: must be a square [n, n] matrix, got shape {b.shape}")
  if not np.all((b == 0) | (b == 1)):
    raise ValueError("beats: must be boolean (or 0/1)")
  b = b.astype(np.int64)
  both = np.argwhere((b & b.T) | np.diag(np.diag(b)))
  if both.size:
    i, j = both[0]
    raise ValueError(f"beats: must be asymmetric with a false diagonal; [{i}, {j}] and [{j}, {i}] are both set")
  c3 = int(np.trace(b @ b @ b))
  return c3 // 3


def ultrafeedback_pairs(records: Sequence[UltraFeedbackRecord], *,
                        by: str = "overall") -> Tuple[List[PreferenceRecord], Summary]:
  """Every strictly ordered pair of completions of each record, as preference records.

  For each record and each unordered pair of its completions ``{i, j}``, the
  winner under ``by`` (:func:`preference_matrix`) is ``chosen``; a pair with no
  winner is counted in the summary as ``"tie"`` (equal scores, or an aspect
  majority tie) or ``"unrated"`` (a score is missing or ``"N/A"``).

  Args:
    records: :class:`UltraFeedbackRecord` items (from :func:`read_ultrafeedback`).
    by: one of :data:`CRITERIA`.

  Returns:
    ``(pairs, summary)``: the pairs in record order, ``(i, j)`` in order
    ``i < j``; each pair's metadata has ``source``, ``line`` (of the record),
    ``format`` (``"ultrafeedback"``), ``by``, ``chosen_index``,
    ``rejected_index``, ``chosen_model``, ``rejected_model``,
    ``chosen_ratings``, ``rejected_ratings`` and, for a score criterion,
    ``score_chosen`` and ``score_rejected`` (for ``"aspect_majority"``:
    ``aspect_votes``, the number of aspects for the chosen and for the
    rejected). The summary counts candidate pairs (``unit="pairs"``).
  """
  _check_by(by)
  summary = Summary(source="ultrafeedback records", format=f"pairs by {by}", unit="pairs", locator="line")
  out = []
  for k, rec in enumerate(records):
    if not isinstance(rec, UltraFeedbackRecord):
      raise ValueError(f"records: item {k} is a {type(rec).__name__}, not an UltraFeedbackRecord")
    beats = preference_matrix(rec, by)
    votes = aspect_majority(rec)[1] if by == "aspect_majority" else None
    scores = None if by == "aspect_majority" else _scores(rec, by)
    at = rec.metadata.get("line", rec.metadata.get("row", k))
    for i, j in itertools.combinations(range(len(rec.completions)), 2):
      summary.read += 1
      if not (beats[i, j] or beats[j, i]):
        unrated = scores is not None and (scores[i] is None or scores[j] is None)
        summary.skip("unrated" if unrated else "tie", at)
        continue
      w, l = (i, j) if beats[i, j] else (j, i)
      cw, cl = rec.completions[w], rec.completions[l]
      meta = {key: v for key, v in rec.metadata.items() if key in ("source", "line", "row", "origin")}
      meta.update(format="ultrafeedback", by=by, chosen_index=w, rejected_index=l, chosen_model=cw.model,
                  rejected_model=cl.model, chosen_ratings=dict(cw.ratings), rejected_ratings=dict(cl.ratings))
      if votes is not None:
        meta["aspect_votes"] = (int(votes[w, l]), int(votes[l, w]))
      else:
        meta["score_chosen"], meta["score_rejected"] = scores[w], scores[l]
      out.append(PreferenceRecord(rec.prompt, _f._assistant(cw.response), _f._assistant(cl.response), meta, True))
      summary.kept += 1
  return out, summary
