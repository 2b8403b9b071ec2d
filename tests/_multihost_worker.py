"""One process of a multi-process test run: records every file it writes, then runs a nashax command.

Usage: ``python tests/_multihost_worker.py AUDIT_FILE cli ARGS...`` (``nashax.cli.main(ARGS)``) or
``python tests/_multihost_worker.py AUDIT_FILE train CONFIG OUT STOP_AFTER FSDP`` (``run_experiment``
stopped after STOP_AFTER steps (0: not stopped), joining the run from the JAX_* environment variables).

The audit appends, for every file opened for writing, created, or renamed onto from Python (``open``,
``os.open``, ``os.replace``, ``os.rename``), its absolute path to AUDIT_FILE, one line each, written at
once (a process killed with SIGKILL leaves a complete record of what it wrote until then).
"""

import builtins
import io
import os
import sys

_open, _os_open, _replace, _rename = builtins.open, os.open, os.replace, os.rename
_AUDIT = []


def _note(path):
  try:
    os.write(_AUDIT[0], (os.path.abspath(os.fsdecode(path)) + "\n").encode())
  except TypeError:  # a file descriptor, not a path
    pass


def _audited_open(file, mode="r", *a, **k):
  if isinstance(file, (str, bytes, os.PathLike)) and any(c in mode for c in "wax+"):
    _note(file)
  return _open(file, mode, *a, **k)


def _audited_os_open(path, flags, *a, **k):
  if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
    _note(path)
  return _os_open(path, flags, *a, **k)


def _audited_replace(src, dst, *a, **k):
  _note(dst)
  return _replace(src, dst, *a, **k)


def _audited_rename(src, dst, *a, **k):
  _note(dst)
  return _rename(src, dst, *a, **k)


def main():
  _AUDIT.append(_os_open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
  builtins.open = io.open = _audited_open
  os.open, os.replace, os.rename = _audited_os_open, _audited_replace, _audited_rename
  mode, args = sys.argv[2], sys.argv[3:]
  if mode == "cli":
    from nashax import cli

    code = cli.main(args)
    sys.stdout.flush()
    sys.exit(code)
  if mode == "train":
    config, out, stop_after, fsdp = args[0], args[1], int(args[2]), int(args[3])
    from nashax import _distributed

    _distributed.initialize(timeout=120, heartbeat_timeout=20)
    from nashax.policies import experiment

    experiment.run_experiment(config, out, progress=False, stop_after=stop_after or None, fsdp=fsdp)
    sys.exit(0)
  sys.exit(f"unknown mode {mode!r}")


if __name__ == "__main__":
  main()
