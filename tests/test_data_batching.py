"""nashax.data batching: token arrays with masks and limits, prompt batches, resumable shuffled epochs.

The tokenizer is a byte-level fake written here: a text byte ``b`` is token
``b + 8``; ``0`` pads, ``1`` ends a turn (and is the EOS), ``2`` is BOS and
``3, 4, 5`` open a system, user or assistant turn. Its chat template is
``[2] + sum([role] + bytes + [1] for each message) (+ [5] for the generation
prompt)``, so every expected array below is written out by hand from that rule.
"""

import os

import numpy as np
import pytest

import nashax.data as D

HERE = os.path.dirname(__file__)
EXAMPLES = os.path.join(HERE, "..", "examples", "data")
FIX = os.path.join(HERE, "fixtures", "data")


class ByteTokenizer:
  """The fake tokenizer of the module docstring."""

  ROLE = {"system": 3, "user": 4, "assistant": 5}
  eos_ids = (1,)
  pad_id = 0

  def __init__(self, bos_in_encode=False, generation_token=5):
    self.bos = bos_in_encode
    self.generation_token = generation_token

  def encode(self, text):
    return ([2] if self.bos else []) + [b + 8 for b in text.encode()]

  def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=True):
    assert tokenize
    ids = [2]
    for m in messages:
      ids += [self.ROLE[m["role"]]] + [b + 8 for b in m["content"].encode()] + [1]
    return ids + ([self.generation_token] if add_generation_prompt else [])


def msg(role, text):
  return {"role": role, "content": text}


# Record 0: user "hi"; chosen "ok", rejected "no!".  'h' 104 -> 112, 'i' 105 -> 113, 'o' 111 -> 119,
# 'k' 107 -> 115, 'n' 110 -> 118, '!' 33 -> 41.
# Record 1: system "s", user "x"; chosen "y", rejected "zz".  's' 115 -> 123, 'x' 120 -> 128, 'y' 121 -> 129,
# 'z' 122 -> 130.
RECORDS = [
    D.PreferenceRecord((msg("user", "hi"),), (msg("assistant", "ok"),), (msg("assistant", "no!"),),
                       {"source": "mem.jsonl", "line": 3}),
    D.PreferenceRecord((msg("system", "s"), msg("user", "x")), (msg("assistant", "y"),), (msg("assistant", "zz"),),
                       {"source": "mem.jsonl", "line": 7}),
]
P0 = [2, 4, 112, 113, 1, 5]                 # 6 prompt tokens
P1 = [2, 3, 123, 1, 4, 128, 1, 5]           # 8 prompt tokens


def test_tokenize_preferences_by_hand():
  """Source: the arrays written out by hand from the fake tokenizer's rule (module docstring)."""
  batch, summary = D.tokenize_preferences(RECORDS, ByteTokenizer())
  assert (summary.read, summary.kept, summary.skipped, summary.counted) == (2, 2, {}, {})
  assert batch.prompt_tokens.tolist() == [[0, 0] + P0, P1]
  assert batch.prompt_mask.tolist() == [[False] * 2 + [True] * 6, [True] * 8]
  assert batch.chosen_tokens.tolist() == [P0 + [119, 115, 1, 0, 0], P1 + [129, 1, 0]]
  assert batch.rejected_tokens.tolist() == [P0 + [118, 119, 41, 1, 0], P1 + [130, 130, 1]]
  assert batch.chosen_mask.sum(1).tolist() == [9, 10] and batch.rejected_mask.sum(1).tolist() == [10, 11]
  assert np.nonzero(batch.chosen_response_mask[0])[0].tolist() == [6, 7, 8]
  assert np.nonzero(batch.rejected_response_mask[1])[0].tolist() == [8, 9, 10]
  assert batch.index.tolist() == [0, 1]
  assert batch.prompt_tokens.dtype == np.int32 and batch.chosen_mask.dtype == bool


def test_plain_text_records_continue_the_prompt_with_one_eos():
  """Source: by hand: encode adds BOS 2 here, which a response loses; 'a' 97 -> 105, 'b' 106, 'c' 107, 'd' 108,
  'e' 109; the response ends with EOS 1 (TRL's standard format, no template)."""
  rec = D.PreferenceRecord((msg("user", "ab"),), (msg("assistant", "c"),), (msg("assistant", "de"),), {}, chat=False)
  batch, _ = D.tokenize_preferences([rec], ByteTokenizer(bos_in_encode=True))
  assert batch.prompt_tokens.tolist() == [[2, 105, 106]]
  assert batch.chosen_tokens.tolist() == [[2, 105, 106, 107, 1, 0]]
  assert batch.rejected_tokens.tolist() == [[2, 105, 106, 108, 109, 1]]
  assert batch.rejected_response_mask.astype(int).tolist() == [[0, 0, 0, 1, 1, 1]]


def test_prompt_limit_policies():
  """Source: by hand: record 1's prompt has 8 tokens, record 0's 6; max_prompt_len=7."""
  tok = ByteTokenizer()
  batch, s = D.tokenize_preferences(RECORDS, tok, max_prompt_len=7)
  assert (s.kept, s.skipped, s.where["prompt_too_long"]) == (1, {"prompt_too_long": 1}, [1])
  assert batch.index.tolist() == [0] and batch.prompt_tokens.shape == (1, 6)
  batch, s = D.tokenize_preferences(RECORDS, tok, max_prompt_len=7, truncation="truncate")
  assert (s.kept, s.counted) == (2, {"prompt_truncated": 1})
  assert batch.prompt_tokens[1].tolist() == P1[1:]  # the first token goes; the generation prompt stays
  assert batch.chosen_tokens[1].tolist() == P1[1:] + [129, 1, 0]
  with pytest.raises(ValueError, match=r"max_prompt_len: the prompt at mem.jsonl:7 has 8 tokens > 7"):
    D.tokenize_preferences(RECORDS, tok, max_prompt_len=7, truncation="raise")


def test_sequence_limit_policies():
  """Source: by hand: sequences have 9, 10 (record 0) and 10, 11 (record 1) tokens; max_len=10."""
  tok = ByteTokenizer()
  batch, s = D.tokenize_preferences(RECORDS, tok, max_len=10)
  assert (s.kept, s.skipped) == (1, {"sequence_too_long": 1}) and batch.index.tolist() == [0]
  assert batch.chosen_tokens.shape == (1, 10)
  batch, s = D.tokenize_preferences(RECORDS, tok, max_len=10, truncation="truncate")
  assert (s.kept, s.counted) == (2, {"rejected_truncated": 1})
  assert batch.rejected_tokens[1].tolist() == P1 + [130, 130]  # cut before the end-of-turn token
  assert batch.rejected_response_mask[1].sum() == 2
  _, s = D.tokenize_preferences(RECORDS, tok, max_len=8, truncation="truncate")  # record 1: no room at all
  assert (s.kept, s.skipped, s.counted) == (1, {"sequence_too_long": 1}, {"chosen_truncated": 1,
                                                                         "rejected_truncated": 1})
  with pytest.raises(ValueError, match=r"max_len: prompt \+ rejected at mem.jsonl:7 has 11 tokens > 10"):
    D.tokenize_preferences(RECORDS, tok, max_len=10, truncation="raise")
  with pytest.raises(ValueError, match="max_prompt_len: must be < max_len"):
    D.tokenize_preferences(RECORDS, tok, max_prompt_len=10, max_len=10)
  with pytest.raises(ValueError, match="truncation"):
    D.tokenize_preferences(RECORDS, tok, truncation="left")


def test_template_that_does_not_extend_the_prompt_is_refused():
  """Source: a template whose generation prompt (token 6) is not what follows the prompt in the full
  conversation (token 5) cannot separate the response."""
  with pytest.raises(ValueError, match=r"tokenizer: at mem.jsonl:3 the chat template"):
    D.tokenize_preferences(RECORDS, ByteTokenizer(generation_token=6))
  class NoPad(ByteTokenizer):
    pad_id = property(lambda self: (_ for _ in ()).throw(AttributeError("pad_id")))
  with pytest.raises(ValueError, match="tokenizer: has no 'pad_id'"):
    D.tokenize_preferences(RECORDS, NoPad())


def test_example_preferences_tokenize_back_to_their_text():
  """Source: a second reading of the arrays: for every example pair, the masked response tokens minus 8 are the
  response's UTF-8 bytes (then end-of-turn 1), and the masked prompt tokens are the same in all three arrays."""
  records, _ = D.read_preferences(os.path.join(EXAMPLES, "preferences.jsonl"))
  batch, s = D.tokenize_preferences(records, ByteTokenizer())
  assert s.kept == len(records) == 38
  for i, rec in enumerate(records):
    prompt = batch.prompt_tokens[i][batch.prompt_mask[i]].tolist()
    for toks, mask, resp, which in ((batch.chosen_tokens, batch.chosen_mask, batch.chosen_response_mask, rec.chosen),
                                    (batch.rejected_tokens, batch.rejected_mask, batch.rejected_response_mask,
                                     rec.rejected)):
      r = toks[i][resp[i]].tolist()
      assert bytes(t - 8 for t in r[:-1]).decode() == which[0]["content"] and r[-1] == 1
      assert toks[i][mask[i] & ~resp[i]].tolist() == prompt
      assert mask[i].tolist() == sorted(mask[i].tolist(), reverse=True)  # right-padded
    assert batch.prompt_mask[i].tolist() == sorted(batch.prompt_mask[i].tolist())  # left-padded


def test_prompt_batches_for_online_methods():
  """Source: by hand: prompt_only.jsonl kept lines 1, 2, 3, 6; line 3 is plain text 'Once upon a time'
  (16 bytes, no template), the longest is line 2 (system 'Answer briefly.' 15 bytes, user 'What is a noun?'
  15 bytes: 1 + (1 + 15 + 1) * 2 + 1 = 36 tokens)."""
  prompts, _ = D.read_prompts(os.path.join(FIX, "prompt_only.jsonl"), on_error="skip")
  batch, s = D.tokenize_prompts(prompts, ByteTokenizer(), max_prompt_len=40)
  assert (s.kept, batch.tokens.shape) == (4, (4, 36))
  assert batch.tokens[2][batch.mask[2]].tolist() == [b + 8 for b in b"Once upon a time"]
  assert batch.mask[2].sum() == 16 and not batch.mask[2][:20].any()
  _, s = D.tokenize_prompts(prompts, ByteTokenizer(), max_prompt_len=20)
  assert s.skipped == {"prompt_too_long": 3}  # lines 1 (1 + 22 + 2 + 1 = 26), 2 (36) and 6 (26)


def test_epochs_visit_every_item_once_and_resume_from_the_cursor():
  """Source: the definition of an epoch (a permutation): each epoch's batches cover distinct items; a run
  restarted from a saved cursor continues exactly as the uninterrupted run."""
  data = D.PromptBatch(np.arange(10, dtype=np.int32)[:, None], np.ones((10, 1), bool), np.arange(10, dtype=np.int32))
  assert D.num_batches(10, 3) == 3 and D.num_batches(10, 3, drop_last=False) == 4
  run = [(c, b.index.tolist()) for c, b in D.iterate_batches(data, 3, seed=5, stop=9)]
  assert [c for c, _ in run] == list(range(1, 10))
  for e in range(3):
    items = sum((idx for _, idx in run[3 * e:3 * e + 3]), [])
    assert len(items) == len(set(items)) == 9
  assert [idx for _, idx in run[:3]] != [idx for _, idx in run[3:6]]  # reshuffled each epoch
  cursor = run[3][0]
  resumed = [(c, b.index.tolist()) for c, b in D.iterate_batches(data, 3, seed=5, start=cursor, stop=9)]
  assert resumed == run[4:]
  other = [b.index.tolist() for _, b in D.iterate_batches(data, 3, seed=6, stop=3)]
  assert other != [idx for _, idx in run[:3]]
  full = [D.batch_indices(10, 3, c, seed=5, drop_last=False).tolist() for c in range(4)]
  assert [len(b) for b in full] == [3, 3, 3, 1] and sorted(sum(full, [])) == list(range(10))
  assert D.batch_indices(10, 3, 4, shuffle=False).tolist() == [3, 4, 5]  # epoch 1, batch 1


def test_batches_of_token_arrays_and_bad_arguments():
  """Source: take keeps the NamedTuple and selects rows; bad sizes and cursors are refused by name."""
  batch, _ = D.tokenize_preferences(RECORDS, ByteTokenizer())
  one = D.batch_at(batch, 1, 1, shuffle=False)
  assert isinstance(one, D.PreferenceBatch) and one.index.tolist() == [1] and one.chosen_tokens.shape == (1, 11)
  with pytest.raises(ValueError, match="batch_size: 3 is more than the 2 items"):
    D.batch_at(batch, 3, 0)
  with pytest.raises(ValueError, match="cursor: must be an int >= 0"):
    D.batch_indices(10, 2, -1)
  with pytest.raises(ValueError, match="batch_size: must be an int >= 1"):
    D.batch_indices(10, True, 0)
  with pytest.raises(ValueError, match="data: must be a PreferenceBatch"):
    D.take({"a": np.zeros(3)}, [0])
