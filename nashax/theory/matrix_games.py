"""Claims about zero-sum matrix games (the foundation's solvers)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from nashax import games, solvers
from nashax.core import simplex
from nashax.core.metrics import duality_gap
from nashax.core.solver import run
from nashax.solvers import _common as C
from nashax.solvers import equilibrium as E
from nashax.theory import _plot
from nashax.theory._mutate import swap_step
from nashax.theory.claim_types import claim, mutant_into, result_from_ratios, table

_MUTANTS = []  # this module's wrong variants (`mutant(...)(make)` adds one), attached by `table` below
mutant = mutant_into(_MUTANTS)


def _gap_trace(game, state):
  return duality_gap(game, state)


def _batch_run(solver, gs, keys, num_steps, every):
  f = lambda g, k: run(solver, g, k, num_steps=num_steps, every=every, metric_fn=_gap_trace)
  return jax.vmap(f)(gs, keys)


@claim(
    "hedge_average_gap",
    summary=("Hedge's average-iterate duality gap ≤ (Reg_x + Reg_y)/T with the Hoeffding regret bound "
             "(Freund & Schapire 1999)"),
    theorem=("Both players running Hedge with step eta from x_0: the average of x_0..x_t has duality "
             "gap <= [(D_x + D_y)/eta + 2 eta N (b-a)^2/8] / N, N = t+1, D = max_i -log x_0(i), "
             "payoffs in [a, b]."),
    source=("Freund & Schapire 1999; Cesa-Bianchi & Lugosi 2006, Thm 2.2 (Hoeffding-lemma regret bound); "
            "Freund & Schapire, Games Econ. Behav. 29 (1999)."),
    subject="solver(eta) -> Solver: Hedge / MWU for both players, profile = average iterate (solvers.mwu).",
    cost=10,
)
def hedge_average_gap(fast: bool, out_dir: str, solver=None):
  factory = solvers.mwu if solver is None else solver
  sizes = (3, 8) if fast else (3, 32)
  seeds = 4 if fast else 16
  horizon = 2_000 if fast else 20_000
  every = horizon // 50
  worst_m, worst_b, fig_m, fig_b, labels = [], [], [], [], []

  @functools.partial(jax.jit, static_argnums=(0,))
  def size_run(n, key, eta):  # games, run and initial profiles of one size: one compile
    keys = jax.random.split(key, 2 * seeds)
    gs = jax.vmap(lambda k: games.random_zero_sum(k, n, n))(keys[:seeds])
    solver = factory(eta)
    _, gaps = _batch_run(solver, gs, keys[seeds:], horizon, every)
    return gs, gaps, jax.vmap(solver.init)(gs, keys[seeds:]).profile

  for n in sizes:
    eta = np.sqrt(8 * np.log(n) / horizon) / 2.0
    gs, gaps, x0 = size_run(n, jax.random.key(n), eta)
    d = np.asarray((-jnp.log(x0[0])).max(-1) + (-jnp.log(x0[1])).max(-1))  # D_x + D_y
    a = np.asarray(gs.payoff)
    rng = a.max((-2, -1)) - a.min((-2, -1))
    n_avg = np.arange(1, 51) * every + 1.0  # iterates averaged: x_0..x_t
    bound = (d[:, None] / eta + 2 * eta * n_avg[None, :] * rng[:, None] ** 2 / 8) / n_avg[None, :]
    worst_m.append(np.asarray(gaps))
    worst_b.append(bound)
    fig_m.append(np.asarray(gaps)[0]); fig_b.append(bound[0]); labels.append(f"n={n}")
  fig = _plot.measured_vs_bound(out_dir, "hedge_average_gap", n_avg - 1, np.array(fig_m), np.array(fig_b),
                                "Hedge: average-iterate duality gap vs regret bound", "duality gap", labels)
  details = f"random zero-sum n x n, n in {sizes}, {seeds} seeds, T = {horizon}, float32"
  return result_from_ratios("hedge_average_gap", np.concatenate([m.ravel() for m in worst_m]),
                            np.concatenate([b.ravel() for b in worst_b]), details, (fig,), 0.0)


@claim(
    "extragradient_ergodic_gap",
    summary=("mirror-prox / extragradient ergodic gap ≤ max_u D(u, z_0)/(ηT), η = 1/L, both geometries "
             "(Nemirovski 2004)"),
    theorem=("Extragradient / mirror-prox with eta = 1/L: the average of the half-iterates w_0..w_{T-1} has "
             "duality gap <= max_u D(u, z_0) / (eta T); D = KL with L = max|A_ij| (entropic), "
             "D = |.|^2/2 with L = ||A||_2 (Euclidean)."),
    source="Nemirovski 2004, SIAM J. Optim. 15(1), Thm 3.2.",
    cost=22,
    subject="solver(eta, geometry=...) -> Solver: extragradient / mirror-prox, profile = average half-iterate.",
)
def extragradient_ergodic_gap(fast: bool, out_dir: str, solver=None):
  factory = solvers.extragradient if solver is None else solver
  sizes = (3, 8) if fast else (3, 32)
  seeds = 4 if fast else 16
  horizon = 1_000 if fast else 10_000
  every = horizon // 50
  ms, bs, fig_m, fig_b, labels = [], [], [], [], []

  @functools.partial(jax.jit, static_argnums=(0,))
  def sized_games(n, keys):
    return jax.vmap(lambda k: games.random_zero_sum(k, n, n))(keys)

  @functools.partial(jax.jit, static_argnums=(0,))
  def batch(geometry, eta, gs, keys):  # the runs and initial profiles of one geometry and size: one compile
    make = functools.partial(factory, geometry=geometry)
    f = lambda e, g, k: run(make(e), g, k, num_steps=horizon, every=every, metric_fn=_gap_trace)
    return jax.vmap(f)(eta, gs, keys)[1], jax.vmap(lambda e, g, k: make(e).init(g, k))(eta, gs, keys).profile

  for geometry in ("entropic", "euclidean"):
    for n in sizes:
      keys = jax.random.split(jax.random.key(100 + n), 2 * seeds)
      gs = sized_games(n, keys[:seeds])
      a = np.asarray(gs.payoff, np.float64)
      if geometry == "entropic":
        lips = np.abs(a).max((-2, -1))
      else:
        lips = np.linalg.norm(a, 2, axis=(-2, -1))
      eta = jnp.asarray(1.0 / lips, jnp.float32)
      gaps, (x0, y0) = batch(geometry, eta, gs, keys[seeds:])
      x0, y0 = np.asarray(x0, np.float64), np.asarray(y0, np.float64)
      if geometry == "entropic":
        dmax = -np.log(x0).min(-1) - np.log(y0).min(-1)
      else:  # max over vertices of |x0 - e_i|^2 / 2, per player
        dmax = 0.5 * ((x0 ** 2).sum(-1) + 1 - 2 * x0.min(-1) + (y0 ** 2).sum(-1) + 1 - 2 * y0.min(-1))
      t = np.arange(1, 51) * every
      bound = dmax[:, None] * lips[:, None] / t[None, :]
      ms.append(np.asarray(gaps)); bs.append(bound)
      fig_m.append(np.asarray(gaps)[0]); fig_b.append(bound[0]); labels.append(f"{geometry} n={n}")
  fig = _plot.measured_vs_bound(out_dir, "extragradient_ergodic_gap", t, np.array(fig_m), np.array(fig_b),
                                "Extragradient: ergodic duality gap vs D/(eta T)", "duality gap", labels)
  details = f"random zero-sum n x n, n in {sizes}, {seeds} seeds, T = {horizon}, both geometries, float32"
  return result_from_ratios("extragradient_ergodic_gap", np.concatenate([m.ravel() for m in ms]),
                            np.concatenate([b.ravel() for b in bs]), details, (fig,), 0.0)


@claim(
    "optimistic_mwu_last_iterate",
    summary=("optimistic MWU's last iterate approaches the unique interior equilibrium (KL halves at "
             "least), while plain MWU's drifts away (Daskalakis & Panageas 2019; Bailey & Piliouras 2018)"),
    theorem=("On games with a unique interior equilibrium z*, optimistic MWU (eta = 0.5 / max|A_ij|) "
             "converges in the last iterate: KL(z*, z_T) / KL(z*, z_0) <= 0.5 within T steps (no rate "
             "constant is asserted: it is game-dependent); plain MWU's last iterate moves away instead (its"
             " KL(z*, z_t) increases, Bailey & Piliouras 2018), checked on the same games."),
    source=("Daskalakis & Panageas, ITCS 2019 (arXiv:1807.04252), Thm 1.1; Wei, Lee, Zhang & Luo, ICLR 2021 "
            "(arXiv:2006.09517), Thm 3; Bailey & Piliouras, EC 2018 (arXiv:1802.05642), Thm 3.1; "
            "Run in float64."),
    cost=24,
    subject="solver(eta) -> Solver: optimistic MWU, profile = last iterate (solvers.optimistic_mwu).",
)
def optimistic_mwu_last_iterate(fast: bool, out_dir: str, solver=None):
  factory = solvers.optimistic_mwu if solver is None else solver
  sizes = (2, 3, 4) if fast else (2, 3, 5)
  seeds = 4 if fast else 12
  horizon = 20_000 if fast else 60_000
  target = 0.5
  every = horizon // 100
  ratios, mwu_ratios, curves, mwu_curves, labels = [], [], [], [], []

  def kl_trace(game, state, optimum):
    x = state.log_probs
    return sum(jnp.sum(o * (jnp.log(o) - l)) for o, l in zip(optimum, x))

  def one(make, e, g, k, o):
    s = make(e)
    st0 = s.init(g, k)
    _, tr = run(s, g, k, num_steps=horizon, every=every, metric_fn=lambda gg, st: kl_trace(gg, st, o))
    return kl_trace(g, st0, o), tr

  @functools.partial(jax.jit, static_argnums=0)
  def size_run(n, key):  # the games, OMWU and MWU of one size: one compile
    keys = jax.random.split(key, 2 * seeds)
    gs, opt = jax.vmap(lambda k: games.random_interior_zero_sum(k, n, dtype=jnp.float64))(keys[:seeds])
    eta = 0.5 / jnp.abs(gs.payoff).max((-2, -1))
    return (jax.vmap(functools.partial(one, factory))(eta, gs, keys[seeds:], opt),
            jax.vmap(functools.partial(one, solvers.mwu))(eta, gs, keys[seeds:], opt))

  with jax.enable_x64(True):
    for n in sizes:
      (k0, tr), (m0, mtr) = size_run(n, jax.random.key(200 + n))
      r = np.asarray(tr) / np.asarray(k0)[:, None]
      mr = np.asarray(mtr) / np.asarray(m0)[:, None]
      ratios.append(r[:, -1]); mwu_ratios.append(mr[:, -1])
      curves.append(r[0]); mwu_curves.append(mr[0]); labels.append(f"n={n}")
  t = np.arange(1, 101) * every
  fig, ax = _plot.figure()
  for c_, m_, lab in zip(curves, mwu_curves, labels):
    line, = ax.semilogy(t, np.maximum(c_, 1e-30), label=f"OMWU {lab}")
    ax.semilogy(t, m_, ":", color=line.get_color(), label=f"MWU {lab}")
  ax.axhline(target, color="k", lw=0.8, ls="--", label="claimed OMWU ratio")
  ax.set_xlabel("step t"); ax.set_ylabel("KL(z*, z_t) / KL(z*, z_0), last iterate"); ax.legend(fontsize=7)
  ax.set_title("Optimistic MWU converges in the last iterate; MWU drifts away", fontsize=10)
  figpath = _plot.save(fig, out_dir, "optimistic_mwu_last_iterate")
  ratios = np.concatenate(ratios)
  mwu_ratios = np.concatenate(mwu_ratios)
  details = (f"random n x n games with a known interior equilibrium, n in {sizes}, {seeds} seeds, "
             f"T = {horizon}, float64; MWU's final KL ratios min {mwu_ratios.min():.3g} (theory: >= 1)")
  res = result_from_ratios("optimistic_mwu_last_iterate", ratios, np.full_like(ratios, target),
                           details, (figpath,), 0.0)
  if not (mwu_ratios >= 1.0 - 1e-9).all():
    res = dataclasses.replace(res, status="fail", details=details + " [MWU contrast violated]")
  return res


# ----------------------------------------------------------------------------- mutants


def _mwu_sign(hp, game, state):
  g, _, masks = C.player_view(game)
  us = C.utils(g, C.probs(state.log_probs))
  lp = tuple(simplex.masked_log_softmax(l - hp.eta * u, m) for l, u, m in zip(state.log_probs, us, masks))  # bug
  avg, comp = C.running_mean(state.profile, state.comp, C.probs(lp), state.step, hp.average)
  return E.MWUState(state.step + 1, state.oracle_calls + 1, avg, lp, comp)


def _mwu_last(hp, game, state):
  s = E._mwu_step(hp, game, state)
  return s._replace(profile=C.probs(s.log_probs))  # bug: the last iterate is reported instead of the average


mutant("hedge_average_gap", "sign_flip", "x_{t+1} ∝ x_t exp(-eta u): each player descends its own payoff")(
    swap_step(solvers.mwu, _mwu_sign, "sign_flip"))
mutant("hedge_average_gap", "last_iterate", "the last iterate is reported instead of the average of x_0..x_t")(
    swap_step(solvers.mwu, _mwu_last, "last_iterate"))


def _eg_no_extrapolation(hp, game, state):
  g, _, masks = C.player_view(game)
  x = E._eg_probs(hp, state.z)
  z_new = E._eg_move(hp, state.z, C.utils(g, x), masks)  # bug: one gradient step, no extrapolation
  t = state.step.astype(x[0].dtype)
  avg, comp = C.weighted_update(state.avg, state.comp, x, 1.0 / (t + 1.0))
  return E.ExtragradientState(state.step + 1, state.oracle_calls + 1, avg, z_new, avg, comp)


def _eg_from_half(hp, game, state):
  g, _, masks = C.player_view(game)
  x = E._eg_probs(hp, state.z)
  z_half = E._eg_move(hp, state.z, C.utils(g, x), masks)
  w = E._eg_probs(hp, z_half)
  z_new = E._eg_move(hp, z_half, C.utils(g, w), masks)  # bug: the correction starts from the half-iterate
  t = state.step.astype(x[0].dtype)
  avg, comp = C.weighted_update(state.avg, state.comp, w, 1.0 / (t + 1.0))
  return E.ExtragradientState(state.step + 1, state.oracle_calls + 2, avg, z_new, avg, comp)


mutant("extragradient_ergodic_gap", "no_extrapolation",
       "simultaneous gradient/mirror descent-ascent: the extrapolation (half) step is missing")(
    swap_step(solvers.extragradient, _eg_no_extrapolation, "no_extrapolation"))
mutant("extragradient_ergodic_gap", "update_from_half", "the correction step starts from w_t instead of z_t")(
    swap_step(solvers.extragradient, _eg_from_half, "update_from_half"))


def _omwu_variant(coef_now: float, coef_prev: float):
  def step(hp, game, state):
    g, _, masks = C.player_view(game)
    us = C.utils(g, state.profile)
    lp = tuple(simplex.masked_log_softmax(l + hp.eta * (coef_now * u - coef_prev * up), m)
               for l, u, up, m in zip(state.log_probs, us, state.prev_utils, masks))
    return E.OMWUState(state.step + 1, state.oracle_calls + 1, C.probs(lp), lp, us)

  return step


_omwu_plain = _omwu_variant(1.0, 0.0)
_omwu_no_two = _omwu_variant(1.0, 1.0)

mutant("optimistic_mwu_last_iterate", "no_optimism", "plain MWU: the optimistic correction -u_{t-1} + u_t is missing")(
    swap_step(solvers.optimistic_mwu, _omwu_plain, "no_optimism"))
mutant("optimistic_mwu_last_iterate", "missing_factor_2", "the step uses u_t - u_{t-1} instead of 2 u_t - u_{t-1}")(
    swap_step(solvers.optimistic_mwu, _omwu_no_two, "missing_factor_2"))


CLAIMS = table((hedge_average_gap, extragradient_ergodic_gap, optimistic_mwu_last_iterate), _MUTANTS)
