"""nashax.data readers: every format's fixture, validation with file:line, counted skips, raw UltraFeedback cycles.

Expected counts come from the fixtures in ``tests/fixtures/data``, written by
hand for these tests: each comment below says which line holds which defect.
"""

import json
import math
import os
import sys

import numpy as np
import pytest

import nashax.data as D

HERE = os.path.dirname(__file__)
FIX = os.path.join(HERE, "fixtures", "data")
EXAMPLES = os.path.join(HERE, "..", "examples", "data")


def fx(name):
  return os.path.join(FIX, name)


def user(text):
  return ({"role": "user", "content": text},)


def assistant(text):
  return ({"role": "assistant", "content": text},)


# (file, reader, read, kept, skipped by reason, counted events), each number from the fixture by hand.
CASES = [
    # standard.jsonl: 4 bad JSON, 5 no rejected, 6 messages for a string, 7 blank chosen, 8 repeated key,
    # 9 blank line, 10 repeats line 2, 11 a JSON array, 12 identical answers, 13 empty prompt.
    ("standard.jsonl", D.read_preferences, 12, 4,
     {"bad_json": 1, "missing_key": 1, "wrong_type": 1, "empty_response": 1, "duplicate_key": 1, "not_an_object": 1,
      "identical_responses": 1, "empty_prompt": 1}, {"blank_line": 1, "duplicate": 1}),
    # conversational.jsonl: 3 role 'human', 4 no content, 5 prompt a string, 6 empty rejected, 7 chosen starts
    # with a user turn, 8 repeats line 1, 9 content a list of parts.
    ("conversational.jsonl", D.read_preferences, 10, 4,
     {"bad_role": 1, "missing_key": 1, "wrong_type": 2, "empty_response": 1, "bad_turns": 1}, {"duplicate": 1}),
    # implicit_prompt.jsonl: 3 different first turns, 4 identical, 5 chosen is a prefix of rejected, 6 differs at a
    # user turn.
    ("implicit_prompt.jsonl", D.read_preferences, 6, 2,
     {"no_shared_prompt": 1, "identical_responses": 1, "empty_response": 1, "bad_turns": 1}, {}),
    # implicit_prompt_text.jsonl: 3 no shared prefix, 4 'Yes' is a prefix of the other, 5 identical.
    ("implicit_prompt_text.jsonl", D.read_preferences, 6, 3,
     {"no_shared_prompt": 1, "empty_response": 1, "identical_responses": 1}, {}),
    # prompt_only.jsonl: 4 empty list, 5 role 'tool', 6 repeats line 1, 7 no prompt key, 8 a number.
    ("prompt_only.jsonl", D.read_prompts, 8, 4,
     {"empty_prompt": 1, "bad_role": 1, "missing_key": 1, "wrong_type": 1}, {"duplicate": 1}),
    # ultrafeedback_binarized.jsonl: 3 score 'high', 4 no score_rejected, 5 blank response, 7 repeats line 2.
    ("ultrafeedback_binarized.jsonl", D.read_preferences, 7, 4,
     {"bad_score": 1, "missing_key": 1, "empty_response": 1}, {"duplicate": 1}),
    # hh_rlhf.jsonl: 3 empty last Assistant turn, 4 text before the first Human turn, 5 identical, 6 a number.
    ("hh_rlhf.jsonl", D.read_preferences, 6, 2,
     {"empty_response": 1, "bad_turns": 1, "identical_responses": 1, "wrong_type": 1}, {}),
    # ultrafeedback.jsonl: 4 rating 'excellent', 5 empty response, 6 no honesty annotation, 8 cut short.
    ("ultrafeedback.jsonl", D.read_ultrafeedback, 8, 4,
     {"bad_score": 1, "empty_response": 1, "missing_key": 1, "bad_json": 1}, {}),
]

# The first malformed line of each fixture and its reason (what on_error="raise" reports).
FIRST_BAD = {
    "standard.jsonl": (4, "bad_json"), "conversational.jsonl": (3, "bad_role"),
    "implicit_prompt.jsonl": (3, "no_shared_prompt"), "implicit_prompt_text.jsonl": (3, "no_shared_prompt"),
    "prompt_only.jsonl": (4, "empty_prompt"), "ultrafeedback_binarized.jsonl": (3, "bad_score"),
    "hh_rlhf.jsonl": (3, "empty_response"), "ultrafeedback.jsonl": (4, "bad_score"),
}


@pytest.mark.parametrize("name, reader, read, kept, skipped, counted", CASES, ids=[c[0] for c in CASES])
def test_fixture_skips_are_counted_by_reason(name, reader, read, kept, skipped, counted):
  """Source: hand count of each fixture's lines (the comments on CASES). Every row is read, kept or skipped."""
  records, summary = reader(fx(name), on_error="skip")
  assert (summary.read, summary.kept, summary.skipped, summary.counted) == (read, kept, skipped, counted)
  assert summary.read == summary.kept + summary.num_skipped
  assert len(records) == kept
  assert summary.format == os.path.splitext(name)[0].replace("_text", "")


@pytest.mark.parametrize("name, reader", [(c[0], c[1]) for c in CASES], ids=[c[0] for c in CASES])
def test_fixture_raise_names_file_line_and_reason(name, reader):
  """Source: FIRST_BAD, the first malformed line of each fixture found by hand."""
  line, reason = FIRST_BAD[name]
  with pytest.raises(ValueError) as e:
    reader(fx(name))
  msg = str(e.value)
  assert f"{name}:{line}: " in msg and f"[{reason}]" in msg, msg


def test_skip_lines_are_listed_and_the_summary_prints():
  """Source: standard.jsonl by hand (line 4 bad JSON, line 10 a repeat of line 2, line 9 blank)."""
  _, summary = D.read_preferences(fx("standard.jsonl"), on_error="skip")
  text = str(summary)
  assert text.splitlines()[0].endswith("standard.jsonl (standard): 12 rows read, 4 kept, 8 skipped")
  assert any(l.split()[:3] == ["skipped", "bad_json", "1"] and l.endswith("(line 4)") for l in text.splitlines())
  assert any(l.split()[:3] == ["counted", "duplicate", "1"] and l.endswith("(line 10)") for l in text.splitlines())
  assert summary.where["blank_line"] == [9]


def test_duplicates_skipped_on_request():
  """Source: standard.jsonl line 10 repeats line 2 (same prompt and both responses)."""
  records, summary = D.read_preferences(fx("standard.jsonl"), on_error="skip", on_duplicate="skip")
  assert summary.kept == 3 and summary.skipped["duplicate"] == 1 and summary.where["duplicate"] == [10]
  assert "duplicate" not in summary.counted
  assert [r.metadata["line"] for r in records] == [1, 2, 3]


def test_standard_rows_are_plain_text():
  """Source: standard.jsonl line 1, TRL's standard format (prompt, chosen, rejected strings)."""
  records, _ = D.read_preferences(fx("standard.jsonl"), on_error="skip")
  r = records[0]
  assert (r.prompt, r.chosen, r.rejected, r.chat) == (user("The capital of France is"), assistant(" Paris."),
                                                      assistant(" Lyon."), False)
  assert r.metadata == {"source": fx("standard.jsonl"), "line": 1, "format": "standard"}
  assert r.to_dict() == json.loads(open(fx("standard.jsonl")).readline())


def test_implicit_prompt_split_follows_trl():
  """Source: TRL's dataset-format guide: {"chosen": "The sky is blue.", "rejected": "The sky is green."} has the
  prompt "The sky is" and responses " blue." / " green." (the space goes with the response); where the strings part
  mid-word ("I like tea" / "I like toast") the shared prefix is "I like t"."""
  records, _ = D.read_preferences(fx("implicit_prompt_text.jsonl"), on_error="skip")
  got = [(r.prompt[0]["content"], r.chosen[0]["content"], r.rejected[0]["content"]) for r in records]
  assert got == [("The sky is", " blue.", " green."), ("Cats are", " mammals.", " reptiles."),
                 ("I like t", "ea", "oast")]
  records, _ = D.read_preferences(fx("implicit_prompt.jsonl"), on_error="skip")
  assert records[0].prompt == user("What is the opposite of up?") and records[0].chosen == assistant("Down.")
  # Line 2: system, user, assistant, user shared; the last assistant turns differ.
  assert [m["role"] for m in records[1].prompt] == ["system", "user", "assistant", "user"]
  assert (records[1].chosen, records[1].rejected) == (assistant("Saturn."), assistant("The Moon."))


def test_hh_rlhf_transcripts_split_into_turns():
  """Source: hh_rlhf.jsonl line 2 by hand: Human, Assistant, Human shared; the last Assistant turns differ."""
  records, _ = D.read_preferences(fx("hh_rlhf.jsonl"), on_error="skip")
  r = records[1]
  assert r.prompt == ({"role": "user", "content": "Can you help me plan a picnic?"},
                      {"role": "assistant", "content": "Sure. Where will it be?"},
                      {"role": "user", "content": "In a park by a lake."})
  assert r.rejected == assistant("Parks are nice.") and r.chat
  assert records[0].prompt == user("How do I keep basil fresh?")


def test_ultrafeedback_binarized_metadata():
  """Source: ultrafeedback_binarized.jsonl lines 1 and 6 (line 6 gives only assistant turns: the prompt string)."""
  records, _ = D.read_preferences(fx("ultrafeedback_binarized.jsonl"), on_error="skip")
  r = records[0]
  assert r.prompt == user("Suggest a name for a pet turtle.") and r.rejected == assistant("Turtle.")
  assert (r.metadata["prompt_id"], r.metadata["score_chosen"], r.metadata["score_rejected"]) == ("t001", 8.0, 3.5)
  r6 = [r for r in records if r.metadata["line"] == 6][0]
  assert r6.prompt == user("What is the freezing point of water in Fahrenheit?")


def test_prompts_from_prompt_only_and_from_pairs():
  """Source: prompt_only.jsonl lines 1-3 by hand; conversational.jsonl's kept prompts (lines 1, 2, 8, 10)."""
  records, _ = D.read_prompts(fx("prompt_only.jsonl"), on_error="skip")
  assert records[0].prompt == user("Name a prime number.") and records[0].chat
  assert records[2].prompt == user("Once upon a time") and not records[2].chat
  prompts, summary = D.read_prompts(fx("conversational.jsonl"), on_error="skip", on_duplicate="skip")
  assert [p.metadata["line"] for p in prompts] == [1, 2, 10] and summary.skipped["duplicate"] == 1


def test_unknown_formats_are_refused_with_the_known_ones():
  """Source: unknown.jsonl has question/answer keys, which fit no format; "parquet-ish" is no format name."""
  with pytest.raises(ValueError) as e:
    D.read_preferences(fx("unknown.jsonl"), on_error="skip")
  assert "unknown.jsonl:1:" in str(e.value) and all(f in str(e.value) for f in D.FORMATS)
  with pytest.raises(ValueError) as e:
    D.detect_format(fx("unknown.jsonl"))
  assert "known formats" in str(e.value)
  with pytest.raises(ValueError, match=r"format: unknown format 'parquet-ish'; known formats: auto, standard"):
    D.read_preferences(fx("standard.jsonl"), format="parquet-ish")
  with pytest.raises(ValueError, match="use read_prompts"):
    D.read_preferences(fx("prompt_only.jsonl"))
  with pytest.raises(ValueError, match="use read_ultrafeedback"):
    D.read_preferences(fx("ultrafeedback.jsonl"))
  with pytest.raises(ValueError, match="on_error"):
    D.read_preferences(fx("standard.jsonl"), on_error="ignore")
  with pytest.raises(ValueError, match="path: no such file"):
    D.read_preferences(fx("missing.jsonl"))
  assert [D.detect_format(fx(c[0])) for c in CASES] == [os.path.splitext(c[0])[0].replace("_text", "")
                                                        for c in CASES]


def test_explicit_format_checks_every_row(tmp_path):
  """Source: conversational rows read as 'standard' have message lists where strings belong (wrong_type)."""
  _, summary = D.read_preferences(fx("conversational.jsonl"), format="standard", on_error="skip")
  assert summary.kept == 0 and summary.skipped.get("wrong_type", 0) >= 8
  assert summary.read == summary.num_skipped == 10


def test_write_then_read_round_trip(tmp_path):
  """Source: TRL's conversational format is what write_jsonl writes; reading it back gives the same records."""
  records, _ = D.read_preferences(fx("hh_rlhf.jsonl"), on_error="skip")
  path = tmp_path / "out.jsonl"
  D.write_jsonl(records, path)
  again, summary = D.read_preferences(path)
  assert summary.format == "conversational" and again == records


def _parquet(tmp_path, rows):
  pa = pytest.importorskip("pyarrow")
  pq = pytest.importorskip("pyarrow.parquet")
  path = tmp_path / "rows.parquet"
  pq.write_table(pa.Table.from_pylist(rows), path)
  return path


def test_parquet_reads_like_jsonl(tmp_path):
  """Source: the same rows (conversational.jsonl lines 1, 2, 3, 8, 10) read from JSONL and Parquet agree;
  Parquet numbers rows (row 3 has the role 'human')."""
  lines = open(fx("conversational.jsonl")).read().splitlines()
  rows = [json.loads(lines[i - 1]) for i in (1, 2, 3, 8, 10)]
  path = _parquet(tmp_path, rows)
  records, summary = D.read_preferences(path, on_error="skip")
  assert (summary.read, summary.kept, summary.skipped, summary.counted) == (5, 4, {"bad_role": 1}, {"duplicate": 1})
  assert summary.locator == "row" and summary.where["bad_role"] == [3]
  want, _ = D.read_preferences(fx("conversational.jsonl"), on_error="skip")
  assert records == want
  with pytest.raises(ValueError, match=r"rows.parquet:3: .*\[bad_role\]"):
    D.read_preferences(path)


def test_parquet_raw_ultrafeedback_nested_rows(tmp_path):
  """Source: ultrafeedback.jsonl's valid lines (1, 2, 3, 7) written to Parquet (nested completion structs) read
  back to the same records and the same hand-counted triads [1, 0, 3, 0]."""
  lines = open(fx("ultrafeedback.jsonl")).read().splitlines()
  path = _parquet(tmp_path, [json.loads(lines[i - 1]) for i in (1, 2, 3, 7)])
  records, summary = D.read_ultrafeedback(path)
  assert (summary.read, summary.kept, summary.locator) == (4, 4, "row")
  assert records == _uf()
  assert [D.intransitive_triads(D.preference_matrix(r)) for r in records] == [1, 0, 3, 0]


def test_parquet_without_pyarrow_is_a_clear_error(tmp_path, monkeypatch):
  """Source: the documented behaviour: no pyarrow -> ValueError naming the `data` extra."""
  path = tmp_path / "x.parquet"
  path.write_bytes(b"PAR1")
  monkeypatch.setitem(sys.modules, "pyarrow", None)
  monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
  with pytest.raises(ValueError, match=r"path: reading Parquet .* needs pyarrow; install the `data` extra"):
    D.read_preferences(path)


def test_import_is_light():
  """Source: the package contract: no module of nashax.data imports pyarrow, flax or jax at module level
  (pyarrow is imported inside the Parquet reader). Read from the source, so it costs no subprocess."""
  import ast
  folder = os.path.dirname(D.__file__)
  for name in sorted(os.listdir(folder)):
    if not name.endswith(".py"):
      continue
    tree = ast.parse(open(os.path.join(folder, name)).read())
    for node in tree.body:
      mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
              else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      bad = [m for m in mods if m.split(".")[0] in ("pyarrow", "flax", "jax")]
      assert not bad, f"nashax/data/{name} imports {bad} at module level"


# --- raw UltraFeedback ---------------------------------------------------------------------------


def _uf():
  records, _ = D.read_ultrafeedback(fx("ultrafeedback.jsonl"), on_error="skip")
  return records


def test_ultrafeedback_keeps_every_completion_and_rating():
  """Source: ultrafeedback.jsonl line 2 by hand: four completions; the third has honesty 'N/A'."""
  records = _uf()
  assert [r.metadata["line"] for r in records] == [1, 2, 3, 7]
  assert [len(r.completions) for r in records] == [4, 4, 5, 2]
  c = records[1].completions[2]
  assert c.model == "gamma-3b" and c.ratings == {"helpfulness": 2.0, "honesty": None,
                                                 "instruction_following": 5.0, "truthfulness": 3.0}
  assert (c.overall_score, c.fine_grained_score, c.principle) == (5.0, 3.33, "helpfulness")
  assert records[0].prompt == user("Suggest a weekend hobby for a busy parent.")
  assert records[0].metadata["origin"] == "fixture"


def test_aspect_majority_intransitive_triads_match_hand_count():
  """Source: a hand count from the fixture's rating table (helpfulness, honesty, instruction_following,
  truthfulness); a aspect votes for the higher rating, equal ratings and N/A abstain, more votes wins.

  Line 1: A=(3,2,1,4) B=(2,1,3,4) C=(1,3,2,4) D=(1,1,1,1). A>B 2-1, B>C 2-1, C>A 2-1, and A, B, C each beat D
  3-0. Triads: ABC cyclic; ABD, ACD, BCD transitive -> 1.
  Line 2: E=F=(4,4,4,4), G=(2,N/A,5,3), H=(3,3,3,3). E~F 0-0, E>G 2-1, E>H 4-0, F>G, F>H, G~H 1-1. Edges
  E>G, E>H, F>G, F>H only: no 3-cycle -> 0.
  Line 3: truthfulness all 3; helpfulness P5 Q4 R3 S2 U1, honesty P1 Q5 R4 S3 U2, instruction following
  P2 Q1 R5 S4 U3. P>Q, R>P, S>P, U>P, Q>R, Q>S, Q>U, R>S, R>U, S>U. Cyclic: PQR (P>Q>R>P), PQS (P>Q>S>P),
  PQU (P>Q>U>P); the other seven triads are transitive -> 3.
  Line 7: two completions -> 0.  Total 4.
  """
  records = _uf()
  counts = [D.intransitive_triads(D.preference_matrix(r, "aspect_majority")) for r in records]
  assert counts == [1, 0, 3, 0] and sum(counts) == 4
  beats = D.preference_matrix(records[2])
  hand = {("P", "Q"), ("R", "P"), ("S", "P"), ("U", "P"), ("Q", "R"), ("Q", "S"), ("Q", "U"), ("R", "S"),
          ("R", "U"), ("S", "U")}
  names = "PQRSU"
  assert {(names[i], names[j]) for i, j in zip(*np.nonzero(beats))} == hand
  # A second count: Kendall and Babington Smith (1940), C(n,3) - sum_i C(s_i, 2) for a complete tournament.
  s = beats.sum(axis=1)
  assert math.comb(5, 3) - sum(math.comb(int(k), 2) for k in s) == 3


def test_aspect_majority_ties_and_votes():
  """Source: line 2 by hand: E and F tie 0-0, G and H tie 1-1 (helpfulness for H, instruction following for G,
  honesty abstains on N/A, truthfulness equal); E beats G 2-1."""
  r = _uf()[1]
  beats, votes = D.aspect_majority(r)
  assert not beats[0, 1] and not beats[1, 0] and not beats[2, 3] and not beats[3, 2]
  assert (votes[2, 3], votes[3, 2]) == (1, 1) and (votes[0, 2], votes[2, 0]) == (2, 1) and beats[0, 2]


def test_ultrafeedback_pairs_by_criterion():
  """Source: hand counts on the fixture (23 candidate pairs: 6 + 6 + 10 + 1).

  aspect_majority: ties E~F and G~H on line 2 -> 21 pairs. honesty: line 1 B~D (1 = 1), line 2 E~F (4 = 4) tie,
  and G (N/A) leaves 3 pairs unrated -> 18 pairs. overall: line 3 P and Q both 7.0 -> 1 tie, 22 pairs.
  """
  records = _uf()
  pairs, summary = D.ultrafeedback_pairs(records, by="aspect_majority")
  assert (summary.read, summary.kept, summary.skipped) == (23, 21, {"tie": 2})
  assert len(pairs) == 21
  first = pairs[0]  # line 1, completions 0 and 1: A beats B by 2 aspects to 1
  assert first.chosen == assistant(records[0].completions[0].response) and first.metadata["aspect_votes"] == (2, 1)
  assert (first.metadata["chosen_model"], first.metadata["rejected_model"]) == ("alpha-7b", "beta-13b")
  _, s = D.ultrafeedback_pairs(records, by="honesty")
  assert (s.kept, s.skipped) == (18, {"tie": 2, "unrated": 3})
  pairs, s = D.ultrafeedback_pairs(records, by="overall")
  assert (s.kept, s.skipped) == (22, {"tie": 1})
  assert all(p.metadata["score_chosen"] > p.metadata["score_rejected"] for p in pairs)
  with pytest.raises(ValueError, match="by: unknown criterion 'kindness'"):
    D.ultrafeedback_pairs(records, by="kindness")


def test_intransitive_triads_checks_its_input():
  """Source: definition: a strict preference is asymmetric."""
  assert D.intransitive_triads(np.zeros((0, 0), bool)) == 0
  with pytest.raises(ValueError, match="asymmetric"):
    D.intransitive_triads(np.array([[0, 1], [1, 0]]))
  with pytest.raises(ValueError, match="square"):
    D.intransitive_triads(np.zeros((2, 3)))


# --- the example files ---------------------------------------------------------------------------


def test_example_prompts_and_preferences():
  """Source: examples/data written by hand: 36 prompts; 38 pairs over 20 prompts, whose tournaments hold
  1 (bakery names) + 1 (haiku) + 0 (15% of 80, transitive) + 1 (name tips: W>X>Y>W, all beat Z)
  + 2 (presentation: W>X>Y>Z>W with chords W>Y, X>Z: triads WXZ and WYZ) + 0 (tomato: one pair split 1-1)
  = 5 cyclic triads; the fourteen single pairs have none."""
  prompts, s = D.read_prompts(os.path.join(EXAMPLES, "prompts.jsonl"))
  assert (s.format, s.read, s.kept, s.skipped, s.counted) == ("prompt_only", 36, 36, {}, {})
  records, s = D.read_preferences(os.path.join(EXAMPLES, "preferences.jsonl"))
  assert (s.format, s.read, s.kept, s.skipped, s.counted) == ("conversational", 38, 38, {}, {})
  ts = D.tournaments(records)
  assert len(ts) == 20
  assert [len(t.responses) for t in ts[:6]] == [3, 3, 3, 4, 4, 3]
  assert [D.intransitive_triads(t.beats()) for t in ts] == [1, 1, 0, 1, 2, 0] + [0] * 14
  tomato = ts[5]
  assert tomato.wins.tolist() == [[0, 1, 1], [1, 0, 0], [0, 0, 0]]


def test_every_public_name_has_a_docstring():
  """Source: the package contract (every name in __all__ that is a function or class is documented)."""
  import inspect
  missing = [n for n in D.__all__ if (inspect.isfunction(getattr(D, n)) or inspect.isclass(getattr(D, n)))
             and not inspect.getdoc(getattr(D, n))]
  assert not missing, missing
  assert set(D.REASONS) >= {r for c in CASES for r in c[4]}
