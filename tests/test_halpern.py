"""Monotone operators, residuals, constant checks, and the Halpern family (issue: monotone inclusions)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import lsq_linear

import nashax
from nashax import games, solvers
from nashax.core import operators as ops
from nashax.core.solver import NONFINITE, SUCCESS
from nashax.solvers import halpern as H

from _utils import assert_trees_close


from nashax.theory.monotone import _eag_v_alpha_inf
from nashax.theory.monotone import np_project_simplex as _np_project_simplex


# ----------------------------------------------------------------------------- operators and residuals


def test_matrix_game_operator_and_constant():
  """F(x, y) = (-A y, A^T x) written out; L = |A|_2 from numpy's SVD."""
  with jax.enable_x64(True):
    g = games.random_zero_sum(jax.random.key(0), 4, 6)
    op = ops.from_matrix_game(g)
    a = np.asarray(g.payoff)
    z = np.random.default_rng(0).random(10)
    np.testing.assert_allclose(op(jnp.asarray(z)), np.concatenate([-a @ z[4:], a.T @ z[:4]]), atol=1e-14)
    np.testing.assert_allclose(float(op.lipschitz), np.linalg.svd(a, compute_uv=False)[0], rtol=1e-12)


def test_natural_residual_against_numpy_projection():
  """|z - Pi(z - F z)| recomputed with an independent numpy simplex projection (Duchi et al. 2008)."""
  with jax.enable_x64(True):
    g = games.random_zero_sum(jax.random.key(1), 5, 3)
    op = ops.from_matrix_game(g)
    z = np.asarray(op.constraint.project(jax.random.normal(jax.random.key(2), (8,), jnp.float64)))
    v = z - np.asarray(op(jnp.asarray(z)))
    ref = np.linalg.norm(z - np.concatenate([_np_project_simplex(v[:5]), _np_project_simplex(v[5:])]))
    np.testing.assert_allclose(float(ops.natural_residual(op, jnp.asarray(z))), ref, rtol=1e-12)


def test_tangent_residual_matches_a_least_squares_solve():
  """dist(-F, N_C(z)) on simplices equals min_{lam, mu >= 0 on active} |F + lam 1 - mu| (scipy lsq_linear)."""
  with jax.enable_x64(True):
    g = games.random_zero_sum(jax.random.key(3), 6, 5)
    op = ops.from_matrix_game(g)
    for seed in range(5):
      z = op.constraint.project(2.0 * jax.random.normal(jax.random.key(seed), (11,), jnp.float64))
      f = np.asarray(op(z))
      zn = np.asarray(z)
      total = 0.0
      for sl in (slice(0, 6), slice(6, 11)):
        fb, zb = f[sl], zn[sl]
        active = np.nonzero(zb <= 0)[0]
        m = np.zeros((fb.size, 1 + active.size))
        m[:, 0] = 1.0
        for j, i in enumerate(active):
          m[i, 1 + j] = -1.0
        lo = np.r_[-np.inf, np.zeros(active.size)]
        res = lsq_linear(m, -fb, bounds=(lo, np.full(1 + active.size, np.inf)), tol=1e-14)
        total += np.sum((fb + m @ res.x) ** 2)
      np.testing.assert_allclose(float(ops.tangent_residual(op, z)), np.sqrt(total), rtol=1e-6, atol=1e-10)


def test_residuals_vanish_at_the_lp_equilibrium():
  """At the LP equilibrium (scipy HiGHS) both residuals are ~0; at a random point both are positive."""
  with jax.enable_x64(True):
    g = games.random_zero_sum(jax.random.key(4), 5, 7)
    sol = solvers.exact_equilibrium(g)
    z = jnp.concatenate([jnp.asarray(sol.x, jnp.float64), jnp.asarray(sol.y, jnp.float64)])
    assert float(ops.natural_residual(g, z)) < 1e-8
    assert float(ops.tangent_residual(g, z)) < 1e-6
    zr = ops.from_matrix_game(g).constraint.project(jax.random.normal(jax.random.key(0), (12,), jnp.float64))
    assert float(ops.natural_residual(g, zr)) > 1e-2 and float(ops.tangent_residual(g, zr)) > 1e-2


def test_unconstrained_residuals_equal_operator_norm():
  with jax.enable_x64(True):
    fs = games.random_bilinear_sum(jax.random.key(0), 10, 3)
    z = jax.random.normal(jax.random.key(1), (6,), jnp.float64)
    fz = float(jnp.linalg.norm(fs(z)))
    np.testing.assert_allclose(float(ops.natural_residual(fs, z)), fz, rtol=1e-12)
    np.testing.assert_allclose(float(ops.tangent_residual(fs, z)), fz, rtol=1e-12)


def test_finite_sum_mean_component_and_batch_agree():
  """The fast mean path equals the average of the components; a full batch equals F."""
  with jax.enable_x64(True):
    fs = games.random_bilinear_sum(jax.random.key(2), 12, 3)
    z = jax.random.normal(jax.random.key(3), (6,), jnp.float64)
    comps = jnp.stack([fs.component(i, z) for i in range(12)])
    np.testing.assert_allclose(fs(z), comps.mean(0), atol=1e-13)
    np.testing.assert_allclose(fs.batch(jnp.arange(12), z), comps.mean(0), atol=1e-13)
    fs_rows = ops.matrix_game_rows(games.random_zero_sum(jax.random.key(4), 4, 3))
    z2 = jax.random.uniform(jax.random.key(5), (7,), jnp.float64)
    np.testing.assert_allclose(fs_rows(z2), fs_rows.batch(jnp.arange(4), z2), atol=1e-13)


def test_bilinear_sum_has_the_requested_average_lipschitz_constant():
  """L set to 2.5 exactly; check_constants' power iteration on E_i J_i^T J_i reaches it."""
  with jax.enable_x64(True):
    fs = games.random_bilinear_sum(jax.random.key(0), 30, 4, 2.5)
    np.testing.assert_allclose(float(fs.lipschitz), 2.5, rtol=1e-12)
    rep = ops.check_constants(fs, jax.random.key(1))
    np.testing.assert_allclose(rep.average_lipschitz, 2.5, rtol=1e-6)
    assert rep.lipschitz <= float(fs.full_lipschitz) * (1 + 1e-9)


def test_wrong_constants_are_detected():
  """A claimed L (or L_c) below the true one, or a non-monotone F, is refused by check_constants."""
  with jax.enable_x64(True):
    fs = games.random_bilinear_sum(jax.random.key(0), 20, 3)
    ops.check_constants(fs, jax.random.key(1))  # the true constants pass
    with pytest.raises(ValueError, match="lipschitz"):
      ops.check_constants(fs.replace(lipschitz=fs.lipschitz * 0.95), jax.random.key(1))
    with pytest.raises(ValueError, match="lipschitz"):
      ops.check_constants(fs.replace(full_lipschitz=fs.full_lipschitz * 0.95), jax.random.key(1))
    ls = games.random_least_squares(jax.random.key(2), 50, 4, dtype=jnp.float64)
    ops.check_constants(ls, jax.random.key(3))
    with pytest.raises(ValueError, match="cocoercivity"):
      ops.check_constants(ls.replace(full_cocoercivity=ls.full_cocoercivity * 0.5), jax.random.key(3))
    g = ops.from_matrix_game(games.random_zero_sum(jax.random.key(0), 3, 3))
    with pytest.raises(ValueError, match="lipschitz"):
      ops.check_constants(g.replace(lipschitz=g.lipschitz * 0.9), jax.random.key(0))
    neg = ops.Operator(lambda d, z: -z, None, ops.free(3, jnp.float64), jnp.asarray(1.0))
    with pytest.raises(ValueError, match="not monotone"):
      ops.check_constants(neg, jax.random.key(0))


def _saddle(data, x, y):
  a, mu = data
  return 0.5 * mu * jnp.sum(x ** 2) + x @ a @ y - 0.5 * mu * jnp.sum(y ** 2)


def test_from_saddle_uses_autodiff_gradients():
  """f = mu/2 |x|^2 + x^T A y - mu/2 |y|^2: F = (mu x + A y, mu y - A^T x) by hand."""
  with jax.enable_x64(True):
    a = jax.random.normal(jax.random.key(0), (3, 2), jnp.float64)
    op = ops.from_saddle(_saddle, (a, 0.3), 3, ops.free(5, jnp.float64))
    z = jax.random.normal(jax.random.key(1), (5,), jnp.float64)
    x, y = z[:3], z[3:]
    np.testing.assert_allclose(op(z), jnp.concatenate([0.3 * x + a @ y, 0.3 * y - a.T @ x]), atol=1e-14)


def test_kl_preference_operator_solution_is_the_regularized_nash():
  """Extragradient on the floored-simplex KL game reaches pi*_beta of solvers.regularized_nash (a second algorithm)."""
  with jax.enable_x64(True):
    g = games.random_preference_game(jax.random.key(5), 5)
    g = nashax.PreferenceGame.from_matrix(np.asarray(g.preference, np.float64)).regularized(0.5)
    ref = solvers.regularized_nash(g, tol=1e-12)
    op = ops.from_preference_game(g)
    st, info = nashax.solve(H.projected_extragradient(), op, jax.random.key(0), tol=1e-10, max_steps=200_000,
                            check_every=10)
    nashax.check(info)
    np.testing.assert_allclose(st.z[:5], ref.policy, atol=1e-6)
    np.testing.assert_allclose(st.z[5:], ref.policy, atol=1e-6)


def test_robust_least_squares_closed_form():
  """F vanishes at the closed-form saddle point, and extragradient converges to it (derivation in the docstring)."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    a, y0 = rng.normal(size=(12, 3)), rng.normal(size=12)
    fs = games.robust_least_squares(a, y0, 3.0)
    zs = games.robust_least_squares_solution(a, y0, 3.0)
    assert float(jnp.linalg.norm(fs(jnp.asarray(zs)))) < 1e-13
    ops.check_constants(fs, jax.random.key(0))
    # Strongly monotone: the unanchored extragradient converges linearly, to 1e-9 here.
    st, info = nashax.solve(H.projected_extragradient(), fs, jax.random.key(1), tol=1e-9, max_steps=500_000,
                            check_every=20)
    nashax.check(info)
    np.testing.assert_allclose(st.z, zs, atol=1e-6)


# ----------------------------------------------------------------------------- solvers reach the LP equilibrium


@pytest.mark.parametrize("name", ["halpern", "vr_halpern_resolvent", "eag", "feg"])
def test_reach_the_lp_equilibrium_of_random_games(name):
  """Random 4x5 zero-sum games from 3 random starts: gap <= 1e-4 and strategies near the LP solution."""
  make = {"halpern": lambda: solvers.halpern_iteration(), "vr_halpern_resolvent": lambda: H.vr_halpern_resolvent(),
          "eag": lambda: H.eag(variant="varying"), "feg": lambda: H.feg()}[name]
  with jax.enable_x64(True):
    for seed in range(3):
      g = games.random_zero_sum(jax.random.key(20 + seed), 4, 5)
      g = nashax.MatrixGame(jnp.asarray(g.payoff, jnp.float64))
      sol = solvers.exact_equilibrium(g)
      st, info = nashax.solve(make(), g, jax.random.key(seed), tol=1e-4, max_steps=400_000, check_every=10)
      nashax.check(info)
      x0 = make().init(g, jax.random.key(seed)).profile[0]
      assert float(jnp.max(jnp.abs(x0 - 0.25))) > 0.05  # not the uniform start
      assert float(nashax.metrics(g, st).duality_gap) <= 1e-4
      np.testing.assert_allclose(st.profile[0], sol.x, atol=5e-3)
      np.testing.assert_allclose(st.profile[1], sol.y, atol=5e-3)


def test_vr_halpern_reaches_the_annotator_average_minimax_winner():
  """VR-Halpern (Alg. 2) on 30 annotators: the minimax winner of the mean preference (LP), to within 1e-3
  at residual 1e-4 (the winner is at distance > 0.1 from uniform, so a solver stuck there fails)."""
  with jax.enable_x64(True):
    fs = games.random_annotator_preference_sum(jax.random.key(3), 30, 4, dtype=jnp.float64)
    pbar = 0.5 - np.asarray(fs.mean_data[0])
    sol = solvers.exact_equilibrium(nashax.PreferenceGame.from_matrix(pbar))
    assert np.abs(sol.x - 0.25).max() > 0.1
    st, info = nashax.solve(H.vr_halpern_resolvent(), fs, jax.random.key(0), tol=1e-4, max_steps=100_000,
                            check_every=10)
    nashax.check(info)
    np.testing.assert_allclose(st.z[:4], sol.x, atol=1e-3)


def test_vr_halpern_cocoercive_reaches_least_squares_solution():
  """VR-Halpern (Alg. 1) on least squares: the normal-equation solution (numpy lstsq)."""
  with jax.enable_x64(True):
    fs = games.random_least_squares(jax.random.key(0), 200, 4, dtype=jnp.float64)
    a, b = np.asarray(fs.data[0])[:, 0, :], np.asarray(fs.data[1])[:, 0]
    xs = np.linalg.lstsq(a, b, rcond=None)[0]
    st, info = nashax.solve(H.vr_halpern(), fs, jax.random.key(1), tol=5e-5, max_steps=10 ** 6, check_every=14)
    nashax.check(info)
    assert int(info.oracle_calls) < int(info.num_steps) * 200  # cheaper than a full pass per step
    # |F(x)| = |G (x - x*)| >= lambda_min(G) |x - x*| for G = A^T A / n.
    lam_min = np.linalg.eigvalsh(a.T @ a / a.shape[0])[0]
    assert np.linalg.norm(np.asarray(st.z) - xs) <= 5e-5 / lam_min * (1 + 1e-6)


def test_halpern_forward_step_on_cocoercive_operator():
  with jax.enable_x64(True):
    fs = games.random_least_squares(jax.random.key(0), 50, 3, dtype=jnp.float64)
    a, b = np.asarray(fs.data[0])[:, 0, :], np.asarray(fs.data[1])[:, 0]
    st, info = nashax.solve(solvers.halpern_iteration(H.forward_step()), fs.full(), jax.random.key(1), tol=1e-5,
                            max_steps=10 ** 6)
    nashax.check(info)
    lam_min = np.linalg.eigvalsh(a.T @ a / a.shape[0])[0]  # |F(x)| >= lambda_min |x - x*|
    assert np.linalg.norm(np.asarray(st.z) - np.linalg.lstsq(a, b, rcond=None)[0]) <= 1e-5 / lam_min * (1 + 1e-6)


# ----------------------------------------------------------------------------- stochastic methods


@pytest.mark.parametrize("make", [lambda: H.vr_halpern(), lambda: H.vr_halpern_resolvent()], ids=["alg1", "alg2"])
def test_stochastic_methods_reproducible_and_independent_under_vmap(make):
  """Same key, same run; vmap over keys equals the loop; different keys give different runs."""
  fs = games.random_least_squares(jax.random.key(0), 64, 3)
  keys = jax.random.split(jax.random.key(7), 3)
  run = lambda k: nashax.run(make(), fs, k, num_steps=6)[0]
  a, b = run(keys[0]), run(keys[0])
  assert_trees_close(a, b, rtol=0, atol=0)
  vst = jax.vmap(run)(keys)
  for i in range(3):
    assert_trees_close(jax.tree.map(lambda x: x[i], vst), run(keys[i]), rtol=1e-5, atol=1e-6)
  assert float(jnp.max(jnp.abs(vst.z[0] - vst.z[1]))) > 1e-6


def test_vr_halpern_nan_data_gives_nonfinite():
  """NaN that gets past the constructors (data replaced by hand) ends as NONFINITE, not SUCCESS."""
  fs = games.random_least_squares(jax.random.key(0), 16, 3)
  a, b = fs.data
  bad = fs.replace(data=(a, b.at[3, 0].set(jnp.nan)), mean_data=(fs.mean_data[0], fs.mean_data[1] * jnp.nan))
  _, info = nashax.solve(H.vr_halpern(eta=0.5), bad, jax.random.key(0), tol=1e-6, max_steps=100)
  assert int(info.status) == NONFINITE


def test_vmap_over_finite_sum_problems():
  """A batch of problems in one vmap gives, per problem, the unbatched solve."""
  keys = jax.random.split(jax.random.key(0), 4)
  fss = jax.vmap(lambda k: games.random_bilinear_sum(k, 8, 2))(keys)
  solve = lambda f, k: nashax.solve(H.feg(), f, k, tol=1e-3, max_steps=50_000, check_every=10)
  sts, infos = jax.vmap(solve)(fss, keys)
  nashax.check(infos)
  assert (np.asarray(infos.status) == SUCCESS).all()
  for i in range(4):
    st, info = solve(games.random_bilinear_sum(keys[i], 8, 2), keys[i])
    assert int(info.num_steps) == int(infos.num_steps[i])
    np.testing.assert_allclose(st.z, sts.z[i], rtol=1e-4, atol=1e-5)


def test_projected_extragradient_equals_the_game_extragradient():
  """On a matrix game the operator-form EG is solvers.extragradient(euclidean, last) step for step."""
  with jax.enable_x64(True):
    g = games.random_zero_sum(jax.random.key(8), 4, 3)
    g = nashax.MatrixGame(jnp.asarray(g.payoff, jnp.float64))
    ref = solvers.extragradient(0.2, geometry="euclidean", iterate="last")
    st_ref, _ = nashax.run(ref, g, jax.random.key(2), num_steps=30)
    x0 = jnp.concatenate(ref.init(g, jax.random.key(2)).profile)
    st, _ = nashax.run(H.projected_extragradient(0.2, x0=x0), g, jax.random.key(0), num_steps=30)
    np.testing.assert_allclose(st.profile[0], st_ref.profile[0], atol=1e-12)
    np.testing.assert_allclose(st.profile[1], st_ref.profile[1], atol=1e-12)


def test_eag_v_step_limit_matches_theory():
  """EAG-V's alpha_inf at alpha_0 L = 0.618.

  The verifier's vectorised tail equals the plain recursion loop (1e5 steps; the step-size recursion of
  Yoon & Ryu, arXiv:2102.07922, Theorem 2) to 1e-12; the limit agrees with alpha_inf L = 0.43659 and the
  theorem's constant 4(1 + a_0 a_inf L^2)/(a_inf L)^2 = 26.65 at it, to 1e-4 and 1e-2 (a longer run
  gives 0.436541: the tail beyond k contributes about alpha^2/((1 - alpha^2) k), 2e-4 at k = 1e3).
  """
  a = 0.618
  for k in range(100_000):
    a = a * (1 - a * a / ((k + 1) * (k + 3) * (1 - a * a)))
  np.testing.assert_allclose(_eag_v_alpha_inf(0.618, steps=100_000), a, rtol=1e-12)
  a_inf = _eag_v_alpha_inf(0.618)
  np.testing.assert_allclose(a_inf, 0.43659, atol=1e-4)
  np.testing.assert_allclose(4 * (1 + 0.618 * a_inf) / a_inf ** 2, 26.65, atol=1e-2)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_refused():
  fs = games.random_bilinear_sum(jax.random.key(0), 8, 2)
  with pytest.raises(ValueError, match="cocoercivity"):
    nashax.run(H.vr_halpern(), fs, jax.random.key(0), num_steps=2)  # bilinear is not cocoercive
  with pytest.raises(ValueError, match="FiniteSumOperator"):
    nashax.run(H.vr_halpern(0.1), fs.full(), jax.random.key(0), num_steps=2)
  with pytest.raises(ValueError, match="alpha"):
    H.eag(-1.0)
  with pytest.raises(ValueError, match="variant"):
    H.eag(variant="fast")
  with pytest.raises(ValueError, match="rho"):
    H.feg(1.0, rho=-0.6)
  with pytest.raises(ValueError, match="inner_steps"):
    H.resolvent_step(inner_steps=0)
  with pytest.raises(ValueError, match="gamma"):
    H.vr_halpern_resolvent(gamma=1.5)
  with pytest.raises(ValueError, match="base"):
    H.halpern(base=H.eag())
  with pytest.raises(ValueError, match="lam"):
    games.robust_least_squares(np.ones((3, 2)), np.ones(3), 0.5)
  with pytest.raises(ValueError, match="preferences"):
    games.annotator_preference_sum(np.ones((2, 3, 3)))
  with pytest.raises(ValueError, match="problem"):
    nashax.run(H.feg(1.0), nashax.NormalFormGame(jnp.ones((3, 2, 2, 2))), jax.random.key(0), num_steps=2)
  with pytest.raises(ValueError, match="upper"):
    ops.box(jnp.ones(3), jnp.zeros(3))
  with pytest.raises(ValueError, match="floor"):
    ops.simplices(3, floor=0.4)  # 3 x 0.4 >= 1: nothing left
  with pytest.raises(ValueError, match="floor"):
    ops.from_preference_game(nashax.PreferenceGame.from_matrix([[0.5, 0.7], [0.3, 0.5]]).regularized(0.5),
                             floor=-0.1)
  with pytest.raises(ValueError, match="a"):
    ops.bilinear_finite_sum(jnp.full((2, 2, 2), jnp.nan))
  with pytest.raises(ValueError, match="b"):
    ops.least_squares_finite_sum(jnp.ones((2, 1, 2)), jnp.array([[1.0], [jnp.inf]]))
  with pytest.raises(ValueError, match="x0"):
    H.feg(1.0, x0=jnp.array([0.0, jnp.nan]))
  with pytest.raises(ValueError, match="x0"):
    nashax.run(H.feg(x0=jnp.zeros(3)), fs, jax.random.key(0), num_steps=2)  # fs lives in R^4
  with pytest.raises(ValueError, match="eta"):
    ops.natural_residual(fs, jnp.zeros(4), eta=0.0)


def _inner_setup(n=6, dim=2):
  fs = games.random_bilinear_sum(jax.random.key(3), n, dim, 1.0, dtype=jnp.float64)
  r = np.random.default_rng(4)
  u, v, w = (jnp.asarray(r.normal(size=2 * dim)) for _ in range(3))
  cpar, tau, p = 0.7, 0.3, 0.25
  psi_w = cpar * fs(w) + w - u
  return fs, u, v, w, psi_w, cpar, tau, p


def test_vr_inner_minibatch_of_one_has_the_sequential_law():
  """b = 1: every draw of the vectorised EG-VR step is one of the n sequential outcomes
  ``vbar - tau (psi_w + c (F_i(h) - F_i(w)) + h - w)`` (written out here per component ``i``), the n
  outcomes are equally likely (chi-square, 3000 draws, 1e-3 level) and the snapshot comes with probability p."""
  with jax.enable_x64(True):
    fs, u, v, w, psi_w, cpar, tau, p = _inner_setup()
    n = fs.num_components
    vbar = (1 - p) * v + p * w
    h = vbar - tau * psi_w
    outcomes = np.stack([np.asarray(vbar - tau * (psi_w + cpar * (fs.component(i, h) - fs.component(i, w)) + h - w))
                         for i in range(n)])
    keys = jax.random.split(jax.random.key(5), 3000)
    step = jax.jit(jax.vmap(lambda k: H._vrr_inner_step(fs, u, cpar, tau, p, 1, (0, v, w, psi_w, k, 0))))
    _, v_new, w_new, _, _, calls = step(keys)
    dist = np.abs(np.asarray(v_new)[:, None, :] - outcomes[None]).max(-1)
    which = dist.argmin(1)
    assert dist.min(1).max() < 1e-12
    counts = np.bincount(which, minlength=n)
    chi2 = float(((counts - 3000 / n) ** 2 / (3000 / n)).sum())
    assert chi2 < 20.5  # chi-square(5) 0.999 quantile
    snaps = np.asarray(calls) > 2
    assert abs(snaps.mean() - p) < 4 * np.sqrt(p * (1 - p) / 3000)
    np.testing.assert_allclose(np.asarray(w_new)[snaps], np.asarray(v_new)[snaps])


def test_vr_inner_minibatch_is_unbiased_with_variance_over_b():
  """b = 4 i.i.d. indices: the step's mean is the exact-correction step (the mean over all components) and its
  covariance is the single-draw covariance (enumerated over the n components) over b, within sampling error."""
  with jax.enable_x64(True):
    fs, u, v, w, psi_w, cpar, tau, p = _inner_setup()
    n, b, draws = fs.num_components, 4, 4000
    vbar = (1 - p) * v + p * w
    h = vbar - tau * psi_w
    single = np.stack([np.asarray(-tau * (cpar * (fs.component(i, h) - fs.component(i, w)) + h - w))
                       for i in range(n)])
    mean = np.asarray(vbar - tau * psi_w) + single.mean(0)
    cov = np.cov(single.T, bias=True) / b
    keys = jax.random.split(jax.random.key(6), draws)
    step = jax.jit(jax.vmap(lambda k: H._vrr_inner_step(fs, u, cpar, tau, p, b, (0, v, w, psi_w, k, 0))))
    v_new = np.asarray(step(keys)[1])
    se = np.sqrt(np.diag(cov) / draws)
    assert (np.abs(v_new.mean(0) - mean) < 4.5 * se).all()
    emp = np.cov(v_new.T)
    assert abs(np.trace(emp) / np.trace(cov) - 1) < 0.1
    assert abs(np.trace(emp) / np.trace(cov * b) - 1) > 0.5  # the single-draw variance is excluded


def test_vr_halpern_resolvent_batch_size_is_checked():
  """A batch size that is not a positive integer is a ValueError naming ``batch_size``."""
  for bad in (0, -3, 2.5, True):
    with pytest.raises(ValueError, match="batch_size"):
      H.vr_halpern_resolvent(batch_size=bad)
