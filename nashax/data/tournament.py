"""Preference pairs read as tournaments: per prompt, who beat whom, and the cycles among them."""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Sequence, Tuple

import numpy as np

from nashax.data.records import PreferenceRecord, _messages_key

__all__ = ["Tournament", "tournaments"]


class Tournament(NamedTuple):
  """The pairs of one prompt as a tournament among its distinct responses.

  Attributes:
    prompt: the prompt messages.
    responses: the distinct responses (message tuples), in order of first appearance.
    wins: ``[m, m]`` int32, ``wins[i, j]`` = the number of records with
      ``responses[i]`` chosen over ``responses[j]``.
  """

  prompt: Tuple[dict, ...]
  responses: List[Tuple[dict, ...]]
  wins: np.ndarray

  def beats(self) -> np.ndarray:
    """``[m, m]`` bool: ``i`` won more of its comparisons with ``j`` than it lost (equal counts: no edge)."""
    return self.wins > self.wins.T


def tournaments(records: Sequence[PreferenceRecord]) -> List[Tournament]:
  """Groups preference records by prompt into tournaments (prompts in order of first appearance).

  Args:
    records: :class:`PreferenceRecord` items.

  Returns:
    One :class:`Tournament` per distinct prompt; pass ``t.beats()`` to
    :func:`nashax.data.intransitive_triads` to count its cycles.

  Examples:
    >>> from nashax.data import PreferenceRecord, intransitive_triads
    >>> u = lambda s: ({"role": "user", "content": s},)
    >>> a = lambda s: ({"role": "assistant", "content": s},)
    >>> rps = [PreferenceRecord(u("play"), a(x), a(y)) for x, y in
    ...        [("rock", "scissors"), ("scissors", "paper"), ("paper", "rock")]]
    >>> [intransitive_triads(t.beats()) for t in tournaments(rps)]
    [1]
  """
  groups: Dict[tuple, Tuple[tuple, Dict[tuple, int], list, list]] = {}
  for k, rec in enumerate(records):
    if not isinstance(rec, PreferenceRecord):
      raise ValueError(f"records: item {k} is a {type(rec).__name__}, not a PreferenceRecord")
    pk = (_messages_key(rec.prompt), rec.chat)
    prompt, index, responses, edges = groups.setdefault(pk, (rec.prompt, {}, [], []))
    ids = []
    for resp in (rec.chosen, rec.rejected):
      rk = _messages_key(resp)
      if rk not in index:
        index[rk] = len(responses)
        responses.append(resp)
      ids.append(index[rk])
    edges.append(tuple(ids))
  out = []
  for prompt, index, responses, edges in groups.values():
    wins = np.zeros((len(responses), len(responses)), np.int32)
    for w, l in edges:
      wins[w, l] += 1
    out.append(Tournament(prompt, responses, wins))
  return out
