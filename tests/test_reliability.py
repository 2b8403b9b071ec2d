"""Reliability: no corrupt file is trusted, no false SUCCESS, every bad input is refused in words.

Independent sources: the reference results are an uninterrupted run of the same
sweep or training (a run's rows depend only on its grid point and seed, so a
resumed run must reproduce them bit for bit); the equilibria are closed forms
(rock-paper-scissors: uniform, value 0; a scaled game has the scaled value); the
malformed inputs are hand-written, each with the argument its message must name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import _files, cli, games, solvers, sweeps
from nashax.core import divergences as D

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SWEEP = {"name": "rel", "game": {"family": "random_preference", "size": 3},
         "solver": {"name": "nash_md", "eta": [0.1, 0.3]},
         "run": {"seeds": 2, "steps": 20, "every": 10, "metrics": ["duality_gap"], "chunk": 1}}

TRAIN = {"model": {"vocab_size": 4, "num_layers": 1, "num_heads": 2, "embed_dim": 8, "max_len": 3},
         "oracle": {"num_classes": 3, "response_len": 2},
         "train": {"algorithm": "nash_md", "batch_size": 4, "num_steps": 6},
         "run": {"eval_every": 2, "checkpoint_every": 3}}  # 3 is not a multiple of 2 (a former defect)

QUIET = dict(progress=False, log=lambda s: None)


class Killed(BaseException):
  """A simulated SIGKILL: unwinds without running the code after the kill point."""


def _npz(path):
  with np.load(path) as z:
    return {k: z[k] for k in z.files}


def _same_sweep(a, b):
  """The merged tables of two sweep folders: results.csv byte for byte, the npz arrays exactly."""
  assert open(os.path.join(a, "results.csv"), "rb").read() == open(os.path.join(b, "results.csv"), "rb").read()
  for name in ("results.npz", "traces.npz"):
    x, y = _npz(os.path.join(a, name)), _npz(os.path.join(b, name))
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])


@pytest.fixture(scope="module")
def sweep_ref(tmp_path_factory):
  out = str(tmp_path_factory.mktemp("sweep_ref") / "ref")
  sweeps.run_sweep(SWEEP, out, **QUIET)
  return out


@pytest.fixture(scope="module")
def train_ref(tmp_path_factory):
  from nashax.policies import experiment as E

  out = str(tmp_path_factory.mktemp("train_ref") / "ref")
  E.run_experiment(TRAIN, out, **QUIET)
  return out


@contextlib.contextmanager
def _kill_at_write(monkeypatch, k, torn=False):
  """Kills the run at its ``k``-th atomic file write (before it; ``torn``: with half a temporary file left)."""
  real = _files.atomic_write
  count = [0]

  def write(path, data):
    count[0] += 1
    if count[0] == k:
      if torn:
        with open(f"{path}.{os.getpid()}.tmp", "wb") as f:
          f.write(b"PK\x03\x04 half a file")
      raise Killed(path)
    return real(path, data)

  monkeypatch.setattr(_files, "atomic_write", write)
  try:
    yield count
  finally:
    monkeypatch.setattr(_files, "atomic_write", real)


def _count_writes(monkeypatch, fn):
  real = _files.atomic_write
  paths = []

  def write(path, data):
    paths.append(path)
    return real(path, data)

  monkeypatch.setattr(_files, "atomic_write", write)
  try:
    fn()
  finally:
    monkeypatch.setattr(_files, "atomic_write", real)
  return paths


# ----------------------------------------------------------------------------- sweeps: kills and corruption


def test_sweep_killed_at_random_writes_resumes_bit_for_bit(sweep_ref, tmp_path, monkeypatch):
  """Killed before any of 6 random file writes (among them between a chunk and its checksum, and with a torn
  temporary file), the resumed sweep equals the uninterrupted one (the reference run) bit for bit."""
  writes = _count_writes(monkeypatch, lambda: sweeps.run_sweep(SWEEP, str(tmp_path / "count"), **QUIET))
  assert len(writes) >= 10  # manifest, 4 chunks + 4 checksums, 3 tables + 3 checksums, manifest
  rng = np.random.default_rng(24)
  moments = sorted(set(rng.choice(np.arange(2, len(writes) + 1), 5, replace=False).tolist()) | {3})
  for i, k in enumerate(moments):
    out = str(tmp_path / f"k{k}")
    with _kill_at_write(monkeypatch, k, torn=i % 2 == 0), pytest.raises(Killed):
      sweeps.run_sweep(SWEEP, out, **QUIET)
    msgs = []
    sweeps.run_sweep(SWEEP, out, progress=False, log=msgs.append)
    _same_sweep(sweep_ref, out)
    if writes[k - 1].endswith(".sha256") and "chunks" in writes[k - 1]:  # the chunk had no checksum yet
      assert any("WARNING chunk" in m and "recomputing" in m for m in msgs), msgs


@pytest.mark.parametrize("damage", ["truncate", "zero", "flip", "alter"])
def test_corrupt_chunk_is_recomputed_with_a_warning(damage, sweep_ref, tmp_path):
  """A truncated, zeroed, bit-flipped or validly re-saved but altered chunk is detected (its checksum), named
  in a warning and recomputed; the results equal the reference run's."""
  import shutil

  out = str(tmp_path / "s")
  shutil.copytree(sweep_ref, out)
  os.remove(os.path.join(out, "results.npz"))  # an unfinished-looking sweep: the chunks are read again
  chunk = os.path.join(out, "chunks", "c00001.npz")
  raw = bytearray(open(chunk, "rb").read())
  if damage == "truncate":
    raw = raw[: len(raw) // 2]
  elif damage == "zero":
    raw = bytearray(len(raw))
  elif damage == "flip":
    raw[len(raw) // 3] ^= 0x10
  if damage == "alter":
    z = _npz(chunk)
    z["m_duality_gap"] = z["m_duality_gap"] * 0.5
    with open(chunk, "wb") as f:
      np.savez(f, **z)
  else:
    open(chunk, "wb").write(bytes(raw))
  msgs = []
  res = sweeps.run_sweep(SWEEP, out, progress=False, log=msgs.append)
  assert any("c00001.npz" in m and "recomputing" in m for m in msgs), msgs
  assert res.computed == 1
  _same_sweep(sweep_ref, out)


def test_damaged_merged_table_of_a_finished_sweep_is_rebuilt_from_the_chunks(sweep_ref, tmp_path, capsys):
  """A truncated results.npz of a finished sweep: `nashax sweep` rebuilds it (no recomputation) and
  `load_results` / `nashax plot` rebuild it as well; both equal the reference."""
  import shutil

  out = str(tmp_path / "s")
  shutil.copytree(sweep_ref, out)
  p = os.path.join(out, "results.npz")
  open(p, "r+b").truncate(os.path.getsize(p) // 2)
  msgs = []
  res = sweeps.run_sweep(SWEEP, out, progress=False, log=msgs.append)
  assert res.computed == 0 and any("rebuilding" in m for m in msgs), msgs
  _same_sweep(sweep_ref, out)
  open(p, "r+b").truncate(100)
  sweeps.load_results(out)
  assert "rebuilt" in capsys.readouterr().err
  _same_sweep(sweep_ref, out)


def test_second_writer_is_refused_and_a_killed_writers_lock_is_taken_over(tmp_path):
  """A live process holding the output folder (a real second process) makes the sweep refuse in words; once
  that process is SIGKILLed its lock is stale and the sweep runs."""
  out = tmp_path / "s"
  out.mkdir()
  code = f"from nashax import _files\nimport time\nwith _files.folder_lock({str(out)!r}):\n  print('locked', flush=True)\n  time.sleep(600)\n"
  child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONPATH=ROOT))
  try:
    assert child.stdout.readline().strip() == "locked"
    with pytest.raises(ValueError, match=rf"out: .* is in use by another nashax process \(pid {child.pid}\)"):
      sweeps.run_sweep(SWEEP, str(out), **QUIET)
  finally:
    child.send_signal(signal.SIGKILL)
    child.wait()
  assert (out / ".lock").exists()  # left behind by the killed process
  sweeps.run_sweep(SWEEP, str(out), **QUIET)


def test_sweep_sigkilled_in_a_real_process_resumes_bit_for_bit(sweep_ref, tmp_path):
  """A real SIGKILL (the process kills itself between a chunk and its checksum) and a resume."""
  out = str(tmp_path / "s")
  code = textwrap.dedent(f"""
      import os, signal, json
      from nashax import _files, sweeps
      real, n = _files.atomic_write, [0]
      def write(path, data):
        real(path, data)
        if "chunks" in path and path.endswith(".npz"):
          n[0] += 1
          if n[0] == 2:
            os.kill(os.getpid(), signal.SIGKILL)
      _files.atomic_write = write
      sweeps.run_sweep(json.loads({json.dumps(json.dumps(SWEEP))}), {out!r}, progress=False)
      """)
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
  msgs = []
  sweeps.run_sweep(SWEEP, out, progress=False, log=msgs.append)
  assert any("c00001.npz" in m and "recomputing" in m for m in msgs), msgs
  _same_sweep(sweep_ref, out)


# ----------------------------------------------------------------------------- training: kills and corruption


def _metrics(out):
  return open(os.path.join(out, "nash_md", "metrics.csv"), "rb").read()


def test_training_killed_at_random_moments_resumes_bit_for_bit(train_ref, tmp_path, monkeypatch):
  """Killed at 6 moments (among them after a checkpoint's arrays but before its manifest, and between a
  checkpoint and the metrics rows it records), the resumed run writes the reference run's metrics.csv byte
  for byte (no row lost or replaced, the step-0 row included) and its final parameters."""
  from nashax.policies import checkpoint as C
  from nashax.policies import experiment as E

  writes = _count_writes(monkeypatch, lambda: E.run_experiment(TRAIN, str(tmp_path / "count"), **QUIET))
  man = [i + 1 for i, p in enumerate(writes) if p.endswith(C.MANIFEST)]
  assert len(man) == 2  # checkpoints at 3 and 6
  moments = sorted({man[0] + 1, man[1] + 1} | set(np.random.default_rng(7).choice(
      np.arange(1, len(writes) + 1), 3, replace=False).tolist()))  # +1: between a checkpoint and its rows
  for k in moments:
    out = str(tmp_path / f"k{k}")
    with _kill_at_write(monkeypatch, k), pytest.raises(Killed):
      E.run_experiment(TRAIN, out, **QUIET)
    E.run_experiment(TRAIN, out, **QUIET)
    assert _metrics(out) == _metrics(train_ref), k
  # After the arrays of the first checkpoint, before its manifest: the save counts as not done.
  real = C.Checkpoints.save

  def save(self, step, state, extra=None):
    self._mngr.save(int(step), args=C.ocp.args.StandardSave(state), force=True)
    self._mngr.wait_until_finished()
    raise Killed("after orbax, before the manifest")

  out = str(tmp_path / "orbax")
  monkeypatch.setattr(C.Checkpoints, "save", save)
  with pytest.raises(Killed):
    E.run_experiment(TRAIN, out, **QUIET)
  monkeypatch.setattr(C.Checkpoints, "save", real)
  msgs = []
  E.run_experiment(TRAIN, out, progress=False, log=msgs.append)
  assert any("no manifest" in m for m in msgs), msgs
  assert _metrics(out) == _metrics(train_ref)
  _same_params(train_ref, out)


def _same_params(a, b):
  from nashax.policies import checkpoint as C

  x = C.Checkpoints(os.path.join(a, "nash_md", "checkpoints"))
  y = C.Checkpoints(os.path.join(b, "nash_md", "checkpoints"))
  la, lb = x.latest(), y.latest()
  assert la == lb == TRAIN["train"]["num_steps"]
  # The restored arrays (orbax's metadata files carry timestamps; the arrays must be equal).
  from nashax.policies import experiment as E
  from nashax.policies import train as TR

  exp = E.experiment_from_dict(TRAIN)
  like = TR.make_trainer(exp.model, exp.trains[0], exp.build_oracle()).init(jax.random.key(0))
  for u, v in zip(jax.tree.leaves(x.restore(la, like)), jax.tree.leaves(y.restore(lb, like))):
    np.testing.assert_array_equal(np.asarray(u), np.asarray(v))
  x.close()
  y.close()


def test_clean_resume_with_checkpoint_every_not_a_multiple_of_eval_every(train_ref, tmp_path):
  """Stopped after 3 steps (a checkpoint between two evaluations) and resumed: the row at step 4 averages the
  losses of steps 3 and 4, as in the uninterrupted run (the reference)."""
  from nashax.policies import experiment as E

  out = str(tmp_path / "cut")
  E.run_experiment(TRAIN, out, stop_after=3, **QUIET)
  E.run_experiment(TRAIN, out, **QUIET)
  assert _metrics(out) == _metrics(train_ref)


def _data_files(step_dir):
  out = []
  for root, _, names in os.walk(step_dir):
    out += [os.path.join(root, n) for n in names if os.sep + "d" + os.sep in os.path.join(root, n) + os.sep
            or os.path.basename(root) == "d"]
  return sorted(out)


@pytest.mark.parametrize("damage", ["truncate", "flip", "zero"])
def test_corrupt_checkpoint_falls_back_to_the_previous_one(damage, train_ref, tmp_path):
  """A truncated, bit-flipped or zeroed data file of the newest checkpoint is detected (checksum), named in a
  warning, and the run resumes from the previous checkpoint to the reference's metrics and parameters."""
  import shutil

  from nashax.policies import experiment as E

  out = str(tmp_path / "r")
  shutil.copytree(train_ref, out)
  ck = os.path.join(out, "nash_md", "checkpoints")
  files = _data_files(os.path.join(ck, "6"))
  assert files
  victim = max(files, key=os.path.getsize)
  raw = bytearray(open(victim, "rb").read())
  if damage == "truncate":
    raw = raw[: len(raw) // 2]
  elif damage == "flip":
    raw[len(raw) // 2] ^= 0x01
  else:
    raw = bytearray(len(raw))
  open(victim, "wb").write(bytes(raw))
  msgs = []
  E.run_experiment(TRAIN, out, progress=False, log=msgs.append)
  assert any("checkpoints/6 is not valid" in m and "WARNING" in m for m in msgs), msgs
  assert any("resuming from step 3" in m for m in msgs), msgs
  assert _metrics(out) == _metrics(train_ref)
  _same_params(train_ref, out)


def test_no_valid_checkpoint_stops_in_words(train_ref, tmp_path):
  """Every checkpoint damaged: the run says so and stops (ValueError; the CLI: one line, exit 2)."""
  import shutil

  from nashax.policies import experiment as E

  out = str(tmp_path / "r")
  shutil.copytree(train_ref, out)
  ck = os.path.join(out, "nash_md", "checkpoints")
  for step in os.listdir(ck):
    for f in _data_files(os.path.join(ck, step)):
      raw = bytearray(open(f, "rb").read())
      raw[-1] ^= 0xFF
      open(f, "wb").write(bytes(raw))
  with pytest.raises(ValueError, match="no valid checkpoint"):
    E.run_experiment(TRAIN, out, **QUIET)


# ----------------------------------------------------------------------------- solvers: no false SUCCESS


@pytest.mark.parametrize("dtype,scale", [("float32", 1e38), ("float32", 1e-40), ("float32", 1e-38),
                                         ("float64", 1e307), ("float64", 1e-310)])
def test_simplex_never_reports_a_false_success(dtype, scale):
  """Rock-paper-scissors times ``scale`` (a range that overflows the dtype, or subnormal payoffs): the
  closed form is the uniform strategy with value 0. SUCCESS must come with it (x, y within 1e-5 of uniform,
  finite value), eagerly and under jit (where subnormal payoffs may give NONFINITE, never SUCCESS)."""
  with jax.enable_x64(dtype == "float64"):
    rps = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
    a = (rps * 3.0 * scale).astype(dtype) if scale > 1 else (rps * scale).astype(dtype)
    assert np.abs(a).max() > 0
    for sol in (solvers.simplex_equilibrium(a), jax.jit(solvers.simplex_equilibrium)(jnp.asarray(a))):
      if int(sol.status) == nashax.SUCCESS:
        assert np.isfinite(float(sol.value)) and abs(float(sol.value)) <= 1e-5 * 3 * scale
        np.testing.assert_allclose(np.asarray(sol.x, np.float64), np.full(3, 1 / 3), atol=1e-5)
        np.testing.assert_allclose(np.asarray(sol.y, np.float64), np.full(3, 1 / 3), atol=1e-5)
    assert int(solvers.simplex_equilibrium(a).status) == nashax.SUCCESS  # eagerly it is solved exactly


def test_simplex_huge_asymmetric_game_has_the_scaled_value():
  """``diag(2, 3, 4) e38 - 2e38`` in float32 (its range 4e38 overflows float32): a diagonal game has
  ``x_i ∝ 1 / d_i`` = (6, 4, 3) / 13 and value ``1 / sum(1 / d_i) - c`` = (12/13 - 2) e38 (closed form);
  SUCCESS with a finite gap."""
  a = (np.diag([2.0, 3.0, 4.0]) - 2.0) * 1e38
  sol = solvers.simplex_equilibrium(a.astype(np.float32))
  assert int(sol.status) == nashax.SUCCESS and np.isfinite(float(sol.gap))
  np.testing.assert_allclose(float(sol.value), (12 / 13 - 2) * 1e38, rtol=1e-5)
  np.testing.assert_allclose(np.asarray(sol.x), np.array([6, 4, 3]) / 13, atol=1e-5)


def test_divergence_cap_is_relative_to_the_problems_scale():
  """A random zero-sum game times 1e9 with the step size divided by 1e9 is the same run as the unit game
  (extragradient is scale-equivariant): it must not stop with DIVERGED after 0 steps."""
  g = games.random_zero_sum(jax.random.key(0), 4, 4)
  big = nashax.MatrixGame(g.payoff * 1e9)
  _, info = nashax.solve(solvers.extragradient(0.1 / 1e9, geometry="euclidean", iterate="last"), big,
                         jax.random.key(1), tol=1e-3 * 1e9, max_steps=20_000, check_every=10)
  _, ref = nashax.solve(solvers.extragradient(0.1, geometry="euclidean", iterate="last"), g,
                        jax.random.key(1), tol=1e-3, max_steps=20_000, check_every=10)
  assert int(ref.status) == nashax.SUCCESS
  assert int(info.status) == nashax.SUCCESS and int(info.num_steps) > 0


# ----------------------------------------------------------------------------- malformed inputs


def _csv(tmp, text):
  p = tmp / "t.csv"
  p.write_text(text)
  return str(p)


def _key():
  return jax.random.key(0)


RPS = np.array([[0.5, 0.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.5]])
W2 = np.array([[0.5, 0.7], [0.3, 0.5]])

# (label, call, argument the message must name); ``call`` takes the tmp folder.
API = [
    ("zero-sum n=0", lambda t: games.random_zero_sum(_key(), 0, 3), "n"),
    ("zero-sum n=-1", lambda t: games.random_zero_sum(_key(), -1, 3), "n"),
    ("zero-sum n=2.5", lambda t: games.random_zero_sum(_key(), 2.5, 3), "n"),
    ("zero-sum m=True", lambda t: games.random_zero_sum(_key(), 3, True), "m"),
    ("zero-sum m='3'", lambda t: games.random_zero_sum(_key(), 3, "3"), "m"),
    ("zero-sum int dtype", lambda t: games.random_zero_sum(_key(), 3, 3, dtype=jnp.int32), "dtype"),
    ("rps int dtype", lambda t: games.rock_paper_scissors(dtype=jnp.int32), "dtype"),
    ("condorcet int dtype", lambda t: games.condorcet_cycle(3, dtype=jnp.int32), "dtype"),
    ("zero-sum n=2**40", lambda t: games.random_zero_sum(_key(), 2 ** 40, 3), "n"),
    ("interior n=0", lambda t: games.random_interior_zero_sum(_key(), 0), "n"),
    ("interior value='x'", lambda t: games.random_interior_zero_sum(_key(), 3, "x"), "value"),
    ("interior value=1j", lambda t: games.random_interior_zero_sum(_key(), 3, 1j), "value"),
    ("preference n=0", lambda t: games.random_preference_game(_key(), 0), "n"),
    ("preference n=1.5", lambda t: games.random_preference_game(_key(), 1.5), "n"),
    ("condorcet n=True", lambda t: games.condorcet_cycle(True), "n"),
    ("condorcet p='x'", lambda t: games.condorcet_cycle(3, "x"), "p"),
    ("three raters eps=nan", lambda t: games.three_rater_cycle(float("nan")), "eps"),
    ("contextual num_prompts=0", lambda t: games.random_contextual_preference_game(_key(), 0, 3), "num_prompts"),
    ("blotto soldiers=0", lambda t: games.colonel_blotto(0, 2), "soldiers"),
    ("blotto soldiers=True", lambda t: games.colonel_blotto(True, 2), "soldiers"),
    ("blotto battlefields=2.5", lambda t: games.colonel_blotto(3, 2.5), "battlefields"),
    ("rps scale=True", lambda t: games.rock_paper_scissors(True), "rock_beats_scissors"),
    ("rps scale='2'", lambda t: games.rock_paper_scissors("2"), "rock_beats_scissors"),
    ("bernoulli shape (0,)", lambda t: games.bernoulli_game(_key(), (0, 2)), "shape"),
    ("bernoulli shape 2.5", lambda t: games.bernoulli_game(_key(), (2.5, 2)), "shape"),
    ("bernoulli constant_sum=1", lambda t: games.bernoulli_game(_key(), (2, 2), constant_sum=1), "constant_sum"),
    ("bilinear n=0", lambda t: games.random_bilinear_sum(_key(), 0, 2), "n"),
    ("bilinear spread='x'", lambda t: games.random_bilinear_sum(_key(), 2, 2, spread="x"), "spread"),
    ("least squares dim=-1", lambda t: games.random_least_squares(_key(), 3, -1), "dim"),
    ("least squares noise=-1", lambda t: games.random_least_squares(_key(), 3, 2, noise=-1.0), "noise"),
    ("annotator sum k=0", lambda t: games.random_annotator_preference_sum(_key(), 2, 0), "k"),
    ("payoff_table missing file", lambda t: games.payoff_table(str(t / "nope.csv")), "source"),
    ("payoff_table index 1e9", lambda t: games.payoff_table(_csv(t, "1000000000,0,0.5,0.5\n")), "source"),
    ("payoff_table num_players=0", lambda t: games.payoff_table(W2, num_players=0), "num_players"),
    ("elo counts negative", lambda t: solvers.elo(W2, np.array([[0, -3], [-3, 0]])), "counts"),
    ("elo counts nan", lambda t: solvers.elo(W2, np.array([[0, np.nan], [1, 0]])), "counts"),
    ("elo counts huge", lambda t: solvers.elo(W2, np.array([[0, 1e300], [1e300, 0]])), "counts"),
    ("elo counts shape", lambda t: solvers.elo(W2, np.ones((3, 3))), "counts"),
    ("elo prior negative", lambda t: solvers.elo(W2, prior=-1.0), "prior"),
    ("elo prior nan", lambda t: solvers.elo(W2, prior=float("nan")), "prior"),
    ("elo iters 0", lambda t: solvers.elo(W2, iters=0), "iters"),
    ("elo iters -5", lambda t: solvers.elo(W2, iters=-5), "iters"),
    ("nash_averaging eps 0.7", lambda t: solvers.nash_averaging(W2, eps=0.7), "eps"),
    ("nash_averaging eps 0", lambda t: solvers.nash_averaging(W2, eps=0.0), "eps"),
    ("nash_averaging steps 0", lambda t: solvers.nash_averaging(W2, steps=0), "steps"),
    ("bradley_terry nan", lambda t: solvers.fit_bradley_terry(np.array([[0.5, np.nan], [0.5, 0.5]])), "preference"),
    ("bradley_terry not square", lambda t: solvers.fit_bradley_terry(np.ones((2, 3)) * 0.5), "preference"),
    ("bradley_terry > 1", lambda t: solvers.fit_bradley_terry(RPS * 2), "preference"),
    ("bradley_terry weights < 0", lambda t: solvers.fit_bradley_terry(RPS, -np.ones((3, 3))), "pair_weights"),
    ("bradley_terry steps 0", lambda t: solvers.fit_bradley_terry(RPS, steps=0), "steps"),
    ("solve max_steps 2**40", lambda t: nashax.solve(solvers.mwu(0.1), games.rock_paper_scissors(), _key(),
                                                     tol=1e-3, max_steps=2 ** 40), "max_steps"),
    ("solve tol 'x'", lambda t: nashax.solve(solvers.mwu(0.1), games.rock_paper_scissors(), _key(),
                                             tol="x", max_steps=10), "tol"),
    ("solve max_steps True", lambda t: nashax.solve(solvers.mwu(0.1), games.rock_paper_scissors(), _key(),
                                                    tol=1e-3, max_steps=True), "max_steps"),
    ("run num_steps 1j", lambda t: nashax.run(solvers.mwu(0.1), games.rock_paper_scissors(), _key(),
                                              num_steps=1j, every=1), "num_steps"),
    ("regularized_argmax nan", lambda t: D.regularized_argmax(jnp.array([0.0, jnp.nan]), jnp.log(jnp.array([0.5, 0.5])),
                                                              0.1, D.chi_squared()), "reward"),
    ("divergence shapes", lambda t: D.reverse_kl()(jnp.log(jnp.ones(3) / 3), jnp.log(jnp.ones(4) / 4)), "log_p"),
    ("mwu eta='x'", lambda t: solvers.mwu("x"), "eta"),
    ("mwu eta=1j", lambda t: solvers.mwu(1j), "eta"),
    ("nash_md eta=True", lambda t: solvers.nash_md(True), "eta"),
    ("egpo eta=None", lambda t: solvers.egpo(None), "eta"),
    ("alpharank 1x1", lambda t: solvers.alpharank.alpharank(np.zeros((1, 1)), 1.0, 10, single_population=True),
     "payoffs"),
    ("alpharank one action each", lambda t: solvers.alpharank.alpharank(np.zeros((2, 1, 1)), 1.0, 10), "payoffs"),
    ("rgucb delta='x'", lambda t: solvers.ranking.response_graph_ucb(_key(), np.full((2, 2, 2), 0.5), "x"), "delta"),
    ("rgucb delta=1j", lambda t: solvers.ranking.response_graph_ucb(_key(), np.full((2, 2, 2), 0.5), 1j), "delta"),
]


@pytest.mark.parametrize("label,call,name", API, ids=[a[0] for a in API])
def test_malformed_api_input_is_refused_naming_the_argument(label, call, name, tmp_path):
  """Each hand-written malformed input raises ValueError whose message starts with (or names) the argument."""
  with pytest.raises(ValueError) as e:
    call(tmp_path)
  assert name in str(e.value).split(":")[0] or f"{name}:" in str(e.value), str(e.value)


def _toml(d):
  """A config dict as TOML (``solver`` as a ``[[solver]]`` table; JSON literals are TOML literals here)."""
  top = [f"{k} = {json.dumps(v)}" for k, v in d.items() if not isinstance(v, dict)]
  body = []
  for sec, table in d.items():
    if isinstance(table, dict):
      body.append(f"[[{sec}]]" if sec == "solver" else f"[{sec}]")
      body += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
  return "\n".join(top + body) + "\n"


def _patched(base, section, key, value):
  d = json.loads(json.dumps(base))
  d[section][key] = value
  return d


# 56 API inputs + 6 sweep configs + 8 train configs + the CLI cases below: more than the 60 the issue asks for.
SWEEP_CLI = [
    ("solver eta true", _patched(SWEEP, "solver", "eta", True), "solver.eta"),
    ("run steps 2**40", _patched(SWEEP, "run", "steps", 2 ** 40), "run.steps"),
    ("run seeds 0", _patched(SWEEP, "run", "seeds", 0), "run.seeds"),
    ("run seed -1", _patched(SWEEP, "run", "seed", -1), "run.seed"),
    ("game size 0", _patched(SWEEP, "game", "size", 0), "game.size"),
    ("run chunk 1.5", _patched(SWEEP, "run", "chunk", 1.5), "run.chunk"),
]

TRAIN_CLI = [
    ("oracle seed 'x'", _patched(TRAIN, "oracle", "seed", "x"), "oracle.seed"),
    ("oracle seed 1.5", _patched(TRAIN, "oracle", "seed", 1.5), "oracle.seed"),
    ("oracle seed -1", _patched(TRAIN, "oracle", "seed", -1), "oracle.seed"),
    ("model mlp_dim true", _patched(TRAIN, "model", "mlp_dim", True), "model.mlp_dim"),
    ("model embed_dim 'x'", _patched(TRAIN, "model", "embed_dim", "x"), "model.embed_dim"),
    ("train exact 1", _patched(TRAIN, "train", "exact", 1), "train.exact"),
    ("train lr 'big'", _patched(TRAIN, "train", "lr", "big"), "train.lr"),
    ("run eval_every 2**40", _patched(TRAIN, "run", "eval_every", 2 ** 40), "run.eval_every"),
]


def _one_line_exit_2(capsys, argv, name):
  rc = cli.main(argv)
  err = capsys.readouterr().err
  assert rc == 2, err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
  assert name in err, err
  return err


@pytest.mark.parametrize("label,cfg,name", SWEEP_CLI + TRAIN_CLI, ids=[a[0] for a in SWEEP_CLI + TRAIN_CLI])
def test_malformed_config_is_one_line_and_exit_2(label, cfg, name, tmp_path, capsys):
  """A malformed config through the CLI: exit 2, one line on stderr naming the key, no traceback."""
  path = tmp_path / "c.toml"
  path.write_text(_toml(cfg))
  if "solver" in cfg:
    cmd = ["sweep", str(path), "--out", str(tmp_path / "o"), "--quiet", "--no-plots"]
  else:
    cmd = ["train", str(path), "--out", str(tmp_path / "o"), "--quiet"]
  _one_line_exit_2(capsys, cmd, name)


def test_cli_user_errors_are_one_line_and_internal_errors_ask_for_a_report(sweep_ref, tmp_path, capsys,
                                                                           monkeypatch):
  """Missing and misnamed configs, an unwritable output folder, damaged state files (named), NaN in training
  (with the step and the value): one line, exit 2. An internal error: its traceback and a request to report."""
  import shutil

  cfg = tmp_path / "s.toml"
  cfg.write_text(_toml(SWEEP))
  _one_line_exit_2(capsys, ["sweep", str(tmp_path / "missing.toml")], "config")
  _one_line_exit_2(capsys, ["train", str(tmp_path / "missing.toml")], "config")
  (tmp_path / "file").write_text("x")
  _one_line_exit_2(capsys, ["sweep", str(cfg), "--out", str(tmp_path / "file" / "sub"), "--quiet"], "out")
  bad = tmp_path / "bad"
  shutil.copytree(sweep_ref, bad)
  (bad / "manifest.json").write_text('{"fingerprint": "ab')
  _one_line_exit_2(capsys, ["sweep", str(cfg), "--out", str(bad), "--quiet"], "manifest.json")
  _one_line_exit_2(capsys, ["plot", str(tmp_path / "nothing")], "results")
  tr = tmp_path / "t.toml"
  tr.write_text(_toml(_patched(TRAIN, "train", "lr", 1e30)))
  err = _one_line_exit_2(capsys, ["train", str(tr), "--out", str(tmp_path / "nan"), "--quiet"], "step")
  assert "nan" in err.lower() or "inf" in err.lower()
  exp = tmp_path / "nan" / "experiment.json"
  exp.write_text(exp.read_text()[:10])
  tr.write_text(_toml(TRAIN))
  _one_line_exit_2(capsys, ["train", str(tr), "--out", str(tmp_path / "nan"), "--quiet"], "experiment.json")

  def boom(*a, **k):
    raise RuntimeError("an internal bug")

  monkeypatch.setattr(sweeps, "run_sweep", boom)
  assert cli.main(["sweep", str(cfg), "--out", str(tmp_path / "o2"), "--quiet"]) == 1
  err = capsys.readouterr().err
  assert "Traceback" in err and "RuntimeError: an internal bug" in err and "please report" in err


# ----------------------------------------------------------------------------- real SIGKILL at 5 moments (slow)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sweep", "train"])
def test_real_sigkill_at_five_moments_resumes_bit_for_bit(kind, sweep_ref, train_ref, tmp_path):
  """A real process SIGKILLs itself at its k-th file write (5 values of k, chosen at random) and a resume in
  this process reproduces the uninterrupted run's tables / metrics byte for byte."""
  call = (f"sweeps.run_sweep(json.loads({json.dumps(json.dumps(SWEEP))}), OUT, progress=False)" if kind == "sweep"
          else f"E.run_experiment(json.loads({json.dumps(json.dumps(TRAIN))}), OUT, progress=False)")
  code = textwrap.dedent("""
      import os, signal, json, sys
      from nashax import _files, sweeps
      from nashax.policies import experiment as E
      OUT, K = sys.argv[1], int(sys.argv[2])
      real, n = _files.atomic_write, [0]
      def write(path, data):
        n[0] += 1
        if n[0] == K:
          os.kill(os.getpid(), signal.SIGKILL)
        real(path, data)
      _files.atomic_write = write
      """) + call + "\n"
  from nashax.policies import experiment as E

  writes = 16 if kind == "sweep" else 6  # the atomic writes of an uninterrupted run (counted in the fast tests)
  for k in np.random.default_rng(5).choice(np.arange(1, writes + 1), 5, replace=False):
    out = str(tmp_path / f"k{k}")
    r = subprocess.run([sys.executable, "-c", code, out, str(k)], cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    if kind == "sweep":
      sweeps.run_sweep(SWEEP, out, **QUIET)
      _same_sweep(sweep_ref, out)
    else:
      E.run_experiment(TRAIN, out, **QUIET)
      assert _metrics(out) == _metrics(train_ref)
