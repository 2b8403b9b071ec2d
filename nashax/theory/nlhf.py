"""Claims about Nash learning from human feedback (THEORY.md sections 4-7 and 11).

Every claim runs in float64 on random intransitive preference games (the
EGPO generator: upper triangle Uniform(0, 1), THEORY.md section 0) with a
random reference policy, and starts from random policies unless the bound
assumes the uniform start (SPPO's Hedge bound, ONPO's RVU bound), which the
claim then says.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from nashax import games, solvers
from nashax.core.games import PreferenceGame
from nashax.core import simplex
from nashax.core.solver import run
from nashax.solvers import baselines
from nashax.theory import _plot
from nashax.theory.registry import ClaimResult, claim, result_from_ratios


def _sweep(fast: bool):
  sizes = (3, 10) if fast else (3, 10, 50)
  seeds = 3 if fast else 6
  return sizes, seeds


def _games(k: int, seeds: int, betas):
  """A batch of random intransitive games, one per seed, with random references and ``betas[seed]``."""
  keys = jax.random.split(jax.random.key(1000 + k), seeds)
  p = jax.vmap(lambda kk: games.random_preference_game(kk, k, jnp.float64).preference)(keys)
  ref = np.random.default_rng(k).dirichlet(np.ones(k), size=seeds)
  return PreferenceGame(p, jnp.asarray(betas, jnp.float64), jnp.log(jnp.asarray(ref)))


_nash = jax.jit(jax.vmap(lambda g: solvers.regularized_nash(g).policy))


def _kl_traces(make, etas, gs, keys, steps: int, every: int = 1):
  """(KL(pi*, pi_0) [B], KL(pi*, pi_t) [B, steps // every]) for the last iterates, batched over games."""
  opt = _nash(gs)

  def one(eta, g, key, o):
    solver = make(eta)
    _, tr = run(solver, g, key, num_steps=steps, every=every, metric_fn=lambda gg, s: simplex.kl(o, s.profile))
    return simplex.kl(o, solver.init(g, key).profile), tr

  k0, tr = jax.jit(jax.vmap(one))(jnp.asarray(etas), gs, keys, opt)
  return np.asarray(k0), np.asarray(tr)


@claim(
    "nash_md_last_iterate_kl",
    theorem=("Nash-MD with eta_t = 2/(beta(t+2)): KL(pi*_beta, pi_T) <= 8/(beta^2 (T+1)); and the one-step "
             "inequality KL(pi*, pi_{t+1}) <= (1 - eta beta) KL(pi*, pi_t) + 2 eta^2 for any pi and eta in (0, 1/beta)."),
    source="Munos et al., ICML 2024 (arXiv:2312.00886), Theorem 1 and its proof; THEORY.md section 4. float64.",
    cost=16,
)
def nash_md_last_iterate_kl(fast: bool, out_dir: str):
  sizes, seeds = _sweep(fast)
  horizon = 2_000 if fast else 5_000
  every = horizon // 100
  t = np.arange(1, 101) * every
  ms, bs, fig_m, fig_b, labels = [], [], [], [], []
  step_ratios = []
  with jax.enable_x64(True):
    for k in sizes:
      betas = np.where(np.arange(seeds) % 2 == 1, 0.5, 0.1)
      gs = _games(k, seeds, betas)
      keys = jax.random.split(jax.random.key(100 + k), seeds)
      _, tr = _kl_traces(lambda e: solvers.nash_md(), betas, gs, keys, horizon, every)
      bound = 8.0 / (betas[:, None] ** 2 * (t[None, :] + 1.0))
      ms.append(tr.ravel()); bs.append(bound.ravel())
      fig_m.append(tr[0]); fig_b.append(bound[0]); labels.append(f"K={k}, beta={betas[0]}")
      # one-step inequality on random (pi, eta) per game
      opt = _nash(gs)
      rng = np.random.default_rng(k)
      pis = jnp.asarray(rng.dirichlet(np.ones(k) * 0.5, size=(seeds, 200)))
      etas = jnp.asarray(rng.uniform(0.0, 1.0, size=(seeds, 200)) / betas[:, None])

      def one(g, o, pi, eta):
        s = solvers.nash_md(eta)
        st = s.init(g, jax.random.key(0))._replace(profile=pi, log_probs=jnp.log(pi))
        return simplex.kl(o, s.step(g, st).profile), (1.0 - eta * g.beta) * simplex.kl(o, pi) + 2.0 * eta**2

      lhs, rhs = jax.jit(jax.vmap(jax.vmap(one, (None, None, 0, 0))))(gs, opt, pis, etas)
      step_ratios.append(np.asarray(lhs / rhs).ravel())
  fig = _plot.measured_vs_bound(out_dir, "nash_md_last_iterate_kl", t, np.array(fig_m), np.array(fig_b),
                                "Nash-MD: last-iterate KL to pi*_beta vs 8/(beta^2 (T+1))", "KL(pi*, pi_T)", labels)
  step_ratios = np.concatenate(step_ratios)
  details = (f"random intransitive K in {sizes}, {seeds} seeds, beta in {{0.1, 0.5}}, T = {horizon}, float64; "
             f"one-step inequality on {step_ratios.size} random (pi, eta): worst lhs/rhs {step_ratios.max():.3g}")
  res = result_from_ratios("nash_md_last_iterate_kl", np.concatenate(ms), np.concatenate(bs), details, (fig,), 0.0)
  if step_ratios.max() > 1.0 + 1e-10:
    res = dataclasses.replace(res, status="fail", details=details + " [one-step inequality violated]")
  return res


def _linear_rate_claim(name, make, rate, title, fast, out_dir, label):
  sizes, seeds = _sweep(fast)
  horizon = 300
  t = np.arange(1, horizon + 1)
  ms, bs, fig_m, fig_b, labels = [], [], [], [], []
  with jax.enable_x64(True):
    for k in sizes:
      betas = np.array([(0.05, 0.2, 1.0)[i % 3] for i in range(seeds)])
      gs = _games(k, seeds, betas)
      etas = make.eta_for(betas)
      keys = jax.random.split(jax.random.key(200 + k), seeds)
      k0, tr = _kl_traces(make, etas, gs, keys, horizon)
      bound = rate(etas[:, None], betas[:, None], t[None, :]) * k0[:, None]
      keep = tr > 1e-13  # below this KL is at float64 resolution of the reference
      ms.append(tr[keep]); bs.append(bound[keep])
      fig_m.append(tr[0]); fig_b.append(bound[0]); labels.append(f"K={k}, beta={betas[0]}")
  fig, ax = _plot.figure()
  for m, b, lab in zip(fig_m, fig_b, labels):
    line, = ax.semilogy(t, np.maximum(m, 1e-18), label=f"{lab}: measured")
    ax.semilogy(t, b, "--", color=line.get_color(), label=f"{lab}: bound")
  ax.set_xlabel("step t"); ax.set_ylabel("KL(pi*, pi_t)"); ax.set_title(title, fontsize=10); ax.legend(fontsize=7)
  path = _plot.save(fig, out_dir, name)
  details = f"random intransitive K in {sizes}, {seeds} seeds, beta in {{0.05, 0.2, 1}}, {label}, T = {horizon}, float64"
  return result_from_ratios(name, np.concatenate(ms), np.concatenate(bs), details, (path,), 0.0)


def _egpo(eta):
  return solvers.egpo(eta, init_scale=2.0)


_egpo.eta_for = lambda beta: 1.0 / (beta + 1.0)


@claim(
    "egpo_linear_rate",
    theorem=("EGPO (mirror-prox on the KL-regularised game) with eta = 1/(beta + 2 max|P - 1/2|) = 1/(beta + 1): "
             "KL(pi*_beta, pi_t) <= (1 - eta beta)^t KL(pi*_beta, pi_0), a linear last-iterate rate."),
    source=("Zhou, Fazel & Du, arXiv:2503.08942 (linear last-iterate convergence, abstract) with the rate of "
            "Cen, Wei & Chi, NeurIPS 2021 (arXiv:2105.15186), Thm 1, for the same update; THEORY.md section 7 "
            "marks the constant [M]: this claim is its numerical check. float64."),
    cost=16,
)
def egpo_linear_rate(fast: bool, out_dir: str):
  return _linear_rate_claim("egpo_linear_rate", _egpo, lambda eta, beta, t: (1.0 - eta * beta) ** t,
                            "EGPO: last-iterate KL vs (1 - eta beta)^t KL_0", fast, out_dir, "eta = 1/(beta+1)")


def _mpo(eta):
  return solvers.mpo(eta, init_scale=2.0)


_mpo.eta_for = lambda beta: 4.0 * beta  # tau / L^2 with L = 1/2


@claim(
    "mpo_linear_rate",
    theorem=("Magnetic mirror descent (MPO's inner loop) with eta = tau / L^2, L = 1/2 the Lipschitz constant of "
             "pi -> (P - 1/2) pi from l1 to l-inf: KL(pi*_beta, pi_t) <= KL(pi*_beta, pi_0) / (1 + eta beta)^t."),
    source=("Sokota et al., ICLR 2023 (arXiv:2206.05825), Thm 3.4; Wang et al., ICLR 2025 (arXiv:2410.16714), "
            "MPO. float64."),
)
def mpo_linear_rate(fast: bool, out_dir: str):
  return _linear_rate_claim("mpo_linear_rate", _mpo, lambda eta, beta, t: (1.0 + eta * beta) ** (-t),
                            "MPO / MMD: last-iterate KL vs KL_0 / (1 + eta beta)^t", fast, out_dir, "eta = 4 beta")


@claim(
    "inpo_last_iterate_kl",
    theorem=("INPO with eta_t = 2/(beta(t+2)) (the paper's inverse step beta(t+2)/2): KL(pi*, pi_T) <= "
             "32 C^2/(beta^2 (T+1)), C = max(B beta, 1), B = max |log(pi/pi_ref)| over the iterates and pi*."),
    source="Zhang et al., ICLR 2025 (arXiv:2407.00617), Theorem 4; THEORY.md section 7. float64.",
)
def inpo_last_iterate_kl(fast: bool, out_dir: str):
  sizes, seeds = _sweep(fast)
  horizon = 2_000 if fast else 5_000
  every = horizon // 100
  t = np.arange(1, 101) * every
  ms, bs, fig_m, fig_b, labels = [], [], [], [], []
  with jax.enable_x64(True):
    for k in sizes:
      betas = np.where(np.arange(seeds) % 2 == 1, 0.5, 0.1)
      gs = _games(k, seeds, betas)
      opt = _nash(gs)
      keys = jax.random.split(jax.random.key(300 + k), seeds)

      def one(g, key, o):
        solver = solvers.inpo(schedule="theory")
        metric = lambda gg, s: (simplex.kl(o, s.profile), jnp.max(jnp.abs(s.log_probs - gg.log_ref)))
        _, (tr, logr) = run(solver, g, key, num_steps=horizon, every=every, metric_fn=metric)
        b0 = jnp.maximum(jnp.max(jnp.abs(solver.init(g, key).log_probs - g.log_ref)),
                         jnp.max(jnp.abs(jnp.log(o) - g.log_ref)))
        return tr, jnp.maximum(b0, jnp.max(logr))

      tr, b_max = jax.jit(jax.vmap(one))(gs, keys, opt)
      tr, b_max = np.asarray(tr), np.asarray(b_max)
      c = np.maximum(b_max * betas, 1.0)
      bound = 32.0 * c[:, None] ** 2 / (betas[:, None] ** 2 * (t[None, :] + 1.0))
      ms.append(tr.ravel()); bs.append(bound.ravel())
      fig_m.append(tr[0]); fig_b.append(bound[0]); labels.append(f"K={k}, beta={betas[0]}")
  fig = _plot.measured_vs_bound(out_dir, "inpo_last_iterate_kl", t, np.array(fig_m), np.array(fig_b),
                                "INPO: last-iterate KL vs 32 C^2/(beta^2 (T+1))", "KL(pi*, pi_T)", labels)
  details = f"random intransitive K in {sizes}, {seeds} seeds, beta in {{0.1, 0.5}}, T = {horizon}, float64"
  return result_from_ratios("inpo_last_iterate_kl", np.concatenate(ms), np.concatenate(bs), details, (fig,), 0.0)


def _unreg_games(k: int, seeds: int):
  keys = jax.random.split(jax.random.key(2000 + k), seeds)
  return jax.vmap(lambda kk: games.random_preference_game(kk, k, jnp.float64))(keys)


def _profiles(solver, gs, steps):
  """pi_0 .. pi_T (last iterates) as a [B, T + 1, K] array, batched over games."""

  def one(g):
    key = jax.random.key(0)
    _, tr = run(solver, g, key, num_steps=steps, every=1, metric_fn=lambda gg, s: s.log_probs)
    return jnp.concatenate([solver.init(g, key).log_probs[None], tr], 0)

  return np.exp(np.asarray(jax.jit(jax.vmap(one))(gs)))


@claim(
    "sppo_average_gap",
    theorem=("SPPO (Hedge on win rates, unregularised game) from the uniform policy with eta = sqrt(8 ln K / T): the "
             "average of pi_0..pi_{N-1} has Gap_0 = 2 Reg_N / N <= 2 (ln K / eta + eta N / 8) / N, which is "
             "sqrt(2 ln K / T) at N = T."),
    source=("Wu et al., ICLR 2025 (arXiv:2405.00675), Theorem 4.1, with the explicit Hedge constant of "
            "Cesa-Bianchi & Lugosi 2006, Thm 2.2; THEORY.md section 5. Uniform start (the bound's assumption). float64."),
)
def sppo_average_gap(fast: bool, out_dir: str):
  sizes, seeds = _sweep(fast)
  horizon = 2_000 if fast else 8_000
  ms, bs, fig_m, fig_b, labels = [], [], [], [], []
  with jax.enable_x64(True):
    for k in sizes:
      eta = float(np.sqrt(8 * np.log(k) / horizon))
      gs = _unreg_games(k, seeds)
      allpis = _profiles(solvers.sppo(eta, iterate="last", init_scale=0.0), gs, horizon)
      for seed in range(seeds):
        pis = allpis[seed, :-1]
        p = np.asarray(gs.preference[seed])
        n = np.arange(1, horizon + 1)
        avg = np.cumsum(pis, 0) / n[:, None]
        gap = 2 * (avg @ p.T).max(-1) - 1
        bound = 2 * (np.log(k) / eta + eta * n / 8) / n
        sel = n[::20] - 1
        ms.append(gap[sel]); bs.append(bound[sel])
        if seed == 0:
          fig_m.append(gap[sel]); fig_b.append(bound[sel]); labels.append(f"K={k}")
  fig = _plot.measured_vs_bound(out_dir, "sppo_average_gap", np.arange(1, horizon + 1)[::20], np.array(fig_m),
                                np.array(fig_b), "SPPO: average-iterate gap vs Hedge bound", "Gap_0(average)", labels)
  details = f"random intransitive K in {sizes}, {seeds} seeds, T = {horizon}, uniform start, float64"
  return result_from_ratios("sppo_average_gap", np.concatenate(ms), np.concatenate(bs), details, (fig,), 0.0)


@claim(
    "onpo_average_gap",
    theorem=("Optimistic mirror descent (ONPO; optimistic Hedge in self-play) from the uniform policy: the average "
             "of pi_0..pi_{N-1} has Gap_0 = 2 Reg_N / N <= 2 (ln K / eta + eta S_N) / N with "
             "S_N = sum_t ||r_t - r_{t-1}||_inf^2 (r_{-1} = 0), and S_N stays bounded, so the gap is O(1/T)."),
    source=("Zhang et al., arXiv:2502.16852 (ONPO, O(1/T) duality gap); the RVU bound of optimistic Hedge: "
            "Syrgkanis, Agarwal, Luo & Schapire, NeurIPS 2015, Prop. 7 (negative term dropped); THEORY.md "
            "section 7. Uniform start (the bound's ln K). float64."),
)
def onpo_average_gap(fast: bool, out_dir: str):
  sizes, seeds = _sweep(fast)
  horizon = 2_000 if fast else 8_000
  eta = 0.5
  ms, bs, fig_m, fig_b, labels, growth = [], [], [], [], [], []
  with jax.enable_x64(True):
    for k in sizes:
      gs = _unreg_games(k, seeds)
      allpis = _profiles(solvers.onpo(eta, init_scale=0.0), gs, horizon)
      for seed in range(seeds):
        pis = allpis[seed, :-1]
        p = np.asarray(gs.preference[seed])
        r = pis @ p.T
        n = np.arange(1, horizon + 1)
        avg = np.cumsum(pis, 0) / n[:, None]
        gap = 2 * (avg @ p.T).max(-1) - 1
        dr = np.diff(np.concatenate([np.zeros((1, k)), r], 0), axis=0)
        s = np.cumsum(np.abs(dr).max(-1) ** 2)
        bound = 2 * (np.log(k) / eta + eta * s) / n
        sel = n[::20] - 1
        ms.append(gap[sel]); bs.append(bound[sel])
        growth.append(s[-1] / s[horizon // 2 - 1])
        if seed == 0:
          fig_m.append(gap[sel]); fig_b.append(bound[sel]); labels.append(f"K={k}")
  fig = _plot.measured_vs_bound(out_dir, "onpo_average_gap", np.arange(1, horizon + 1)[::20], np.array(fig_m),
                                np.array(fig_b), "ONPO: average-iterate gap vs RVU bound (O(1/T))", "Gap_0(average)",
                                labels)
  growth = np.array(growth)
  details = (f"random intransitive K in {sizes}, {seeds} seeds, eta = {eta}, T = {horizon}, uniform start, float64; "
             f"path length S_T / S_(T/2) <= {growth.max():.4f} (bounded => O(1/T))")
  res = result_from_ratios("onpo_average_gap", np.concatenate(ms), np.concatenate(bs), details, (fig,), 0.0)
  if growth.max() > 1.05:
    res = dataclasses.replace(res, status="fail", details=details + " [path length still growing: not O(1/T)]")
  return res


@claim(
    "bt_rlhf_vs_minimax_winner",
    theorem=("On the 3-rater Condorcet cycle (shares 1/3-eps, 1/3+eps/2, 1/3+eps/2) the minimax winner is "
             "(1/3+eps/2, 1/3+eps/2, 1/3-eps) (LP), while the Bradley-Terry RLHF optimum (beta = 0.01) is "
             "nearly pure and jumps between y1 and y2 as eps changes sign: TV(RLHF, minimax winner) >= 0.3."),
    source=("Munos et al., ICML 2024 (arXiv:2312.00886), the 3-rater example as in THEORY.md section 4 "
            "(LP value (0.3833, 0.3833, 0.2333) at eps = 0.1); Swamy et al., ICML 2024 (SPO). float64."),
)
def bt_rlhf_vs_minimax_winner(fast: bool, out_dir: str):
  epss = (-0.1, -0.05, 0.05, 0.1)
  rows, tvs, lp_err = [], [], []
  with jax.enable_x64(True):
    for eps in epss:
      g = games.three_rater_cycle(eps, jnp.float64)
      mw = solvers.minimax_winners(g)
      lp_err.append(np.abs(mw - np.array([1 / 3 + eps / 2, 1 / 3 + eps / 2, 1 / 3 - eps])).max())
      rl = np.asarray(solvers.rlhf_optimum(g.regularized(0.01), pair_weights=jnp.ones((3, 3))))
      tvs.append(0.5 * np.abs(rl - mw).sum())
      rows.append((eps, mw, rl))
  fig, ax = _plot.figure()
  for j, lab in enumerate(("y1", "y2", "y3")):
    line, = ax.plot(epss, [r[1][j] for r in rows], "o-", label=f"minimax winner {lab}")
    ax.plot(epss, [r[2][j] for r in rows], "s--", color=line.get_color(), label=f"BT-RLHF {lab}")
  ax.set_xlabel("eps"); ax.set_ylabel("probability"); ax.legend(fontsize=7)
  ax.set_title("3-rater cycle: minimax winner (LP) vs Bradley-Terry RLHF optimum", fontsize=10)
  path = _plot.save(fig, out_dir, "bt_rlhf_vs_minimax_winner")
  tvs = np.array(tvs)
  eps, mw, rl = rows[-1]
  details = (f"eps in {epss}; at eps = {eps}: minimax winner {np.round(mw, 4).tolist()}, BT-RLHF "
             f"{np.round(rl, 4).tolist()}; LP vs closed form max error {max(lp_err):.2g}; TV min {tvs.min():.3f}")
  # measured / bound: 0.3 / TV must be <= 1 (TV >= 0.3), and the LP matches the closed form to 1e-6
  res = result_from_ratios("bt_rlhf_vs_minimax_winner", np.full_like(tvs, 0.3), tvs, details, (path,), 0.0)
  if max(lp_err) > 1e-6:
    res = dataclasses.replace(res, status="fail", details=details + " [LP disagrees with the closed form]")
  return res


@claim(
    "maxmin_rlhf_impossibility",
    theorem=("Two Bradley-Terry populations (shares eta_1 >= 1/2 and 1 - eta_1): single-reward RLHF on pooled data "
             "leaves the minority an alignment gap F_2(pi*_2) - F_2(pi_single) > 0 that grows with the distance "
             "between the rewards and with the majority share (Spearman > 0.9), while MaxMin-RLHF's worst group "
             "does at least as well: min_u F_u(pi_maxmin) >= min_u F_u(pi_single) - 1e-9."),
    source=("Chakraborty et al., ICML 2024 (arXiv:2402.08925), Theorem 1 (impossibility) and the MaxMin objective; "
            "THEORY.md section 11 (the toy verifier without the [M] constant). float64."),
)
def maxmin_rlhf_impossibility(fast: bool, out_dir: str):
  k, beta = 5, 0.1
  shares = (0.5, 0.6, 0.7, 0.8, 0.9, 0.99)
  scales = (0.25, 0.5, 1.0, 2.0, 4.0)
  rng = np.random.default_rng(0)
  a = rng.normal(size=k)
  b = -a + 0.3 * rng.normal(size=k)  # the minority mostly disagrees with the majority
  ref = np.full(k, 1.0 / k)
  gaps = np.zeros((len(shares), len(scales)))
  deficit = np.zeros_like(gaps)
  shown = None
  with jax.enable_x64(True):
    for i, s1 in enumerate(shares):
      for j, sc in enumerate(scales):
        r = jnp.asarray(np.stack([sc * a, sc * b]))
        single, _ = solvers.pooled_rlhf(r, jnp.array([s1, 1 - s1]), beta, ref)
        mm = solvers.maxmin_rlhf(r, beta, ref, steps=500 if fast else 2_000)
        f_single = np.asarray(baselines.regularized_objective(r, single, beta, ref))
        opt2 = jax.nn.softmax(jnp.log(ref) + r[1] / beta)
        gaps[i, j] = float(baselines.regularized_objective(r[1], opt2, beta, ref)) - f_single[1]
        deficit[i, j] = f_single.min() - float(mm.value)
        if s1 == 0.9 and sc == 2.0:
          shown = (f_single, np.asarray(baselines.regularized_objective(r, mm.policy, beta, ref)))
  rho_scale = min(stats.spearmanr(scales, gaps[i]).statistic for i in range(1, len(shares)))
  rho_share = min(stats.spearmanr(shares, gaps[:, j]).statistic for j in range(len(scales)))
  fig, ax = _plot.figure()
  for j, sc in enumerate(scales):
    ax.plot(shares, gaps[:, j], "o-", label=f"||r1 - r2|| scale {sc}")
  ax.set_xlabel("majority share eta_1"); ax.set_ylabel("minority alignment gap of single-reward RLHF")
  ax.set_title("MaxMin-RLHF impossibility: the minority's gap grows", fontsize=10); ax.legend(fontsize=7)
  path = _plot.save(fig, out_dir, "maxmin_rlhf_impossibility")
  details = (f"K = {k}, beta = {beta}, shares {shares}, reward scales {scales}; at eta_1 = 0.9, scale 2: "
             f"F_u(single) = {np.round(shown[0], 3).tolist()}, F_u(maxmin) = {np.round(shown[1], 3).tolist()}; "
             f"Spearman (scale) {rho_scale:.3f}, (share) {rho_share:.3f}")
  res = result_from_ratios("maxmin_rlhf_impossibility", np.maximum(deficit.ravel(), 0.0) + 1e-12,
                           np.full(deficit.size, 1e-9), details, (path,), 0.0)
  if rho_scale <= 0.9 or rho_share <= 0.9 or not (gaps[1:] > 0).all():
    res = dataclasses.replace(res, status="fail", details=details + " [alignment gap not monotone / not positive]")
  return res
