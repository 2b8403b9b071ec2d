"""Claims about the alignment games of the literature (off-switch, consensus game, red-teaming, best-of-N, transformed rewards, DPO rankings).

Each claim measures what a paper's result speaks of on toy instances and
compares it with the result's bound. All run in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate

from nashax.games import alignment as A
from nashax.theory import _plot
from nashax.theory.claim_types import ClaimResult, claim, mutant_into, result_from_ratios, table

_MUTANTS = []  # this module's wrong variants (`mutant(...)(make)` adds one), attached by `table` below
mutant = mutant_into(_MUTANTS)


@claim(
    "off_switch_incentive",
    summary=("the off-switch incentive Δ by quadrature = Stein's form (eq. 7) = closed form for a rational"
             " human (≤ 1e-6); Δ > 0 for a rational human (Thm 1); a sure robot defers only to a rational "
             "human; simulated humans agree within 4 SE; the Δ < 0 region grows with β_H and as σ shrinks "
             "(Hadfield-Menell et al. 2017)"),
    theorem=("Off-switch game, Gaussian belief N(mu, sigma^2): the incentive to defer Delta by quadrature "
             "equals Stein's form sigma^2 E[pi^H'] - |mu| Pr(C) (|diff| <= 1e-6) and, for a rational human,"
             " the closed form sigma phi(mu/sigma) - |mu| Phi(-|mu|/sigma) (<= 1e-6); a rational human "
             "gives Delta > 0 (Thm 1, belief of both signs); a sure robot (point belief u != 0) defers only"
             " to a rational human; Monte Carlo with a simulated human agrees within 4 standard errors; the"
             " region Delta < 0 grows with beta_H and as sigma shrinks."),
    source=("Hadfield-Menell, Dragan, Abbeel, Russell, IJCAI 2017 (arXiv:1611.08219), eq. 1, Thm 1, eq. 7; "
            "Monte Carlo values 0.2668 and 0.1718-0.1721. float64."),
    cost=15,
    subject="solver(mu, sigma, beta_h, method=..., num_points=...) -> Delta (the signature of A.off_switch_incentive).",
)
def off_switch_incentive(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  incentive = A.off_switch_incentive if solver is None else solver
  measured, bound = [], []
  with jax.enable_x64(True):
    mus = np.linspace(-2.0, 2.0, 9)
    sigmas = np.array([0.05, 0.25, 0.5, 1.0, 2.0])
    betas = np.array([0.0, 0.05, 0.25, 0.5, 1.0, 2.0])
    M, S, B = np.meshgrid(mus, sigmas, betas, indexing="ij")
    f = jax.jit(lambda m, s, b, meth: incentive(m, s, b, method=meth), static_argnums=3)
    quad, stein = np.asarray(f(M, S, B, "quadrature")), np.asarray(f(M, S, B, "stein"))
    measured += list(np.abs(quad - stein).ravel()); bound += [1e-6] * quad.size
    closed = np.asarray(f(M[..., 0], S[..., 0], B[..., 0], "closed_form"))
    measured += list(np.abs(quad[..., 0] - closed).ravel()); bound += [1e-6] * closed.size
    # Thm 1: Delta > 0 for the rational human (the Gaussian belief has mass on both signs); where
    # |mu|/sigma > 20 the value is below float64's range and is not tested.
    ok = (np.abs(M[..., 0]) / S[..., 0] <= 20).ravel()
    measured += list(1e-300 / np.maximum(closed.ravel()[ok], 1e-300)); bound += [0.5] * int(ok.sum())
    # Converse: a point belief at u != 0 defers (Delta = pi(u) u - max(u, 0) >= 0) iff pi^H(u) = 1[u >= 0].
    us = np.array([-1.5, -0.2, 0.2, 1.5])
    for b in betas:
      d = np.asarray(A.human_policy(us, b)) * us - np.maximum(us, 0.0)
      if b == 0:
        measured += list(np.abs(d)); bound += [1e-15] * len(us)
      else:
        measured += list(1e-300 / np.maximum(-d, 1e-300)); bound += [0.5] * len(us)
    num = 200_000 if fast else 2_000_000
    mc_rows = []
    for i, b in enumerate((0.0, 0.5)):
      est, se = A.off_switch_monte_carlo(jax.random.key(10 + i), 0.3, 1.0, b, num)
      ref = float(incentive(0.3, 1.0, b))
      measured.append(abs(float(est) - ref)); bound.append(4.0 * float(se))
      mc_rows.append(f"beta_H={b}: MC {float(est):.4f} +- {float(se):.4f} vs {ref:.4f}")
    sig = np.linspace(0.05, 2.0, 20 if fast else 40)
    bh = np.linspace(0.0, 2.0, 21 if fast else 41)
    SS, BB = np.meshgrid(sig, bh, indexing="ij")
    D = np.asarray(jax.jit(lambda s, b: incentive(0.3, s, b, num_points=20_001))(SS, BB))
    neg = D < 0
    grows_beta = int((neg[:, :-1] & ~neg[:, 1:]).sum())   # negative at beta, not at a larger beta
    grows_sigma = int((neg[1:] & ~neg[:-1]).sum())        # negative at sigma, not at a smaller sigma
    measured += [grows_beta, grows_sigma]; bound += [0.5, 0.5]
  fig, ax = _plot.figure()
  cs = ax.contourf(bh, sig, D, levels=20, cmap="RdBu", vmin=-abs(D).max(), vmax=abs(D).max())
  ax.contour(bh, sig, D, levels=[0.0], colors="k", linewidths=1.2)
  fig.colorbar(cs, ax=ax, label="Delta (incentive to defer)")
  ax.set_xlabel("human noise beta_H"); ax.set_ylabel("robot uncertainty sigma")
  ax.set_title("off-switch game, mu = 0.3: the robot disables the switch where Delta < 0", fontsize=9)
  path = _plot.save(fig, out_dir, "off_switch_incentive")
  details = (f"{quad.size} (mu, sigma, beta_H) points, quadrature vs Stein vs closed form; point beliefs; "
             f"{'; '.join(mc_rows)} ({num} samples); Delta<0 region on a {len(sig)}x{len(bh)} grid "
             f"({int(neg.sum())} cells); float64")
  return result_from_ratios("off_switch_incentive", np.array(measured, float), np.array(bound, float), details,
                            (path,), 0.0)


def _incentive_closed_sign(mu, sigma, beta_h, *, method="quadrature", num_points=40_001):
  if method == "closed_form":  # bug: + |mu| Phi(-|mu|/sigma)
    return sigma * A._phi(mu / sigma) + jnp.abs(mu) * A._Phi(-jnp.abs(mu) / sigma)
  return A.off_switch_incentive(mu, sigma, beta_h, method=method, num_points=num_points)


def _incentive_no_baseline(mu, sigma, beta_h, *, method="quadrature", num_points=40_001):
  out = A.off_switch_incentive(mu, sigma, beta_h, method=method, num_points=num_points)
  if method == "quadrature":  # bug: E[pi^H(u) u] without subtracting the value max(mu, 0) of acting directly
    out = out + jnp.maximum(mu, 0.0)
  return out


mutant("off_switch_incentive", "closed_form_sign", "the closed form adds |mu| Phi(-|mu|/sigma) instead of subtracting it")(
    _incentive_closed_sign)
mutant("off_switch_incentive", "no_baseline",
       "the quadrature forgets to subtract max(mu, 0), the value of acting without deferring")(_incentive_no_baseline)


_PIKL_WORST = 1e-2  # the worst game's final exploitability must be below this (the median's bound is 1e-3)


def _pikl_variant(sum_not_average: bool = False, anchor_current: bool = False):
  """piKL written like ``A.pikl`` with one bug (see the mutants below)."""

  def pikl(game, num_steps, eta_g=0.1, eta_d=0.1):
    lg0, ld0 = game.log_gen_init, game.log_disc_init

    def step(carry, t):
      pi_g, pi_d, sum_g, sum_d, acc_g, acc_d = carry
      vg, vd = A._regularized_values(game, pi_g, pi_d)
      expl = A.consensus_exploitability(game, pi_g, pi_d)
      sum_g, sum_d = sum_g + pi_g, sum_d + pi_d
      acc_g, acc_d = acc_g + vg, acc_d + vd
      best_g = t * game.lam_g * jnp.sum(jax.nn.logsumexp(lg0 + 0.5 * sum_d.T / (t * game.lam_g), -1))
      best_d = t * game.lam_d * jnp.sum(jax.nn.logsumexp(ld0 + 0.5 * sum_g.T / (t * game.lam_d), -1))
      w = 0.5 if sum_not_average else 0.5 / t  # bug: the cumulative payoff, not the average
      ag = jnp.log(pi_g) if anchor_current else lg0  # bug: anchored to the current policy, not pi^(1)
      ad = jnp.log(pi_d) if anchor_current else ld0
      new_g = jax.nn.softmax((w * sum_d.T + game.lam_g * ag) / (1.0 / (eta_g * t) + game.lam_g), -1)
      new_d = jax.nn.softmax((w * sum_g.T + game.lam_d * ad) / (1.0 / (eta_d * t) + game.lam_d), -1)
      return (new_g, new_d, sum_g, sum_d, acc_g, acc_d), (best_g - acc_g, best_d - acc_d, expl)

    z = jnp.zeros((), lg0.dtype)
    init = (jnp.exp(lg0), jnp.exp(ld0), jnp.zeros_like(lg0), jnp.zeros_like(ld0), z, z)
    (pg, pd, *_), (rg, rd, ex) = jax.lax.scan(step, init, jnp.arange(1, num_steps + 1, dtype=lg0.dtype))
    return A.PiKLTrace(pg, pd, rg, rd, ex)

  return pikl


def _discordant(a: np.ndarray, b: np.ndarray) -> int:
  """Pairs ordered differently by the scores ``a`` and ``b`` (Kendall's discordant pairs)."""
  da = np.sign(a[:, None] - a[None, :])
  db = np.sign(b[:, None] - b[None, :])
  return int((da * db < 0).sum() // 2)


@claim(
    "consensus_game_pikl",
    summary=("piKL's regret on the consensus game stays under the strongly-convex FTRL bound (O(log t)); "
             "median last-iterate exploitability < 1e-3 by t = 20,000; λ → ∞ keeps the initial rankings "
             "(Jacob et al. 2024)"),
    theorem=("piKL on the consensus game: each learner's regret in its regularised utility after t rounds "
             "is at most the FTRL bound KL_max/eta + (G^2/2) sum_{s<=t} 1/(1/eta + lambda (s-1)) = O(log t)"
             " (G^2 = 1/2 for the generator, Y/4 for the discriminator; KL_max = blocks/(2 lambda)); the "
             "last iterate's exploitability in the regularised game at t = 20000 (lambda = eta = 0.1) is < "
             "1e-2 in every game (the worst one: games with several nearby equilibria converge slowly, "
             "~5e-3 on these) and < 1e-3 in the median game; lambda -> infinity keeps the initial rankings "
             "(ER-G and ER-D orders equal the initial ones)."),
    source=("Jacob, Shen, Farina, Andreas, ICLR 2024 (arXiv:2310.09139), sec. 3 (piKL, equilibrium "
            "ranking); the regret bound is the strongly convex FTRL bound (Orabona, 'A Modern Introduction "
            "to Online Learning', ch. 7) with Pinsker's 1-strong convexity of KL, derived here. float64."),
    subject="solver(game, num_steps, eta_g, eta_d) -> PiKLTrace (the signature of A.pikl).",
    cost=7,
)
def consensus_game_pikl(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  pikl = A.pikl if solver is None else solver
  n_games = 3 if fast else 10
  Y, T, lam, eta = 6, 20_000, 0.1, 0.1
  measured, bound, curves = [], [], []
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(3), n_games)
    games = jax.vmap(lambda k: A.random_consensus_game(k, Y, lam))(keys)
    tr = jax.jit(jax.vmap(lambda g: pikl(g, T, eta, eta)))(games)
    t = np.arange(1, T + 1)
    harmonic = np.cumsum(1.0 / (1.0 / eta + lam * (t - 1)))
    bound_g = 2 / (2 * lam) / eta + 0.5 * 0.5 * harmonic
    bound_d = Y / (2 * lam) / eta + 0.5 * (Y / 4) * harmonic
    for i in range(n_games):
      rg, rd = np.asarray(tr.regret_g[i]), np.asarray(tr.regret_d[i])
      measured += list(rg[9::10]); bound += list(bound_g[9::10])
      measured += list(rd[9::10]); bound += list(bound_d[9::10])
      curves.append((rg, rd))
    final = np.asarray(tr.exploitability[:, -1])
    measured.append(float(np.max(final))); bound.append(_PIKL_WORST)
    measured.append(float(np.median(final))); bound.append(1e-3)
    big = jax.vmap(lambda k: A.random_consensus_game(k, Y, 1e4))(keys)
    tb = jax.jit(jax.vmap(lambda g: pikl(g, 500, eta, eta)))(big)
    for i in range(n_games):
      erg, erd = A.equilibrium_ranking(tb.pi_g[i], tb.pi_d[i])
      measured.append(_discordant(np.asarray(erg), np.asarray(big.log_gen_init[i, 0])))
      measured.append(_discordant(np.asarray(erd), np.asarray(big.log_disc_init[i, :, 0])))
      bound += [0.5, 0.5]
  fig, ax = _plot.figure()
  for rg, rd in curves:
    ax.semilogx(t, rg, color="C0", lw=1)
    ax.semilogx(t, rd, color="C1", lw=1)
  ax.semilogx(t, bound_g, "--", color="C0", label="generator bound")
  ax.semilogx(t, bound_d, "--", color="C1", label="discriminator bound")
  ax.set_xlabel("round t"); ax.set_ylabel("regret (regularised utility)")
  ax.set_title(f"piKL on {n_games} random consensus games (Y = {Y}, lambda = eta = {lam})", fontsize=9)
  ax.legend(fontsize=7)
  path = _plot.save(fig, out_dir, "consensus_game_pikl")
  details = (f"{n_games} random games, Y = {Y}, T = {T}, lambda = eta = {lam}; final exploitability median "
             f"{float(np.median(final)):.2e}, max {float(np.max(final)):.2e}; lambda = 1e4 for the ranking limit; "
             "float64")
  return result_from_ratios("consensus_game_pikl", np.array(measured, float), np.array(bound, float), details,
                            (path,), 0.0)


mutant("consensus_game_pikl", "summed_payoff", "Q is the cumulative payoff sum_tau pi^(tau) / 2 instead of its average")(
    _pikl_variant(sum_not_average=True))
mutant("consensus_game_pikl", "anchor_current", "the KL anchor is the current policy instead of the initial pi^(1)")(
    _pikl_variant(anchor_current=True))


@claim(
    "red_teaming_safety_guarantee",
    summary=("the LP equilibrium (v, x, y) of the red-teaming game certifies itself (numpy minimax "
             "certificate); v = 0 exactly when a defence safe on every prompt exists, and then the "
             "equilibrium defender is safe on every prompt; an extragradient defender is within its gap "
             "certificate (Self-RedTeam, Liu et al. 2025)"),
    theorem=("Attacker/defender red-teaming game (zero-sum, loss S[prompt, defence]): the equilibrium (v, "
             "x, y) certifies itself, max_p (S y)_p <= v + 1e-9 and min_d (x^T S)_d >= v - 1e-9 (recomputed"
             " in numpy); its value is 0 exactly when a defence safe on every prompt exists (a "
             "combinatorial check), and then the equilibrium defender is safe against every prompt (worst-"
             "case loss <= 1e-9); otherwise v > 0 and no defence does better; an extragradient defender's "
             "worst-case loss exceeds v by at most its duality-gap certificate."),
    source=("Liu et al., 'Chasing Moving Targets with Online Self-Play RL for Safer Language Models' (Self-"
            "RedTeam, arXiv:2506.07468): at a Nash equilibrium of the zero-sum attacker/defender game the "
            "defender is safe against any adversarial input; von Neumann's minimax theorem (the (x, y) "
            "certificate). float64."),
    subject=("solver(game) -> (value, attacker x, defender y) of a MatrixGame whose row player maximises "
             "(the fields of solvers.exact_equilibrium)."),
    cost=4,
)
def red_teaming_safety_guarantee(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  from nashax import run
  from nashax import solvers

  equilibrium = solvers.exact_equilibrium if solver is None else solver
  n = 20 if fast else 100
  steps = 2000 if fast else 5000
  measured, bound, pts, duality = [], [], [], []
  with jax.enable_x64(True):
    eg = solvers.extragradient(0.5)
    runner = jax.jit(lambda g, k: run(eg, g, k, num_steps=steps, every=steps))
    for seed in range(n):
      game, spec = A.random_red_teaming_game(seed, 8, 3, 0.5, disguise=0.5 if seed % 2 else 0.0)
      v, x, y = equilibrium(game)
      v, x, y = float(v), np.asarray(x, np.float64), np.asarray(y, np.float64)
      s = np.asarray(game.payoff, np.float64)
      # The minimax certificate, recomputed here: the defender concedes at most v, the attacker secures v.
      measured += [np.max(s @ y) - v, v - np.min(x @ s)]; bound += [1e-9, 1e-9]
      safe = A.safe_defense_exists(spec["harmful"], spec["harm"], spec["observation"], 0.5)
      pure = float(np.min(np.max(s, axis=0)))
      if safe:
        measured += [abs(v), float(np.max(s @ y))]; bound += [1e-9, 1e-9]
      else:
        measured.append(1e-300 / max(v, 1e-300)); bound.append(0.5)
      duality.append(v - pure)  # weak duality (v <= best pure defence) holds for any LP value: a sanity check
      if not safe:  # (with a safe defence the certificate check is an identity: v = 0 = min_d x^T S e_d)
        state, trace = runner(game, jax.random.key(seed))
        measured.append(float(A.defender_worst_case(game, state.profile[1])) - v)
        bound.append(float(trace.duality_gap[-1]) + 1e-12)
      pts.append((pure, v, safe))
  pts = np.array(pts, float)
  fig, ax = _plot.figure()
  ax.scatter(pts[:, 0], pts[:, 1], c=np.where(pts[:, 2] > 0, "C2", "C3"), s=14)
  lim = [0, max(pts[:, 0].max(), 1e-3) * 1.05]
  ax.plot(lim, lim, "k--", lw=0.8)
  ax.set_xlabel("best pure defence: worst-case loss"); ax.set_ylabel("equilibrium (mixed) guarantee")
  ax.set_title("red-teaming games: green = a safe defence exists (value 0)", fontsize=9)
  path = _plot.save(fig, out_dir, "red_teaming_safety_guarantee")
  details = (f"{n} random games (8 prompts, 3 observations, refusal cost 0.5), {int(pts[:, 2].sum())} with a safe "
             f"defence; extragradient {steps} steps; mixed strictly better than pure in "
             f"{int((pts[:, 1] < pts[:, 0] - 1e-9).sum())}; sanity (not counted: weak duality holds for any "
             f"value): max(v - best pure) = {max(duality):.1e}; float64")
  return result_from_ratios("red_teaming_safety_guarantee", np.array(measured, float), np.array(bound, float),
                            details, (path,), 0.0)


def _pure_defence(game):
  s = np.asarray(game.payoff, np.float64)
  d = int(np.argmin(np.max(s, axis=0)))  # bug: the best pure defence, as if mixing could not help
  p = int(np.argmax(s[:, d]))
  return float(s[p, d]), np.eye(s.shape[0])[p], np.eye(s.shape[1])[d]


def _sign_swapped(game):
  from nashax import solvers

  # bug: the LP of -S, whose row player minimises the harm and whose defender maximises it
  e = solvers.exact_equilibrium(type(game).from_payoff(-np.asarray(game.payoff)))
  return -float(e.value), e.x, e.y


mutant("red_teaming_safety_guarantee", "pure_defence",
       "the best pure defence and the attacker's best reply to it, without mixing")(_pure_defence)
mutant("red_teaming_safety_guarantee", "payoff_sign",
       "the LP solved on -S (the sign convention of who maximises confused)")(_sign_swapped)


@claim(
    "best_of_n_win_rate",
    summary=("best-of-N wins N/(N+1) with KL log N − (N−1)/N; the tilt's W and KL closed forms (t = 5: "
             "0.80678, 0.65012); BoN of a tilt vs BoN of the base; at equal KL the tilt beats best-of-N "
             "(InfAlign, Balashankar et al. 2025)"),
    theorem=("Best-of-N against the base policy wins with probability N/(N+1) (Monte Carlo within 4 "
             "standard errors; quadrature within 1e-9), with KL(BoN||pi_ref) = log N - (N-1)/N; the "
             "exponential tilt pi_t ∝ pi_ref e^{t c} has W = 1/(1-e^{-t}) - 1/t and KL = t W - "
             "log((e^t-1)/t) (t = 5: 0.80678, 0.65012); BoN of the tilt against BoN of the base wins int "
             "c^N dG^N (MC within 4 SE); at equal KL the tilt wins at least as often as BoN (Gibbs "
             "variational principle)."),
    source=("Balashankar et al., InfAlign, ICML 2025 (arXiv:2412.19792); Beirami et al. 2024 (BoN KL); "
            "BoN(4) Monte Carlo 0.8004. Quadrature by scipy. float64."),
    subject=("solver = {'bon_win_rate', 'bon_kl', 'tilted_win_rate', 'tilted_kl'}: the closed forms of "
             "nashax.games.alignment, each a function of N or t."),
    cost=9,
)
def best_of_n_win_rate(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  F = _BON if solver is None else solver
  from scipy.optimize import brentq

  measured, bound = [], []
  num = 100_000 if fast else 1_000_000
  Ns = [1, 2, 4, 8, 32]
  with jax.enable_x64(True):
    for N in Ns:
      w_quad = integrate.quad(lambda c: c * N * c ** (N - 1), 0, 1, epsabs=1e-13)[0]
      measured.append(abs(w_quad - float(F["bon_win_rate"](N)))); bound.append(1e-9)
      kl_quad = integrate.quad(lambda c: N * c ** (N - 1) * np.log(N * c ** (N - 1)) if c > 0 else 0.0, 0, 1,
                               epsabs=1e-12, limit=200)[0]
      measured.append(abs(kl_quad - float(F["bon_kl"](N)))); bound.append(1e-7)
      k1, k2 = jax.random.split(jax.random.key(N))
      best = jnp.max(jax.random.normal(k1, (num, N)), -1)
      opp = jax.random.normal(k2, (num,))
      wins = np.asarray(best > opp, float)
      measured.append(abs(wins.mean() - N / (N + 1))); bound.append(4 * wins.std() / np.sqrt(num))
    for t in (0.5, 2.0, 5.0, 10.0):
      dens = lambda c, t=t: t * np.exp(t * c) / np.expm1(t)
      w = integrate.quad(lambda c: c * dens(c), 0, 1, epsabs=1e-13)[0]
      kl = integrate.quad(lambda c: dens(c) * np.log(dens(c)), 0, 1, epsabs=1e-13)[0]
      measured += [abs(w - float(F["tilted_win_rate"](t))), abs(kl - float(F["tilted_kl"](t)))]; bound += [1e-9, 1e-9]
    measured += [abs(float(F["tilted_win_rate"](5.0)) - 0.80678), abs(float(F["tilted_kl"](5.0)) - 0.65012)]
    bound += [5e-6, 5e-6]
    # BoN_N(pi_t) vs BoN_N(pi_ref): W = int c^N d(G^N), G(c) = (e^{tc}-1)/(e^t-1).
    t = 2.0
    for N in (1, 4):
      G = lambda c: np.expm1(t * c) / np.expm1(t)
      g = lambda c: t * np.exp(t * c) / np.expm1(t)
      w = integrate.quad(lambda c: c ** N * N * G(c) ** (N - 1) * g(c), 0, 1, epsabs=1e-13)[0]
      k1, k2 = jax.random.split(jax.random.key(100 + N))
      u = jax.random.uniform(k1, (num, N))
      c_pi = jnp.max(jnp.log1p(u * jnp.expm1(t)) / t, -1)  # inverse CDF of the tilt
      c_ref = jnp.max(jax.random.uniform(k2, (num, N)), -1)
      wins = np.asarray(c_pi > c_ref, float)
      measured.append(abs(wins.mean() - w)); bound.append(4 * wins.std() / np.sqrt(num))
    # At equal KL the tilt (KL-optimal for E[c]) wins at least as often as best-of-N.
    curve = []
    for N in Ns[1:]:
      kl_n = float(F["bon_kl"](N))
      t_star = brentq(lambda x: float(F["tilted_kl"](x)) - kl_n, 1e-6, 200.0, xtol=1e-14)
      w_t = float(F["tilted_win_rate"](t_star))
      measured.append(float(F["bon_win_rate"](N)) / w_t); bound.append(1.0 + 1e-12)
      curve.append((kl_n, float(F["bon_win_rate"](N)), w_t))
  ts = np.linspace(0.05, 40, 400)
  fig, ax = _plot.figure()
  ax.plot(np.asarray(F["tilted_kl"](ts)), np.asarray(F["tilted_win_rate"](ts)), label="exponential tilt e^{tc} (CTRL, N=1)")
  ns = np.arange(1, 65)
  ax.plot(np.asarray(F["bon_kl"](ns)), np.asarray(F["bon_win_rate"](ns)), "o", ms=3, label="best-of-N")
  ax.set_xlabel("KL(pi || pi_ref)"); ax.set_ylabel("win rate against pi_ref")
  ax.set_title("win rate vs KL: tilt (KL-optimal) and best-of-N", fontsize=10)
  ax.legend(fontsize=8)
  path = _plot.save(fig, out_dir, "best_of_n_win_rate")
  details = (f"N in {Ns}, {num} Monte Carlo draws each; tilts t in (0.5, 2, 5, 10); BoN of the tilt t = 2 at N = 1, 4; "
             f"equal-KL comparison {[(round(a, 3), round(b, 4), round(c, 4)) for a, b, c in curve]}; float64")
  return result_from_ratios("best_of_n_win_rate", np.array(measured, float), np.array(bound, float), details,
                            (path,), 0.0)


_BON = {"bon_win_rate": A.bon_win_rate, "bon_kl": A.bon_kl, "tilted_win_rate": A.tilted_win_rate,
        "tilted_kl": A.tilted_kl}


mutant("best_of_n_win_rate", "win_rate_off_by_one", "best-of-N's win rate (N+1)/(N+2) (N off by one)")(
    {**_BON, "bon_win_rate": lambda n: (jnp.asarray(n, float) + 1.0) / (jnp.asarray(n, float) + 2.0)})
mutant("best_of_n_win_rate", "kl_off_by_one", "KL(BoN || pi_ref) = log N - (N+1)/N instead of log N - (N-1)/N")(
    {**_BON, "bon_kl": lambda n: jnp.log(jnp.asarray(n, float)) - (jnp.asarray(n, float) + 1.0) / jnp.asarray(n, float)})


def _tilt(u, gamma):
  z = u / gamma
  p = np.exp(z - z.max())
  return p / p.sum()


def _kl_uniform(p):
  return float(np.sum(p * np.log(np.maximum(p, 1e-300) * len(p))))


@claim(
    "transformed_rewards_and",
    summary=("Σ log σ(r_i − r_ref,i) = log P(all good); the KL-optimal policy for it is π_0 conditioned on"
             " all properties good (rejection sampling agrees); with a spurious response it beats the "
             "plain sum at equal KL (Wang et al. 2024)"),
    theorem=("Summed log-sigmoid-centred rewards are log P(all properties good): lsc_transform equals the "
             "closed form log sigma(r_i - ref_i) written apart (exact regression, 1e-12; the identity sum "
             "log sigma = log prod sigma itself is not the claim), and the KL-optimal policy for u_LSC at "
             "gamma = 1 is pi_0 conditioned on all properties good (rejection sampling with simulated "
             "Bernoulli judgements agrees within 4.5 standard errors per response); with a spurious "
             "response (r1 = 6, r2 = -3), at equal KL from pi_0 the LSC policy has a higher P(all good) "
             "than the plain-sum policy."),
    source=("Wang et al., 'Transforming and Combining Rewards for Aligning LLMs', ICML 2024 "
            "(arXiv:2402.00742); reference reward: the median under pi_0. float64."),
    subject="solver(rewards [U, K], reference [U, 1]) -> [U, K]: the log-sigmoid-centred transform (A.lsc_transform).",
    cost=2,
)
def transformed_rewards_and(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  lsc_transform = A.lsc_transform if solver is None else solver
  from scipy.optimize import brentq

  n_inst = 50 if fast else 200
  K = 20
  rng = np.random.default_rng(7)
  measured, bound, pts = [], [], []
  with jax.enable_x64(True):
    for i in range(n_inst):
      r = rng.normal(size=(2, K))
      r[0, 0], r[1, 0] = 6.0, -3.0
      ref = np.median(r, axis=1)
      lsc = np.asarray(lsc_transform(jnp.asarray(r), jnp.asarray(ref)[:, None]))
      g = np.prod(1.0 / (1.0 + np.exp(-(r - ref[:, None]))), axis=0)
      measured.append(float(np.max(np.abs(lsc.sum(0) - np.log(g))))); bound.append(1e-12)
      lref = jnp.full((K,), -np.log(K))
      p_lsc = np.asarray(A.kl_optimal_policy(jnp.asarray(lsc.sum(0)), lref, 1.0))
      k = _kl_uniform(p_lsc)
      gam = brentq(lambda x: _kl_uniform(_tilt(r.sum(0), x)) - k, 1e-3, 1e4, xtol=1e-12)
      p_sum = _tilt(r.sum(0), gam)
      measured.append((p_sum * g).sum() / (p_lsc * g).sum()); bound.append(1.0 + 1e-12)
      pts.append(((p_sum * g).sum(), (p_lsc * g).sum()))
    # Rejection sampling: y ~ pi_0, G_i ~ Bernoulli(sigma(r_i - ref_i)), keep when all G_i = 1.
    num = 200_000 if fast else 2_000_000
    ky, kg = jax.random.split(jax.random.key(0))
    y = np.asarray(jax.random.randint(ky, (num,), 0, K))
    probs = 1.0 / (1.0 + np.exp(-(r - ref[:, None])))
    judged = np.asarray(jax.random.uniform(kg, (2, num))) < probs[:, y]
    kept = y[judged.all(0)]
    emp = np.bincount(kept, minlength=K) / len(kept)
    se = np.sqrt(p_lsc * (1 - p_lsc) / len(kept))
    measured += list(np.abs(emp - p_lsc)); bound += list(4.5 * se)
  pts = np.array(pts)
  fig, ax = _plot.figure()
  ax.scatter(pts[:, 0], pts[:, 1], s=10)
  lim = [min(pts.min(), 0.2), max(pts.max(), 0.6)]
  ax.plot(lim, lim, "k--", lw=0.8)
  ax.set_xlabel("P(all good): plain sum of rewards"); ax.set_ylabel("P(all good): sum of log-sigmoid rewards")
  ax.set_title(f"{n_inst} instances with a spurious response, equal KL from pi_0", fontsize=9)
  path = _plot.save(fig, out_dir, "transformed_rewards_and")
  details = (f"{n_inst} instances, K = {K}, two BT rewards, spurious response (6, -3), reference = median under "
             f"uniform pi_0; rejection sampling with {num} draws ({len(kept)} kept); float64")
  return result_from_ratios("transformed_rewards_and", np.array(measured, float), np.array(bound, float), details,
                            (path,), 0.0)


def _lsc_uncentred(rewards, reference):
  return jax.nn.log_sigmoid(rewards)  # bug: the reference reward is not subtracted


def _lsc_sigmoid(rewards, reference):
  return jax.nn.sigmoid(rewards - reference)  # bug: sigma instead of log sigma


mutant("transformed_rewards_and", "uncentred", "log sigma(r) without subtracting the reference reward")(_lsc_uncentred)
mutant("transformed_rewards_and", "sigmoid_not_log", "sigma(r - ref) instead of log sigma(r - ref)")(_lsc_sigmoid)


@claim(
    "dpo_ranking_accuracy",
    summary=("Thm 3.1's idealised ranking accuracy equals that of the DPO optimum found by Newton's "
             "method; after gradient DPO a pair is ranked correctly iff its loss ≤ −log σ(βc) (Thm 4.1); "
             "the paper's thresholds 0.474 and 0.049 (Chen et al. 2024)"),
    theorem=("The idealised ranking accuracy R* of Thm 3.1 equals the ranking accuracy of the DPO optimum "
             "computed by Newton's method on the DPO loss (solvers.dpo_optimum; exact equality up to ties),"
             " and is above that of pi_ref by at least 5% (relative); the paper's worked thresholds: beta ="
             " 0.1, c = 5 -> 0.474; c = 30 -> 0.049."),
    source=("Chen et al., 'Preference Learning Algorithms Do Not Learn Preference Rankings', NeurIPS 2024 "
            "(arXiv:2405.19534), Thm 3.1, Thm 4.1 and its worked example. Thm 4.1's iff (correct ranking "
            "iff the DPO loss <= -log sigma(beta c)) is an identity (both sides are the same inequality): "
            "it is reported as a sanity check, not counted. float64."),
    cost=9,
    subject=("solver(log_ref_w, log_ref_l, alpha, beta) -> []: the idealised ranking accuracy of Thm 3.1 "
             "(A.idealized_ranking_accuracy)."),
)
def dpo_ranking_accuracy(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  idealized = A.idealized_ranking_accuracy if solver is None else solver
  from nashax.games import bradley_terry
  from nashax.solvers import dpo_optimum, losses

  K, D = 20, 2000
  n_inst = 3 if fast else 10
  measured, bound, flips, iff_exceptions = [], [], [], []
  measured += [abs(float(A.dpo_correct_iff_threshold(0.0, 5.0, 0.1)) - 0.474),
               abs(float(A.dpo_correct_iff_threshold(0.0, 30.0, 0.1)) - 0.049)]
  bound += [5e-4, 5e-4]
  beta = 0.1
  n_steps = 100 if fast else 300

  @jax.jit
  def gradient_dpo(log_ref, w, l, keep):
    """n_steps of gradient descent (step 5) on the mean DPO loss over the kept pairs, from log pi_ref."""
    lw, ll = log_ref[w], log_ref[l]

    def loss(theta):
      lp = jax.nn.log_softmax(theta)
      return jnp.sum(keep * losses.dpo_loss(lp[w], lp[l], lw, ll, beta)) / jnp.sum(keep)

    return jax.lax.fori_loop(0, n_steps, lambda _, th: th - 5.0 * jax.grad(loss)(th), log_ref)

  optimum = jax.jit(lambda g: dpo_optimum(g, steps=60))
  with jax.enable_x64(True):
    for inst in range(n_inst):
      rng = np.random.default_rng(inst)
      log_ref = np.log(rng.dirichlet(np.full(K, 0.5)))
      r = 2.0 * rng.normal(size=K)
      i_all, j_all = rng.integers(0, K, (2, D))
      keep = i_all != j_all
      i, j = i_all[keep], j_all[keep]
      alpha_ij = 1.0 / (1.0 + np.exp(-(r[i] - r[j])))
      win = rng.uniform(size=len(i)) < alpha_ij
      w, l = np.where(win, i, j), np.where(win, j, i)
      alpha = 1.0 / (1.0 + np.exp(-(r[w] - r[l])))
      r_star = float(idealized(log_ref[w], log_ref[l], alpha, beta))
      game = bradley_terry(r).regularized(beta, np.exp(log_ref))
      pi = np.asarray(optimum(game))
      r_opt = float(A.ranking_accuracy(np.log(pi[w]), np.log(pi[l])))
      r_ref = float(A.ranking_accuracy(log_ref[w], log_ref[l]))
      measured.append(abs(r_star - r_opt)); bound.append(1e-12)
      measured.append(r_ref / r_star); bound.append(0.95)
      # Gradient DPO on the observed pairs for a fixed budget, then Thm 4.1 pair by pair.
      # (All D draws go in with the dropped i = j pairs weighted 0, so every instance has one shape.)
      win_all = np.zeros(D, bool)
      win_all[keep] = win
      w_all, l_all = np.where(win_all, i_all, j_all), np.where(win_all, j_all, i_all)
      theta = gradient_dpo(jnp.asarray(log_ref), w_all, l_all, jnp.asarray(keep, jnp.float64))
      lw, ll = jnp.asarray(log_ref[w]), jnp.asarray(log_ref[l])
      lp = jax.nn.log_softmax(theta)
      per = np.asarray(losses.dpo_loss(lp[w], lp[l], lw, ll, beta))
      thr = np.asarray(A.dpo_correct_iff_threshold(lw, ll, beta))
      correct = np.asarray(lp[w] >= lp[l])
      clear = np.abs(per - thr) > 1e-12
      iff_exceptions.append(int((correct[clear] != (per[clear] <= thr[clear])).sum()))  # identity: not counted
      c = np.asarray(ll - lw)
      flips.append((c, correct))
  fig, ax = _plot.figure()
  c = np.concatenate([f[0] for f in flips]); ok = np.concatenate([f[1] for f in flips])
  edges = np.quantile(c[c > 0], np.linspace(0, 1, 9))
  mids, frac = [], []
  for a, b in zip(edges[:-1], edges[1:]):
    sel = (c > a) & (c <= b)
    if sel.any():
      mids.append(0.5 * (a + b)); frac.append(ok[sel].mean())
  ax.plot(mids, frac, "o-")
  ax.set_xlabel("reference ranking error c = log pi_ref(y_l)/pi_ref(y_w)")
  ax.set_ylabel("fraction of mis-ranked pairs flipped by DPO")
  ax.set_title("gradient DPO rarely flips pairs the reference ranks badly", fontsize=10)
  path = _plot.save(fig, out_dir, "dpo_ranking_accuracy")
  details = (f"{n_inst} instances: K = {K} responses, Dirichlet(0.5) pi_ref, BT rewards N(0, 4), {D} sampled pairs, "
             f"beta = 0.1; Newton DPO optimum; gradient DPO (lr 5), then the Thm 4.1 iff per pair (sanity, not "
             f"counted: {sum(iff_exceptions)} exceptions); float64")
  return result_from_ratios("dpo_ranking_accuracy", np.array(measured, float), np.array(bound, float), details,
                            (path,), 0.0)


def _ideal_beta_times(log_ref_w, log_ref_l, alpha, beta, weights=None):
  lhs = log_ref_w + (jnp.log(alpha) - jnp.log1p(-alpha)) * beta  # bug: (alpha/(1-alpha))^beta, not ^(1/beta)
  return jnp.mean((lhs >= log_ref_l).astype(jnp.result_type(float)))


def _ideal_odds_flipped(log_ref_w, log_ref_l, alpha, beta, weights=None):
  lhs = log_ref_w + (jnp.log1p(-alpha) - jnp.log(alpha)) / beta  # bug: the odds (1-alpha)/alpha
  return jnp.mean((lhs >= log_ref_l).astype(jnp.result_type(float)))


mutant("dpo_ranking_accuracy", "beta_times", "the preference odds raised to beta instead of 1/beta")(_ideal_beta_times)
mutant("dpo_ranking_accuracy", "odds_flipped", "the odds (1 - alpha)/alpha in place of alpha/(1 - alpha)")(
    _ideal_odds_flipped)


CLAIMS = table((
    off_switch_incentive, consensus_game_pikl, red_teaming_safety_guarantee, best_of_n_win_rate,
    transformed_rewards_and, dpo_ranking_accuracy,
), _MUTANTS)
