"""A one-line text progress bar on stderr (no dependency), shared by sweeps and training."""

from __future__ import annotations

import sys
import time


class Progress:
  """``update(k)`` advances ``done`` by ``k`` of ``total`` units and redraws ``[###...] done/total unit eta``."""

  def __init__(self, total: int, done: int = 0, enabled: bool = True, unit: str = "chunks", extra=None):
    self.total, self.done, self.start_done, self.enabled, self.unit = total, done, done, enabled, unit
    self.extra = extra
    self.t0 = time.perf_counter()

  def update(self, k: int = 1, note: str = "") -> None:
    self.done += k
    if not self.enabled:
      return
    el = time.perf_counter() - self.t0
    new = self.done - self.start_done
    eta = el / new * (self.total - self.done) if new else 0.0
    w = 30
    fill = int(w * self.done / max(self.total, 1))
    sys.stderr.write(f"\r[{'#' * fill}{'.' * (w - fill)}] {self.done}/{self.total} {self.unit}  "
                     f"{el:6.1f}s  eta {eta:5.1f}s {note}")
    if self.done >= self.total:
      sys.stderr.write("\n")
    sys.stderr.flush()
