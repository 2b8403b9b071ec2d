"""Sweeps: config checks, resumption after SIGKILL, equality with direct runs, sharding, plots."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import nashax
from nashax import games, solvers, sweeps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SMALL = {
    "game": {"family": "random_preference", "size": [4, 5], "beta": [0.2, 1.0]},
    "solver": [{"name": "nash_md", "eta": [0.1, 0.5]}, {"name": "sppo", "eta": 0.2, "iterate": "last"}],
    "run": {"seeds": 3, "steps": 40, "every": 10, "metrics": ["duality_gap", "exploitability"], "chunk": 5},
}

# Enough work that a SIGKILL lands between the first and the last chunk.
KILL = """
name = "kill"
[game]
family = "random_preference"
size = 12
beta = [0.1, 0.3, 1.0, 3.0]
[[solver]]
name = "nash_md"
eta = [0.05, 0.1, 0.2, 0.4, 0.8]
[run]
seeds = 8
steps = 6000
every = 100
metrics = ["duality_gap"]
chunk = 8
"""


def _cli(*args, env=None, **kw):
  return subprocess.Popen([sys.executable, "-m", "nashax.cli", *args], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_mid_sweep_then_restart_gives_the_uninterrupted_table(tmp_path):
  """A sweep killed with SIGKILL after some chunks and restarted writes the same results.csv as an
  uninterrupted run, and the restart recomputes only the missing chunks (independent source: the
  uninterrupted run in a second folder)."""
  cfg = tmp_path / "kill.toml"
  cfg.write_text(KILL)
  full, killed = tmp_path / "full", tmp_path / "killed"
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  p = _cli("sweep", str(cfg), "--out", str(killed), "--quiet", "--no-plots", env=env)
  chunks = killed / "chunks"
  deadline = time.time() + 240
  while time.time() < deadline:
    if chunks.is_dir() and any(f.endswith(".npz") for f in os.listdir(chunks)):
      break
    if p.poll() is not None:
      pytest.fail("the sweep ended before a chunk was written: " + p.stderr.read()[-2000:])
    time.sleep(0.005)
  os.kill(p.pid, signal.SIGKILL)
  p.wait()
  assert p.returncode == -signal.SIGKILL
  written = len([f for f in os.listdir(chunks) if f.endswith(".npz")])
  total = json.loads((killed / "manifest.json").read_text())["num_chunks"]
  assert 1 <= written < total, (written, total)
  assert not (killed / "results.csv").exists()

  r = _cli("sweep", str(cfg), "--out", str(killed), "--quiet", "--no-plots", env=env)
  out, err = r.communicate(timeout=600)
  assert r.returncode == 0, err[-3000:]
  # A kill between a chunk and its checksum leaves a chunk that the resume recomputes, with a warning.
  assert f"of {total} chunks already done" in out or "recomputing it" in err + out, out + err
  u = _cli("sweep", str(cfg), "--out", str(full), "--quiet", "--no-plots", env=env)
  _, err = u.communicate(timeout=600)
  assert u.returncode == 0, err[-3000:]
  assert (killed / "results.csv").read_text() == (full / "results.csv").read_text()
  with np.load(killed / "traces.npz") as a, np.load(full / "traces.npz") as b:
    np.testing.assert_array_equal(a["duality_gap"], b["duality_gap"])


def test_finished_sweep_started_again_does_nothing(tmp_path):
  """The second call computes zero chunks and leaves the results files untouched."""
  r1 = sweeps.run_sweep(SMALL, str(tmp_path), progress=False, log=lambda s: None)
  assert r1.computed > 0
  stamp = {f: os.stat(tmp_path / f).st_mtime_ns for f in ("results.csv", "results.npz", "traces.npz")}
  msgs = []
  r2 = sweeps.run_sweep(SMALL, str(tmp_path), progress=False, log=msgs.append)
  assert r2.computed == 0 and "already finished" in msgs[0]
  assert stamp == {f: os.stat(tmp_path / f).st_mtime_ns for f in stamp}
  for k in r1.table:
    np.testing.assert_array_equal(r1.table[k], r2.table[k])


def test_a_folder_of_another_sweep_is_refused(tmp_path):
  sweeps.run_sweep(SMALL, str(tmp_path), progress=False, log=lambda s: None)
  other = json.loads(json.dumps(SMALL))
  other["run"]["steps"] = 50
  with pytest.raises(ValueError, match="out: .* holds a different sweep"):
    sweeps.run_sweep(other, str(tmp_path), progress=False, log=lambda s: None)


def test_rows_equal_direct_runs(tmp_path):
  """Every row equals a direct ``nashax.run`` of the named solver on the game built from the row's seed
  (second path: the public factories and ``PreferenceGame.regularized``, one game at a time)."""
  res = sweeps.run_sweep(SMALL, str(tmp_path), progress=False, log=lambda s: None)
  t = res.table
  assert len(t["point"]) == (2 * 2 * 2 + 2 * 2 * 1) * 3  # (sizes x betas x etas + sizes x betas) x seeds
  for i in range(len(t["point"])):
    key = jax.random.fold_in(jax.random.key(0), int(t["seed"][i]))
    gkey, skey = jax.random.split(key)
    g = games.random_preference_game(gkey, int(t["size"][i])).regularized(float(t["beta"][i]))
    name = str(t["solver"][i])
    solver = solvers.nash_md(float(t["eta"][i])) if name == "nash_md" else solvers.sppo(0.2, iterate="last")
    state, trace = nashax.run(solver, g, skey, num_steps=40, every=10)
    np.testing.assert_allclose(res.traces["duality_gap"][i], trace.duality_gap, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(t["exploitability"][i], trace.exploitability[-1], rtol=2e-4, atol=1e-6)
    assert int(t["oracle_calls"][i]) == int(state.oracle_calls)


def test_same_seed_same_game_across_hyperparameters(tmp_path):
  """Paired comparisons: two grid points with the same seed get the same game. Fictitious play from
  an (almost) uniform start takes the same first best response, so its gap after one step agrees
  across the two points and differs between seeds (different games)."""
  cfg = {"game": {"family": "random_zero_sum", "size": 4},
         "solver": {"name": "fictitious_play", "init_scale": [0.0, 0.0001]},
         "run": {"seeds": 2, "steps": 1, "every": 1, "metrics": ["duality_gap"]}}
  res = sweeps.run_sweep(cfg, str(tmp_path), progress=False, log=lambda s: None)
  gap = res.traces["duality_gap"][:, 0].reshape(2, 2)  # [point, seed]
  np.testing.assert_allclose(gap[0], gap[1], rtol=1e-3)
  assert abs(gap[0, 0] - gap[0, 1]) > 1e-4  # different seeds give different games


@contextlib.contextmanager
def _compilations():
  """Collects the names of XLA backend-compilation events fired inside the block."""
  seen = []

  def listener(name, *a, **k):
    if "backend_compile" in name:
      seen.append(name)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield seen
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def test_compilation_listener_sees_a_compilation():
  """The probe used below can fail: a fresh jit fires a backend-compile event."""
  with _compilations() as seen:
    jax.jit(lambda x: x * 3.25 + 1.0)(np.arange(7.0)).block_until_ready()
  assert seen


BAD = [
    ({"solver": {"name": "nash_mdd", "eta": 0.1}}, r"solver.name: unknown solver 'nash_mdd'"),
    ({"solver": {"name": "nash_md", "etaa": 0.1}}, r"solver.etaa: solver 'nash_md' takes no hyperparameter"),
    ({"solver": {"name": "mwu"}}, r"solver.eta: missing"),
    ({"solver": {"name": "nash_md", "eta": []}}, r"solver.eta: an empty list is not a grid"),
    ({"solver": {"name": "nash_md", "eta": [0.1, "fast"]}}, r"solver.eta: a grid mixes"),
    ({"solver": {"name": "nash_md", "eta": {"lo": 0.1}}}, r"solver.eta: a grid value must be"),
    ({"solver": {"name": "nash_md", "eta": [0.1, -0.5]}}, r"solver: nash_md\(eta=-0.5\) is refused: eta"),
    ({"solver": {"name": "nash_md", "eta": [0.1, 0.1]}}, r"solver.eta: a grid repeats"),
    ({"game": {"family": "random_pref", "size": 4}}, r"game.family: unknown family"),
    ({"game": {"family": "random_preference", "size": 4, "beta": [-1.0]}}, r"game.beta: must be finite numbers > 0"),
    ({"game": {"family": "random_preference", "size": 4, "temperature": 1.0}}, r"game.temperature: family"),
    ({"game": {"family": "random_preference", "size": [1]}}, r"game.size: must be an integer >= 2"),
    ({"game": {"family": "random_preference"}}, r"game.size: missing"),
    ({"run": {"seeds": 2, "steps": 10, "every": 3}}, r"run.every: steps=10 must be a multiple"),
    ({"run": {"seeds": 0, "steps": 10}}, r"run.seeds: must be an integer >= 1"),
    ({"run": {"seeds": 2, "steps": 10, "metrics": ["gap"]}}, r"run.metrics: unknown metric 'gap'"),
    ({"run": {"seeds": 2, "steps": 10, "chunk": 8, "batch_size": 3}}, r"run.batch_size: must divide"),
    ({"run": {"seeds": 2, "steps": 10, "sedes": 3}}, r"run.sedes: unknown key"),
    ({"extra": 1}, r"extra: unknown top-level key"),
]


@pytest.mark.parametrize("patch,message", BAD, ids=[m for _, m in BAD])
def test_bad_config_is_refused_naming_the_key_before_compiling(patch, message, tmp_path):
  """Each malformed config raises a ValueError whose message names the key; nothing is compiled
  (no backend compilation event fires) and nothing is written."""
  cfg = {"game": {"family": "random_preference", "size": 4}, "solver": {"name": "nash_md", "eta": 0.1},
         "run": {"seeds": 2, "steps": 10}}
  cfg.update(patch)
  with _compilations() as compiles:
    with pytest.raises(ValueError, match=message):
      sweeps.run_sweep(cfg, str(tmp_path / "out"), progress=False, log=lambda s: None)
  assert not compiles, compiles
  assert not (tmp_path / "out").exists()


def test_solver_that_cannot_run_on_the_family_is_refused_before_compiling(tmp_path):
  """nash_md needs a preference game; on a matrix game the sweep refuses with both names."""
  cfg = {"game": {"family": "random_zero_sum", "size": 4}, "solver": {"name": "nash_md", "eta": 0.1},
         "run": {"seeds": 1, "steps": 10}}
  with pytest.raises(ValueError, match="'nash_md' cannot run on game family 'random_zero_sum'"):
    sweeps.run_sweep(cfg, str(tmp_path / "out"), progress=False, log=lambda s: None)
  assert not (tmp_path / "out" / "chunks").exists() or not os.listdir(tmp_path / "out" / "chunks")


def test_toml_file_round_trip(tmp_path):
  """The TOML example parses to the same config as its dict, and to_dict/from_dict round-trips."""
  cfg = sweeps.load_config(os.path.join(ROOT, "examples", "sweeps", "nlhf_race.toml"))
  assert [s.name for s in cfg.solvers] == ["nash_md", "sppo", "egpo", "inpo"]
  assert sweeps.from_dict(cfg.to_dict()) == cfg
  bad = tmp_path / "bad.toml"
  bad.write_text("[game\nfamily = 1")
  with pytest.raises(ValueError, match="config: .* is not valid TOML"):
    sweeps.load_config(str(bad))


def test_sharded_over_8_cpu_devices_equals_one_device(tmp_path):
  """With 8 host devices the batch axis is sharded over a Mesh; the table equals a one-device run."""
  code = f"""
import json, numpy as np, jax
from nashax import sweeps
cfg = json.loads({json.dumps(json.dumps(SMALL))})
assert jax.device_count() == 8
a = sweeps.run_sweep(cfg, r"{tmp_path}/all", progress=False, log=lambda s: None)
b = sweeps.run_sweep(cfg, r"{tmp_path}/one", progress=False, devices=jax.devices()[:1], log=lambda s: None)
for k in a.traces:
  np.testing.assert_allclose(a.traces[k], b.traces[k], rtol=1e-5, atol=1e-7)
print("ok")
"""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


def test_plot_command_draws_the_standard_figures(tmp_path):
  """``nashax plot`` writes the trace, final-vs-hyperparameter and heatmap figures."""
  sweeps.run_sweep(SMALL, str(tmp_path), progress=False, log=lambda s: None)
  from nashax import cli

  assert cli.main(["plot", str(tmp_path), "--metric", "duality_gap"]) == 0
  names = set(os.listdir(tmp_path / "plots"))
  assert {"trace_duality_gap.png", "final_duality_gap_vs_beta.png", "final_duality_gap_vs_eta.png",
          "final_duality_gap_vs_size.png", "heatmap_duality_gap_size_beta.png"} <= names
  assert cli.main(["plot", str(tmp_path), "--metric", "nash_conv"]) == 2


@pytest.mark.parametrize("argv", [["--help"], ["verify", "--help"], ["sweep", "--help"], ["plot", "--help"], ["train", "--help"]])
def test_help_says_what_and_gives_an_example(argv, capsys):
  """Each subcommand's help has a description and an 'examples:' block with a nashax command."""
  from nashax import cli

  with pytest.raises(SystemExit) as e:
    cli.main(argv)
  assert e.value.code == 0
  out = capsys.readouterr().out
  assert "examples:" in out and "\n  nashax " in out
  if argv[0] == "--help":
    for sub in ("verify", "sweep", "plot", "train"):
      assert sub in out


def test_sweep_list_names_families_and_solvers(capsys):
  from nashax import cli

  assert cli.main(["sweep", "--list"]) == 0
  out = capsys.readouterr().out
  assert "random_preference" in out and "nash_md" in out and "eta" in out
