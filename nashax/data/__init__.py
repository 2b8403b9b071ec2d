"""Preference data: readers for the formats researchers download, normalised records, token batches.

Readers (local JSON lines or Parquet; Parquet needs pyarrow, the ``data``
extra) return ``(records, summary)``, the summary accounting for every row:

- :func:`read_preferences`: TRL standard, conversational and implicit-prompt
  rows, UltraFeedback binarized, Anthropic HH-RLHF -> :class:`PreferenceRecord`.
- :func:`read_prompts`: TRL prompt-only rows (or the prompts of a preference
  file) -> :class:`PromptRecord`.
- :func:`read_ultrafeedback`: raw UltraFeedback, every completion and its aspect
  ratings -> :class:`UltraFeedbackRecord`; :func:`ultrafeedback_pairs` makes
  pairs per aspect, overall, or by aspect majority, whose cycles
  :func:`intransitive_triads` counts.

:func:`tokenize_preferences` and :func:`tokenize_prompts` make token arrays
with masks and length limits; :func:`iterate_batches` shuffles them by epoch
from a resumable integer cursor. Nothing here imports JAX or pyarrow at import.
"""

from nashax.data.batching import (
    PreferenceBatch,
    PromptBatch,
    batch_at,
    batch_indices,
    iterate_batches,
    num_batches,
    take,
    tokenize_preferences,
    tokenize_prompts,
)
from nashax.data.formats import FORMATS, PAIR_FORMATS, detect_format, read_preferences, read_prompts, write_jsonl
from nashax.data.records import REASONS, ROLES, PreferenceRecord, PromptRecord, Summary
from nashax.data.tournament import Tournament, tournaments
from nashax.data.ultrafeedback import (
    ASPECTS,
    CRITERIA,
    Completion,
    UltraFeedbackRecord,
    aspect_majority,
    intransitive_triads,
    preference_matrix,
    read_ultrafeedback,
    ultrafeedback_pairs,
)

__all__ = [
    "ASPECTS",
    "CRITERIA",
    "FORMATS",
    "PAIR_FORMATS",
    "REASONS",
    "ROLES",
    "Completion",
    "PreferenceBatch",
    "PreferenceRecord",
    "PromptBatch",
    "PromptRecord",
    "Summary",
    "Tournament",
    "UltraFeedbackRecord",
    "aspect_majority",
    "batch_at",
    "batch_indices",
    "detect_format",
    "intransitive_triads",
    "iterate_batches",
    "num_batches",
    "preference_matrix",
    "read_preferences",
    "read_prompts",
    "read_ultrafeedback",
    "take",
    "tokenize_preferences",
    "tokenize_prompts",
    "tournaments",
    "ultrafeedback_pairs",
    "write_jsonl",
]
