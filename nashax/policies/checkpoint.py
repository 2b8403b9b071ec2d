"""orbax save / restore of a whole train state (a plain pytree of arrays), with checksums.

``Checkpoints(directory)`` wraps an ``orbax.checkpoint.CheckpointManager``:
``save(step, state, extra)`` writes ``directory/<step>`` atomically (orbax
writes to a temporary folder and renames it when complete) and then, also
atomically, ``directory/<step>/nashax_manifest.json``: the sha256 of every file
of the step and a JSON-able ``extra`` (the experiment keeps its metrics rows
there). A step is trusted only when its manifest is complete and every file
matches it, so a checkpoint cut short by a kill (no manifest) or damaged later
(a truncated, zeroed or altered file) is never restored: ``restore_latest``
falls back to the newest valid step, with a warning, and refuses in words when
none is valid. Saves are synchronous, so a process killed after ``save``
returns has a complete checkpoint and one killed during it has the previous one.

Under JAX's multi-process runtime every process calls ``save`` and
``restore_latest`` together: orbax writes each process's shards from that
process (and the metadata from process 0), then process 0 alone writes the
manifest, after a barrier, and alone removes invalid steps. The directory must
be visible to every process. A state restores onto any mesh (``like``'s
shardings), so a checkpoint of 2 processes loads in 1, resharded.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any, Callable, Optional

import jax
import orbax.checkpoint as ocp

from nashax import _distributed, _files

__all__ = ["Checkpoints", "MANIFEST", "resume"]

MANIFEST = "nashax_manifest.json"


class Checkpoints:
  """A folder of train-state checkpoints.

  Args:
    directory: where the step folders go (created if absent).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self._max_to_keep = max_to_keep
    self._open()

  def _open(self) -> None:
    opts = ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=True,
                                        enable_async_checkpointing=False)
    self._mngr = ocp.CheckpointManager(self.directory, options=opts)

  def latest(self) -> Optional[int]:
    """The newest complete step (by orbax's record; ``restore_latest`` also checks its files), or None."""
    return self._mngr.latest_step()

  def save(self, step: int, state: Any, extra: Any = None) -> None:
    """Writes ``state`` as step ``step``, then its manifest (checksums and ``extra``), and waits for both."""
    self._mngr.save(int(step), args=ocp.args.StandardSave(state), force=True)
    self._mngr.wait_until_finished()
    _distributed.sync(f"nashax-checkpoint-{int(step)}-saved")
    if _distributed.is_writer():
      folder = os.path.join(self.directory, str(int(step)))
      files = {rel: _files.sha256(os.path.join(folder, rel)) for rel in _walk(folder) if rel != MANIFEST}
      body = json.dumps({"step": int(step), "files": files, "extra": extra}, sort_keys=True).encode()
      _files.atomic_write(os.path.join(folder, MANIFEST), body)
    _distributed.sync(f"nashax-checkpoint-{int(step)}-manifest")

  def restore(self, step: int, like: Any) -> Any:
    """Reads step ``step`` into the structure, shapes, dtypes and shardings of ``like`` (no checks)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self._mngr.restore(int(step), args=ocp.args.StandardRestore(abstract))

  def damage(self, step: int) -> Optional[str]:
    """None when step ``step`` matches its manifest; otherwise what is wrong with it, in words."""
    folder = os.path.join(self.directory, str(int(step)))
    try:
      with open(os.path.join(folder, MANIFEST), "rb") as f:
        man = json.loads(f.read().decode())
      files = man["files"]
      if man["step"] != int(step) or not files:
        return "its manifest does not describe it"
    except FileNotFoundError:
      return "no manifest (a save cut short, or a checkpoint of an older nashax)"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
      return "its manifest is damaged"
    on_disk = set(_walk(folder)) - {MANIFEST}
    if set(files) != on_disk:
      gone = sorted(set(files) - on_disk) or sorted(on_disk - set(files))
      return f"its files differ from its manifest ({gone[0]})"
    for rel, digest in files.items():
      if _files.sha256(os.path.join(folder, rel)) != digest:
        return f"{rel} fails its checksum (truncated or altered)"
    return None

  def extra(self, step: int) -> Any:
    """The ``extra`` saved with step ``step``."""
    with open(os.path.join(self.directory, str(int(step)), MANIFEST), "rb") as f:
      return json.loads(f.read().decode())["extra"]

  def restore_latest(self, like: Any, warn: Callable[[str], None] = print) -> Optional[tuple[int, Any, Any]]:
    """The newest valid checkpoint as ``(step, state, extra)``, or None when there is none at all.

    Invalid steps newer than it are removed, each with a ``warn`` line naming
    it and what is wrong.

    Raises:
      ValueError: when checkpoints exist, some of them damaged, and none is valid.
    """
    steps = sorted(self._mngr.all_steps(), reverse=True)
    damaged = []
    found = None
    for s in steps:
      why = self.damage(s)
      state = None
      if why is None:
        try:
          state = self.restore(s, like)
        except Exception as e:  # noqa: BLE001 - a checkpoint orbax cannot read is not valid
          why = f"orbax cannot read it ({type(e).__name__}: {str(e)[:120]})"
      if why is None:
        found = (s, state, self.extra(s))
        break
      path = os.path.join(self.directory, str(s))
      damaged.append((path, why))
      warn(f"checkpoint {path} is not valid: {why}; " + ("trying the previous one" if s != steps[-1] else
                                                         "no older checkpoint"))
    if found is None and any(not why.startswith("no manifest") for _, why in damaged):
      raise ValueError(f"checkpoint: no valid checkpoint in {self.directory} ({damaged[0][0]}: {damaged[0][1]}); "
                       "delete the folder to start the run again")
    if damaged:  # move the invalid steps out of orbax's way (a later save reuses their numbers)
      if _distributed.is_writer():
        for path, _ in damaged:
          shutil.rmtree(path, ignore_errors=True)
      _distributed.sync("nashax-checkpoint-cleaned")
      self._mngr.close()
      self._open()
    return found

  def close(self) -> None:
    self._mngr.close()


def _walk(folder: str) -> list:
  out = []
  for root, _, names in os.walk(folder):
    for n in names:
      out.append(os.path.relpath(os.path.join(root, n), folder))
  return sorted(out)


def resume(ckpt: Checkpoints, like: Any, label: str, log: Callable[[str], None]) -> Optional[tuple]:
  """The newest valid checkpoint of a training run as ``(step, state, rows, losses)``, or None.

  ``rows`` are the metrics rows up to the checkpoint and ``losses`` the losses
  since its last evaluation, both from the checkpoint's manifest (a run writes
  them there with ``save(step, state, extra={"rows": ..., "losses": ...})``).

  Raises:
    ValueError: naming ``label`` when checkpoints exist but none is valid, or the
      manifest holds no metrics rows (the folder is closed first).
  """
  try:
    found = ckpt.restore_latest(like, warn=lambda m: log(f"nashax train: {label}: WARNING {m}"))
  except ValueError as e:
    ckpt.close()
    raise ValueError(f"{label}: {e}") from None
  if found is None:
    return None
  done, state, extra = found
  try:
    rows, losses = list(extra["rows"]), [float(v) for v in extra["losses"]]
  except (TypeError, KeyError, ValueError):
    ckpt.close()
    raise ValueError(f"checkpoint: the manifest of {ckpt.directory}/{done} holds no metrics rows") from None
  return done, state, rows, losses
