"""orbax save / restore of a whole train state (a plain pytree of arrays).

``Checkpoints(directory)`` wraps an ``orbax.checkpoint.CheckpointManager``:
``save(step, state)`` writes ``directory/<step>`` atomically (orbax writes to a
temporary folder and renames it when complete), ``latest()`` is the newest
finished step, and ``restore(step, like)`` reads it back with the shapes,
dtypes and shardings of ``like``. Saves are synchronous, so a process killed
after ``save`` returns has a complete checkpoint and one killed during it has
the previous one.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpoints"]


class Checkpoints:
  """A folder of train-state checkpoints.

  Args:
    directory: where the step folders go (created if absent).
    max_to_keep: how many recent checkpoints to keep.
  """

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    opts = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
    self._mngr = ocp.CheckpointManager(self.directory, options=opts)

  def latest(self) -> Optional[int]:
    """The newest complete step, or None."""
    return self._mngr.latest_step()

  def save(self, step: int, state: Any) -> None:
    """Writes ``state`` as step ``step`` and waits until it is on disk."""
    self._mngr.save(int(step), args=ocp.args.StandardSave(state), force=True)
    self._mngr.wait_until_finished()

  def restore(self, step: int, like: Any) -> Any:
    """Reads step ``step`` into the structure, shapes, dtypes and shardings of ``like``."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self._mngr.restore(int(step), args=ocp.args.StandardRestore(abstract))

  def close(self) -> None:
    self._mngr.close()
