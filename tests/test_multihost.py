"""Two processes on localhost under JAX's distributed runtime: sweeps and training equal the one-process
runs, which process writes each file, a killed process stops the run and a restart resumes, and bad
launch parameters are refused in words within a stated timeout.

Each process has 2 fake CPU devices (``--xla_force_host_platform_device_count=2``), so the run has 4;
the one-process reference runs with 4 devices in one process. The coordinator listens on a free loopback
port. Every child process runs under ``subprocess`` timeouts and JAX's own initialization and heartbeat
timeouts, and is killed if the test fails, so nothing outlives the test.
"""

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from nashax import _distributed

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "_multihost_worker.py")
TIMEOUT = 480  # seconds for one launch of compile-bound processes (a loaded 2-core machine needs minutes)

SWEEP = """
name = "mh"
[game]
family = "random_preference"
size = 5
beta = [0.2, 1.0]
[[solver]]
name = "nash_md"
eta = [0.1, 0.5]
[run]
seeds = 4
steps = 2000
every = 100
metrics = ["duality_gap", "exploitability"]
chunk = 4
"""

TRAIN = """
name = "mh"
[model]
vocab_size = 4
num_layers = 1
num_heads = 2
embed_dim = 16
max_len = 2
[oracle]
num_classes = 3
response_len = 1
[train]
algorithm = "online_ipo"
batch_size = 8
num_steps = 6
[run]
eval_every = 2
checkpoint_every = 3
"""


def _port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  return dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT, PYTHONUNBUFFERED="1",
              XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")


def _dist(port: int, n: int, i: int, timeout: int = 120) -> list:
  return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n), "--process-id", str(i),
          "--timeout", str(timeout), "--heartbeat-timeout", "20"]


def _spawn(audit, mode: str, args: list, devices: int = 2, env: dict = None):
  return subprocess.Popen([sys.executable, WORKER, str(audit), mode, *args], cwd=ROOT,
                          env={**_env(devices), **(env or {})}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


@contextlib.contextmanager
def _reaped(procs: list):
  """Kills whatever is still running when the block ends (a failed test leaves no process behind)."""
  try:
    yield procs
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
      p.wait()


def _finish(procs: list, timeout: float = TIMEOUT) -> list:
  """``(returncode, stdout and stderr)`` of each process; fails the test if one runs past ``timeout``."""
  deadline = time.monotonic() + timeout
  res = []
  for p in procs:
    try:
      out, err = p.communicate(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail(f"a process ran past {timeout} s")
    res.append((p.returncode, out + _clean(err)))
  return res


def _clean(err: str) -> str:
  """stderr without JAX's and gloo's routine log lines."""
  keep = [ln for ln in err.splitlines() if not re.match(r"^([IW]\d{4} |\[Gloo\])", ln)]
  return "\n".join(keep)


def _writers(audits: dict, folder) -> dict:
  """``{file: processes that wrote it}`` for the files under ``folder``, a temporary file counted as its
  target (``name.<pid>.tmp`` -> ``name``)."""
  folder = os.path.abspath(folder)
  out: dict = {}
  for proc, path in audits.items():
    if not os.path.exists(path):
      continue
    with open(path) as f:
      for line in f.read().splitlines():
        if line.startswith(folder + os.sep) or line == folder:
          out.setdefault(re.sub(r"\.\d+\.tmp$", "", line), set()).add(proc)
  return out


def _one_writer(audits: dict, folder) -> dict:
  w = _writers(audits, folder)
  shared = {f: p for f, p in w.items() if len(p) > 1}
  assert not shared, f"files written by two processes: {shared}"
  assert w, "the audit saw no writes"
  return w


def test_sweep_two_processes_kill_resume_equals_one_process(tmp_path):
  """`nashax sweep` on 2 processes x 2 devices: process 1 killed with SIGKILL after a chunk stops process 0
  with a message naming the lost process (within the 20 s heartbeat timeout and a margin); all started
  again, it resumes from the finished chunks, and its results.csv and traces.npz are byte for byte those
  of one process with 4 devices (the independent source: the one-process run). Every file of the folder
  is written by one process only, and process 1 writes none."""
  cfg = tmp_path / "mh.toml"
  cfg.write_text(SWEEP)
  one, two = tmp_path / "one", tmp_path / "two"
  flags = ["--quiet", "--no-plots"]
  audits = {i: tmp_path / f"audit{i}" for i in range(2)}
  port = _port()
  sweep_one = ["sweep", str(cfg), "--out", str(one), *flags]
  with _reaped([_spawn(tmp_path / "audit_one", "cli", sweep_one, devices=4)]
               + [_spawn(audits[i], "cli", ["sweep", str(cfg), "--out", str(two), *flags, *_dist(port, 2, i)])
                  for i in range(2)]) as procs:
    ref, p0, p1 = procs
    chunks = two / "chunks"
    deadline = time.monotonic() + TIMEOUT
    while not (chunks.is_dir() and any(f.endswith(".npz.sha256") for f in os.listdir(chunks))):
      assert time.monotonic() < deadline, "no chunk within the timeout"
      assert p0.poll() is None and p1.poll() is None, _clean(p0.stderr.read() + p1.stderr.read())[-3000:]
      time.sleep(0.01)
    os.kill(p1.pid, signal.SIGKILL)
    t = time.monotonic()
    (rc0, err0), = _finish([p0], timeout=60)
    stopped = time.monotonic() - t
    (rc_ref, err_ref), = _finish([ref])
  assert rc_ref == 0, err_ref[-3000:]
  assert rc0 != 0, err0[-2000:]
  assert ("another process of the run died" in err0 or "another task died" in err0), err0[-3000:]
  assert stopped < 60, stopped
  total = len(os.listdir(one / "chunks")) // 2
  left = len([f for f in os.listdir(chunks) if f.endswith(".npz")])
  assert 1 <= left < total, (left, total)
  assert not (two / "results.csv").exists()

  port = _port()
  with _reaped([_spawn(audits[i], "cli", ["sweep", str(cfg), "--out", str(two), *flags, *_dist(port, 2, i)])
                for i in range(2)]) as procs:
    res = _finish(procs)
  assert [r for r, _ in res] == [0, 0], [(r, e[-1500:]) for r, e in res]
  assert (one / "results.csv").read_bytes() == (two / "results.csv").read_bytes()
  for name in ("traces.npz", "results.npz"):
    with np.load(one / name) as a, np.load(two / name) as b:
      assert sorted(a.files) == sorted(b.files)
      for k in a.files:
        np.testing.assert_array_equal(a[k], b[k])
  w = _one_writer(audits, two)
  assert {p for ps in w.values() for p in ps} == {0}
  assert str(two / "results.csv") in w and str(two / "chunks" / "c00000.npz") in w


def _restore(folder, step, mc, cfg_train, oracle):
  """Step ``step`` of a checkpoint folder restored in this process on one device, as numpy leaves."""
  import jax

  from nashax.policies import checkpoint, train

  trainer = train.make_trainer(mc, cfg_train, oracle)
  like = trainer.init(jax.random.key(cfg_train.seed))
  ck = checkpoint.Checkpoints(str(folder))
  try:
    assert ck.damage(step) is None
    return jax.tree.map(np.asarray, ck.restore(step, like))
  finally:
    ck.close()


def test_train_two_processes_resume_equals_one_process_and_loads_in_one(tmp_path):
  """`nashax train --fsdp 2` on 2 processes x 2 devices (mesh data 2 x fsdp 2, parameters split), stopped
  after 3 steps and resumed from its orbax checkpoint by a second launch, writes the metrics of one
  uninterrupted process with 4 devices and the same mesh, and its final checkpoint (written by both
  processes) restores in this one-device process to the reference run's parameters (the independent
  source: the one-process run). Equal up to float32 rounding (rtol 1e-6, a few ulps): the cross-process
  all-reduce (gloo) may add the devices' partial sums in another order than the in-process one (measured:
  the parameters identical, one mean loss 3e-8 apart). Every file of the run folder is written by one
  process; process 1 writes only its own orbax shard files."""
  from nashax.policies import experiment

  cfg = tmp_path / "mh.toml"
  cfg.write_text(TRAIN)
  one, two = tmp_path / "one", tmp_path / "two"
  audits = {i: tmp_path / f"audit{i}" for i in range(2)}
  port = _port()
  env = {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2"}
  with _reaped([_spawn(tmp_path / "audit_one", "cli",
                       ["train", str(cfg), "--out", str(one), "--quiet", "--fsdp", "2"], devices=4)]
               + [_spawn(audits[i], "train", [str(cfg), str(two), "3", "2"],
                         env={**env, "JAX_PROCESS_ID": str(i)})
                  for i in range(2)]) as procs:
    res = _finish(procs)
  assert [r for r, _ in res] == [0, 0, 0], [(r, e[-1500:]) for r, e in res]
  rows = (two / "online_ipo" / "metrics.csv").read_text().splitlines()
  assert len(rows) == 3, rows  # header, step 0, step 2: stopped after step 3

  port = _port()
  with _reaped([_spawn(audits[i], "cli", ["train", str(cfg), "--out", str(two), "--quiet", "--fsdp", "2",
                                          *_dist(port, 2, i)]) for i in range(2)]) as procs:
    res = _finish(procs)
  assert [r for r, _ in res] == [0, 0], [(r, e[-1500:]) for r, e in res]
  assert "resuming from step 3" in res[0][1], res[0][1][-2000:]
  a_rows = np.genfromtxt(one / "online_ipo" / "metrics.csv", delimiter=",", names=True)
  b_rows = np.genfromtxt(two / "online_ipo" / "metrics.csv", delimiter=",", names=True)
  assert a_rows.dtype.names == b_rows.dtype.names and len(a_rows) == len(b_rows) == 4
  for k in a_rows.dtype.names:  # float32 rounding: gloo adds the 4 devices' partial sums in its own order
    np.testing.assert_allclose(b_rows[k], a_rows[k], rtol=1e-6, atol=0, err_msg=k)

  exp = experiment.load_experiment(str(cfg))
  oracle = exp.build_oracle()
  a = _restore(one / "online_ipo" / "checkpoints", 6, exp.model, exp.trains[0], oracle)
  b = _restore(two / "online_ipo" / "checkpoints", 6, exp.model, exp.trains[0], oracle)
  for x, y in zip(jax_leaves(a), jax_leaves(b)):
    np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-8)
  assert int(b.step) == 6
  w = _one_writer(audits, two)
  assert any("process_1" in f for f, p in w.items() if p == {1})  # orbax: process 1 writes its own part
  assert all(p == {0} for f, p in w.items() if not f.split(os.sep + "checkpoints" + os.sep)[-1][:1].isdigit())


def jax_leaves(tree):
  import jax

  return jax.tree.leaves(tree)


def test_bad_launches_are_refused_in_words_within_the_timeout(tmp_path):
  """No process 0 at the address: process 1 says it could not reach the coordinator, exit 2, within its
  5 s timeout plus start-up. Process counts that disagree (2 vs 3), or a third process that never comes:
  both processes exit 2 naming --num-processes. A mesh that does not fit the 4 devices (--fsdp 3): exit 2
  on both, naming fsdp. None of them hangs."""
  cfg = tmp_path / "mh.toml"
  cfg.write_text(TRAIN)
  train = ["train", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]
  t = time.monotonic()
  with _reaped([_spawn(tmp_path / "a", "cli", train + _dist(_port(), 2, 1, timeout=5))]) as procs:
    (rc, err), = _finish(procs, timeout=60)
  assert rc == 2 and "--coordinator: process 1 could not reach process 0 at 127.0.0.1:" in err, err[-2000:]
  assert time.monotonic() - t < 45

  port = _port()
  with _reaped([_spawn(tmp_path / "a", "cli", train + _dist(port, 2, 0, timeout=10)),
                _spawn(tmp_path / "a", "cli", train + _dist(port, 3, 1, timeout=10))]) as procs:
    res = _finish(procs, timeout=60)
  assert [r for r, _ in res] == [2, 2], res
  assert all("--num-processes: process 1 was started with --num-processes 3, process 0 with 2" in e
             for _, e in res), res

  port = _port()
  t = time.monotonic()
  with _reaped([_spawn(tmp_path / "a", "cli", train + _dist(port, 3, i, timeout=5))
                for i in range(2)]) as procs:
    res = _finish(procs, timeout=60)
  assert [r for r, _ in res] == [2, 2], res
  assert all("processes [2] of 3 did not reach the coordinator" in e for _, e in res), res
  assert time.monotonic() - t < 45

  port = _port()
  with _reaped([_spawn(tmp_path / "a", "cli", train + ["--fsdp", "3"] + _dist(port, 2, i))
                for i in range(2)]) as procs:
    res = _finish(procs, timeout=120)
  assert [r for r, _ in res] == [2, 2], res
  assert all("fsdp: 3 does not divide the 4 devices" in e for _, e in res), res


@pytest.mark.parametrize("kw, msg", [
    (dict(coordinator="localhost"), "--coordinator: expected HOST:PORT"),
    (dict(coordinator="localhost:0", num_processes=2, process_id=0), "port in 1..65535"),
    (dict(coordinator="127.0.0.1:1234", num_processes=2), "--num-processes / --process-id: both are needed"),
    (dict(coordinator="127.0.0.1:1234", num_processes=2, process_id=2), "--process-id: 2 is out of range"),
    (dict(coordinator="127.0.0.1:1234", num_processes=0, process_id=0),
     "--num-processes: expected an integer >= 1"),
    (dict(num_processes=2, process_id=1), "--coordinator: missing"),
    (dict(coordinator="auto", num_processes=2), "'auto' takes the process count"),
    (dict(coordinator="127.0.0.1:1234", num_processes=2, process_id=0, timeout=0), "--timeout"),
])
def test_initialize_refuses_bad_arguments_before_joining(kw, msg):
  """Malformed launch parameters are a ValueError naming the flag, before any connection is tried."""
  with pytest.raises(ValueError, match=re.escape(msg)):
    _distributed.initialize(**kw, environ={})


def test_initialize_reads_the_environment_and_runs_alone_without_a_coordinator():
  """No coordinator anywhere: one process, nothing initialized; JAX_NUM_PROCESSES without an address is
  refused; a single-process 'run' of 1 process needs no coordinator."""
  assert _distributed.initialize(environ={}) == _distributed.Runtime(0, 1, None)
  assert _distributed.initialize(environ={"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "1",
                                          "JAX_PROCESS_ID": "0"}) == _distributed.Runtime(0, 1, None)
  with pytest.raises(ValueError, match="--coordinator: missing"):
    _distributed.initialize(environ={"JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": "1"})
  with pytest.raises(ValueError, match="--process-id: expected an integer"):
    _distributed.initialize(environ={"JAX_COORDINATOR_ADDRESS": "127.0.0.1:1", "JAX_NUM_PROCESSES": "2",
                                     "JAX_PROCESS_ID": "one"})
  assert _distributed.parse_coordinator("[::1]:8476") == ("::1", 8476)
