"""Implicit derivatives of equilibria and rankings (``nashax.solvers.implicit``), in float64.

Every derivative is checked against central finite differences of the forward
solver (an independent computation: no derivative code involved), against
autodiff through an iterative solver unrolled to convergence (a second
algorithm), and in both modes (the JVP and its transpose, the VJP). Each test
compiles one function returning the solution with both Jacobians (by
``jax.linearize`` and ``jax.linear_transpose``, the machinery of ``jax.grad``),
and reuses it for the finite differences.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nashax import games
from nashax.core import divergences as D
from nashax.core.games import FRegularizedGame
from nashax.core.solver import run
from nashax.solvers import alpharank as AR
from nashax.solvers import implicit as I
from nashax.solvers import nlhf
from nashax.solvers.baselines import fit_bradley_terry
from nashax.solvers.equilibrium import mmd

from _utils import x64


def _jacobians(f, x):
  """``(f(x), J by forward mode, J by reverse mode, aux)`` for ``f: vector -> (vector, aux)``."""
  y, lin, aux = jax.linearize(f, x, has_aux=True)
  jf = jax.vmap(lin, out_axes=1)(jnp.eye(x.size, dtype=x.dtype))
  lt = jax.linear_transpose(lin, x)
  jr = jax.vmap(lambda c: lt(c)[0])(jnp.eye(y.size, dtype=y.dtype))
  return y, jf, jr, aux


_DIRS = 3  # random directions per finite-difference check


def _directions(size, seed=0):
  """``[size, _DIRS]`` random unit directions (a finite difference along each checks ``J v``)."""
  v = np.random.default_rng(seed).normal(size=(size, _DIRS))
  return v / np.linalg.norm(v, axis=0)


def _central(f, x, h, v):
  """Central finite differences ``[out, _DIRS]`` of ``f`` (a callable returning a vector) along the columns of ``v``."""
  x = np.asarray(x)
  return np.stack([(np.asarray(f(x + h * v[:, i])) - np.asarray(f(x - h * v[:, i]))) / (2 * h)
                   for i in range(v.shape[1])], axis=1)


def _rel(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(np.asarray(b))), 1e-300))


def _skew(a, n):
  """A skew-symmetric ``[n, n]`` matrix from its strict upper triangle (tangents that keep ``P + P^T = 1``)."""
  iu = np.triu_indices(n, 1)
  s = jnp.zeros((n, n), a.dtype).at[iu].set(a)
  return s - s.T


# ----------------------------------------------------------------------------- KL-regularised Nash

K = 4


def _kl_setup():
  rng = np.random.default_rng(3)
  base = games.random_preference_game(jax.random.key(3), K).regularized(0.5, rng.dirichlet(np.ones(K) * 2))
  npar = K * (K - 1) // 2

  def game_of(theta, g0):
    p = g0.preference + _skew(theta[:npar], K)
    beta = g0.beta * jnp.exp(theta[npar])
    lr = jax.nn.log_softmax(g0.log_ref + theta[npar + 1:])
    return g0.replace(preference=p, beta=beta, log_ref=lr)

  theta0 = jnp.asarray(rng.normal(size=npar + 1 + K) * 0.05)
  return base, game_of, theta0


@pytest.fixture(scope="module")
def kl_jacobians():
  """The regularised equilibrium's Jacobian w.r.t. (skew dP, log beta, log pi_ref logits), both modes (one compile)."""
  with jax.enable_x64(True):
    base, game_of, theta0 = _kl_setup()
    def f(th):
      sol = I.nash_equilibrium(game_of(th, base))
      return sol.policy, sol.status

    jac = jax.jit(functools.partial(_jacobians, f))
    pi, jf, jr, status = jac(theta0)
    v = _directions(theta0.size)
    fd = _central(lambda th: jac(th)[0], np.asarray(theta0), 1e-5, v)
    status = int(status)
  return dict(base=base, game_of=game_of, theta0=theta0, pi=pi, jf=np.asarray(jf), jr=np.asarray(jr), fd=fd,
              v=v, status=status)


@x64
def test_kl_nash_matches_finite_differences_unrolled_and_both_modes(kl_jacobians):
  """d pi*_beta / d(P, beta, log pi_ref) against central differences of the forward solve, against
  ``jax.jacfwd`` through 300 unrolled EGPO (mirror-prox) steps (linear rate 1 - eta beta = 2/3: converged to
  ~1e-50), and <u, J v> computed by the JVP and by the VJP."""
  k = kl_jacobians
  jf, jr, theta0 = k["jf"], k["jr"], k["theta0"]
  assert k["status"] == I.SUCCESS
  assert _rel(jf @ k["v"], k["fd"]) < 1e-6
  np.testing.assert_allclose(jf, jr, rtol=0, atol=1e-13)
  rng = np.random.default_rng(0)
  u, v = rng.normal(size=K), rng.normal(size=theta0.size)
  assert abs(u @ (jf @ v) - (u @ jr) @ v) < 1e-13

  def unrolled(th):
    g = k["game_of"](th, k["base"])
    state, _ = run(nlhf.egpo(1.0 / (1.0 + g.beta), init_scale=0.0), g, jax.random.key(0), num_steps=300)
    return state.profile

  ju = jax.jit(jax.jacfwd(unrolled))(theta0)
  assert _rel(jf, ju) < 1e-9


@pytest.mark.slow
@x64
def test_kl_nash_contextual_vmap_and_small_beta():
  """A contextual game's Jacobian equals its prompts' Jacobians one by one (an independent plain-game
  solve each), ``vmap`` over games equals a loop, and at beta = 0.01 the gradient is finite and matches
  central differences (the condition number stays below the bound sqrt(1 + (lambda_max / beta)^2) of the
  similarity to a skew matrix)."""
  from nashax.core.games import ContextualPreferenceGame

  rng = np.random.default_rng(5)
  ps = np.stack([np.asarray(games.random_preference_game(jax.random.key(i), K).preference) for i in range(2)])
  refs = rng.dirichlet(np.ones(K) * 2, size=2)
  cg = ContextualPreferenceGame.from_matrices(ps).regularized(0.01, refs)
  u = jnp.asarray(rng.normal(size=(2, K)))

  def loss(p):
    sol = I.nash_equilibrium(cg.replace(preference=p))
    return jnp.sum(u * sol.policy), (sol.status, sol.condition, sol.policy)

  vg = jax.jit(jax.value_and_grad(loss, has_aux=True))
  (_, (status, cond, pi)), grad = vg(cg.preference)
  assert np.isfinite(np.asarray(grad)).all() and set(np.asarray(status).tolist()) == {I.SUCCESS}
  for i in range(2):
    a = np.asarray(ps[i]) - 0.5
    sq = np.sqrt(np.diag(np.asarray(pi[i])))
    lam = np.max(np.abs(np.linalg.eigvals(sq @ a @ sq)))
    assert float(cond[i]) < 10 * K * np.sqrt(1 + (lam / 0.01) ** 2)
  # The contextual derivative (a vmap over prompts inside) equals a loop of plain-game derivatives.
  plain = jax.jit(jax.grad(lambda p, lr, uu: jnp.sum(uu * I.nash_equilibrium(
      cg.prompt(0).replace(preference=p, log_ref=lr)).policy)))
  g_loop = np.stack([plain(cg.preference[i], cg.log_ref[i], u[i]) for i in range(2)])
  np.testing.assert_allclose(grad, g_loop, rtol=1e-9, atol=1e-11)
  # Central differences along a skew direction (which keeps P + P^T = 1) at beta = 0.01.
  s = jnp.stack([_skew(jnp.asarray(rng.normal(size=K * (K - 1) // 2)), K) for _ in range(2)])
  h = 1e-6
  fd = (float(vg(cg.preference + h * s)[0][0]) - float(vg(cg.preference - h * s)[0][0])) / (2 * h)
  assert abs(float(jnp.sum(grad * s)) - fd) <= 1e-6 * abs(fd) + 1e-9


# ----------------------------------------------------------------------------- QRE


@pytest.mark.slow
@x64
def test_qre_matches_finite_differences_unrolled_and_both_modes():
  """d(x, y)/d(A, tau) of the entropy-regularised equilibrium against central differences, against
  ``jax.jacfwd`` through 3000 unrolled magnetic-mirror-descent steps (linear convergence, Sokota et al.
  2023 Thm 3.4), and JVP against VJP."""
  rng = np.random.default_rng(7)
  a0 = jnp.asarray(rng.uniform(-1, 1, size=(3, 4)))
  tau0 = 0.4

  def f(th):
    q = I.quantal_response_equilibrium(a0 + th[:12].reshape(3, 4), tau0 + th[12])
    return jnp.concatenate([q.x, q.y]), q.status

  th0 = jnp.zeros(13)
  jac = jax.jit(functools.partial(_jacobians, f))
  z, jf, jr, status = jac(th0)
  assert int(status) == I.SUCCESS
  v = _directions(13)
  fd = _central(lambda th: jac(th)[0], np.zeros(13), 1e-5, v)
  assert _rel(jf @ v, fd) < 1e-6
  np.testing.assert_allclose(jf, jr, rtol=0, atol=1e-13)

  def unrolled(th):
    from nashax.core.games import MatrixGame
    tau = tau0 + th[12]
    state, _ = run(mmd(tau / 1.0, tau, init_scale=0.0), MatrixGame(a0 + th[:12].reshape(3, 4)), jax.random.key(0),
                   num_steps=3000)
    return jnp.concatenate(state.profile)

  ju = jax.jit(jax.jacfwd(unrolled))(th0)
  assert _rel(jf, ju) < 1e-8


# ----------------------------------------------------------------------------- f-regularised Nash


@pytest.mark.slow
@x64
def test_f_nash_matches_finite_differences_and_reverse_kl_matches_kl_nash(kl_jacobians):
  """The f-equilibrium's derivative (KKT form, forward by f-extragradient) against central differences
  for forward KL and Jensen-Shannon; for reverse KL it equals ``nash_equilibrium``'s derivative (the
  softmax fixed-point form, forward by EGPO: a different map and a different solver)."""
  k = kl_jacobians
  members = [D.forward_kl(), D.jensen_shannon(), D.reverse_kl()]

  def f(th, div):
    g = k["game_of"](th, k["base"])
    sol = I.f_nash_equilibrium(FRegularizedGame(g.preference, g.beta, g.log_ref, div))
    return sol.policy, sol.status

  jac = jax.jit(lambda th, div: _jacobians(lambda t: f(t, div), th))  # one compile for the three divergences
  for i in range(2):
    div = D.switch(members, i)
    _, jf, jr, status = jac(k["theta0"], div)
    assert int(status) == I.SUCCESS, members[i].name
    fd = _central(lambda th: jac(th, div)[0], np.asarray(k["theta0"]), 1e-5, k["v"])
    assert _rel(jf @ k["v"], fd) < 1e-6, members[i].name
    np.testing.assert_allclose(jf, jr, rtol=0, atol=1e-12)
  _, jk, _, _ = jac(k["theta0"], D.switch(members, 2))
  assert _rel(jk, k["jf"]) < 1e-8


# ----------------------------------------------------------------------------- alpha-rank


@pytest.mark.slow
@x64
def test_alpharank_matches_finite_differences_power_iteration():
  """d pi / d(payoffs, alpha) of alpha-rank (two populations, 2x3 game) against central differences and
  against ``jax.jacfwd`` through 3000 unrolled lazy power-iteration steps ``pi <- pi (I + C) / 2`` in linear
  space (converged). (The `implicit_alpharank_gradient` claim checks more games, up to alpha = 1e4.)"""
  rng = np.random.default_rng(11)
  pay0 = jnp.asarray(rng.normal(size=(2, 2, 3)))
  th0 = jnp.zeros(13)
  payoffs = lambda th: pay0 + th[:12].reshape(2, 2, 3)

  def f(t, a):
    sol = I.alpharank(payoffs(t), a + t[12], 10)
    return sol.log_pi, sol.status

  jac = jax.jit(lambda th, a: _jacobians(lambda t: f(t, a), th))

  def power(th, alpha):
    c = jnp.exp(AR.multi_population_log_rates(payoffs(th), alpha + th[12], 10))
    c = c + jnp.diag(1.0 - jnp.sum(c, axis=-1))
    pi = jax.lax.fori_loop(0, 3000, lambda _, p: 0.5 * (p + p @ c), jnp.full(6, 1.0 / 6))
    return pi / jnp.sum(pi)

  jpow = jax.jit(jax.jacfwd(power))
  for alpha in (0.5, 3.0):
    lp, jf, jr, status = jac(th0, alpha)
    assert int(status) == I.SUCCESS
    jpi = np.exp(np.asarray(lp))[:, None] * np.asarray(jf)  # d pi = pi d log pi
    v = _directions(13)
    fd = _central(lambda th: np.exp(np.asarray(jac(th, alpha)[0])), np.zeros(13), 1e-5, v)
    assert _rel(jpi @ v, fd) < 1e-6
    np.testing.assert_allclose(jf, jr, rtol=0, atol=1e-12)
    assert _rel(jpi, jpow(th0, alpha)) < 1e-9



@x64
def test_alpharank_large_alpha_and_status_of_a_nearly_reducible_chain():
  """At alpha = 1e4 (rates ~exp(-1e4)) the derivative of log pi of a two-strategy population is finite and
  equals the closed form log pi_0 - log pi_1 = log C[1 -> 0] - log C[0 -> 1] (the stationarity of a
  two-state chain, differentiated through the log-rates by autodiff).

  Two 2-strategy clubs, neutral inside, with a coordination barrier between them (hand analysis of the
  fitness difference f_r - f_s = (2p - m)/(m - 1) of p cross-club mutants: fixation across clubs is
  exponentially small in alpha m, within a club it is 1/m): at alpha = 10 the jump chain splits into two
  nearly closed classes, the derivative system is ill-conditioned and the status says so; at alpha = 0.1
  the same chain is well conditioned."""
  table = jnp.array([[0., 0., -1., -1.], [0., 0., -1., -1.], [-1., -1., 0., 0.], [-1., -1., 0., 0.]])
  sols = jax.jit(jax.vmap(lambda a: I.alpharank(table, a, 10, single_population=True)))(jnp.array([0.1, 10.0]))
  assert int(sols.status[0]) == I.SUCCESS and float(sols.condition[0]) < 100
  assert int(sols.status[1]) == I.ILL_CONDITIONED and float(sols.condition[1]) > 1e8
  table = jnp.asarray(np.random.default_rng(11).normal(size=(2, 2)))

  def log_ratio(t):
    sol = I.alpharank(t, 1e4, 10, single_population=True)
    return sol.log_pi[0] - sol.log_pi[1], sol.status

  def closed(t):  # two states: pi_0 / pi_1 = C[1 -> 0] / C[0 -> 1]
    lr = AR.single_population_log_rates(t, 1e4, 10)
    return lr[1, 0] - lr[0, 1]

  g, status = jax.jit(jax.grad(log_ratio, has_aux=True))(table)
  assert np.isfinite(np.asarray(g)).all() and int(status) == I.SUCCESS
  assert float(jnp.max(jnp.abs(g))) > 1e3  # the sensitivity is of order alpha: not a vanishing gradient
  np.testing.assert_allclose(g, jax.grad(closed)(table), rtol=1e-10)


# ----------------------------------------------------------------------------- Bradley-Terry


@x64
def test_bradley_terry_matches_finite_differences_unrolled_and_flags_no_mle():
  """d s / d counts of the centred Bradley-Terry MLE against central differences, against ``jax.jacfwd``
  through 60 unrolled Newton steps of ``fit_bradley_terry``, JVP against VJP; a player who never loses
  (no finite MLE, Zermelo 1929: the win graph is not strongly connected) gives DEGENERATE."""
  rng = np.random.default_rng(2)
  n = 4
  w0 = jnp.asarray(rng.integers(1, 12, size=(n, n)).astype(float) * (1 - np.eye(n)))
  def f(th, w):
    sol = I.bradley_terry(w + th.reshape(n, n))
    return sol.strengths, sol.status

  jac = jax.jit(lambda th, w: _jacobians(lambda t: f(t, w), th))
  th0 = jnp.zeros(n * n)
  s, jf, jr, status = jac(th0, w0)
  assert int(status) == I.SUCCESS
  v = _directions(n * n)
  fd = _central(lambda th: jac(th, w0)[0], np.zeros(n * n), 1e-5, v)
  assert _rel(jf @ v, fd) < 1e-6
  np.testing.assert_allclose(jf, jr, rtol=0, atol=1e-12)

  def unrolled(th):
    eye = jnp.eye(n, dtype=bool)
    w = jnp.where(eye, 0.0, w0 + th.reshape(n, n))
    tot = w + w.T
    return fit_bradley_terry(jnp.where(eye, 0.5, w / jnp.where(eye, 1.0, tot)), tot, steps=60)

  assert _rel(jf, jax.jit(jax.jacfwd(unrolled))(th0)) < 1e-9
  w_bad = np.asarray(w0).copy(); w_bad[:, 0] = 0.0  # nobody beats player 0
  assert int(jac(th0, jnp.asarray(w_bad))[3]) == I.DEGENERATE


# ----------------------------------------------------------------------------- exact LP


def _value_2x2(a):
  """Closed form of a 2x2 game without a saddle point: v = (ad - bc) / (a + d - b - c)."""
  return (a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]) / (a[0, 0] + a[1, 1] - a[0, 1] - a[1, 0])


@x64
def test_lp_derivative_closed_form_finite_differences_vmap_and_degenerate_status():
  """The value's gradient of a mixed 2x2 game equals the gradient of the closed form
  (ad - bc)/(a + d - b - c); on random 5x5 games (nondegenerate, as checked) the Jacobian of (v, x, y)
  matches central differences of the simplex solver and JVP = VJP; ``vmap`` equals a loop; a game with a
  dominant row and tied columns (y not unique) is DEGENERATE with a NaN gradient."""
  a2 = jnp.array([[3.0, -1.0], [-2.0, 1.0]])
  def value(a):
    s = I.zero_sum_equilibrium(a)
    return s.value, s.status

  grad_v = jax.jit(jax.grad(value, has_aux=True))
  g, status = grad_v(a2)
  assert int(status) == I.SUCCESS
  np.testing.assert_allclose(g, jax.grad(_value_2x2)(a2), rtol=1e-12)

  def f(th, a0):
    s = I.zero_sum_equilibrium(a0 + th.reshape(5, 5))
    return jnp.concatenate([s.value[None], s.x, s.y]), s.status

  jac = jax.jit(lambda th, a0: _jacobians(lambda t: f(t, a0), th))
  rng = np.random.default_rng(4)
  th0 = jnp.zeros(25)
  games_ = [jnp.asarray(rng.uniform(-1, 1, size=(5, 5))) for _ in range(3)]
  for a0 in games_:
    _, jf, jr, status = jac(th0, a0)
    assert int(status) == I.SUCCESS
    v = _directions(25)
    fd = _central(lambda th: jac(th, a0)[0], np.zeros(25), 1e-6, v)
    assert _rel(jf @ v, fd) < 1e-6
    np.testing.assert_allclose(jf, jr, rtol=0, atol=1e-12)
  batch, _ = jax.jit(jax.vmap(jax.grad(value, has_aux=True)))(jnp.stack(games_))
  np.testing.assert_allclose(batch, np.stack([jac(th0, a)[2][0].reshape(5, 5) for a in games_]), rtol=1e-12, atol=1e-14)
  g, status = grad_v(jnp.array([[1.0, 1.0], [0.0, 0.0]]))
  assert int(status) == I.DEGENERATE
  assert np.isnan(np.asarray(g)).all()


def test_bad_inputs_raise_value_errors():
  """Bad arguments are refused with the argument's name (outside jit)."""
  g = games.random_preference_game(jax.random.key(0), 3)
  with pytest.raises(ValueError, match="game"):
    I.nash_equilibrium(g)
  with pytest.raises(ValueError, match="max_condition"):
    I.nash_equilibrium(g.regularized(0.5), max_condition=0.5)
  with pytest.raises(ValueError, match="alpha"):
    I.alpharank(np.zeros((2, 2, 2)), np.inf)
  with pytest.raises(ValueError, match="counts"):
    I.bradley_terry(-np.ones((3, 3)))
  with pytest.raises(ValueError, match="tau"):
    I.quantal_response_equilibrium(np.eye(2), 0.0)
  with pytest.raises(ValueError, match="total variation"):
    I.f_nash_equilibrium(g.f_regularized(0.5, D.total_variation()))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["implicit_inverse_nlhf", "implicit_mixture_sensitivity",
                                  "implicit_alpharank_gradient"])
def test_implicit_claims_pass_fast(name, tmp_path):
  """The three `nashax verify` claims of this module pass in fast mode (their bounds: finite differences)."""
  from nashax.theory import registry

  (r,) = registry.run_claims(name, fast=True, out_dir=str(tmp_path))
  assert r.status == "pass", r
  assert 0 < r.worst_ratio <= 1.0
