"""f-divergences, f-DPO, f-DPG and the f-regularised preference game.

Independent sources, named per test: the textbook definitions evaluated
directly in numpy (``_np_f``), numerical maximisation with scipy (conjugates,
best responses), DPO's own loss, the KL-regularised game of the NLHF issue
and its reference equilibrium, and a damped fixed-point iteration as a
second algorithm for the f-regularised equilibrium.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import nashax
from nashax import games, solvers
from nashax.core import divergences as D
from nashax.core import metrics as metrics_lib
from nashax.core.games import FRegularizedGame, TargetDistribution
from nashax.solvers import fdiv, losses
from _utils import x64 as _x64

SWEEP = [(n, None) for n in D.NAMES if n != "alpha"] + [("alpha", a) for a in (-1.5, -1.0, 0.3, 0.5, 0.7, 2.0)]


def _np_f(name, t, a=None):
  """The generators of the module table, written from their textbook definitions (numpy, float64)."""
  with np.errstate(divide="ignore", invalid="ignore"):
    if name == "reverse_kl":
      return t * np.log(t)
    if name == "forward_kl":
      return -np.log(t)
    if name == "jensen_shannon":
      return t * np.log(2 * t / (1 + t)) + np.log(2 / (1 + t))
    if name == "total_variation":
      return 0.5 * np.abs(t - 1)
    if name == "chi_squared":
      return (t - 1) ** 2
    if name == "squared_hellinger":
      return (np.sqrt(t) - 1) ** 2
    return (t ** (1 - a) - (1 - a) * t - a) / (a * (a - 1))


def _np_fprime(name, t, a=None):
  return {"reverse_kl": lambda: np.log(t) + 1, "forward_kl": lambda: -1 / t,
          "jensen_shannon": lambda: np.log(2 * t / (1 + t)), "chi_squared": lambda: 2 * (t - 1),
          "squared_hellinger": lambda: 1 - t ** -0.5, "alpha": lambda: (1 - t ** (-a)) / a}[name]()


def _np_divergence(name, p, q, a=None):
  return float(np.sum(q * _np_f(name, p / q, a)))


# ----------------------------------------------------------------------------- divergences


@pytest.mark.parametrize("name,a", SWEEP)
@_x64
def test_divergence_matches_direct_evaluation_including_tiny_masses(name, a):
  """D_f(p||q) = sum q f(p/q) evaluated directly in numpy, on random distributions whose masses
  reach 1e-25 (Dirichlet(0.05)); the log-space value is finite and agrees to 1e-9."""
  d = D.get(name, a)
  rng = np.random.default_rng(0)
  for conc in (1.0, 0.05):
    for _ in range(5):
      p, q = rng.dirichlet(np.full(8, conc)), rng.dirichlet(np.full(8, conc))
      p, q = np.maximum(p, 1e-25), np.maximum(q, 1e-25)
      p, q = p / p.sum(), q / q.sum()
      want = _np_divergence(name, p, q, a)
      got = float(d(jnp.log(p), jnp.log(q)))
      assert np.isfinite(got)
      if np.isfinite(want):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
  # Gradients stay finite at tiny masses too.
  g = jax.grad(lambda lp: d(jax.nn.log_softmax(lp), jnp.log(q)))(jnp.log(p))
  assert np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("name,a", SWEEP)
@_x64
def test_zero_masses_take_their_limits(name, a):
  """p = 0 < q contributes q f(0); q = 0 < p contributes p lim f(t)/t; both zero contribute 0
  (limits of the numpy definitions at t = 1e-300 and t = 1e300)."""
  d = D.get(name, a)
  lp = jnp.log(jnp.array([0.5, 0.5, 0.0, 0.0]))
  lq = jnp.log(jnp.array([0.25, 0.25, 0.5, 0.0]))
  got = float(d(lp, lq))
  inner = 0.25 * _np_f(name, np.array(2.0), a) * 2
  f0 = float(_np_f(name, np.array(1e-300), a))
  f0_growing = f0 - float(_np_f(name, np.array(1e-150), a)) > 1.0  # f(t) still climbing as t -> 0: infinite
  want = inner + 0.5 * f0
  if np.isinf(want) or f0_growing:
    assert got == np.inf
  else:
    np.testing.assert_allclose(got, want, rtol=1e-6)
  # q = 0 where p > 0: the slope at infinity.
  got2 = float(d(jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([1.0, 0.0]))))
  slope = float(_np_f(name, np.array(1e300), a) / 1e300)
  growing = slope - float(_np_f(name, np.array(1e150), a) / 1e150) > 1.0  # f(t)/t still climbing: infinite
  want2 = 1.0 * _np_f(name, np.array(0.5), a) + 0.5 * slope
  if np.isinf(want2) or growing:
    assert got2 == np.inf
  else:
    np.testing.assert_allclose(got2, want2, rtol=1e-6, atol=1e-12)
  assert not np.isnan(np.asarray(jax.grad(lambda x: d(x, lq))(jnp.log(jnp.array([0.5, 0.5, 1e-3, 1e-3]))))).any()


@_x64
def test_alpha_family_reaches_both_kls_and_its_named_members():
  """alpha -> 0 gives reverse KL and alpha -> 1 forward KL (continuously, from both sides);
  alpha = 1/2 is twice the squared Hellinger distance, alpha = -1 half of Pearson's chi^2
  (Amari's family; Wang et al. 2024, Table 1)."""
  rng = np.random.default_rng(1)
  p, q = (jnp.log(jnp.asarray(rng.dirichlet(np.ones(10)))) for _ in range(2))
  rkl, fkl = float(D.reverse_kl()(p, q)), float(D.forward_kl()(p, q))
  for eps in (1e-4, 1e-6, 1e-8):
    for sgn in (1, -1):
      np.testing.assert_allclose(float(D.alpha_divergence(sgn * eps)(p, q)), rkl, rtol=10 * eps)
      np.testing.assert_allclose(float(D.alpha_divergence(1 + sgn * eps)(p, q)), fkl, rtol=10 * eps)
  np.testing.assert_allclose(float(D.alpha_divergence(0.0)(p, q)), rkl, rtol=1e-13)
  np.testing.assert_allclose(float(D.alpha_divergence(1.0)(p, q)), fkl, rtol=1e-13)
  np.testing.assert_allclose(float(D.alpha_divergence(0.5)(p, q)), 2 * float(D.squared_hellinger()(p, q)), rtol=1e-12)
  np.testing.assert_allclose(float(D.alpha_divergence(-1.0)(p, q)), 0.5 * float(D.chi_squared()(p, q)), rtol=1e-12)


@pytest.mark.parametrize("name,a", SWEEP)
@_x64
def test_fprime_conjugate_and_inverse_against_numerical_references(name, a):
  """f' against the numpy derivative formulas; f*(u) against a numerical sup_t (u t - f(t)) with scipy;
  f'(fprime_inverse(u)) = u inside the range of f'."""
  d = D.get(name, a)
  rng = np.random.default_rng(2)
  t = np.exp(rng.uniform(-4, 4, 30))
  if name != "total_variation":
    np.testing.assert_allclose(np.asarray(d.fprime(t)), _np_fprime(name if a is None else "alpha", t, a), rtol=1e-10)
  for u in rng.uniform(-3, 3, 8):
    got = float(d.conjugate(u))
    # sup over t >= 0 of u t - f(t), on log t in [-40, 40] plus t = 0.
    obj = lambda s: -(u * np.exp(s) - _np_f(name, np.exp(s), a))
    best = max(-optimize.minimize_scalar(obj, bounds=(lo, lo + 10), method="bounded",
                                         options=dict(xatol=1e-12)).fun for lo in range(-40, 40, 10))
    f0 = _np_f(name, np.array(1e-300), a)
    best = max(best, -f0) if np.isfinite(f0) else best
    if got == np.inf:
      assert best > 1e3  # unbounded: the numerical sup runs off
    else:
      np.testing.assert_allclose(got, best, rtol=1e-6, atol=1e-7)
  if d.inverse_log is not None:
    u = np.asarray(d.fprime(t))
    np.testing.assert_allclose(np.asarray(d.fprime_inverse(u)), t, rtol=1e-8)
  else:
    with pytest.raises(ValueError, match="not invertible"):
      d.fprime_inverse(0.1)


def test_alpha_divergences_vmap_over_alpha():
  """alpha is traced: one compiled function evaluates the family (values checked against separate objects)."""
  rng = np.random.default_rng(3)
  p, q = (jnp.log(jnp.asarray(rng.dirichlet(np.ones(5)), jnp.float32)) for _ in range(2))
  alphas = jnp.array([-1.0, 0.0, 0.3, 1.0, 2.0])
  batch = jax.vmap(lambda a: D.alpha_divergence(a)(p, q))(alphas)
  for i, a in enumerate(np.asarray(alphas)):
    np.testing.assert_allclose(float(batch[i]), float(D.alpha_divergence(float(a))(p, q)), rtol=1e-5)


@_x64
def test_switch_is_each_member_with_one_compile():
  """``D.switch(members, i)`` gives member i's values (checked against the member objects and the numpy
  formulas): the divergence, f, f', the conjugate, the inverse of f', the f-regularised argmax and the
  gradient of D_f; and a jitted function of it traces once for all indices."""
  chosen = [("forward_kl", None), ("jensen_shannon", None), ("alpha", -1.0), ("alpha", 0.7)]
  members = [D.get(n, a) for n, a in chosen]
  rng = np.random.default_rng(8)
  p, q = (jnp.log(jnp.asarray(rng.dirichlet(np.ones(6)))) for _ in range(2))
  t = jnp.asarray(rng.uniform(0.05, 4.0, 7))
  u = jnp.asarray(rng.uniform(-3.0, 0.4, 7))
  r = jnp.asarray(rng.normal(size=6))
  traces = []

  @jax.jit
  def everything(d):
    traces.append(1)
    grad = jax.grad(lambda lp: d(jax.nn.log_softmax(lp), q))(p)
    return (d(p, q), d.f(t), d.fprime(t), d.conjugate(u), d.fprime_inverse(d.fprime(t)),
            D.regularized_argmax(r, q, 0.7, d), grad)

  for i, m in enumerate(members):
    got = everything(D.switch(members, i))
    want = (m(p, q), m.f(t), m.fprime(t), m.conjugate(u), t, D.regularized_argmax(r, q, 0.7, m),
            jax.grad(lambda lp: m(jax.nn.log_softmax(lp), q))(p))
    for g, w in zip(got, want):
      np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-9, atol=1e-12, err_msg=m.name)
    name, a = chosen[i]
    np.testing.assert_allclose(np.asarray(got[1]), _np_f(name, np.asarray(t), a), rtol=1e-9)
  assert len(traces) == 1
  # A batched index evaluates every member and selects: the values are still each member's.
  vals = jax.vmap(lambda i: D.switch(members, i)(p, q))(jnp.arange(len(members)))
  np.testing.assert_allclose(np.asarray(vals), [float(m(p, q)) for m in members], rtol=1e-12)


def test_switch_refuses_bad_input():
  members = [D.reverse_kl(), D.chi_squared()]
  with pytest.raises(ValueError, match="index"):
    D.switch(members, 2)
  with pytest.raises(ValueError, match="index"):
    D.switch(members, 0.5)
  with pytest.raises(ValueError, match="members"):
    D.switch([], 0)
  with pytest.raises(ValueError, match="members"):
    D.switch(["reverse_kl"], 0)
  with pytest.raises(ValueError, match="not invertible"):  # total variation has no inverse of f'
    D.switch([D.reverse_kl(), D.total_variation()], 0).fprime_inverse(0.1)


# ----------------------------------------------------------------------------- f-DPO


@_x64
def test_f_dpo_with_reverse_kl_is_dpo_exactly():
  """Wang et al. 2024: f-DPO with reverse KL is DPO; here bit for bit."""
  rng = np.random.default_rng(4)
  args = [jnp.asarray(rng.normal(size=(16,))) for _ in range(4)]
  for beta in (0.1, 1.0, 3.7):
    np.testing.assert_array_equal(np.asarray(losses.f_dpo_loss(*args, beta, D.reverse_kl())),
                                  np.asarray(losses.dpo_loss(*args, beta)))


@pytest.mark.parametrize("name,a", [s for s in SWEEP if s[0] != "total_variation"])
@_x64
def test_f_dpo_loss_uses_fprime_differences(name, a):
  """-log sigmoid(beta [f'(t_w) - f'(t_l)]) with f' from the numpy formulas (Wang et al. 2024, eq. 8)."""
  rng = np.random.default_rng(5)
  lw, ll, rw, rl = (rng.normal(size=10) for _ in range(4))
  tw, tl = np.exp(lw - rw), np.exp(ll - rl)
  key = name if a is None else "alpha"
  z = 0.7 * (_np_fprime(key, tw, a) - _np_fprime(key, tl, a))
  want = np.log1p(np.exp(-z))
  got = np.asarray(losses.f_dpo_loss(lw, ll, rw, rl, 0.7, D.get(name, a)))
  np.testing.assert_allclose(got, want, rtol=1e-10)


@pytest.mark.parametrize("name,a", SWEEP)
@_x64
def test_regularized_argmax_matches_numerical_maximisation(name, a):
  """argmax_pi <pi, r> - beta D_f(pi||ref) by KKT + bisection equals scipy's SLSQP on the numpy definition;
  for reverse KL it is softmax(log ref + r/beta)."""
  d = D.get(name, a)
  rng = np.random.default_rng(6)
  n = 5
  for beta in (0.1, 1.0):
    r, ref = rng.uniform(0, 1, n), rng.dirichlet(np.ones(n) * 2)
    got = np.exp(np.asarray(D.regularized_argmax(r, np.log(ref), beta, d)))
    val = float(D.regularized_max(r, np.log(ref), beta, d))
    obj = lambda pi: -(pi @ r - beta * _np_divergence(name, np.maximum(pi, 1e-300), ref, a))
    best = None
    for start in [ref, np.full(n, 1 / n), got]:
      res = optimize.minimize(obj, start, method="SLSQP", bounds=[(0, 1)] * n,
                              constraints=[dict(type="eq", fun=lambda x: x.sum() - 1)],
                              options=dict(ftol=1e-14, maxiter=1000))
      best = res if best is None or res.fun < best.fun else best
    assert val >= -best.fun - 1e-9  # nothing numerical beats it
    np.testing.assert_allclose(val, -best.fun, atol=1e-7)
    if name != "total_variation":  # TV's maximiser need not be unique
      np.testing.assert_allclose(got, best.x, atol=2e-4)
  if name == "reverse_kl":
    np.testing.assert_allclose(got, np.exp(np.log(ref) + r / beta) / np.sum(np.exp(np.log(ref) + r / beta)), rtol=1e-12)


# ----------------------------------------------------------------------------- the f-regularised game


@_x64
def test_reverse_kl_game_is_the_kl_game():
  """PreferenceGame.f_regularized(beta, reverse_kl) has the KL game's value, best response and gap
  (metrics of the NLHF issue) at random profiles."""
  g0 = games.random_preference_game(jax.random.key(2), 6)
  ref = np.random.default_rng(2).dirichlet(np.ones(6))
  fg, kg = g0.f_regularized(0.3, D.reverse_kl(), ref), g0.regularized(0.3, ref)
  rng = np.random.default_rng(7)
  for _ in range(5):
    x, y = (jnp.asarray(rng.dirichlet(np.ones(6))) for _ in range(2))
    np.testing.assert_allclose(float(metrics_lib.duality_gap(fg, (x, y))), float(metrics_lib.duality_gap(kg, (x, y))),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(metrics_lib.best_response(fg, y)), np.asarray(metrics_lib.best_response(kg, y)),
                               rtol=1e-12)
    np.testing.assert_allclose(float(metrics_lib.preference_value(fg, x, y)),
                               float(metrics_lib.preference_value(kg, x, y)), rtol=1e-12)


def _damped_fixed_point(game, iters=20_000):
  """Second algorithm: pi <- 0.99 pi + 0.01 BR(pi) (BR by the closed form), from the reference policy."""
  br = lambda p: metrics_lib.best_response(game, p)
  return jax.jit(lambda p0: jax.lax.fori_loop(0, iters, lambda i, p: 0.99 * p + 0.01 * br(p), p0))(
      jnp.exp(game.log_ref))


@pytest.mark.parametrize("name,a", [("forward_kl", None), ("jensen_shannon", None), ("chi_squared", None),
                                    ("squared_hellinger", None), ("alpha", 2.0)])
@_x64
def test_f_extragradient_reaches_the_equilibrium_from_random_starts(name, a):
  """Mirror-prox reaches gap <= 1e-10 from random logits, at the damped fixed point of the best response
  (a second algorithm), and the gap is > 0 away from it."""
  g0 = games.random_preference_game(jax.random.key(4), 6)
  ref = np.random.default_rng(4).dirichlet(np.ones(6))
  g = g0.f_regularized(0.2, D.get(name, a), ref)
  st, info = nashax.solve(solvers.f_extragradient(), g, jax.random.key(1), tol=1e-11, max_steps=5000, check_every=10)
  nashax.check(info)
  x, y = st.profile
  assert float(jnp.max(jnp.abs(x - jnp.exp(g.log_ref)))) > 1e-2  # not the reference by accident
  ref_pi = _damped_fixed_point(g)
  assert float(metrics_lib.duality_gap(g, ref_pi)) < 1e-10
  np.testing.assert_allclose(np.asarray(x), np.asarray(ref_pi), atol=1e-5)
  np.testing.assert_allclose(np.asarray(y), np.asarray(ref_pi), atol=1e-5)
  s0 = solvers.f_extragradient().init(g, jax.random.key(1))
  assert float(metrics_lib.duality_gap(g, s0)) > 1e-3


@_x64
def test_f_extragradient_reverse_kl_matches_regularized_nash():
  """For reverse KL the f-game solver lands on the KL-regularised equilibrium of the NLHF issue."""
  g0 = games.random_preference_game(jax.random.key(5), 7)
  ref = np.random.default_rng(5).dirichlet(np.ones(7))
  st, info = nashax.solve(solvers.f_extragradient(), g0.f_regularized(0.1, D.reverse_kl(), ref), jax.random.key(0),
                          tol=1e-13, max_steps=5000)
  nashax.check(info)
  want = solvers.regularized_nash(g0.regularized(0.1, ref)).policy
  np.testing.assert_allclose(np.asarray(st.profile[0]), np.asarray(want), atol=1e-6)


# ----------------------------------------------------------------------------- f-DPG


@_x64
def test_target_distribution_constructors():
  """from_reward is softmax(log a + r/beta) (the RLHF optimum); from_constraint is a conditioned on C."""
  rng = np.random.default_rng(8)
  a, r = rng.dirichlet(np.ones(6)), rng.normal(size=6)
  t = TargetDistribution.from_reward(r, 0.5, a)
  want = a * np.exp(r / 0.5); want /= want.sum()
  np.testing.assert_allclose(np.exp(np.asarray(t.log_prob)), want, rtol=1e-12)
  c = np.array([True, False, True, False, False, True])
  t = TargetDistribution.from_constraint(c, a)
  want = np.where(c, a, 0.0); want /= want.sum()
  np.testing.assert_allclose(np.exp(np.asarray(t.log_prob)), want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("name,a", SWEEP)
@_x64
def test_f_dpg_exact_reaches_the_target_from_random_logits(name, a):
  """Exact f-DPG reaches TV distance 1e-6 of p (the optimum of every D_f(pi||p) is pi = p)."""
  rng = np.random.default_rng(9)
  t = TargetDistribution.from_reward(rng.normal(size=30), 0.5, rng.dirichlet(np.ones(30)))
  tv = name == "total_variation"
  s = solvers.f_dpg(D.get(name, a), 0.5, decay=0.999 if tv else 1.0)
  st0 = s.init(t, jax.random.key(0))
  assert float(metrics_lib.target_distance(t, st0)) > 0.2
  st, info = nashax.solve(s, t, jax.random.key(0), tol=1e-6, max_steps=20_000 if tv else 1000, check_every=10)
  nashax.check(info)
  assert float(d_val := D.get(name, a)(jnp.log(st.profile), t.log_prob)) < 1e-6, d_val


@_x64
def test_sampled_f_dpg_approaches_the_target_and_hits_a_constraint():
  """On-policy sampled f-DPG (64 samples, estimated Z) gets within TV 0.03 of p from TV > 0.4; with a
  constraint target (GDC) the mass outside C vanishes."""
  rng = np.random.default_rng(10)
  t = TargetDistribution.from_reward(rng.normal(size=20), 0.5, rng.dirichlet(np.ones(20) * 3))
  for name in ("reverse_kl", "forward_kl", "jensen_shannon"):
    s = solvers.f_dpg(D.get(name), 0.5, num_samples=64)
    assert float(metrics_lib.target_distance(t, s.init(t, jax.random.key(3)))) > 0.4
    st, tr = nashax.run(s, t, jax.random.key(3), num_steps=4000, every=4000)
    assert float(tr[-1]) < 0.03, (name, float(tr[-1]))
    assert int(st.oracle_calls) == 64 * 4000
  c = np.arange(20) % 3 == 0
  t = TargetDistribution.from_constraint(c, rng.dirichlet(np.ones(20)))
  st, _ = nashax.run(solvers.f_dpg(D.forward_kl(), 0.5, num_samples=64), t, jax.random.key(4), num_steps=3000,
                     every=3000)
  assert float(jnp.sum(jnp.where(jnp.asarray(c), 0.0, st.profile))) < 0.02


@_x64
def test_f_dpg_loss_gradient_is_the_divergence_gradient_in_expectation():
  """Go et al., Thm 1: E_{x~q}[(pi/q)(f'(pi/p) - B) grad log pi] = grad D_f(pi||p) for any baseline B and
  proposal q; checked by exact expectation over a proposal q != pi, against autodiff of D_f."""
  rng = np.random.default_rng(11)
  t = TargetDistribution.from_reward(rng.normal(size=12), 0.7, rng.dirichlet(np.ones(12)))
  q = jnp.log(jnp.asarray(rng.dirichlet(np.ones(12))))
  th = jnp.asarray(rng.normal(size=12))
  for name, a in SWEEP:
    d = D.get(name, a)

    def surrogate(theta, baseline):
      lp = jax.nn.log_softmax(theta)
      per = losses.f_dpg_loss(lp, t.log_unnormalized, q, t.log_partition, baseline, d)
      return jnp.sum(jnp.exp(q) * per)

    want = jax.grad(lambda theta: d(jax.nn.log_softmax(theta), t.log_prob))(th)
    for b in (0.0, 1.3):
      np.testing.assert_allclose(np.asarray(jax.grad(surrogate)(th, b)), np.asarray(want), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- conformance and input checks


FDIV_SOLVERS = {
    "f_dpg": lambda: solvers.f_dpg(D.jensen_shannon(), 0.5),
    "f_dpg_sampled": lambda: solvers.f_dpg(D.alpha_divergence(0.3), 0.5, num_samples=8),
    "f_extragradient": lambda: solvers.f_extragradient(),
}


def test_every_fdiv_factory_is_covered():
  """Every f-divergence factory has a row here and in the solver catalogue."""
  factories = {n for n in fdiv.__all__ if not n.endswith("State")}
  assert factories == {n.replace("_sampled", "") for n in FDIV_SOLVERS}
  assert factories <= set(solvers.catalogue.factories())


def _problem(name, key):
  if name.startswith("f_dpg"):
    lb = jax.nn.log_softmax(jax.random.normal(key, (7,)))
    return TargetDistribution(lb, jax.random.normal(jax.random.fold_in(key, 1), (7,)))
  g = games.random_preference_game(key, 5)
  return FRegularizedGame(g.preference, jnp.asarray(0.3), jnp.full((5,), -jnp.log(5.0)), D.squared_hellinger())


@pytest.mark.parametrize("name", sorted(FDIV_SOLVERS))
def test_fdiv_conformance(name):
  """Structure, shapes and dtypes kept; header valid at init; jit = eager; vmap over problems = loop;
  NaN data gives NONFINITE (STYLE section 10.2)."""
  from _utils import assert_same_structure_shapes_dtypes, assert_trees_close
  s = FDIV_SOLVERS[name]()
  key = jax.random.key(0)
  prob = _problem(name, jax.random.key(1))
  st0 = s.init(prob, key)
  st1 = s.step(prob, st0)
  assert_same_structure_shapes_dtypes(st0, st1)
  assert int(st0.step) == 0 and st0.oracle_calls.dtype == jnp.int32 and int(st1.oracle_calls) > 0
  prof0 = st0.profile if name.startswith("f_dpg") else st0.profile[0]
  np.testing.assert_allclose(float(prof0.sum()), 1.0, atol=1e-6)
  assert_trees_close(jax.jit(s.step)(prob, st0).profile, st1.profile, rtol=1e-5, atol=1e-6)
  probs = jax.vmap(lambda k: _problem(name, k))(jax.random.split(jax.random.key(2), 3))
  axes = jax.tree.map(lambda _: 0, probs)
  if not name.startswith("f_dpg"):
    axes = FRegularizedGame(0, 0, 0, None)
  batched = jax.vmap(lambda p: s.step(p, s.init(p, key)).profile, in_axes=(axes,))(probs)
  for i in range(3):
    pi = jax.tree.map(lambda a: a[i], probs)
    assert_trees_close(jax.tree.map(lambda b: b[i], batched), s.step(pi, s.init(pi, key)).profile, rtol=1e-5,
                       atol=1e-6)
  if name.startswith("f_dpg"):
    bad = prob.replace(log_score=prob.log_score.at[2].set(jnp.nan))
  else:
    bad = prob.replace(preference=prob.preference.at[0, 1].set(jnp.nan))
  _, info = nashax.solve(s, bad, key, tol=1e-6, max_steps=10)
  assert int(info.status) == nashax.core.NONFINITE


def test_sweeping_alpha_and_beta_compiles_once():
  """alpha (on the divergence) and beta (on the game) are traced: a sweep over both compiles once."""
  g0 = games.random_preference_game(jax.random.key(0), 4)
  traces = []

  @jax.jit
  def f(alpha, beta):
    traces.append(1)
    g = FRegularizedGame(g0.preference, beta, jnp.full((4,), -jnp.log(4.0)), D.alpha_divergence(alpha))
    return nashax.run(solvers.f_extragradient(), g, jax.random.key(0), num_steps=5, every=5)[1].duality_gap

  f(0.3, 0.5); f(0.7, 0.2)
  out = jax.vmap(f)(jnp.array([0.1, 0.9]), jnp.array([0.5, 1.0]))
  assert len(traces) == 2 and np.isfinite(np.asarray(out)).all()  # one trace for the scalar call, one for vmap


def test_bad_input_is_refused():
  """Unknown names, non-finite alpha, wrong types and out-of-range hyperparameters raise ValueError in words."""
  with pytest.raises(ValueError, match="name"):
    D.get("kl")
  with pytest.raises(ValueError, match="beta"):
    D.regularized_argmax(jnp.zeros(3), jnp.log(jnp.full(3, 1 / 3)), 0.0, D.jensen_shannon())
  with pytest.raises(ValueError, match="beta"):
    D.regularized_max(jnp.zeros(3), jnp.log(jnp.full(3, 1 / 3)), float("nan"), D.chi_squared())
  with pytest.raises(ValueError, match="alpha"):
    D.get("reverse_kl", 0.5)
  with pytest.raises(ValueError, match="alpha"):
    D.alpha_divergence(float("nan"))
  with pytest.raises(ValueError, match="divergence"):
    solvers.f_dpg("reverse_kl")
  with pytest.raises(ValueError, match="num_samples"):
    solvers.f_dpg(D.reverse_kl(), num_samples=0)
  with pytest.raises(ValueError, match="geometry"):
    solvers.f_dpg(D.reverse_kl(), num_samples=4, geometry="natural")
  with pytest.raises(ValueError, match="geometry"):
    solvers.f_dpg(D.reverse_kl(), geometry="riemannian")
  with pytest.raises(ValueError, match="baseline_ema"):
    solvers.f_dpg(D.reverse_kl(), baseline_ema=1.0)
  with pytest.raises(ValueError, match="decay"):
    solvers.f_dpg(D.reverse_kl(), decay=1.5)
  with pytest.raises(ValueError, match="lr"):
    solvers.f_dpg(D.reverse_kl(), lr=-1.0)
  with pytest.raises(ValueError, match="eta"):
    solvers.f_extragradient(0.0)
  g = games.random_preference_game(jax.random.key(0), 3)
  with pytest.raises(ValueError, match="divergence"):
    g.f_regularized(0.1, "js")
  with pytest.raises(ValueError, match="beta"):
    g.f_regularized(0.0, D.jensen_shannon())
  with pytest.raises(ValueError, match="game"):
    solvers.f_extragradient().init(g.regularized(0.1), jax.random.key(0))
  with pytest.raises(ValueError, match="game"):
    solvers.nash_md().init(g.f_regularized(0.1, D.jensen_shannon()), jax.random.key(0))
  with pytest.raises(ValueError, match="problem"):
    solvers.f_dpg(D.reverse_kl()).init(g, jax.random.key(0))
  with pytest.raises(ValueError, match="reward"):
    TargetDistribution.from_reward([1.0, np.nan], 0.1)
  with pytest.raises(ValueError, match="reward"):
    TargetDistribution.from_reward([[1.0, 2.0]], 0.1)
  with pytest.raises(ValueError, match="satisfied"):
    TargetDistribution.from_constraint([False, False, False])
  with pytest.raises(ValueError, match="base"):
    TargetDistribution.from_reward([0.0, 1.0], 0.1, base=[0.5, 0.6])
