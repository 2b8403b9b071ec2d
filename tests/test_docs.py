"""The documentation: every public name has an API entry, every Python block of the README and the guides
runs, and (slow) the site builds with warnings as errors.

A block preceded by the line ``<!-- no-run -->`` is illustrative (it needs a checkpoint, a data file or
minutes of compute) and is only compiled, not run. The blocks of one page run in order in one namespace,
as a reader pasting them into one session would.
"""

import importlib
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
NO_RUN = "<!-- no-run -->"
_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)

sys.path.insert(0, DOCS)
import gen_api  # noqa: E402  (docs/gen_api.py: the list of parts and their pages)


def _api_page(part: str) -> str:
  name = "index" if part == "nashax" else part.split(".")[1]
  with open(os.path.join(DOCS, "api", f"{name}.md")) as f:
    return f.read()


def missing_names(part: str, names) -> list:
  """The names of ``part`` without a ``{#part.name}`` heading on its API page."""
  text = _api_page(part)
  return [n for n in names if not re.search(rf"\{{#{re.escape(part)}\.{re.escape(n)}\}}", text)]


@pytest.mark.parametrize("part", sorted(gen_api.PARTS))
def test_api_reference_lists_every_public_name(part):
  """Every name in the ``__all__`` of nashax and of each subpackage has an entry on its API page."""
  mod = importlib.import_module(part)
  missing = missing_names(part, mod.__all__)
  assert not missing, f"{part}: {missing} missing from docs/api; run `python docs/gen_api.py`"


def test_api_check_reports_a_missing_name():
  """The coverage check itself fails on a name that has no entry (it can fail)."""
  assert missing_names("nashax.core", ["duality_gap", "no_such_name_xyz"]) == ["no_such_name_xyz"]


def _pages():
  pages = [os.path.join(ROOT, "README.md")]
  for d, _, files in os.walk(DOCS):
    if os.path.relpath(d, DOCS).startswith("api"):
      continue
    pages += [os.path.join(d, f) for f in sorted(files) if f.endswith(".md")]
  return sorted(pages)


def blocks(text: str):
  """``(code, runs)`` for each ```python block; ``runs`` is False after a ``<!-- no-run -->`` line."""
  out = []
  for m in _BLOCK.finditer(text):
    before = text[:m.start()].rstrip().rsplit("\n", 1)[-1].strip()
    out.append((m.group(1), before != NO_RUN))
  return out


def test_blocks_parser_sees_markers():
  """The extractor finds blocks and honours the marker (so a broken block cannot hide by accident)."""
  text = "a\n```python\nx = 1\n```\n<!-- no-run -->\n```python\nraise SystemExit\n```\n```toml\ny=2\n```\n"
  assert blocks(text) == [("x = 1\n", True), ("raise SystemExit\n", False)]


def _page_params():
  # The README's blocks run in `make test`; the guides' (each compiles several solvers, 10-40 s on a
  # shared core) under `make slow`.
  return [pytest.param(rel, marks=() if rel == "README.md" else pytest.mark.slow)
          for rel in (os.path.relpath(p, ROOT) for p in _pages())]


@pytest.mark.parametrize("page", _page_params())
def test_python_blocks_run(page, monkeypatch):
  """Each page's Python blocks compile, and those not marked no-run execute in order."""
  with open(os.path.join(ROOT, page)) as f:
    found = blocks(f.read())
  if not found:
    pytest.skip("no python blocks")
  monkeypatch.chdir(ROOT)
  ns = {"__name__": "__docs__"}
  for i, (code, runs) in enumerate(found):
    compiled = compile(code, f"{page}[block {i}]", "exec")
    if runs:
      exec(compiled, ns)  # noqa: S102 (the documentation's own examples)


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
  """``mkdocs build --strict`` succeeds (needs the ``docs`` extra; ``make docs`` installs it)."""
  pytest.importorskip("mkdocs")
  pytest.importorskip("mkdocstrings")
  r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                     cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
  assert r.returncode == 0, r.stderr[-4000:]
