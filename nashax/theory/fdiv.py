"""Claims about f-divergence objectives: f-DPG, f-DPO, f-regularised games.

All run in float64 on random tabular instances and start from random logits.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import optimize

from nashax import games, solvers
from nashax.core import divergences as D
from nashax.core.games import TargetDistribution
from nashax.core.solver import run, solve
from nashax.solvers import losses
from nashax.theory import _plot
from nashax.solvers import fdiv as FD
from nashax.theory._mutate import swap_step, wrong_fprime
from nashax.theory.claim_types import ClaimResult, claim, mutant_into, result_from_ratios, table

_MUTANTS = []  # this module's wrong variants (`mutant(...)(make)` adds one), attached by `table` below
mutant = mutant_into(_MUTANTS)

# Every divergence the claims sweep: the six named ones and four members of the alpha family.
SWEEP = tuple((n, None) for n in D.NAMES if n != "alpha") + (("alpha", -1.0), ("alpha", 0.3), ("alpha", 0.5),
                                                             ("alpha", 2.0))
STRICT = tuple(s for s in SWEEP if s[0] != "total_variation")


def _label(name, a):
  return name if a is None else f"alpha={a:g}"


@claim(
    "divergence_axioms",
    summary=("every generator is convex with f(1) = 0 and satisfies Fenchel-Young f(t) + f*(u) ≥ tu, with "
             "equality at u = f′(t)"),
    theorem=("Every generator f is convex with f(1) = 0, and with its conjugate f* satisfies Fenchel-Young: "
             "f(t) + f*(u) >= t u for all t >= 0 and u, with equality at u = f'(t)."),
    source=("Go et al., ICML 2023 (arXiv:2302.08215), Table 1; Wang et al., ICLR 2024 (arXiv:2309.16240); "
            "Nowozin et al., f-GAN, NeurIPS 2016, Table 1 (conjugates). float64."),
    subject="solver(name, alpha) -> Divergence: the divergence table (the signature of core.divergences.get).",
    cost=4,
)
def divergence_axioms(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  get = D.get if solver is None else solver
  n = 2_000 if fast else 20_000
  rng = np.random.default_rng(0)
  viol, tols, names = [], [], []
  with jax.enable_x64(True):
    for name, a in SWEEP:
      d = get(name, a)
      s = rng.uniform(-6, 6, n)
      s2 = rng.uniform(-6, 6, n)
      t, t2 = jnp.exp(s), jnp.exp(s2)
      f, f2 = d.f(t), d.f(t2)
      scale = 1.0 + jnp.abs(f) + jnp.abs(f2)
      mid = d.f(0.5 * (t + t2))
      convex = jnp.max((mid - 0.5 * (f + f2)) / scale)  # <= 0 for convex f
      f1 = jnp.abs(d.f(jnp.ones(())))
      u = jnp.asarray(rng.uniform(-5, 5, n))
      fy = jnp.where(jnp.isfinite(d.conjugate(u)), t * u - f - d.conjugate(u), -jnp.inf)
      young = jnp.max(fy / (1.0 + jnp.abs(t * u)))  # <= 0
      fp = d.fprime(t)
      tight = jnp.max(jnp.abs(f + d.conjugate(fp) - t * fp) / (1.0 + jnp.abs(t * fp)))
      for v in (convex, f1, young, tight):
        viol.append(max(float(v), 0.0)); tols.append(1e-9); names.append(_label(name, a))
  fig, ax = _plot.figure()
  labels = [_label(*s) for s in SWEEP]
  for i, (name, a) in enumerate(SWEEP):
    d = D.get(name, a)
    tt = np.linspace(1e-3, 4, 400)
    ax.plot(tt, np.asarray(d.f(jnp.asarray(tt))), label=labels[i])
  ax.set_ylim(-0.5, 3); ax.axvline(1.0, color="k", lw=0.5); ax.axhline(0.0, color="k", lw=0.5)
  ax.set_xlabel("t"); ax.set_ylabel("f(t)"); ax.legend(fontsize=7); ax.set_title("generators f (f(1) = 0)", fontsize=10)
  path = _plot.save(fig, out_dir, "divergence_axioms")
  details = (f"{len(SWEEP)} divergences, {n} random t in [e^-6, e^6] and u in [-5, 5]: midpoint convexity, "
             f"|f(1)|, Fenchel-Young and its equality at u = f'(t), relative violations vs 1e-9")
  return result_from_ratios("divergence_axioms", np.array(viol), np.array(tols), details, (path,), 0.0)


def _targets(n: int, seeds: int):
  rng = np.random.default_rng(n)
  return [TargetDistribution.from_reward(rng.normal(size=n), 0.5, rng.dirichlet(np.ones(n))) for _ in range(seeds)]


@claim(
    "f_dpg_reaches_target",
    summary=("exact f-DPG drives D_f(π‖p) below 1e-4 for every f; its Euclidean step is −lr ∇D_f exactly, "
             "and reverse-KL f-DPG is RLHF's gradient (Go et al. 2023, Thm 1)"),
    theorem=("For each f, f-DPG with exact expectations drives D_f(pi_theta || p) below 1e-4 on tabular "
             "targets (|X| = 50) from random logits; and its Euclidean step is exactly -lr grad_theta "
             "D_f(pi_theta || p) (relative error <= 1e-8), reverse-KL f-DPG being RLHF's gradient -(1/beta)"
             " grad(E r - beta KL(pi||a))."),
    source=("Go et al., ICML 2023 (arXiv:2302.08215), Theorem 1 (the f-DPG gradient) and Sec. 3 (RLHF as "
            "reverse KL to a e^{r/beta}). float64."),
    cost=15,
    subject="solver(divergence, lr, **options) -> Solver, with the signature of solvers.f_dpg.",
)
def f_dpg_reaches_target(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  f_dpg = solvers.f_dpg if solver is None else solver
  seeds = 2 if fast else 5
  finals, curves, labels, grad_errs = [], [], [], []
  with jax.enable_x64(True):
    targets = _targets(50, seeds)
    batch = TargetDistribution(jnp.stack([t.log_base for t in targets]), jnp.stack([t.log_score for t in targets]))
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = targets[0]

    @functools.partial(jax.jit, static_argnames="steps")
    def descend(d, decay, steps):
      s = f_dpg(d, 0.5, decay=decay)
      return jax.vmap(lambda tt, k: _trace(s, tt, d, k, steps))(batch, keys)

    @jax.jit
    def step_error(d):
      """Euclidean f-DPG step vs autodiff of D_f, at a random policy of the first target."""
      eu = f_dpg(d, 1.0, geometry="euclidean", baseline_ema=0.0)
      s0 = eu.init(t0, jax.random.key(7))
      s1 = eu.step(t0, s0)
      auto = jax.grad(lambda th: d(jax.nn.log_softmax(th), t0.log_prob))(s0.logits)
      return jnp.linalg.norm((s0.logits - s1.logits) - auto) / jnp.linalg.norm(auto)

    members = [D.get(name, a) for name, a in SWEEP]  # one compile per function for all of them
    for i, (name, a) in enumerate(SWEEP):
      d = D.switch(members, i)
      tv = name == "total_variation"
      tr = np.asarray(descend(d, 0.999 if tv else 1.0, steps=12_000 if tv else 400))
      finals += list(tr[:, -1]); curves.append(tr[0]); labels.append(_label(name, a))
      grad_errs.append(float(step_error(d)))
    # RLHF equivalence: reverse-KL f-DPG's Euclidean step on P = a e^{r/beta}.
    rng = np.random.default_rng(3)
    base, r, beta = rng.dirichlet(np.ones(20)), rng.normal(size=20), 0.3
    t = TargetDistribution.from_reward(r, beta, base)
    eu = f_dpg(D.reverse_kl(), 1.0, geometry="euclidean", baseline_ema=0.0)
    s0 = eu.init(t, jax.random.key(1))
    s1 = eu.step(t, s0)
    rlhf = lambda th: (jnp.sum(jax.nn.softmax(th) * r)
                       - beta * D.reverse_kl()(jax.nn.log_softmax(th), jnp.log(jnp.asarray(base)))) / beta
    g = jax.grad(rlhf)(s0.logits)
    grad_errs.append(float(jnp.linalg.norm((s1.logits - s0.logits) - g) / jnp.linalg.norm(g)))
  fig, ax = _plot.figure()
  for c_, lab in zip(curves, labels):
    ax.semilogy(np.arange(1, c_.size + 1), np.maximum(c_, 1e-18), label=lab)
  ax.axhline(1e-4, color="k", ls="--", lw=0.8, label="1e-4")
  ax.set_xscale("log"); ax.set_xlabel("step"); ax.set_ylabel("D_f(pi_t || p)"); ax.legend(fontsize=6)
  ax.set_title("f-DPG with exact expectations, |X| = 50", fontsize=10)
  path = _plot.save(fig, out_dir, "f_dpg_reaches_target")
  measured = np.concatenate([finals, grad_errs])
  bound = np.concatenate([np.full(len(finals), 1e-4), np.full(len(grad_errs), 1e-8)])
  details = (f"{len(SWEEP)} divergences x {seeds} random targets p ∝ a e^(r/0.5), |X| = 50; natural step lr = 0.5 "
             f"(400 steps; TV: decay 0.999, 12,000 steps); worst final D_f {max(finals):.2e}; worst gradient "
             f"relative error {max(grad_errs):.1e}")
  return result_from_ratios("f_dpg_reaches_target", measured, bound, details, (path,), 0.0)


def _f_dpg_wrong(kind):
  def make(divergence, lr=1.0, **options):
    return solvers.f_dpg(wrong_fprime(divergence, kind), lr, **options)

  return make


mutant("f_dpg_reaches_target", "ratio_inverted", "the pseudo-reward -f'(p/pi) instead of -f'(pi/p)")(
    _f_dpg_wrong("reflect"))
mutant("f_dpg_reaches_target", "reward_sign", "the pseudo-reward +f'(pi/p) instead of -f'(pi/p) (ascent)")(
    _f_dpg_wrong("negate"))


def _trace(solver, target, d, key, steps):
  state = solver.init(target, key)

  def body(s, _):
    s = solver.step(target, s)
    return s, d(jnp.log(s.profile), target.log_prob)

  return jax.lax.scan(body, state, None, length=steps)[1]


# ----------------------------------------------------------------------------- alignment vs diversity


def _mean_field_target(v: int):
  """A multimodal target over pairs (x1, x2) in [v]^2: p ∝ a e^{r/beta}, r = 1 on the diagonal."""
  rng = np.random.default_rng(11)
  base = rng.dirichlet(np.full(v * v, 5.0))
  reward = np.eye(v).ravel() + 0.1 * rng.uniform(size=v * v)
  return TargetDistribution.from_reward(reward, 0.25, base), reward


def _fit_product(d, target, v, key, steps=3000, loss_fn=losses.f_dpg_loss):
  """Minimises D_f(q1 x q2 || p) over product policies by Adam on the f-DPG surrogate (exact expectations)."""
  log_target, log_z = target.log_unnormalized, target.log_partition
  opt = optax.adam(0.05)

  def logq(th):
    return (jax.nn.log_softmax(th[0])[:, None] + jax.nn.log_softmax(th[1])[None, :]).ravel()

  def surrogate(th):
    lq = logq(th)
    w = jax.lax.stop_gradient(jnp.exp(lq))
    return jnp.sum(w * loss_fn(lq, log_target, jax.lax.stop_gradient(lq), log_z, 0.0, d))

  th0 = 0.5 * jax.random.normal(key, (2, v), jnp.float64)

  def body(carry, _):
    th, os = carry
    g = jax.grad(surrogate)(th)
    up, os = opt.update(g, os, th)
    return (optax.apply_updates(th, up), os), None

  (th, _), _ = jax.lax.scan(body, (th0, opt.init(th0)), None, length=steps)
  return jnp.exp(logq(th))


@claim(
    "f_dpg_alignment_diversity",
    summary=("Go et al.'s trade-off on a product policy fitted to a multimodal target: reverse KL has the "
             "highest reward and lowest entropy, forward KL the reverse, JS in between; each fit is a "
             "stationary point of its own D_f (‖∇‖ ≤ 1e-2)"),
    theorem=("The alignment-diversity trade-off of Go et al.: fitting a misspecified (product) policy to a "
             "multimodal target p ∝ a e^{r/beta}, reverse KL reaches the highest expected reward and the "
             "lowest entropy, forward KL the lowest reward and the highest entropy, and Jensen-Shannon lies"
             " between (ratios reward(FKL)/reward(JS), reward(JS)/reward(RKL), H(RKL)/H(JS), H(JS)/H(FKL) "
             "<= 1); and each fit is a stationary point of its own D_f(q || p) over product policies "
             "(|grad| <= 1e-2 by autodiff of D_f, for every strictly convex f)."),
    source=("Go et al., ICML 2023 (arXiv:2302.08215), Sec. 5 and Fig. 2 (RKL: alignment with low diversity;"
            " forward KL: diversity with low alignment; JS in between). Tabular reproduction with a product"
            " policy over 2-token sequences (the paper's models are also misspecified). float64."),
    subject=("loss(logp, log_target, log_proposal, log_partition, baseline, divergence) -> per-sample "
             "surrogate, with the signature of losses.f_dpg_loss."),
    cost=2,
)
def f_dpg_alignment_diversity(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  loss_fn = losses.f_dpg_loss if solver is None else solver
  v = 6
  seeds = 2 if fast else 5
  rows = {}
  with jax.enable_x64(True):
    target, reward = _mean_field_target(v)
    fit = jax.jit(lambda k, dd: _fit_product(dd, target, v, k, loss_fn=loss_fn))

    @jax.jit
    def stationarity(dd, q):
      """|grad D_f(q1 x q2 || p)| at the fitted marginals, by autodiff of D_f itself (not the surrogate)."""
      q = q.reshape(v, v)
      th = jnp.log(jnp.stack([q.sum(1), q.sum(0)]))
      logq = lambda th: (jax.nn.log_softmax(th[0])[:, None] + jax.nn.log_softmax(th[1])[None, :]).ravel()
      return jnp.linalg.norm(jax.grad(lambda th: dd(logq(th), target.log_prob))(th))

    members = [D.get(name, a) for name, a in SWEEP]  # one compile for all of them
    grads = []
    for i, (name, a) in enumerate(SWEEP):
      d = D.switch(members, i)
      rs, hs = [], []
      for s in range(seeds):
        q = fit(jax.random.key(s), d)
        if name != "total_variation":  # TV's subgradient does not vanish at its optimum
          grads.append(float(stationarity(d, q)))
        q = np.asarray(q)
        rs.append(float(q @ reward)); hs.append(float(-np.sum(np.where(q > 0, q * np.log(np.maximum(q, 1e-300)), 0.0))))
      rows[_label(name, a)] = (np.mean(rs), np.mean(hs))
    p = np.exp(np.asarray(target.log_prob))
    rows["target p"] = (float(p @ reward), float(-np.sum(p * np.log(p))))
  fig, ax = _plot.figure()
  for lab, (rw, h) in rows.items():
    ax.scatter(h, rw, s=25)
    ax.annotate(lab, (h, rw), fontsize=7, xytext=(3, 3), textcoords="offset points")
  ax.set_xlabel("entropy H(pi) (diversity)"); ax.set_ylabel("E_pi r (alignment)")
  ax.set_title("f-DPG on a product policy: alignment vs diversity", fontsize=10)
  path = _plot.save(fig, out_dir, "f_dpg_alignment_diversity")
  with open(f"{out_dir}/f_dpg_alignment_diversity.md", "w") as fh:
    fh.write("| divergence | E_pi r | H(pi) |\n|---|---|---|\n")
    for lab, (rw, h) in rows.items():
      fh.write(f"| {lab} | {rw:.4f} | {h:.4f} |\n")
  rk, js, fk = rows["reverse_kl"], rows["jensen_shannon"], rows["forward_kl"]
  # The ordering, and each fit a stationary point of its own D_f over product policies: |grad| <= 1e-2 (the
  # full run's 5 starts measured up to 6e-4, the fast run's 3e-8; the mutants' wrong pseudo-rewards 6.5 and 4e10).
  measured = np.concatenate([[fk[0], js[0], rk[1], js[1]], grads])
  bound = np.concatenate([[js[0], rk[0], js[1], fk[1]], np.full(len(grads), 1e-2)])
  table = "; ".join(f"{k}: r={rw:.3f}, H={h:.3f}" for k, (rw, h) in rows.items())
  details = (f"|X| = {v}x{v}, p ∝ a e^(r/0.25) with r = 1 on the diagonal, product policy fitted by Adam on the "
             f"f-DPG surrogate (3,000 steps, {seeds} random starts, means); worst |grad D_f| at the fits "
             "(autodiff "
             f"of D_f, strictly convex f) {max(grads):.1e} (<= 1e-2); {table}")
  return result_from_ratios("f_dpg_alignment_diversity", measured, bound, details, (path,), 0.0)


def _f_dpg_loss_wrong(kind):
  def loss(logp, log_target, log_proposal, log_partition, baseline, divergence):
    wrong = wrong_fprime(divergence, kind)
    return losses.f_dpg_loss(logp, log_target, log_proposal, log_partition, baseline, wrong)

  return loss


mutant("f_dpg_alignment_diversity", "arguments_swapped",
       "the pseudo-reward of D_f(p || pi) instead of D_f(pi || p) (reverse and forward KL exchanged)")(
    _f_dpg_loss_wrong("transpose"))
mutant("f_dpg_alignment_diversity", "ratio_inverted", "the pseudo-reward -f'(p/pi) instead of -f'(pi/p)")(
    _f_dpg_loss_wrong("reflect"))


# ----------------------------------------------------------------------------- f-DPO and the f-regularised game


def _fdpo_population_loss(logits, r, log_ref, beta, d, loss_fn=losses.f_dpo_loss):
  """Expected f-DPO loss with pairs y, y' ~ ref and Bradley-Terry labels from r."""
  lp = jax.nn.log_softmax(logits)
  ref = jnp.exp(log_ref)
  w = ref[:, None] * ref[None, :] * jax.nn.sigmoid(r[:, None] - r[None, :])  # P(y wins over y') mass
  loss = loss_fn(lp[:, None], lp[None, :], log_ref[:, None], log_ref[None, :], beta, d)
  return jnp.sum(w * loss)


@claim(
    "f_dpo_optimum",
    summary=("the f-DPO population minimiser with exact Bradley-Terry data satisfies β f′(π/π_ref) − r* = "
             "const (Wang et al. 2024, Thm 1)"),
    theorem=("f-DPO with exact Bradley-Terry data from r*: its population minimiser pi satisfies "
             "beta f'(pi/pi_ref)(y) - r*(y) = const across y (deviation <= 1e-6), i.e. pi is the maximiser "
             "of E_pi r* - beta D_f(pi || pi_ref) (divergences.regularized_argmax)."),
    source=("Wang et al., ICLR 2024 (arXiv:2309.16240), Theorem 1 (KKT: r = beta f'(pi*/pi_ref) + const). "
            "float64."),
    subject=("solver(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta, divergence) -> loss: the "
             "f-DPO loss (the signature of losses.f_dpo_loss)."),
    cost=6,
)
def f_dpo_optimum(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  loss_fn = losses.f_dpo_loss if solver is None else solver
  seeds = 2 if fast else 5
  n, beta = 6, 0.5
  devs, gaps, labs = [], [], []
  with jax.enable_x64(True):
    # f'(0) finite for chi^2 and alpha < 0: the optimum may sit on the boundary, where logits cannot reach.
    sweep = [(name, a) for name, a in STRICT if not (name == "chi_squared" or (name == "alpha" and a < 0))]
    members = [D.get(name, a) for name, a in sweep]  # one compile per function for all of them
    f = jax.jit(lambda th, r, lref, d: _fdpo_population_loss(th, r, lref, beta, d, loss_fn))
    gr, he = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))

    @jax.jit
    def check(theta, r, log_ref, d):
      lp = jax.nn.log_softmax(theta)
      resid = beta * d.fprime(jnp.exp(lp - log_ref)) - r
      pred = D.regularized_argmax(r, log_ref, beta, d)
      return jnp.max(resid) - jnp.min(resid), jnp.max(jnp.abs(jnp.exp(pred) - jnp.exp(lp)))

    for i, (name, a) in enumerate(sweep):
      d = D.switch(members, i)
      for s in range(seeds):
        rng = np.random.default_rng(s)
        r = jnp.asarray(rng.normal(size=n)); log_ref = jnp.log(jnp.asarray(rng.dirichlet(np.ones(n) * 2)))
        res = optimize.minimize(lambda th: float(f(th, r, log_ref, d)), np.asarray(rng.normal(size=n)),
                                jac=lambda th: np.asarray(gr(th, r, log_ref, d)),
                                hess=lambda th: np.asarray(he(th, r, log_ref, d)), method="trust-exact",
                                options=dict(gtol=1e-13, maxiter=500))
        dev, gap = check(jnp.asarray(res.x), r, log_ref, d)
        devs.append(float(dev)); gaps.append(float(gap)); labs.append(_label(name, a))
  fig, ax = _plot.figure()
  ax.semilogy(range(len(devs)), np.maximum(devs, 1e-18), "o", label="max-min of beta f'(pi/ref) - r*")
  ax.semilogy(range(len(gaps)), np.maximum(gaps, 1e-18), "x", label="|pi - regularized_argmax(r*)|_inf")
  ax.axhline(1e-6, color="k", ls="--", lw=0.8)
  ax.set_xticks(range(len(labs))); ax.set_xticklabels(labs, rotation=60, fontsize=6); ax.legend(fontsize=7)
  ax.set_title("f-DPO population minimiser vs the KKT relation", fontsize=10)
  path = _plot.save(fig, out_dir, "f_dpo_optimum")
  details = (f"{len(devs)} runs: K = {n}, random r*, pi_ref ~ Dir(2), beta = 0.5, exact pair weights "
             f"ref(y) ref(y') sigma(r*_y - r*_y'), minimised by trust-region Newton; worst deviation {max(devs):.1e}, "
             f"worst |pi - closed form| {max(gaps):.1e}")
  return result_from_ratios("f_dpo_optimum", np.array(devs + gaps), np.full(2 * len(devs), 1e-6), details,
                            (path,), 0.0)


@claim(
    "f_game_equilibrium",
    summary=("mirror-prox reaches gap ≤ 1e-9 in the f-regularised game for every strictly convex f; with "
             "reverse KL the game is the KL game"),
    theorem=("In the f-regularised preference game V = x^T P y - beta D_f(x||ref) + beta D_f(y||ref), "
             "mirror-prox (solvers.f_extragradient) reaches duality gap <= 1e-9 from random starts for "
             "every strictly convex f; for reverse KL the game's gap equals the KL-regularised game's gap "
             "at random profiles (to 1e-12) and the solver's equilibrium is the KL-regularised Nash "
             "equilibrium (distance <= 1e-5)."),
    source=("Munos et al., ICML 2024 (arXiv:2312.00886), the regularised game and its unique equilibrium; "
            "the gap is exact via the f-DPO best response (Wang et al. 2024, Thm. 1). float64."),
    cost=16,
    subject="solver(eta=None) -> Solver: mirror-prox on the f-regularised game (the signature of solvers.f_extragradient).",
)
def f_game_equilibrium(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  factory = solvers.f_extragradient if solver is None else solver
  from nashax.core import metrics
  from nashax.core.games import FRegularizedGame

  seeds = 2 if fast else 4
  betas = (0.05, 0.5, 2.0, 10.0)
  k, steps, every = 8, 3000, 30
  gaps, same, dists, curves, labels = [], [], [], [], []
  with jax.enable_x64(True):
    base = [games.random_preference_game(jax.random.key(s), k) for s in range(seeds)]
    refs = [np.random.default_rng(s).dirichlet(np.ones(k)) for s in range(seeds)]
    kl_games = [b.regularized(beta, r) for b, r in zip(base, refs) for beta in betas]
    p = jnp.stack([g.preference for g in kl_games])
    bs = jnp.stack([g.beta for g in kl_games])
    lr = jnp.stack([g.log_ref for g in kl_games])
    keys = jax.random.split(jax.random.key(0), len(kl_games))

    @jax.jit
    def sweep(d):
      def one(g, key):
        st, tr = run(factory(), g, key, num_steps=steps, every=every, metric_fn=metrics.duality_gap)
        return st.profile[0], tr
      # The divergence is shared by the batch (an unbatched switch index: only its member runs).
      return jax.vmap(one, in_axes=(FRegularizedGame(0, 0, 0, None), 0))(FRegularizedGame(p, bs, lr, d), keys)

    # Reverse KL on its own (its closed forms, checked below); the other divergences share one compile.
    others = [D.get(name, a) for name, a in STRICT if name != "reverse_kl"]
    runs = {"reverse_kl": sweep(D.reverse_kl())}
    runs.update({_label(*s): sweep(D.switch(others, i))
                 for i, s in enumerate(x for x in STRICT if x[0] != "reverse_kl")})
    for lab, (prof, tr) in runs.items():
      tr = np.asarray(tr)
      gaps += list(np.maximum(tr[:, -1], 0.0))
      curves.append(tr[0]); labels.append(lab)
    prof = runs["reverse_kl"][0]
    for i, g in enumerate(kl_games):
      opt = solvers.regularized_nash(g).policy
      dists.append(float(jnp.max(jnp.abs(prof[i] - opt))))
    # The f-game's gap with reverse KL is the KL-regularised preference game's, at random profiles.
    rng = np.random.default_rng(100)
    xs, ys = (jnp.asarray(rng.dirichlet(np.ones(k), size=50)) for _ in range(2))
    kl_batch = jax.tree.map(lambda *v: jnp.stack(v), *kl_games)
    f_batch = FRegularizedGame(p, bs, lr, D.reverse_kl())

    @jax.jit
    def gap_difference(fg, g):
      return jax.vmap(lambda x, y: metrics.duality_gap(fg, (x, y)) - metrics.duality_gap(g, (x, y)))(xs, ys)

    same = list(np.max(np.abs(np.asarray(jax.vmap(gap_difference)(f_batch, kl_batch))), axis=1))
  fig, ax = _plot.figure()
  for c_, lab in zip(curves, labels):
    ax.semilogy(np.arange(1, c_.size + 1) * every, np.maximum(c_, 1e-16), label=lab)
  ax.axhline(1e-9, color="k", ls="--", lw=0.8)
  ax.set_xlabel("step"); ax.set_ylabel("duality gap"); ax.legend(fontsize=7)
  ax.set_title(f"f-regularised game, mirror-prox, K = {k}, beta = {betas[0]}", fontsize=10)
  path = _plot.save(fig, out_dir, "f_game_equilibrium")
  details = (f"K = {k}, {seeds} random games and references x beta in {betas}, {len(STRICT)} divergences, "
             f"default eta = min(1, 1/(2 beta)), {steps} steps; worst gap {max(gaps):.1e}, "
             f"reverse-KL: gap difference {max(same):.1e}, distance to regularized_nash {max(dists):.1e}")
  return result_from_ratios("f_game_equilibrium", np.array(gaps + same + dists),
                            np.array([1e-9] * len(gaps) + [1e-12] * len(same) + [1e-5] * len(dists)), details,
                            (path,), 0.0)


def _feg_no_extrapolation(hp, game, state):
  g = FD._fgame(game)
  tx, ty = state.logits
  x, y = state.profile
  eta = FD._feg_eta(hp, g)
  nx = tx + eta * FD._field(g, eta, tx, y)  # bug: one simultaneous mirror step, no extrapolation
  ny = ty + eta * FD._field(g, eta, ty, x)
  return FD.FGameState(state.step + 1, state.oracle_calls + 2, (jax.nn.softmax(nx), jax.nn.softmax(ny)),
                       (nx, ny), state.key)


def _feg_wrong_opponent(hp, game, state):
  g = FD._fgame(game)
  tx, ty = state.logits
  x, y = state.profile
  eta = FD._feg_eta(hp, g)
  hx = tx + eta * FD._field(g, eta, tx, y)
  hy = ty + eta * FD._field(g, eta, ty, x)
  nx = tx + eta * FD._field(g, eta, hx, y)  # bug: the correction uses the old opponent y_t, not y_{t+1/2}
  ny = ty + eta * FD._field(g, eta, hy, x)
  return FD.FGameState(state.step + 1, state.oracle_calls + 4, (jax.nn.softmax(nx), jax.nn.softmax(ny)),
                       (nx, ny), state.key)


mutant("f_game_equilibrium", "no_extrapolation", "simultaneous mirror descent: the extrapolated point is missing")(
    swap_step(solvers.f_extragradient, _feg_no_extrapolation, "no_extrapolation"))
mutant("f_game_equilibrium", "stale_opponent", "the correction step evaluates against the old opponent y_t")(
    swap_step(solvers.f_extragradient, _feg_wrong_opponent, "stale_opponent"))


def _rkl_conj_no_shift(alpha, u):
  return jnp.exp(u)  # bug: f*(u) = e^{u - 1} for f = t log t


def _fkl_fp_sign(alpha, s):
  return jnp.exp(-s)  # bug: f'(t) = -1/t for f = -log t


def _get_wrong_rkl(name, alpha=None):
  if name == "reverse_kl":
    return D.Divergence("reverse_kl", D._rkl_f, D._rkl_fp, D._rkl_link, _rkl_conj_no_shift, D._rkl_inv, D._zero,
                        D._inf)
  return D.get(name, alpha)


def _get_wrong_fkl(name, alpha=None):
  if name == "forward_kl":
    return D.Divergence("forward_kl", D._fkl_f, _fkl_fp_sign, D._fkl_link, D._fkl_conj, D._fkl_inv, D._inf, D._zero)
  return D.get(name, alpha)


mutant("divergence_axioms", "rkl_conjugate_shift", "reverse KL's conjugate e^u instead of e^(u-1)")(_get_wrong_rkl)
mutant("divergence_axioms", "fkl_derivative_sign", "forward KL's f'(t) = +1/t instead of -1/t")(_get_wrong_fkl)


def _fdpo_log_ratio(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta, divergence):
  # bug: DPO's implicit reward beta log(pi/ref) whatever f is
  return losses.dpo_loss(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta)


def _fdpo_swapped(logp_chosen, logp_rejected, ref_chosen, ref_rejected, beta, divergence):
  # bug: the reference log-probabilities are passed in the policy's place and vice versa
  return losses.f_dpo_loss(ref_chosen, ref_rejected, logp_chosen, logp_rejected, beta, divergence)


mutant("f_dpo_optimum", "log_ratio_reward", "DPO's beta log(pi/pi_ref) as the implicit reward for every f")(_fdpo_log_ratio)
mutant("f_dpo_optimum", "policy_ref_swapped", "f'(pi_ref/pi) instead of f'(pi/pi_ref) (arguments swapped)")(_fdpo_swapped)


CLAIMS = table((
    divergence_axioms, f_dpg_reaches_target, f_dpg_alignment_diversity, f_dpo_optimum,
    f_game_equilibrium,
), _MUTANTS)
