"""Every notebook (jupytext .py) executes without error in smoke mode."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.py")))


def test_there_are_notebooks():
  assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_in_smoke_mode(path, tmp_path):
  env = dict(os.environ, NASHAX_SMOKE="1", MPLBACKEND="Agg", NASHAX_NOTEBOOK_OUT=str(tmp_path))
  r = subprocess.run([sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  assert any(f.endswith(".png") for f in os.listdir(tmp_path))
