"""The catalogue of solvers: one row per tested configuration of every ``Solver`` factory.

Everything that lists solvers reads this table: the names ``nashax.solvers``
exports, the conformance suite (``nashax.testing.check_solver`` on every row),
the long-horizon tests, and the sweep registry (``factories(sweep=True)``).
Adding a solver is its module-level factory plus a row here; a factory that
returns a ``Solver`` and has no row fails ``tests/test_conformance.py``.

A row names a small problem from ``nashax.testing.PROBLEMS`` rather than
holding one, so that importing ``nashax.solvers`` builds no arrays.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

from nashax.core import divergences as _div
from nashax.solvers import equilibrium as _eq
from nashax.solvers import fdiv as _fdiv
from nashax.solvers import halpern as _halpern
from nashax.solvers import nlhf as _nlhf

__all__ = ["Entry", "CATALOGUE", "entries", "factories", "get", "markdown"]


class Entry(NamedTuple):
  """One catalogued solver configuration.

  Attributes:
    name: the row's identifier (a factory name, or factory plus variant).
    factory: the factory's public name in ``nashax.solvers``.
    fn: the factory itself.
    make: ``(**overrides) -> Solver`` with this row's hyperparameters; it takes
      ``init_scale`` (the padding check starts uniform) and ``vary[0]``.
    problem: the key of the small problem in ``nashax.testing.PROBLEMS`` it is checked on.
    vary: ``(hyperparameter, three values)`` for the vmap and no-retrace checks, or None
      (the traced hyperparameters are rescaled instead).
    padding: whether padded actions leave the run unchanged (False for methods that
      sample the rows of a matrix game, whose number padding changes).
    long_steps: steps of the float32 long run.
    long_factor: how far above its running minimum the certificate may climb in that run.
    long_floor: the additive floor of that bound (a sampled method's noise, float32 rounding).
    fails: checks this row is known to fail (an open bug, said beside the row); the conformance test
      expects them to fail, so a fix shows up as a test to update.
    x64: run the comparisons (jit/eager, vmap/loop, padding) in float64; the long run stays float32.
    sweep: whether a sweep may name the factory (numbers-only hyperparameters).
    tags: labels other tests select by (``"entropic"``, ``"nlhf"``, ``"policy"``, ``"baseline"``).
  """

  name: str
  factory: str
  fn: Callable[..., Any]
  make: Callable[..., Any]
  problem: str
  vary: Optional[tuple[str, tuple[float, float, float]]] = None
  padding: bool = True
  long_steps: int = 20_000
  long_factor: float = 3.0
  long_floor: float = 1e-5
  fails: tuple[str, ...] = ()
  x64: bool = False
  sweep: bool = True
  tags: frozenset = frozenset()


_ETAS = (0.05, 0.1, 0.2)


def _row(name, fn, make, problem, *, factory=None, vary=("eta", _ETAS), tags=(), **kw) -> Entry:
  return Entry(name, factory or fn.__name__, fn, make, problem, vary, tags=frozenset(tags), **kw)


def _nlhf_row(fn, make, *, tags=("nlhf",), **kw) -> Entry:
  return _row(fn.__name__, fn, make, "preference", tags=tags, **kw)


_ENT = ("entropic",)

CATALOGUE: tuple[Entry, ...] = (
    # --- no-regret and extragradient dynamics on matrix games (nashax.solvers.equilibrium)
    _row("mwu", _eq.mwu, lambda eta=0.1, **kw: _eq.mwu(eta, **kw), "matrix", tags=_ENT),
    # Its last iterate spirals in: the gap rises 4.3x above its running minimum at 2,200 steps.
    _row("optimistic_mwu", _eq.optimistic_mwu, lambda eta=0.1, **kw: _eq.optimistic_mwu(eta, **kw), "matrix",
         tags=_ENT, long_factor=6.0),
    _row("extragradient_entropic", _eq.extragradient,
         lambda eta=0.3, **kw: _eq.extragradient(eta, geometry="entropic", **kw), "matrix", tags=_ENT),
    _row("extragradient_euclidean", _eq.extragradient,
         lambda eta=0.3, **kw: _eq.extragradient(eta, geometry="euclidean", iterate="last", **kw), "matrix"),
    _row("fictitious_play", _eq.fictitious_play, _eq.fictitious_play, "matrix", vary=None),
    _row("regret_matching_plus", _eq.regret_matching_plus, _eq.regret_matching_plus, "matrix", vary=None),
    _row("replicator", _eq.replicator, lambda eta=0.1, **kw: _eq.replicator(eta, **kw), "matrix", tags=_ENT,
         long_factor=6.0),
    _row("mmd", _eq.mmd, lambda eta=0.3, **kw: _eq.mmd(eta, 0.1, **kw), "matrix", tags=_ENT),
    # --- monotone inclusions (nashax.solvers.halpern) on the game's operator (-A y, A^T x)
    _row("halpern_resolvent", _halpern.halpern,
         lambda eta=0.2, **kw: _halpern.halpern(_halpern.resolvent_step(eta), **kw), "matrix",
         factory="halpern_iteration", sweep=False),
    _row("eag_constant", _halpern.eag, lambda eta=0.1, **kw: _halpern.eag(eta, **kw), "matrix"),
    _row("eag_varying", _halpern.eag, lambda eta=0.3, **kw: _halpern.eag(eta, variant="varying", **kw),
         "matrix"),
    _row("feg", _halpern.feg, lambda eta=0.5, **kw: _halpern.feg(1.0 / eta, **kw), "matrix"),
    _row("projected_extragradient", _halpern.projected_extragradient,
         lambda eta=0.3, **kw: _halpern.projected_extragradient(eta, **kw), "matrix"),
    _row("vr_halpern", _halpern.vr_halpern, lambda eta=0.2, **kw: _halpern.vr_halpern(eta, **kw),
         "least_squares", padding=False, long_steps=2_000),
    _row("vr_halpern_resolvent", _halpern.vr_halpern_resolvent,
         lambda eta=1.0, **kw: _halpern.vr_halpern_resolvent(eta, **kw), "matrix",
         vary=("eta", (0.5, 1.0, 2.0)), padding=False, long_steps=1_000),
    # --- Nash learning from human feedback (nashax.solvers.nlhf), on a regularised preference game
    _nlhf_row(_nlhf.nash_md, lambda eta=0.1, **kw: _nlhf.nash_md(eta, **kw), tags=("nlhf", "policy")),
    _nlhf_row(_nlhf.nash_ema, lambda eta=0.3, **kw: _nlhf.nash_ema(eta, 0.5, **kw)),
    _nlhf_row(_nlhf.sppo, lambda eta=0.3, **kw: _nlhf.sppo(eta, **kw), tags=("nlhf", "policy")),
    _nlhf_row(_nlhf.spo, lambda eta=0.3, **kw: _nlhf.spo(eta, **kw)),
    _nlhf_row(_nlhf.dno, lambda eta=0.3, **kw: _nlhf.dno(eta, **kw)),
    _nlhf_row(_nlhf.inpo, lambda eta=0.3, **kw: _nlhf.inpo(eta, **kw), tags=("nlhf", "policy")),
    _nlhf_row(_nlhf.online_ipo, lambda eta=0.1, **kw: _nlhf.online_ipo(eta, **kw), tags=("nlhf", "policy")),
    _nlhf_row(_nlhf.onpo, lambda eta=0.3, **kw: _nlhf.onpo(eta, **kw)),
    _nlhf_row(_nlhf.egpo, lambda eta=0.3, **kw: _nlhf.egpo(eta, **kw), tags=("nlhf", "policy")),
    _nlhf_row(_nlhf.mnpo, lambda eta=0.3, **kw: _nlhf.mnpo(eta, (0.5, 0.3, 0.2), **kw),
              tags=("nlhf", "policy")),
    _nlhf_row(_nlhf.mpo, lambda eta=0.3, **kw: _nlhf.mpo(eta, **kw)),
    # Its Bradley-Terry fit (30 Newton steps) amplifies float32 rounding: jit and eager differ by 2e-4 and
    # vmap and the loop by up to 6 in the log-probabilities, while they agree to 1e-6 in float64. In float32
    # the run turns NaN within 200 steps (an open bug: the policy collapses and the fit has no data).
    _nlhf_row(_nlhf.iterative_dpo, _nlhf.iterative_dpo, vary=None, x64=True, fails=("long_run",),
              tags=("nlhf", "policy", "baseline")),
    # --- f-divergence methods (nashax.solvers.fdiv)
    _row("f_dpg", _fdiv.f_dpg, lambda lr=0.5, **kw: _fdiv.f_dpg(_div.jensen_shannon(), lr, **kw), "target",
         vary=("lr", (0.25, 0.5, 1.0)), padding=False, sweep=False),
    # Eight samples a step: its distance to the target wanders up to 2.3e-3 before the step decays.
    _row("f_dpg_sampled", _fdiv.f_dpg,
         lambda lr=0.5, **kw: _fdiv.f_dpg(_div.alpha_divergence(0.3), lr, num_samples=8, **kw), "target",
         vary=("lr", (0.25, 0.5, 1.0)), padding=False, long_floor=5e-3, sweep=False),
    _row("f_extragradient", _fdiv.f_extragradient, lambda eta=0.3, **kw: _fdiv.f_extragradient(eta, **kw),
         "f_game", padding=False),
)


def entries(tag: Optional[str] = None) -> tuple[Entry, ...]:
  """The catalogue's rows, or those carrying ``tag``."""
  return tuple(e for e in CATALOGUE if tag is None or tag in e.tags)


def get(name: str) -> Entry:
  """The row called ``name``.

  Raises:
    ValueError: for a name that is not in the catalogue.
  """
  for e in CATALOGUE:
    if e.name == name:
      return e
  raise ValueError(f"name: no catalogued solver {name!r}; one of {sorted(e.name for e in CATALOGUE)}")


def factories(*, sweep: Optional[bool] = None, tag: Optional[str] = None) -> dict[str, Callable[..., Any]]:
  """``{public name: factory}`` over the catalogue, in catalogue order.

  Args:
    sweep: True for the factories a sweep may name (``sweeps.registry.SOLVERS``), False for
      the others, None for all.
    tag: only factories with a row carrying this tag.
  """
  out: dict[str, Callable[..., Any]] = {}
  for e in entries(tag):
    if sweep is None or e.sweep == sweep:
      out.setdefault(e.factory, e.fn)
  return out


def markdown() -> str:
  """The catalogue as a Markdown table (row, factory, problem, tags), for the documentation."""
  lines = ["| row | factory | checked on | tags |", "|---|---|---|---|"]
  for e in CATALOGUE:
    tags = ", ".join(sorted(e.tags)) or "-"
    lines.append(f"| `{e.name}` | `solvers.{e.factory}` | {e.problem} | {tags} |")
  return "\n".join(lines) + "\n"
