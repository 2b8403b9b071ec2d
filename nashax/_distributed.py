"""JAX's multi-process runtime for nashax's commands: joining a run, global meshes, who writes what.

One process per host (or per accelerator group), all running the same
program; process 0 also runs the coordinator. nashax adds no scheduler of its
own: ``initialize`` checks the launch parameters, then calls
``jax.distributed.initialize``; after it ``jax.devices()`` lists the devices
of every process and a ``jax.sharding.Mesh`` over them is global.

- ``initialize(coordinator, num_processes, process_id)``: the arguments, or
  the environment variables ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``
  and ``JAX_PROCESS_ID``, or ``coordinator="auto"`` (JAX's own detection on
  SLURM, TPU pod slices, Open MPI and Kubernetes). With an explicit
  coordinator, a preflight handshake on the coordinator's port (before JAX's
  coordinator starts there) checks, within ``timeout`` seconds, that every
  process arrived with the same process count and a distinct id, so a wrong
  address, a missing process, a repeated id or mismatched counts is a
  ``ValueError`` naming the flag, never a hang or an abort.
- ``is_writer()``: True on process 0 only. nashax's rule is that each file
  of a sweep or run folder is written by exactly one process: process 0
  writes every nashax file (manifests, chunks, tables, metrics, plots, the
  folder lock); orbax checkpoints are written by all processes together,
  each its own shards, with process 0 writing the metadata.
- ``on_writer(fn)``: runs ``fn`` on process 0 and hands its JSON-able result
  (or its ``ValueError``) to every process.
- ``writer_lock(folder)``: the folder lock, taken by process 0 for all.
- ``global_mesh(shape, names)``, ``put(tree, shardings)``, ``to_host(x)``:
  a mesh over all devices, host values placed on it (each process supplies
  its own devices' slices), and values gathered back to every host.
- ``peer_lost(e)`` and ``exit_now``: a failed collective because another
  process died is recognised, and the command stops at once with its message
  (without JAX's shutdown barrier, which would wait for the dead process).

Certifies:
  Nothing numeric; tests/test_multihost.py runs two processes on localhost
  and checks that sweeps and training equal the one-process runs, which
  process writes each file, and the errors above.

References:
  JAX, "Using JAX in multi-host and multi-process environments"
  (https://docs.jax.dev/en/latest/multi_process.html).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from typing import Any, Callable, Iterator, Mapping, NamedTuple, Optional, Sequence

__all__ = ["Runtime", "initialize", "parse_coordinator", "is_writer", "process_index", "process_count",
           "active", "on_writer", "broadcast_json", "writer_lock", "sync", "global_mesh", "put", "to_host",
           "peer_lost",
           "exit_now", "DEFAULT_TIMEOUT", "DEFAULT_HEARTBEAT"]

DEFAULT_TIMEOUT = 300
DEFAULT_HEARTBEAT = 60
_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class Runtime(NamedTuple):
  """The process's place in a run.

  Attributes:
    process_id: this process's index (0 runs the coordinator and writes nashax's files).
    num_processes: processes in the run (1: not distributed).
    coordinator: ``HOST:PORT`` of the coordinator, ``"auto"``, or None for a single process.
  """

  process_id: int
  num_processes: int
  coordinator: Optional[str]


def parse_coordinator(address: str) -> tuple[str, int]:
  """``"HOST:PORT"`` (``"[v6]:PORT"`` for IPv6) as ``(host, port)``.

  Raises:
    ValueError: naming ``--coordinator`` when it is not ``HOST:PORT`` with a port in 1..65535.
  """
  if not isinstance(address, str) or ":" not in address:
    raise ValueError(f"--coordinator: expected HOST:PORT, got {address!r}")
  host, _, port = address.rpartition(":")
  host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
  if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
    raise ValueError(f"--coordinator: expected HOST:PORT with a port in 1..65535, got {address!r}")
  return host, int(port)


def _int_arg(name: str, value: Any, lo: int) -> int:
  if isinstance(value, str):
    value = value.strip()
    if not value.lstrip("-").isdigit():
      raise ValueError(f"{name}: expected an integer, got {value!r}")
    value = int(value)
  if isinstance(value, bool) or not isinstance(value, int) or value < lo:
    raise ValueError(f"{name}: expected an integer >= {lo}, got {value!r}")
  return value


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None, *, timeout: float = DEFAULT_TIMEOUT,
               heartbeat_timeout: float = DEFAULT_HEARTBEAT, environ: Optional[Mapping[str, str]] = None,
               log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True)) -> Runtime:
  """Joins a multi-process run (or does nothing when the process runs alone).

  Must be called before any JAX computation. Arguments left None are read
  from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
  ``JAX_PROCESS_ID``; with no coordinator from either, the process runs
  alone and nothing is initialized.

  Args:
    coordinator: ``HOST:PORT`` of process 0 (the same string for every
      process; process 0 binds the port), or ``"auto"`` to let JAX detect a
      SLURM job, a TPU pod slice, Open MPI or Kubernetes.
    num_processes: processes in the run (with an explicit coordinator).
    process_id: this process's index, ``0 <= process_id < num_processes``.
    timeout: seconds to wait for every process to join (the preflight and
      ``jax.distributed.initialize``'s ``initialization_timeout`` each), and
      at the end for every process to reach JAX's shutdown barrier (process
      0 may still be writing tables or plots when the others finish).
    heartbeat_timeout: seconds without a heartbeat after which JAX declares a
      process dead and stops the others.
    environ: the environment to read (default ``os.environ``).
    log: where the one-line joining message goes.

  Returns:
    ``Runtime``.

  Raises:
    ValueError: naming the flag, for a malformed address or count, an id out
      of range, a coordinator host that is not this machine (process 0), a
      port in use, a process that does not arrive within ``timeout``,
      processes that disagree on the count or share an id, JAX already
      running a computation, or processes with different device counts.
  """
  env = os.environ if environ is None else environ
  coordinator = coordinator if coordinator is not None else env.get(_ENV[0]) or None
  if num_processes is None and env.get(_ENV[1]):
    num_processes = env[_ENV[1]]
  if process_id is None and env.get(_ENV[2]):
    process_id = env[_ENV[2]]
  for name, v in (("--timeout", timeout), ("--heartbeat-timeout", heartbeat_timeout)):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 1:
      raise ValueError(f"{name}: expected a number of seconds >= 1, got {v!r}")
  if coordinator is None:
    if num_processes not in (None, 1, "1") or process_id not in (None, 0, "0"):
      raise ValueError("--coordinator: missing; --num-processes / --process-id (or JAX_NUM_PROCESSES / "
                       "JAX_PROCESS_ID) need the coordinator's HOST:PORT (--coordinator or "
                       "JAX_COORDINATOR_ADDRESS)")
    return Runtime(0, 1, None)
  import jax

  if coordinator == "auto":
    if num_processes is not None or process_id is not None:
      raise ValueError("--coordinator: 'auto' takes the process count and id from the cluster; do not give "
                       "--num-processes / --process-id with it")
    _jax_initialize(jax, dict(initialization_timeout=int(timeout),
                              heartbeat_timeout_seconds=int(heartbeat_timeout),
                              shutdown_timeout_seconds=int(timeout)))
    rt = Runtime(jax.process_index(), jax.process_count(), "auto")
  else:
    host, port = parse_coordinator(coordinator)
    if num_processes is None or process_id is None:
      raise ValueError(f"--num-processes / --process-id: both are needed with --coordinator {coordinator}")
    n = _int_arg("--num-processes", num_processes, 1)
    i = _int_arg("--process-id", process_id, 0)
    if i >= n:
      raise ValueError(f"--process-id: {i} is out of range for --num-processes {n} (0..{n - 1})")
    if n == 1:
      return Runtime(0, 1, None)
    log(f"nashax: process {i} of {n} joining the run at {coordinator} (waiting up to {timeout:g} s)")
    _preflight(host, port, n, i, float(timeout))
    _jax_initialize(jax, dict(coordinator_address=coordinator, num_processes=n, process_id=i,
                              initialization_timeout=int(timeout),
                              heartbeat_timeout_seconds=int(heartbeat_timeout),
                              shutdown_timeout_seconds=int(timeout)))
    rt = Runtime(i, n, coordinator)
    if jax.process_count() != n or jax.process_index() != i:
      raise ValueError(f"--num-processes: JAX reports process {jax.process_index()} of "
                       f"{jax.process_count()}, not {i} of {n}")
  counts = broadcast_json(jax.local_device_count(), all_send=True)
  if len(set(counts)) != 1:
    raise ValueError(f"--num-processes: the processes have different numbers of local devices {counts}; a "
                     "global mesh needs the same number on each")
  return rt


def _jax_initialize(jax, kwargs: dict) -> None:
  try:
    jax.distributed.initialize(**kwargs)
  except RuntimeError as e:
    if "before any JAX" in str(e) or "already" in str(e):
      raise ValueError(f"--coordinator: jax.distributed.initialize must run before any JAX computation "
                       f"in this process ({e})") from None
    raise


def _local_host(host: str) -> bool:
  """Whether ``host`` resolves to an address of this machine (an address a socket can bind)."""
  try:
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
  except socket.gaierror:
    return False
  for family, _, _, _, addr in infos:
    with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_STREAM) as s:
      s.bind((addr[0], 0))
      return True
  return False


def _send(conn: socket.socket, obj: dict) -> None:
  conn.sendall(json.dumps(obj).encode() + b"\n")


def _recv(conn: socket.socket, deadline: float) -> Optional[dict]:
  buf = b""
  while not buf.endswith(b"\n"):
    conn.settimeout(max(deadline - time.monotonic(), 0.01))
    try:
      part = conn.recv(4096)
    except (socket.timeout, OSError):
      return None
    if not part:
      return None
    buf += part
  try:
    return json.loads(buf.decode())
  except ValueError:
    return None


def _preflight(host: str, port: int, n: int, i: int, timeout: float) -> None:
  """Every process meets process 0 on the coordinator's port before JAX starts its coordinator there."""
  deadline = time.monotonic() + timeout
  where = f"{host}:{port}"
  hello = {"nashax": 1, "process_id": i, "num_processes": n}
  if i == 0:
    if not _local_host(host):
      raise ValueError(f"--coordinator: {host} is not an address of this machine, and process 0 runs the "
                       "coordinator; give process 0's own host name or address to every process")
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
      srv.bind(("", port))
    except OSError as e:
      srv.close()
      raise ValueError(f"--coordinator: cannot listen on port {port} ({e.strerror or e}); is another run "
                       "using it? choose a free port") from None
    srv.listen(max(n, 8))
    peers: dict = {}
    problems: list = []
    try:
      while len(peers) < n - 1 and time.monotonic() < deadline:
        srv.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
          conn, _ = srv.accept()
        except (socket.timeout, OSError):
          break
        msg = _recv(conn, min(deadline, time.monotonic() + 5))
        if not msg or msg.get("nashax") != 1:
          conn.close()
          continue
        j, m = msg.get("process_id"), msg.get("num_processes")
        if m != n:
          problems.append(f"process {j} was started with --num-processes {m}, process 0 with {n}")
        elif not isinstance(j, int) or not 1 <= j < n or j in peers:
          problems.append(f"a second process claims --process-id {j}" if j in peers or j == 0 else
                          f"--process-id {j} is out of range 0..{n - 1}")
        if problems:
          _send(conn, {"error": problems[-1]})
          conn.close()
          break
        peers[j] = conn
      missing = [j for j in range(1, n) if j not in peers]
      if missing and not problems:
        problems.append(f"processes {missing} of {n} did not reach the coordinator at {where} within "
                        f"{timeout:g} s (not started, or given another --coordinator)")
      for conn in peers.values():
        _send(conn, {"error": problems[0]} if problems else {"ok": True})
      for conn in peers.values():  # the peers close first, so that the port has no TIME_WAIT on this side
        _recv(conn, time.monotonic() + 5)
        conn.close()
    finally:
      srv.close()
    if problems:
      raise ValueError(f"--num-processes: {problems[0]}")
    return
  reply = None
  while time.monotonic() < deadline:
    try:
      conn = socket.create_connection((host, port), timeout=max(min(deadline - time.monotonic(), 5), 0.01))
    except OSError:
      time.sleep(0.2)
      continue
    with conn:
      _send(conn, hello)
      reply = _recv(conn, deadline)
    if reply is not None:
      break
    time.sleep(0.2)
  if reply is None:
    raise ValueError(f"--coordinator: process {i} could not reach process 0 at {where} within {timeout:g} s "
                     "(is process 0 running there with the same --coordinator, and the port reachable?)")
  if "error" in reply:
    raise ValueError(f"--num-processes: {reply['error']}")


def active() -> bool:
  """Whether this process has joined a multi-process run (without starting JAX's backends)."""
  if "jax" not in sys.modules:
    return False
  import jax

  return jax.distributed.is_initialized()


def process_index() -> int:
  """This process's index (0 when JAX runs one process)."""
  import jax

  return jax.process_index()


def process_count() -> int:
  """Processes in the run."""
  import jax

  return jax.process_count()


def is_writer() -> bool:
  """True on the process that writes nashax's files (process 0)."""
  return process_index() == 0


def broadcast_json(obj: Any, *, all_send: bool = False) -> Any:
  """Process 0's JSON-able ``obj`` on every process (``all_send``: a list of every process's ``obj``).

  A collective: every process must call it, in the same order.
  """
  if process_count() == 1:
    return [obj] if all_send else obj
  import numpy as np
  from jax.experimental import multihost_utils as mu

  data = np.frombuffer(json.dumps(obj).encode(), np.uint8)
  if all_send:
    sizes = mu.process_allgather(np.asarray([len(data)], np.int32))
    width = int(np.max(sizes))
    padded = np.zeros(width, np.uint8)
    padded[:len(data)] = data
    rows = mu.process_allgather(padded)
    return [json.loads(bytes(r[:int(s)]).decode()) for r, s in zip(rows, np.ravel(sizes))]
  size = int(mu.broadcast_one_to_all(np.asarray(len(data), np.int32)))
  padded = np.zeros(size, np.uint8)
  padded[:min(size, len(data))] = data[:size]
  return json.loads(bytes(mu.broadcast_one_to_all(padded)).decode())


def on_writer(fn: Callable[[], Any]) -> Any:
  """``fn()`` run on process 0 only; its JSON-able result returned on every process.

  A ``ValueError`` raised by ``fn`` on process 0 is raised on every process
  with the same message (the others say it came from process 0).
  """
  if process_count() == 1:
    return fn()
  res = None
  if is_writer():
    try:
      res = {"ok": fn()}
    except ValueError as e:
      res = {"error": str(e)}
  res = broadcast_json(res)
  if "error" in res:
    raise ValueError(res["error"] if is_writer() else f"{res['error']} (reported by process 0)")
  return res["ok"]


@contextlib.contextmanager
def writer_lock(folder: str, name: str = "out") -> Iterator[None]:
  """Process 0 creates ``folder`` and holds its lock (``_files.folder_lock``) for the whole run.

  Raises:
    ValueError: on every process, when process 0 cannot create or lock the folder.
  """
  from nashax import _files

  with contextlib.ExitStack() as stack:
    def take():
      _files.make_folder(folder, name)
      stack.enter_context(_files.folder_lock(folder, name))
    on_writer(take)
    yield


def sync(name: str) -> None:
  """A barrier of all processes (nothing with one process)."""
  if process_count() > 1:
    from jax.experimental import multihost_utils as mu

    mu.sync_global_devices(name)


def global_mesh(shape: Sequence[int], names: Sequence[str], devices: Optional[Sequence] = None):
  """A ``Mesh`` of ``shape`` over ``devices`` (default: every process's, ``jax.devices()``).

  Devices are laid out process by process (each process's devices contiguous
  along the last axes), so the inner axes stay within a host.

  Raises:
    ValueError: naming ``mesh`` when ``prod(shape)`` differs from the number of devices.
  """
  import jax
  import numpy as np

  devs = list(devices) if devices is not None else jax.devices()
  if int(np.prod(shape)) != len(devs) or len(shape) != len(names):
    raise ValueError(f"mesh: axes {dict(zip(names, shape))} need {int(np.prod(shape))} devices, "
                     f"there are {len(devs)}")
  devs = sorted(devs, key=lambda d: (d.process_index, d.id))
  return jax.sharding.Mesh(np.asarray(devs, dtype=object).reshape(tuple(shape)), tuple(names))


def put(tree: Any, shardings: Any) -> Any:
  """Host values (the same on every process) placed on ``shardings`` (one per leaf, or one for all).

  Each process builds only its own devices' slices, so this works when the
  shardings span several processes.
  """
  import jax
  import numpy as np

  if not isinstance(shardings, jax.sharding.Sharding):
    return jax.tree.map(lambda x, s: put(x, s), tree, shardings)

  def one(x):
    if getattr(shardings, "is_fully_addressable", True) or (isinstance(x, jax.Array) and
                                                            not x.is_fully_addressable):
      return jax.device_put(x, shardings)  # local to local, or already spanning the processes
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.wrap_key_data(one(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    h = np.asarray(x)
    return jax.make_array_from_callback(h.shape, shardings, lambda idx: h[idx])
  return jax.tree.map(one, tree)


def to_host(x: Any) -> Any:
  """Every leaf as a numpy array of its global value, on every process (a collective for spanning leaves)."""
  import jax
  import numpy as np

  def one(a):
    if not isinstance(a, jax.Array) or a.is_fully_addressable or a.is_fully_replicated:
      return np.asarray(a)
    from jax.experimental import multihost_utils as mu

    return np.asarray(mu.process_allgather(a, tiled=True))
  return jax.tree.map(one, x)


_PEER_SIGNS = ("gloo", "connection closed by peer", "connection reset", "heartbeat", "coordination service",
               "unavailable:", "barrier", "deadline_exceeded")


def peer_lost(e: BaseException) -> bool:
  """Whether ``e`` is a failed collective or coordination call of a multi-process run (another process
  stopped)."""
  if not active():
    return False
  msg = str(e).lower()
  return type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError") and any(s in msg for s in _PEER_SIGNS)


def exit_now(message: str, code: int) -> None:
  """Prints ``message`` to stderr and ends the process at once.

  JAX's exit handler would wait at a shutdown barrier for every process, a
  dead one included; a run that lost a process skips it.
  """
  if message:
    print(message, file=sys.stderr, flush=True)
  sys.stdout.flush()
  os._exit(code)
