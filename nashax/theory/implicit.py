"""Claims about gradients through equilibria and rankings (``nashax.solvers.implicit``).

Each claim uses implicit derivatives for what they are for (an inverse game,
a sensitivity analysis, a ranking's response to payoffs) and checks them
against central finite differences of the forward solvers, which involve no
derivative code. All run in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nashax.theory import _plot
from nashax.theory.claim_types import ClaimResult, claim, result_from_ratios, table


def _skew_of(theta, n):
  iu = np.triu_indices(n, 1)
  s = jnp.zeros((n, n), theta.dtype).at[iu].set(theta)
  return s - s.T


def _preference_of(theta, n):
  """``P = sigmoid(S)`` for the skew ``S`` built from ``theta``: ``P + P^T = 1``, entries in (0, 1)."""
  return jax.nn.sigmoid(_skew_of(theta, n))


def _rel_dir(g, fd):
  return float(abs(g - fd) / max(abs(fd), 1e-12))


@claim(
    "implicit_inverse_nlhf",
    summary=("gradient descent through the implicit derivative of π*_β(P) recovers a preference matrix "
             "that reproduces an observed equilibrium; the gradient matches finite differences"),
    theorem=("Inverse NLHF: from an observed KL-regularised equilibrium pi* = pi*_beta(P) alone, gradient "
             "descent on |log pi*_beta(P(theta)) - log pi*|^2 through the equilibrium (implicit gradients) "
             "recovers P's identifiable part: the recovered P' reproduces pi* (|pi*_beta(P') - pi*|_inf <= "
             "1e-8) and P' pi* - P pi* is constant (centred, <= 1e-7), since pi* = softmax(log pi_ref + P "
             "pi* / beta) determines exactly P pi* up to a constant; P' itself differs from P (not "
             "identified). The implicit gradient matches central differences (relative <= 1e-6), with "
             "status SUCCESS. Mutations of the implicit derivative rejected (checked, fast run): the "
             "inverse Jacobian transposed, the Jacobian dropped (dz = -dR/dtheta dtheta, the equilibrium's "
             "own response left out) and the sign flipped each fail (worst ratios 1e5, 7e4, 2e7); with the "
             "sign flipped the descent also diverges."),
    source=("Munos et al., ICML 2024 (arXiv:2312.00886), Prop. 1 (the fixed point); implicit function "
            "theorem (Krantz & Parks 2002, Thm 1.3.1); the inverse-game setting of Ling, Fang & Kolter, "
            "'What game are we playing?', IJCAI 2018 (arXiv:1805.02777). float64."),
    cost=4,
)
def implicit_inverse_nlhf(fast: bool, out_dir: str) -> ClaimResult:
  from nashax.core.games import PreferenceGame
  from nashax.solvers import implicit as I

  n, beta = 4, 0.5
  seeds = (1,) if fast else (0, 1, 2)
  steps, lr_gd = 600, 2.0
  npar = n * (n - 1) // 2
  measured, bound, curves, notes = [], [], [], []
  with jax.enable_x64(True):
    def loss(theta, lr, target):
      sol = I.nash_equilibrium(PreferenceGame(_preference_of(theta, n), jnp.asarray(beta), lr))
      return 0.5 * jnp.sum((jnp.log(sol.policy) - target) ** 2), (sol.status, sol.policy)

    vg = jax.value_and_grad(loss, has_aux=True)

    @jax.jit
    def descend(theta, lr, target, steps):
      """``steps`` gradient steps; the loss, status and policy of the visited points (one solver in the program)."""
      def body(i, c):
        th, vals, first, last = c
        (val, (status, pi)), g = vg(th, lr, target)
        first = jax.tree.map(lambda f, x: jnp.where(i == 0, x, f), first, (val, g, status))
        last = (val, status, pi)
        vals = vals.at[i].set(val)
        return jnp.where(i < steps, th - lr_gd * g, th), vals, first, last

      z = jnp.zeros_like(theta)
      zero = jnp.zeros((), theta.dtype)
      init = (theta, jnp.zeros(max_steps + 1, theta.dtype), (zero, z, jnp.zeros((), jnp.int32)),
              (zero, jnp.zeros((), jnp.int32), jnp.zeros(n, theta.dtype)))
      th, vals, first, last = jax.lax.fori_loop(0, steps + 1, body, init)
      return th, vals, first, last

    max_steps = steps
    for s in seeds:
      rng = np.random.default_rng(s)
      lr = jnp.log(jnp.asarray(rng.dirichlet(2.0 * np.ones(n))))
      true = jnp.asarray(rng.normal(size=npar))
      pi_true = descend(true, lr, jnp.zeros(n), 0)[3][2]
      target = jnp.log(pi_true)
      theta0 = jnp.asarray(rng.normal(size=npar))
      v = rng.normal(size=npar)
      h = 1e-6
      fd = (float(descend(theta0 + h * v, lr, target, 0)[2][0])
            - float(descend(theta0 - h * v, lr, target, 0)[2][0])) / (2 * h)
      th, vals, (val0, g0, status0), (val, status, pi_hat) = descend(theta0, lr, target, steps)
      measured.append(_rel_dir(float(jnp.dot(g0, v)), fd)); bound.append(1e-6)
      measured.append(float(jnp.max(jnp.abs(pi_hat - pi_true)))); bound.append(1e-8)
      ident = np.asarray(_preference_of(th, n) @ pi_true - _preference_of(true, n) @ pi_true)
      measured.append(float(np.max(np.abs(ident - ident.mean())))); bound.append(1e-7)
      measured.append(float(int(status) != I.SUCCESS or int(status0) != I.SUCCESS)); bound.append(0.5)
      curves.append(np.asarray(vals)[:steps + 1])
      dist = float(jnp.max(jnp.abs(_preference_of(th, n) - _preference_of(true, n))))
      notes.append(f"seed {s}: |P' - P|_max = {dist:.2f}")
  fig, ax = _plot.figure()
  for c in curves:
    ax.semilogy(np.maximum(c, 1e-30), lw=1)
  ax.set_xlabel("gradient step (step size 2)"); ax.set_ylabel("|log pi(theta) - log pi*|^2 / 2")
  ax.set_title(f"inverse NLHF, K = {n}, beta = {beta}: descent through the equilibrium", fontsize=10)
  path = _plot.save(fig, out_dir, "implicit_inverse_nlhf")
  details = (f"K = {n}, beta = {beta}, random pi_ref (Dirichlet(2)), seeds {list(seeds)}, "
             f"{steps} gradient steps (size {lr_gd}) from a "
             f"random P; " + "; ".join(notes) + " (P is not identified, P pi* is)")
  return result_from_ratios("implicit_inverse_nlhf", np.array(measured), np.array(bound), details, (path,), 0.0)


@claim(
    "implicit_mixture_sensitivity",
    summary=("implicit derivatives of the minimax winner, the regularised Nash and pooled RLHF with "
             "respect to annotator mixture weights match finite differences"),
    theorem=("Sensitivity of alignment solutions to the annotator mixture eta (pooled preference P(eta) = "
             "sum_u eta_u P_u, tangents e_u - e_U on the simplex): the implicit derivatives of the minimax "
             "(von Neumann) winner (active-set LP, status SUCCESS: nondegenerate), of the regularised Nash "
             "policy and of pooled RLHF (Bradley-Terry MLE of the pooled comparisons, then pi_ref exp(r / "
             "beta)) each match central differences of their forward solvers (relative <= 1e-6), with "
             "status SUCCESS; MaxMin-RLHF (egalitarian over the groups' own rewards) does not read eta, and"
             " the details report how far pooled RLHF sits from it. Mutations of the implicit derivatives "
             "rejected (checked, fast run): the inverse Jacobians transposed, the Jacobians dropped (dz = "
             "-dR/dtheta dtheta) and the sign flipped each fail (worst ratios 5e5, 1e6, 2e6)."),
    source=("Chakraborty et al., 'MaxMin-RLHF', ICML 2024 (arXiv:2402.08925), the egalitarian objective and"
            " the pooled single-reward baseline; Munos et al., ICML 2024 (arXiv:2312.00886); Shapley & Snow"
            " 1950 (square active-set systems of matrix games); Bradley & Terry 1952. float64."),
    cost=11,
)
def implicit_mixture_sensitivity(fast: bool, out_dir: str) -> ClaimResult:
  from nashax import games
  from nashax.core.games import PreferenceGame
  from nashax.solvers import implicit as I
  from nashax.solvers.baselines import fit_bradley_terry, maxmin_rlhf

  n, groups, beta = 5, 3, 0.2
  seeds = (0,) if fast else (0, 1, 2)
  measured, bound, rows = [], [], []
  with jax.enable_x64(True):
    def solutions(eta, ps, lr):
      p = jnp.einsum("u,uij->ij", eta, ps)
      lp = I.zero_sum_equilibrium(p - 0.5)
      ne = I.nash_equilibrium(PreferenceGame(p, jnp.asarray(beta), lr))
      ref = jnp.exp(lr)
      counts = p * ref[:, None] * ref[None, :] * 1000.0  # expected comparisons from pi_ref x pi_ref
      bt = I.bradley_terry(counts)
      rlhf = jax.nn.softmax(lr + bt.strengths / beta)
      out = jnp.concatenate([lp.x, ne.policy, rlhf])
      return out, jnp.stack([lp.status, ne.status, bt.status])

    @jax.jit
    def jac(eta, ps, lr, tangents):
      (out, status), lin = jax.linearize(lambda e: solutions(e, ps, lr), eta)
      return out, status, jax.vmap(lambda t: lin(t)[0])(tangents)

    val = lambda e, ps, lr: jac(e, ps, lr, tangents)[0]  # the same program (one compile)
    tangents = jnp.asarray(np.eye(groups)[:-1] - np.eye(groups)[-1])
    fit = jax.jit(jax.vmap(fit_bradley_terry, in_axes=(0, None)))
    mm = jax.jit(lambda r, ref: maxmin_rlhf(r, beta, ref).policy)  # the egalitarian baseline
    for s in seeds:
      rng = np.random.default_rng(10 + s)
      ps = jnp.stack([games.random_preference_game(jax.random.key(100 * s + u), n).preference for u in range(groups)])
      lr = jnp.log(jnp.asarray(rng.dirichlet(3.0 * np.ones(n))))
      eta = jnp.asarray(rng.dirichlet(3.0 * np.ones(groups)))
      out, status, j = jac(eta, ps, lr, tangents)
      h = 1e-6
      for t in range(groups - 1):
        fd = (np.asarray(val(eta + h * tangents[t], ps, lr)) - np.asarray(val(eta - h * tangents[t], ps, lr))) / (2 * h)
        for k, name in enumerate(("minimax winner", "regularised Nash", "pooled RLHF")):
          a, b = np.asarray(j[t, k * n:(k + 1) * n]), fd[k * n:(k + 1) * n]
          measured.append(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-9))); bound.append(1e-6)
          rows.append((name, float(np.max(np.abs(b)))))
      measured.append(float(np.any(np.asarray(status) != I.SUCCESS))); bound.append(0.5)
      # MaxMin-RLHF on the groups' own Bradley-Terry rewards: its inputs (rewards, beta, pi_ref) do not
      # include the mixture, so its sensitivity to eta is 0 by construction; what is measured is how far the
      # pooled solutions sit from it.
      ref = jnp.exp(lr)
      pol_mm = mm(fit(ps, ref[:, None] * ref[None, :]), ref)
      rows.append(("gap to MaxMin", float(jnp.max(jnp.abs(out[2 * n:] - pol_mm)))))
  fig, ax = _plot.figure()
  names = ["minimax winner", "regularised Nash", "pooled RLHF"]
  for k, name in enumerate(names):
    ax.scatter([k] * sum(r[0] == name for r in rows), [r[1] for r in rows if r[0] == name], s=15)
  ax.set_yscale("log"); ax.set_xticks(range(3)); ax.set_xticklabels(names, fontsize=7)
  ax.set_ylabel("max |d policy / d eta| along e_u - e_U")
  ax.set_title(f"mixture sensitivity, K = {n}, {groups} groups, beta = {beta}", fontsize=10)
  path = _plot.save(fig, out_dir, "implicit_mixture_sensitivity")
  sens = {name: max(r[1] for r in rows if r[0] == name) for name in names}
  gap_mm = max(r[1] for r in rows if r[0] == "gap to MaxMin")
  details = (f"K = {n}, {groups} random preference groups, seeds {list(seeds)}, beta = {beta}; largest sensitivity: "
             + ", ".join(f"{k} {v:.2g}" for k, v in sens.items())
             + f"; MaxMin-RLHF does not read eta (sensitivity 0), pooled RLHF is up to {gap_mm:.2g} from it in l_inf")
  return result_from_ratios("implicit_mixture_sensitivity", np.array(measured), np.array(bound), details, (path,), 0.0)


@claim(
    "implicit_alpharank_gradient",
    summary=("the log-space implicit derivative of alpha-rank's stationary mass with respect to the "
             "payoffs matches fourth-order finite differences"),
    theorem=("The gradient of a model's log alpha-rank mass (the least-ranked state's) with respect to the "
             "payoffs, by implicit differentiation of the chain's stationarity in log space (time-reversed "
             "jump chain), matches fourth-order central differences (relative <= 1e-6) with status SUCCESS,"
             " for single- and two-population games at alpha in {0.1, 1, 10, 1e4}; at 1e4 the rates are "
             "~exp(-1e4), where linear-space solves underflow. Mutations rejected (checked, fast run): the "
             "forward jump chain in place of its time reversal, the out-rate term of the right-hand side "
             "dropped, and the normalisation row pi^T replaced by the uniform 1/N each fail (worst ratios "
             "3e6, 2e6, 1e6)."),
    source=("Omidshafiei et al., Sci. Rep. 2019 (arXiv:1903.01373), eqs. 2-4; Meyer, SIAM Review 1975 "
            "(derivatives of stationary distributions); Grassmann, Taksar & Heyman 1985 (GTH). float64."),
    cost=10,
)
def implicit_alpharank_gradient(fast: bool, out_dir: str) -> ClaimResult:
  from nashax.solvers import implicit as I

  n_games = 2 if fast else 6
  alphas = (0.1, 1.0, 10.0, 1e4)
  measured, bound, pts = [], [], []
  with jax.enable_x64(True):
    def log_mass(pay, alpha, k, single):
      sol = I.alpharank(pay, alpha, 20, single_population=single)
      return sol.log_pi[k], (sol.status, sol.log_pi)

    fns = {single: jax.jit(jax.vmap(jax.value_and_grad(lambda p, a, k, s=single: log_mass(p, a, k, s), has_aux=True),
                                    in_axes=(0, None, 0)))
           for single in (True, False)}
    rng = np.random.default_rng(3)
    for single, shape in ((True, (4, 4)), (False, (2, 3, 3))):
      vg = fns[single]
      pay = jnp.asarray(rng.normal(size=(n_games,) + shape))
      v = jnp.asarray(rng.normal(size=(n_games,) + shape))
      zero = jnp.zeros(n_games, jnp.int32)
      for alpha in alphas:
        h = 1e-4 / alpha
        k = jnp.argmin(vg(pay, alpha, zero)[0][1][1], axis=-1)  # the weakest model: the smallest mass
        (_, (status, _)), grad = vg(pay, alpha, k)
        g = np.sum(np.asarray(grad) * np.asarray(v), axis=tuple(range(1, pay.ndim)))
        at = lambda t: np.asarray(vg(pay + t * v, alpha, k)[0][0])
        fd = (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h)  # fourth-order central difference
        measured += list(np.abs(g - fd) / np.maximum(np.abs(fd), 1e-12)); bound += [1e-6] * n_games
        measured.append(float(np.any(np.asarray(status) != I.SUCCESS) or not np.isfinite(g).all())); bound.append(0.5)
        pts += list(zip(fd, g))
  fig, ax = _plot.figure()
  fd_, g_ = np.array(pts).T
  ax.scatter(fd_, g_, s=10)
  lim = [min(fd_.min(), g_.min()), max(fd_.max(), g_.max())]
  ax.plot(lim, lim, "k--", lw=0.8)
  ax.set_xlabel("central difference"); ax.set_ylabel("implicit derivative")
  ax.set_xscale("symlog", linthresh=1e-3); ax.set_yscale("symlog", linthresh=1e-3)
  ax.set_title("d log(alpha-rank mass of the weakest model) / d payoffs, random directions", fontsize=10)
  path = _plot.save(fig, out_dir, "implicit_alpharank_gradient")
  details = (f"{n_games} random 4-model single-population games and {n_games} random 2x3x3 two-population games, "
             f"m = 20, alpha in {list(alphas)} (fourth-order central differences, h = 1e-4 / alpha), "
             "log mass of the least-ranked state; float64")
  return result_from_ratios("implicit_alpharank_gradient", np.array(measured), np.array(bound), details, (path,), 0.0)


CLAIMS = table((implicit_inverse_nlhf, implicit_mixture_sensitivity, implicit_alpharank_gradient))
