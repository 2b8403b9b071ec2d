"""mkdocs hooks: the claim pages are generated from ``nashax.theory.registry`` at build time.

``<!-- claims-table -->`` on a page becomes one row per registered claim (name, subject module, cost) and
``<!-- claims-detail -->`` one section per claim: the theorem and source as registered (the text
``nashax verify --list`` prints), the subject and the mutants the claim must reject. Nothing here is
copied by hand, so the pages cannot drift from the registry.
"""

from __future__ import annotations


def _esc(s: str) -> str:
  return s.replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*").replace("_", "\\_")


def _claims():
  from nashax.theory import registry
  return registry.claims()


def claims_table() -> str:
  rows = ["| claim | module | subject | mutants | cost (s, CPU) |", "|---|---|---|---|---|"]
  for c in _claims():
    module = c.fn.__module__.rsplit(".", 1)[-1]
    subject = "yes" if c.subject else "no"
    rows.append(f"| [`{c.name}`](#{c.name}) | `theory.{module}` | {subject} | {len(c.mutants)} "
                f"| {c.cost:g} |")
  return "\n".join(rows) + "\n"


def claims_detail() -> str:
  out = []
  for c in _claims():
    out.append(f"### `{c.name}` {{#{c.name}}}\n")
    out.append(f"**Theorem checked.** {_esc(c.theorem)}\n")
    out.append(f"**Source.** {_esc(c.source)}\n")
    if c.subject:
      out.append(f"**Subject** (replaceable with `run_claim(..., solver=...)`). {_esc(c.subject)}\n")
    if c.mutants:
      out.append("**Must reject:**\n")
      out.extend(f"- `{m.name}`: {_esc(m.bug)}" for m in c.mutants)
      out.append("")
    out.append(f"Defined in `{c.fn.__module__}`.\n")
  return "\n".join(out)


def on_page_markdown(markdown, page, config, files):  # noqa: ARG001 (mkdocs hook signature)
  if "<!-- claims-table -->" in markdown:
    markdown = markdown.replace("<!-- claims-table -->", claims_table())
  if "<!-- claims-detail -->" in markdown:
    markdown = markdown.replace("<!-- claims-detail -->", claims_detail())
  return markdown
