"""A frozen dataclass that is a JAX pytree, without importing flax.

``import nashax`` must stay light (it must not import flax), so games, solver
states and hyperparameters use this small equivalent of ``flax.struct``:
fields are pytree leaves unless declared ``field(static=True)``, in which case
they are part of the tree structure (hashable, never traced).
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import jax

_T = TypeVar("_T")


def field(*, static: bool = False, **kwargs: Any) -> Any:
  """A dataclass field; ``static=True`` keeps it out of the traced leaves."""
  metadata = dict(kwargs.pop("metadata", {}) or {})
  metadata["static"] = static
  return dataclasses.field(metadata=metadata, **kwargs)


def dataclass(cls: type[_T]) -> type[_T]:
  """Frozen dataclass registered as a pytree (static fields as metadata)."""
  cls = dataclasses.dataclass(frozen=True)(cls)
  data, meta = [], []
  for f in dataclasses.fields(cls):
    (meta if f.metadata.get("static", False) else data).append(f.name)
  jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)

  def replace(self, **changes):
    return dataclasses.replace(self, **changes)

  cls.replace = replace
  return cls
