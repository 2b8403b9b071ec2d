"""Readers of comparison logs (nashax/rank/io.py) and the ``nashax rank`` command's user errors.

Independent source: the hand count of the fixture rows written out in
tests/fixtures/rank/make_fixtures.py (HAND), and the pair counts read off the
fixture files by eye.
"""

import os

import numpy as np
import pytest

from nashax import cli
from nashax.rank import io

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "rank")
HAND = dict(rows=24, kept=18, filtered=1, unknown_winner=2, self_battles=2, duplicates=1, ties=5, bothbad=2)


@pytest.mark.parametrize("name", ["battles.jsonl", "battles.csv", "battles.parquet"])
def test_each_format_gives_the_hand_count_of_kept_and_skipped_rows(name):
  """24 rows: 1 outside category 'chat', 2 unknown winners, 2 self-battles, 1 duplicate -> 18 kept, 5 ties
  (2 both bad); the skipped spellings are named. Same numbers in every format."""
  c = io.read_battles(os.path.join(FIX, name), category="chat")
  s = c.summary
  assert {k: getattr(s, k) for k in HAND} == HAND
  assert dict(s.unknown_spellings) == {"model_c": 1, "bothbad": 1}
  assert c.models == ("alpha", "beta", "delta", "gamma")
  assert c.counts.sum() == 18 and c.counts[:, 2].sum() == 3 and c.counts[:, 3].sum() == 2
  # alpha vs beta: q1 (alpha wins), q16 (beta wins); the duplicate of q1 is not counted twice.
  ab = (c.a == 0) & (c.b == 1)
  assert c.counts[ab].sum(0).tolist() == [1, 1, 0, 0]
  assert "2 unknown winners" in str(s) and "1 duplicates" in str(s)


def test_filters_by_judge_and_keep_duplicates():
  """judge 'h2' keeps q3 q4 q8 q12 q13 q16 q19 q21 q23 = 9 chat battles (q9 is 'coding', q15 a
  self-battle); keep_duplicates keeps the repeated q1 (19 kept without the category filter's
  skip of q9 but with it: 18 + 1)."""
  c = io.read_battles(os.path.join(FIX, "battles.jsonl"), category="chat", judge="h2")
  assert c.summary.kept == 9 and c.summary.self_battles == 1
  c = io.read_battles(os.path.join(FIX, "battles.jsonl"), category=["chat"], keep_duplicates=True)
  assert c.summary.kept == 19 and c.summary.duplicates == 0


def test_a_model_list_counts_battles_with_other_models():
  """models=(alpha, beta, gamma): the battles naming delta (q4 q5 q8 q10 q13 q14 q19 q21 q23: 9) are
  counted as unknown models, 9 of the 18 remain."""
  c = io.read_battles(os.path.join(FIX, "battles.jsonl"), category="chat", models=("alpha", "beta", "gamma"))
  assert c.summary.unknown_models == 9 and c.summary.kept == 9 and c.num_models == 3


@pytest.mark.parametrize("name, line, what", [
    ("bad_json.jsonl", 3, "not valid JSON"),
    ("missing_model.jsonl", 3, "missing 'model_b'"),
    ("bad_fields.csv", 4, "2 fields, the header has 3"),
    ("bad_counts.csv", 3, "'wins' must be a nonnegative integer"),
])
def test_a_malformed_row_is_refused_with_file_and_line(name, line, what):
  """Each malformed fixture breaks exactly one line (see make_fixtures.py)."""
  path = os.path.join(FIX, name)
  reader = io.read_counts if "counts" in name else io.read_battles
  with pytest.raises(ValueError, match=f"{name}:{line}: .*{what}"):
    reader(path)


def test_long_format_counts_self_battles_repeats_and_judge_filter():
  """counts.csv by hand: judge 'gpt' keeps alpha-beta (7+1 wins, 3 losses, 2 ties and apart from them 1 both bad),
  beta-gamma (5, 5, 0), gamma-alpha (2, 6, 1); alpha-alpha is a self-battle; the second alpha-beta row
  is a repeat (summed); the 'human' row is filtered."""
  c = io.read_counts(os.path.join(FIX, "counts.csv"), judge="gpt")
  s = c.summary
  assert (s.rows, s.kept, s.self_battles, s.duplicates, s.filtered) == (6, 3, 1, 1, 1)
  rows = {(c.models[a], c.models[b]): c.counts[k].tolist() for k, (a, b) in enumerate(zip(c.a, c.b))}
  assert rows == {("alpha", "beta"): [8, 3, 2, 1], ("beta", "gamma"): [5, 5, 0, 0], ("gamma", "alpha"): [2, 6, 1, 0]}
  assert not c.ordered
  assert io.read(os.path.join(FIX, "counts.csv")).summary.kept == 4  # read() tells counts from battles


def test_reader_argument_errors_name_the_argument(tmp_path):
  """Unknown format, missing file, no battles left after filtering: ValueError naming what is wrong."""
  with pytest.raises(ValueError, match="format: expected one of"):
    io.read_battles(os.path.join(FIX, "battles.jsonl"), format="xml")
  with pytest.raises(ValueError, match="format: cannot tell"):
    io.read_battles(str(tmp_path / "x.txt"))
  with pytest.raises(ValueError, match="path: no such file"):
    io.read_battles(str(tmp_path / "none.jsonl"))
  with pytest.raises(ValueError, match="at least 2 models"):
    io.read_battles(os.path.join(FIX, "battles.jsonl"), category="nothing")


def test_style_covariates_are_normalised_differences():
  """Feature 'len' from len_a / len_b enters as (a - b) / (a + b): (300 - 100) / 400 = 0.5."""
  recs = [dict(model_a="x", model_b="y", winner="model_a", len_a=300, len_b=100),
          dict(model_a="y", model_b="x", winner="tie", len_a=50, len_b=50)]
  c = io.battles_from_records(recs, covariates=("len",))
  assert c.features[:, 0].tolist() == [0.5, 0.0]
  with pytest.raises(ValueError, match=r"<records>:1: 'len_b' must be a number"):
    io.battles_from_records([dict(model_a="x", model_b="y", winner="tie", len_a=1, len_b="long")], covariates=("len",))


@pytest.mark.parametrize("args, what", [
    (["bad_json.jsonl"], "bad_json.jsonl:3: not valid JSON"),
    (["battles.jsonl", "--category", "nothing"], "at least 2 models"),
    (["battles.jsonl", "--bootstrap", "-1"], "--bootstrap: must be >= 0"),
    (["missing.jsonl"], "path: no such file"),
])
def test_cli_user_error_is_one_line_and_exit_2(args, what, capsys):
  """A user error prints one line (no traceback) and exits 2."""
  rc = cli.main(["rank", os.path.join(FIX, args[0])] + args[1:])
  err = capsys.readouterr().err
  assert rc == 2
  assert err.count("\n") == 1 and "Traceback" not in err and what in err


@pytest.mark.slow
def test_cli_end_to_end_writes_the_table_csv_and_plots(tmp_path, capsys):
  """nashax rank on the fixture (category chat): the table names the 18 kept battles and the skips, lists
  the models in Bradley-Terry order with alpha first (by hand it scores 6 of its 9 battles, ties half: the
  best record), and the CSV's Copeland column is the hand count (alpha 2.5, beta 2, gamma 1, delta 0.5);
  four PNGs are written."""
  out = tmp_path / "rank"
  rc = cli.main(["rank", os.path.join(FIX, "battles.jsonl"), "--category", "chat", "--bootstrap", "30",
                 "--posterior", "30", "--out", str(out)])
  text = capsys.readouterr().out
  assert rc == 0 and "kept 18" in text and "2 unknown winners" in text and "Condorcet winner" in text
  import csv as _csv

  rows = list(_csv.DictReader(open(out / "ranking.csv")))
  assert rows[0]["model"] == "alpha"
  assert {r["model"]: float(r["copeland"]) for r in rows} == {"alpha": 2.5, "beta": 2.0, "gamma": 1.0, "delta": 0.5}
  for name in ("rank_intervals.png", "win_rates.png", "response_graph.png", "bt_vs_alpharank.png", "p_above.csv"):
    assert (out / name).stat().st_size > 0
