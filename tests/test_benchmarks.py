"""The benchmark collector (``benchmarks/run_all.py``, ``make bench-gpu``) and the figures file.

Fake benchmarks in a temporary folder stand in for the real ones (which take minutes): one prints two
ratio lines and records a figure through ``_figures``, one fails. Checked: the ratios parsed, the exit
codes and the flags passed, one JSON holding both, and a rerun that skips only what succeeded.
"""

import json
import os
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)

import _figures  # noqa: E402
import run_all  # noqa: E402

GOOD = '''
import argparse, sys
sys.path.insert(0, {bench!r})
import _figures
ap = _figures.add_args(argparse.ArgumentParser())
args = ap.parse_args()
print("some table line: 3 games/s")
_figures.ratio("good_speed", 12.5 if args.gpu else 2.5)
print("good_other: ratio=0.75")
_figures.figure("good_detail", {{"pivots": 31.7}})
_figures.write(args.json, "good")
'''


def test_parse_ratios_reads_only_ratio_lines():
  """Only ``NAME: ratio=VALUE`` lines count; a value that is not a number is kept as text."""
  text = "x: 1\nzero_sum_64x64: ratio=48.5\n  halpern_bilinear_1000_b31: ratio=7.25 \nratio=3\nodd: ratio=n/a\n"
  assert run_all.parse_ratios(text) == {"zero_sum_64x64": 48.5, "halpern_bilinear_1000_b31": 7.25, "odd": "n/a"}


def test_run_all_writes_one_json_and_resumes(tmp_path, capsys):
  """Two benchmarks, one failing: the JSON has the good one's ratios (at --gpu sizes) and its own figures,
  the failure's exit code; a rerun skips the success and reruns the failure; --only refuses unknown names."""
  d = tmp_path / "b"
  d.mkdir()
  (d / "bench_good.py").write_text(GOOD.format(bench=BENCH))
  (d / "bench_bad.py").write_text("import sys\nprint('bad_speed: ratio=1.0')\nsys.exit(3)\n")
  out = tmp_path / "runs" / "figures.json"
  assert run_all.main(["--gpu", "--json", str(out), "--dir", str(d)]) == 1
  data = json.loads(out.read_text())
  assert data["runs"]["good"]["rc"] == 0 and data["runs"]["good"]["ratios"] == {"good_speed": 12.5, "good_other": 0.75}
  assert data["runs"]["bad"]["rc"] == 3 and data["runs"]["bad"]["ratios"] == {"bad_speed": 1.0}
  assert data["good"]["figures"]["good_speed"]["value"] == 12.5
  assert data["good"]["figures"]["good_detail"]["value"] == {"pivots": 31.7}
  capsys.readouterr()
  run_all.main(["--json", str(out), "--dir", str(d)])
  log = capsys.readouterr().out
  assert "== good: already recorded, skipped" in log and "== bad: " in log and "== bad: already" not in log
  with pytest.raises(SystemExit, match="--only"):
    run_all.main(["--json", str(out), "--dir", str(d), "--only", "good,missing"])


def test_figures_write_merges_and_keeps_other_entries(tmp_path):
  """``_figures.write`` adds its benchmark's entry and leaves the others (atomic replace, no temp left)."""
  path = tmp_path / "f.json"
  path.write_text(json.dumps({"other": {"figures": {"x": 1}}}))
  _figures._FIGURES.clear()
  _figures.figure("n_pivots", 3.0)
  _figures.write(str(path), "mine")
  data = json.loads(path.read_text())
  assert data["other"] == {"figures": {"x": 1}} and data["mine"]["figures"]["n_pivots"]["value"] == 3.0
  assert sorted(os.listdir(tmp_path)) == ["f.json"]
