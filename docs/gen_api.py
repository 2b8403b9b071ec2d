"""Writes the API reference pages ``docs/api/<part>.md`` from the subpackages' ``__all__``.

Run ``python docs/gen_api.py`` after adding a public name; ``tests/test_docs.py`` fails while a name of a
subpackage's ``__all__`` has no ``{#nashax.<part>.<name>}`` heading on its page. Each entry renders the
object where it is defined (``obj.__module__``), so names re-exported or added at import time resolve
without importing anything at build time. A name that is a module
gets the module's docstring and then its own public names (its ``__all__``, else the functions and
classes it defines), each object written once.
"""

from __future__ import annotations

import importlib
import inspect
import os
import types

PARTS = {
    "nashax": "The top level",
    "nashax.core": "nashax.core",
    "nashax.games": "nashax.games",
    "nashax.solvers": "nashax.solvers",
    "nashax.theory": "nashax.theory",
    "nashax.sweeps": "nashax.sweeps",
    "nashax.policies": "nashax.policies",
    "nashax.lm": "nashax.lm",
    "nashax.data": "nashax.data",
    "nashax.rank": "nashax.rank",
}


def _public(mod: types.ModuleType) -> list[str]:
  if hasattr(mod, "__all__"):
    return list(mod.__all__)
  return sorted(n for n, v in vars(mod).items()
                if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
                and getattr(v, "__module__", "") == mod.__name__)


def _constant(path: str, value) -> str:
  if isinstance(value, dict):
    shown = f"a `dict` with keys {', '.join(f'`{k}`' for k in list(value)[:40])}"
  elif isinstance(value, (tuple, list, frozenset, set)) and len(repr(value)) > 200:
    shown = f"a `{type(value).__name__}` of {len(value)} entries"
  else:
    shown = f"`{value!r}`"
  return f"### `{path}` {{#{path}}}\n\nA constant: {shown}. The module docstring above says what it holds.\n"


# id(object) -> (page file, anchor) of the entry that renders it; later names of the same object link there
# (one primary URL per object, or autorefs warns).
_RENDERED: dict = {}


def _canonical(path: str, value) -> str:
  """Where the object is defined (names re-exported or added at import time resolve statically there)."""
  mod, qual = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
  if isinstance(mod, str) and isinstance(qual, str) and "<" not in qual and mod.startswith("nashax"):
    return f"{mod}.{qual}"
  return path


def _entry(path: str, heading: int, members: bool = False, value=None, page_file: str = "") -> str:
  if not (inspect.isfunction(value) or inspect.isclass(value) or callable(value)):
    return _constant(path, value)
  target = _canonical(path, value)
  if id(value) in _RENDERED:
    where, anchor = _RENDERED[id(value)]
    link = f"#{anchor}" if where == page_file else f"{where}#{anchor}"
    return f"{'#' * heading} `{path}` {{#{path}}}\n\nThe same object as [`{anchor}`]({link}).\n"
  _RENDERED[id(value)] = (page_file, path)
  return (f"{'#' * heading} `{path}` {{#{path}}}\n\n::: {target}\n    options:\n"
          "      show_root_heading: true\n      show_root_full_path: false\n"
          f"      heading_level: {heading + 1}\n" + ("" if members else "      members: false\n"))


def _file(part: str) -> str:
  return "index.md" if part == "nashax" else part.split(".")[1] + ".md"


def page(part: str) -> str:
  mod = importlib.import_module(part)
  here = _file(part)
  seen: set[int] = set()
  lines = [f"# {PARTS[part]}\n",
           f"::: {part}\n    options:\n      members: false\n      show_root_heading: false\n"]
  names = _public(mod)
  modules = [n for n in names if isinstance(getattr(mod, n), types.ModuleType)]
  objects = [n for n in names if n not in modules]
  if objects:
    lines.append("## Names\n")
  for n in objects:
    seen.add(id(getattr(mod, n)))
    lines.append(_entry(f"{part}.{n}", 3, inspect.isclass(getattr(mod, n)), getattr(mod, n), here))
  for n in modules:
    sub = getattr(mod, n)
    if part == "nashax" or not sub.__name__.startswith(part):
      page_name = sub.__name__.split(".")[1] + ".md" if sub.__name__.count(".") == 1 else "core.md"
      lines.append(f"## `{part}.{n}` {{#{part}.{n}}}\n\nThe module `{sub.__name__}`: see "
                   f"[its page]({page_name}).\n")
      continue
    lines.append(f"## `{part}.{n}` {{#{part}.{n}}}\n")
    lines.append(f"::: {part}.{n}\n    options:\n      members: false\n      show_root_heading: false\n")
    for m in _public(sub):
      obj = getattr(sub, m, None)
      if obj is None or isinstance(obj, types.ModuleType) or id(obj) in seen:
        continue
      seen.add(id(obj))
      lines.append(_entry(f"{sub.__name__}.{m}", 3, inspect.isclass(obj), obj, here))
  return "\n".join(lines)


def main() -> None:
  here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "api")
  os.makedirs(here, exist_ok=True)
  # Subpackages first, so each object is rendered on the page of the part that defines it and the top
  # level links there.
  for part in sorted(PARTS, key=lambda p: p == "nashax"):
    with open(os.path.join(here, _file(part)), "w") as f:
      f.write(page(part))


if __name__ == "__main__":
  main()
