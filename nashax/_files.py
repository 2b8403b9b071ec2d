"""Small file helpers shared by sweeps and policy experiments: TOML configs, result folders, integrity.

- ``atomic_write``: a temporary file in the same folder (named after the
  writing process, so two writers never share it), flushed and fsynced, then
  ``os.replace``-d over the target: a reader sees the old file or the new one,
  never half of one.
- ``sha256`` / ``write_checksum`` / ``verify_checksum``: a file's checksum is
  written (atomically) after the file itself, so a file killed half-written, or
  damaged later, has no checksum or a wrong one and is not trusted.
- ``folder_lock``: an exclusive ``fcntl`` lock on ``<folder>/.lock``, so a
  second writer to one output folder is refused in words. The kernel releases
  the lock when its process dies (SIGKILL included), so a lock file left by a
  killed run is stale and taken over.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Callable, Iterator, Optional, Union


def read_toml(path: str) -> dict:
  """Reads a TOML file; a missing file or bad TOML is a ``ValueError`` naming ``config``."""
  try:
    import tomllib
  except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
  if not os.path.isfile(path):
    raise ValueError(f"config: no such file {path!r}")
  with open(path, "rb") as f:
    try:
      return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
      raise ValueError(f"config: {path} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
      raise ValueError(f"config: {path} is not UTF-8 text: {e}") from None


def stem(path: str) -> str:
  """The file name without folder and extension (a config's default name)."""
  return os.path.splitext(os.path.basename(path))[0]


def read_json(path: str, what: str = "state file") -> dict:
  """A JSON object from ``path``; a damaged file is a ``ValueError`` that names it."""
  try:
    with open(path, "rb") as f:
      obj = json.loads(f.read().decode())
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{what} {path} is damaged ({type(e).__name__}: {e}); delete the folder "
                     "to start again") from None
  if not isinstance(obj, dict):
    raise ValueError(f"{what} {path} is damaged (not a JSON object); delete the folder to start again")
  return obj


def check_folder(manifest_path: str, fingerprint: str, what: str) -> Optional[dict]:
  """The manifest already in a results folder, or None; refuses a folder that holds a different ``what``."""
  if not os.path.exists(manifest_path):
    return None
  old = read_json(manifest_path, f"out: the {what} manifest")
  if old.get("fingerprint") != fingerprint:
    folder = os.path.dirname(manifest_path)
    raise ValueError(f"out: {folder} holds a different {what} (fingerprint {old.get('fingerprint')} != "
                     f"{fingerprint}); choose another folder or delete it")
  return old


def make_folder(path: str, name: str = "out") -> None:
  """``os.makedirs(path, exist_ok=True)``, or a ``ValueError`` naming ``name`` when it cannot be created."""
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ValueError(f"{name}: cannot create the folder {path!r}: {e.strerror or e}") from None
  if not os.access(path, os.W_OK):
    raise ValueError(f"{name}: the folder {path!r} is not writable")


def atomic_write(path: str, data: Union[bytes, Callable]) -> None:
  """Writes ``data`` (bytes, or ``write(f)`` of a binary file) to ``path`` atomically and durably."""
  tmp = f"{path}.{os.getpid()}.tmp"
  try:
    with open(tmp, "wb") as f:
      if isinstance(data, (bytes, bytearray)):
        f.write(data)
      else:
        data(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def sha256(path: str) -> str:
  """The hex sha256 of a file's bytes."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _sum_path(path: str) -> str:
  return path + ".sha256"


def write_checksum(path: str) -> str:
  """Writes ``<path>.sha256`` (atomically) after ``path`` is complete; returns the digest."""
  digest = sha256(path)
  atomic_write(_sum_path(path), digest.encode())
  return digest


def verify_checksum(path: str) -> Optional[str]:
  """None when ``path`` matches its ``.sha256``; otherwise why not (missing, no checksum, mismatch)."""
  if not os.path.exists(path):
    return "missing"
  try:
    with open(_sum_path(path), "rb") as f:
      want = f.read().decode().strip()
  except (OSError, UnicodeDecodeError):
    return "no valid checksum file (an interrupted write)"
  if sha256(path) != want:
    return "checksum mismatch (truncated or altered)"
  return None


def remove(path: str) -> None:
  """Removes a file and its checksum, if present."""
  for p in (path, _sum_path(path)):
    with contextlib.suppress(FileNotFoundError):
      os.remove(p)


@contextlib.contextmanager
def folder_lock(folder: str, name: str = "out") -> Iterator[None]:
  """Holds an exclusive lock on ``folder`` (``<folder>/.lock``) for the ``with`` block.

  Raises:
    ValueError: naming ``name`` when another live process holds the folder.
  """
  try:
    import fcntl
  except ModuleNotFoundError:  # no fcntl (Windows): no locking
    yield
    return
  path = os.path.join(folder, ".lock")
  try:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise ValueError(f"{name}: cannot create the lock file {path!r}: {e.strerror or e}") from None
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      try:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
      except OSError:
        holder = "unknown"
      raise ValueError(f"{name}: {folder} is in use by another nashax process (pid {holder}); wait for it "
                       "to finish or choose another folder") from None
    # Ours now (a lock file left by a killed process is not locked, so it is taken over here).
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    try:
      yield
    finally:
      fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)
