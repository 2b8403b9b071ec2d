"""Claims about monotone inclusions: Halpern, EAG, FEG and variance-reduced Halpern."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from nashax import games
from nashax.core import operators as ops
from nashax.core.solver import SUCCESS, run, solve
from nashax.solvers import halpern as H
from nashax.theory import _plot
from nashax.theory._mutate import swap_step
from nashax.theory.claim_types import ClaimResult, claim, mutant_into, result_from_ratios, table

_MUTANTS = []  # this module's wrong variants (`mutant(...)(make)` adds one), attached by `table` below
mutant = mutant_into(_MUTANTS)


def _linear(m):
  return ops.Operator(_matvec, jnp.asarray(m), ops.free(m.shape[0], jnp.asarray(m).dtype),
                      jnp.linalg.norm(jnp.asarray(m), 2), None, name="linear")


def _matvec(m, z):
  return m @ z


def _fz_norm(problem, state):
  return jnp.linalg.norm(ops.as_operator(problem, constants=False)(state.z))


@claim(
    "halpern_last_iterate",
    summary=("Halpern: ‖z_k − Tz_k‖ ≤ 2‖z_0 − z*‖/(k+1) at every k on random rotations; T = −I attains it "
             "at every even k (Lieder 2021, Thm 2.1)"),
    theorem=("Halpern z_{k+1} = z_0/(k+2) + (1 - 1/(k+2)) T z_k for nonexpansive T: "
             "|z_k - T z_k| <= 2 |z_0 - z*| / (k+1) for all k; T = -I, z_0 = 1 attains it at every even k."),
    source="Lieder 2021, Optim. Lett. 15:405, Thm 2.1 (tight); PEPit halpern_iteration.",
    subject="solver(x0) -> Solver: Halpern around the step-1 forward map (H.halpern(H.forward_step(1.0), x0=x0)).",
    cost=4,
)
def halpern_last_iterate(fast: bool, out_dir: str, solver=None):
  make = (lambda x0: H.halpern(H.forward_step(1.0), x0=x0)) if solver is None else solver
  steps = 50
  draws = 50 if fast else 200
  with jax.enable_x64(True):
    # Random rotations of the plane (Fix T = {0}): F = I - R_theta, step 1 gives T.
    thetas = jax.random.uniform(jax.random.key(0), (draws,), jnp.float64, 0.0, 2 * math.pi)
    z0s = jax.random.normal(jax.random.key(1), (draws, 2), jnp.float64)

    def one(theta, z0):
      r = jnp.array([[jnp.cos(theta), -jnp.sin(theta)], [jnp.sin(theta), jnp.cos(theta)]])
      op = _linear(jnp.eye(2) - r)
      _, tr = run(make(z0), op, jax.random.key(0), num_steps=steps,
                  metric_fn=_fz_norm)  # F = I - T: |F z| = |z - T z|
      return tr

    res = np.asarray(jax.vmap(one)(thetas, z0s))  # entry i is after i+1 steps
    k = np.arange(1, steps + 1, dtype=np.float64)
    bound = 2.0 * np.linalg.norm(np.asarray(z0s), axis=1)[:, None] / (k[None, :] + 1.0)
    # The worst case T = -I (F = 2I), z_0 = 1.
    op = _linear(2.0 * jnp.eye(1, dtype=jnp.float64))
    _, tr = run(make(jnp.ones(1, jnp.float64)), op, jax.random.key(0),
                num_steps=steps, metric_fn=_fz_norm)  # F = I - T: |F z| = |z - T z|
    worst = np.asarray(tr) / (2.0 / (k + 1.0))
  even = worst[1::2]  # k = 2, 4, ...
  tight = float(np.min(even))
  fig = _plot.measured_vs_bound(out_dir, "halpern_last_iterate", k, np.stack([res[0], np.asarray(tr)]),
                                np.stack([bound[0], 2.0 / (k + 1.0)]),
                                "Halpern: |z_k - T z_k| vs 2|z_0 - z*|/(k+1)", "fixed-point residual",
                                ["rotation", "T = -I"])
  details = (f"{draws} random plane rotations x {steps} steps (float64), worst ratio "
             f"{float(np.max(res / bound)):.10f}; T = -I attains the bound: min ratio at even k = {tight:.12f}")
  # The tight case must attain the bound within 1%: measured 0.99 / min ratio <= 1.
  measured = np.concatenate([res.ravel(), worst.ravel(), [0.99]])
  bounds = np.concatenate([bound.ravel(), np.ones(worst.size), [tight]])
  res = result_from_ratios("halpern_last_iterate", measured, bounds, details, (fig,), 0.0, tol=1.0 + 1e-9)
  return dataclasses.replace(res, tight_ratio=float(np.max(worst)))


def _eag_v_alpha_inf(alpha0_l: float, steps: int = 2_000_000) -> float:
  """``alpha_inf * L`` of the EAG-V recursion from ``alpha_0 * L``: the recursion itself, ``steps`` times
  in float64 (the remaining factors change it by about ``alpha^2/((1 - alpha^2) steps)``, 1e-7 here)."""
  with jax.enable_x64(True):
    def body(k, a):
      k = k.astype(jnp.float64)
      return a * (1 - a * a / ((k + 1) * (k + 3) * (1 - a * a)))

    return float(jax.jit(lambda a: jax.lax.fori_loop(0, steps, body, a))(jnp.asarray(alpha0_l, jnp.float64)))


@claim(
    "eag_feg_residual",
    summary=("EAG-C, EAG-V and FEG residual bounds ‖Fz_k‖² ≤ C‖z_0 − z*‖²/k² with their constants on "
             "random bilinear games; FEG tight on the ρ = −1/3 instance (Yoon & Ryu 2021; Lee & Kim 2021)"),
    theorem=("Monotone L-Lipschitz F: EAG-C (alpha = 1/(8L)) |F z_k|^2 <= 4(1+aL+a^2L^2)/(a^2(1+aL)) "
             "R^2/(k+1)^2; EAG-V (alpha_0 = 0.618/L) |F z_k|^2 <= 4(1 + a_0 a_inf L^2)/a_inf^2 "
             "R^2/((k+1)(k+2)); FEG |F z_k|^2 <= 4 R^2/((1/L + 2 rho)^2 k^2), tight on the rho = -1/3 "
             "instance."),
    source=("Yoon & Ryu 2021 (arXiv 2102.07922) Thms 1-2; Lee & Kim 2021 (arXiv 2106.02326) Thm 4.1."),
    subject=("solver = {'eag': factory, 'feg': factory} with the signatures of solvers.halpern.eag and "
             "solvers.halpern.feg."),
    cost=10,
)
def eag_feg_residual(fast: bool, out_dir: str, solver=None):
  eag, feg = (H.eag, H.feg) if solver is None else (solver["eag"], solver["feg"])
  draws = 8 if fast else 32
  steps = 400
  with jax.enable_x64(True):
    keys = jax.random.split(jax.random.key(3), draws)
    mats = jax.vmap(lambda k: jax.random.normal(k, (5, 5), jnp.float64))(keys)
    z0s = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (10,), jnp.float64))(keys)

    def field(a):
      m = jnp.zeros((10, 10), jnp.float64).at[:5, 5:].set(a).at[5:, :5].set(-a.T)
      return _linear(m)  # F(x, y) = (A y, -A^T x): min_x max_y x^T A y, z* = 0

    def trace(solver_fn, a, z0):
      op = field(a)
      _, tr = run(solver_fn(z0), op, jax.random.key(0), num_steps=steps, metric_fn=_fz_norm)
      return tr ** 2

    k = np.arange(1, steps + 1, dtype=np.float64)
    r2 = np.sum(np.asarray(z0s) ** 2, axis=1)[:, None]
    lips = np.asarray(jax.vmap(lambda a: jnp.linalg.norm(a, 2))(mats))[:, None]
    ms, bs, labels = [], [], []
    # EAG-C
    a = 1.0 / (8.0 * lips)
    m = np.asarray(jax.vmap(lambda a_, z: trace(lambda z0: eag(x0=z0), a_, z))(mats, z0s))
    ms.append(m); labels.append("EAG-C")
    bs.append(4 * (1 + a * lips + (a * lips) ** 2) / (a ** 2 * (1 + a * lips)) * r2 / (k + 1) ** 2)
    # EAG-V
    ainf = _eag_v_alpha_inf(0.618) / lips
    a0 = 0.618 / lips
    m = np.asarray(jax.vmap(lambda a_, z: trace(lambda z0: eag(variant="varying", x0=z0), a_, z))(mats, z0s))
    ms.append(m); labels.append("EAG-V")
    bs.append(4 * (1 + a0 * ainf * lips ** 2) / ainf ** 2 * r2 / ((k + 1) * (k + 2)))
    # FEG, rho = 0
    m = np.asarray(jax.vmap(lambda a_, z: trace(lambda z0: feg(x0=z0), a_, z))(mats, z0s))
    ms.append(m); labels.append("FEG")
    bs.append(4 * r2 * lips ** 2 / k ** 2)
    # FEG on the hard comonotone instance, rho = -1/3, L = 1, z_0 = (10, 10).
    rho, lip = -1.0 / 3.0, 1.0
    s = math.sqrt(1 - rho ** 2 * lip ** 2)
    hard = _linear(jnp.array([[rho * lip ** 2, lip * s], [-lip * s, rho * lip ** 2]], jnp.float64))
    hard = hard.replace(lipschitz=jnp.asarray(lip, jnp.float64))
    _, tr = run(feg(lip, rho, x0=jnp.array([10.0, 10.0])), hard, jax.random.key(0), num_steps=steps,
                metric_fn=_fz_norm)
    hard_m = np.asarray(tr) ** 2
    hard_b = 4 * 200.0 / ((1 / lip + 2 * rho) ** 2 * k ** 2)
  hard_ratio = hard_m / hard_b
  ratios = [float(np.max(m_ / b_)) for m_, b_ in zip(ms, bs)]
  fig = _plot.measured_vs_bound(out_dir, "eag_feg_residual", k,
                                np.stack([m_[0] for m_ in ms] + [hard_m]), np.stack([b_[0] for b_ in bs] + [hard_b]),
                                "|F z_k|^2 of EAG-C, EAG-V, FEG vs their bounds", "|F z_k|^2",
                                labels + ["FEG rho=-1/3"])
  details = (f"{draws} random 5x5 bilinear games, {steps} steps, float64; worst ratios EAG-C {ratios[0]:.3f}, "
             f"EAG-V {ratios[1]:.3f} (alpha_inf L = {_eag_v_alpha_inf(0.618):.5f}), FEG {ratios[2]:.3f}; "
             f"FEG rho=-1/3 max ratio {float(np.max(hard_ratio)):.7f} (tight: must exceed 0.99)")
  measured = np.concatenate([m_.ravel() for m_ in ms] + [hard_m, [0.99]])
  bounds = np.concatenate([b_.ravel() for b_ in bs] + [hard_b, [float(np.max(hard_ratio))]])
  res = result_from_ratios("eag_feg_residual", measured, bounds, details, (fig,), 0.0, tol=1.0 + 1e-6)
  return dataclasses.replace(res, tight_ratio=float(np.max(hard_ratio)))


# ----------------------------------------------------------------------------- mutants


def _halpern_anchor(offset: float):
  def step(hp, problem, state):
    op = ops.as_operator(problem, constants=False)
    k = state.step
    warm, params = state.aux
    tz, warm, calls = hp.base.apply_fn(params, op, state.z, warm, k)
    lam = 1.0 / (k.astype(state.z.dtype) + offset)  # the correct anchor weight is 1/(k+2)
    z = lam * state.anchor + (1.0 - lam) * tz
    return H._advance(problem, state, z, (warm, params), calls * H._cost(problem))

  return step


_halpern_k1 = _halpern_anchor(1.0)
_halpern_k3 = _halpern_anchor(3.0)
mutant("halpern_last_iterate", "anchor_1/(k+1)", "anchor weight 1/(k+1) instead of 1/(k+2) (off by one in k)")(
    swap_step(lambda x0: H.halpern(H.forward_step(1.0), x0=x0), _halpern_k1, "anchor_k+1"))
mutant("halpern_last_iterate", "anchor_1/(k+3)", "anchor weight 1/(k+3) instead of 1/(k+2) (off by one in k)")(
    swap_step(lambda x0: H.halpern(H.forward_step(1.0), x0=x0), _halpern_k3, "anchor_k+3"))


def _eag_no_extrapolation(hp, problem, state):
  op = ops.as_operator(problem, constants=False)
  k = state.step.astype(state.z.dtype)
  beta = 1.0 / (k + 2.0)
  alpha, lip = state.aux
  z, z0, proj = state.z, state.anchor, op.constraint.project
  new = proj(z + beta * (z0 - z) - alpha * op(z))  # bug: anchored gradient step, the extragradient is missing
  if hp.variant == "varying":
    a2l2 = (alpha * lip) ** 2
    alpha = alpha * (1.0 - a2l2 / ((k + 1.0) * (k + 3.0) * (1.0 - a2l2)))
  return H._advance(problem, state, new, (alpha, lip), 2 * H._cost(problem))


def _feg_anchor_k2(hp, problem, state):
  op = ops.as_operator(problem, constants=False)
  beta = 1.0 / (state.step.astype(state.z.dtype) + 2.0)  # bug: FEG's anchor is 1/(k+1), not EAG's 1/(k+2)
  inv_l, rho = 1.0 / state.aux, hp.rho
  z, z0, proj = state.z, state.anchor, op.constraint.project
  fz = op(z)
  pull = z + beta * (z0 - z)
  w = proj(pull - (1.0 - beta) * (inv_l + 2.0 * rho) * fz)
  new = proj(pull - inv_l * op(w) - (1.0 - beta) * 2.0 * rho * fz)
  return H._advance(problem, state, new, state.aux, 2 * H._cost(problem))


mutant("eag_feg_residual", "eag_no_extrapolation", "EAG without its extrapolation step (anchored gradient descent)")(
    {"eag": swap_step(H.eag, _eag_no_extrapolation, "no_extrapolation"), "feg": H.feg})
mutant("eag_feg_residual", "feg_anchor_1/(k+2)", "FEG anchored with 1/(k+2) (EAG's weight) instead of 1/(k+1)")(
    {"eag": H.eag, "feg": swap_step(H.feg, _feg_anchor_k2, "anchor_k+2")})


def vr_complexity_counts(ns, eps, seeds, dim=5, eta_scale=1.0, vr=lambda eta, n: H.vr_halpern(eta)):
  """Component evaluations to reach ``|F z| <= eps`` for VR-Halpern and deterministic Halpern.

  VR-Halpern's count includes its exit checks (a full pass every ``4 floor(sqrt(n))``
  steps); deterministic Halpern's check reuses the ``F(z_k)`` of its own step.
  ``vr`` is the VR-Halpern factory (``vr(eta, n) -> Solver``, ``n`` the number of components).
  Returns ``(vr[len(ns)], det[len(ns)])`` seed means.
  """
  make_vr, vr, det = vr, [], []
  with jax.enable_x64(True):
    for n in ns:
      cv, cd = [], []
      for s in range(seeds):
        fs = games.random_least_squares(jax.random.key(1000 * s + n), n, dim, dtype=jnp.float64)
        every = 4 * max(1, math.isqrt(n))
        _, info = solve(make_vr(eta_scale / float(fs.lipschitz), int(n)), fs, jax.random.key(s), tol=eps,
                        max_steps=10 ** 7, check_every=every, residual_fn=ops.residual)
        if int(info.status) != SUCCESS:
          raise RuntimeError(f"vr_halpern did not reach {eps} at n={n}")
        cv.append(int(info.oracle_calls) + n * (int(info.num_steps) // every))
        _, info = solve(H.halpern(H.forward_step(1.0 / float(fs.full_lipschitz))), fs.full(), jax.random.key(s),
                        tol=eps, max_steps=10 ** 7, residual_fn=ops.residual)
        if int(info.status) != SUCCESS:
          raise RuntimeError(f"halpern did not reach {eps} at n={n}")
        cd.append(int(info.num_steps) * n)
      vr.append(np.mean(cv))
      det.append(np.mean(cd))
  return np.array(vr), np.array(det)


@claim(
    "vr_halpern_complexity",
    summary=("component evaluations to ‖Fz‖ ≤ 1e-4 as n grows 30 → 10,000 at L = 1: log-log slope ≈ 1/2 "
             "for VR-Halpern, ≈ 1 for Halpern; the ratio at n = 10,000 is reported (Cai, Alacaoglu & "
             "Diakonikolas 2024)"),
    theorem=("Finite sums cocoercive on average with constant L: VR-Halpern reaches |F z| <= eps in O(n + "
             "sqrt(n) L/eps) component evaluations, deterministic Halpern in O(n L/eps): log-log slopes in "
             "n of about 1/2 and 1 at fixed L and eps."),
    source="Cai, Alacaoglu & Diakonikolas, ICLR 2024 (arXiv 2310.02987), Thm 3.3 / Cor. 3.4.",
    cost=35,
    subject=("solver(eta, n) -> Solver on a FiniteSumOperator of n components (the real one: "
             "solvers.halpern.vr_halpern(eta), n unused)."),
)
def vr_halpern_complexity(fast: bool, out_dir: str, solver=None):
  ns = np.array([100, 1000, 10000] if fast else [30, 100, 1000, 10000])
  eps = 1e-4
  seeds = 2 if fast else 3
  vr, det = vr_complexity_counts(ns, eps, seeds, **({} if solver is None else {"vr": solver}))
  # The bound is n + sqrt(n) L/eps: the sqrt(n) term dominates once n >= 100 here (at n = 10 the
  # full passes, probability 4/(sqrt(n)+5), are most of the cost), so the slope is fitted on n >= 100.
  big = ns >= 100
  sv = float(np.polyfit(np.log(ns[big]), np.log(vr[big]), 1)[0])
  sv_all = float(np.polyfit(np.log(ns), np.log(vr), 1)[0])
  sd = float(np.polyfit(np.log(ns), np.log(det), 1)[0])
  ratio = float(det[-1] / vr[-1])
  fig, ax = _plot.figure()
  ax.loglog(ns, vr, "o-", label=f"VR-Halpern (slope {sv:.2f})")
  ax.loglog(ns, det, "s-", label=f"Halpern (slope {sd:.2f})")
  ax.loglog(ns, vr[0] * (ns / ns[0]) ** 0.5, ":", color="gray", label="slope 1/2")
  ax.set_xlabel("n (components)"); ax.set_ylabel(f"component evaluations to |F z| <= {eps:g}")
  ax.set_title("VR-Halpern vs Halpern on unit-row least squares (L = 1)", fontsize=10)
  ax.legend(fontsize=8)
  path = _plot.save(fig, out_dir, "vr_halpern_complexity")
  details = (f"n = {[int(n) for n in ns]}, eps = {eps:g}, {seeds} seeds, d = 5, eta = 1/L; slopes VR {sv:.3f} on n >= 100 (theory 0.5, "
             f"pass in [0.35, 0.65]; {sv_all:.3f} on all n), Halpern {sd:.3f} (theory 1, pass in [0.85, 1.15]); "
             f"Halpern / VR-Halpern evaluations at n = {ns[-1]}: {ratio:.2f}")
  measured = np.array([sv, 0.35, sd, 0.85])
  bounds = np.array([0.65, sv, 1.15, sd])
  return result_from_ratios("vr_halpern_complexity", measured, bounds, details, (path,), 0.0)


# Mutants through the public factory only, so that they survive a rewrite of VR-Halpern's inner loop.
mutant("vr_halpern_complexity", "step_times_n",
       "the step n/L: the mean's average cocoercivity divided by n once more (the sum's constant for the mean)")(
    lambda eta, n: H.vr_halpern(eta * n))
mutant("vr_halpern_complexity", "batch_n",
       "the PAGE minibatch is the whole sum, b = n instead of floor(sqrt(n)) (2n evaluations per step)")(
    lambda eta, n: H.vr_halpern(eta, batch_size=int(n)))


def np_project_simplex(v: np.ndarray) -> np.ndarray:
  """Euclidean projection on the simplex in float64 numpy, written apart from ``core.simplex``
  (Duchi et al. 2008, Fig. 1) so that it can check it."""
  u = np.sort(v)[::-1]
  css = np.cumsum(u) - 1.0
  rho = np.nonzero(u - css / np.arange(1, v.size + 1) > 0)[0][-1]
  return np.maximum(v - css[rho] / (rho + 1.0), 0.0)


def _natural_residual_np(a_full, b_full, kinds, sizes, z):
  """Independent float64 numpy recomputation of |z - Pi_C(z - F z)| for an affine F(z) = M z + q."""
  g = a_full @ z + b_full
  v = z - g
  out, start = [], 0
  for kind, s in zip(kinds, sizes):
    blk = v[start:start + s]
    if kind == "simplex":
      blk = np_project_simplex(blk)
    out.append(blk)
    start += s
  return float(np.linalg.norm(z - np.concatenate(out)))


def _affine_of(fs):
  """(M, q) of a bilinear finite sum's mean operator, in float64 numpy."""
  a, b, c = (np.asarray(x, np.float64) for x in fs.mean_data)
  m, k = a.shape
  mat = np.zeros((m + k, m + k))
  mat[:m, m:] = a
  mat[m:, :m] = -a.T
  return mat, np.concatenate([b, c])


@claim(
    "exit_criterion_sound",
    summary="whenever a method stops, the natural residual recomputed in numpy float64 is ≤ ε",
    theorem=("Whenever a solver stops with status SUCCESS on the natural residual, the exactly recomputed "
             "residual |z - Pi_C(z - F z)| (float64, independent numpy projection) is <= eps."),
    source="Cai, Alacaoglu & Diakonikolas 2024, Sec. 1 (computable exit criterion).",
    cost=37,
    subject=("residual(problem, state) -> [] the certificate solve stops on (residual_fn of "
             "core.solver.solve; the real one: core.operators.residual)."),
)
def exit_criterion_sound(fast: bool, out_dir: str, solver=None):
  residual = ops.residual if solver is None else solver
  eps = 1e-3
  draws = 2 if fast else 3
  methods = {
      "halpern": lambda: H.halpern(),
      "eag": lambda: H.eag(variant="varying"),
      "feg": lambda: H.feg(),
      "extragradient": lambda: H.projected_extragradient(),
      "vr_halpern_resolvent": lambda: H.vr_halpern_resolvent(),
  }
  measured, names = [], []
  for constrained in (False, True):
    for d in range(draws):
      fs = games.random_bilinear_sum(jax.random.key(50 + d), 20, 4, 1.0, constrained=constrained)
      mat, q = _affine_of(fs)
      for name, make in methods.items():
        st, info = solve(make(), fs, jax.random.key(d), tol=eps, max_steps=200_000, check_every=5,
                         residual_fn=residual)
        if int(info.status) != SUCCESS:
          continue
        z = np.asarray(st.z, np.float64)
        measured.append(_natural_residual_np(mat, q, fs.constraint.kinds, fs.constraint.sizes, z))
        names.append(name)
  if not measured:
    return ClaimResult("exit_criterion_sound", "fail", eps, float("nan"), float("inf"), "no run succeeded", (), 0.0)
  measured = np.array(measured)
  fig, ax = _plot.figure()
  for i, name in enumerate(methods):
    sel = [j for j, n in enumerate(names) if n == name]
    ax.semilogy([i] * len(sel), measured[sel], "o", label=name)
  ax.axhline(eps, ls="--", color="k", label="eps")
  ax.set_xticks(range(len(methods))); ax.set_xticklabels(list(methods), rotation=20, fontsize=7)
  ax.set_ylabel("recomputed natural residual at exit"); ax.legend(fontsize=7)
  ax.set_title("Exit criterion: recomputed residual at every successful stop", fontsize=10)
  path = _plot.save(fig, out_dir, "exit_criterion_sound")
  details = (f"{len(measured)} successful stops of {len(methods)} methods on {2 * draws} random bilinear finite "
             f"sums (n = 20, free and simplex-constrained), eps = {eps:g}")
  return result_from_ratios("exit_criterion_sound", measured, np.full(measured.shape, eps), details, (path,), 0.0)


def _residual_squared(problem, state):
  return ops.residual(problem, state) ** 2  # bug: |r|^2 compared with eps


def _residual_rms(problem, state):
  return ops.residual(problem, state) / jnp.sqrt(state.z.size)  # bug: the RMS entry


mutant("exit_criterion_sound", "squared", "the squared residual |z - Pi(z - F z)|^2 compared with eps")(
    _residual_squared)
mutant("exit_criterion_sound", "rms", "the root-mean-square entry |r|/sqrt(d) in place of the norm |r|")(
    _residual_rms)


CLAIMS = table((
    halpern_last_iterate, eag_feg_residual, vr_halpern_complexity, exit_criterion_sound,
), _MUTANTS)
