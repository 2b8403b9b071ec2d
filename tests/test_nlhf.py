"""NLHF: contextual preference games, exact references, solvers, losses and baselines.

Independent sources are named per test: closed forms (the KL-regularised best
response of Munos et al. 2024, the minimax winner of a three-cycle), the LP,
brute-force maximisation, and a second algorithm (a damped fixed-point
iteration) for the regularised equilibrium.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games, solvers
from nashax.core.games import ContextualPreferenceGame, PreferenceGame
from nashax.core import metrics as metrics_lib
from nashax.solvers import losses, nlhf
from _utils import x64 as _x64


def _damped_fixed_point(p, log_ref, beta, iters=300_000):
  """The regularised equilibrium as the fixed point of its own KL-regularised best response,
  pi = softmax(log ref + P pi / beta) (Munos et al., "Nash Learning from Human Feedback", arXiv:2312.00886),
  by the damped iteration pi <- 0.995 pi + 0.005 softmax(log ref + P pi / beta) in numpy."""
  p, ref = np.asarray(p, np.float64), np.exp(np.asarray(log_ref, np.float64))
  pi = np.full(p.shape[-1], 1.0 / p.shape[-1])
  for _ in range(iters):
    z = np.log(ref) + p @ pi / beta
    br = np.exp(z - z.max()); br /= br.sum()
    new = 0.995 * pi + 0.005 * br
    if np.abs(new - pi).max() < 1e-16:
      break
    pi = new
  return pi


# ----------------------------------------------------------------------------- games and certificates


@_x64
def test_regularized_nash_matches_damped_fixed_point():
  """regularized_nash (mirror-prox + Newton) vs the damped fixed point pi = softmax(log ref + P pi / beta)
  (K=6, tau=0.5; Munos et al. 2024, arXiv:2312.00886)."""
  g = games.random_preference_game(jax.random.key(0), 6).regularized(0.5, [0.1, 0.3, 0.1, 0.2, 0.15, 0.15])
  ref = solvers.regularized_nash(g)
  np.testing.assert_allclose(np.asarray(ref.policy), _damped_fixed_point(g.preference, g.log_ref, 0.5), atol=1e-10)
  assert float(ref.gap) <= 1e-12


@_x64
def test_contextual_gap_value_and_best_response_by_brute_force():
  """Closed-form gap = max_pi1 V(pi1, y) - min_pi2 V(x, pi2) found by brute force (random policies + BR),
  and the closed-form best response ref exp(P pi' / beta) (normalised; the Gibbs variational principle, Munos
  et al. 2024, arXiv:2312.00886) beats 2000 random policies."""
  g = games.random_contextual_preference_game(jax.random.key(1), 3, 4).regularized(0.3)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.dirichlet(np.ones(4), size=3))
  y = jnp.asarray(rng.dirichlet(np.ones(4), size=3))
  br_y = metrics_lib.best_response(g, y)
  br_x = metrics_lib.best_response(g, x)
  cands = jnp.asarray(rng.dirichlet(np.ones(4), size=(2000, 3)))
  v_br = float(metrics_lib.preference_value(g, br_y, y))
  v_rand = np.asarray(jax.vmap(lambda c: metrics_lib.preference_value(g, c, y))(cands))
  assert v_br >= v_rand.max() - 1e-12
  # the game is symmetric: min_pi2 V(x, pi2) = -max_pi2 V(pi2, x) + 1 (constant-sum 1/2 + 1/2)
  brute = v_br - (1.0 - float(metrics_lib.preference_value(g, br_x, x)))
  np.testing.assert_allclose(float(nashax.core.preference_gap(g, (x, y))), brute, atol=1e-12)
  # a weighted average over prompts: the prompt weights matter
  g2 = g.replace(prompt_weights=jnp.array([0.7, 0.2, 0.1]))
  per = [float(nashax.core.preference_gap(g.prompt(i), (x[i], y[i]))) for i in range(3)]
  np.testing.assert_allclose(float(nashax.core.preference_gap(g2, (x, y))), 0.7 * per[0] + 0.2 * per[1] + 0.1 * per[2],
                             atol=1e-12)


def test_three_rater_minimax_winner_matches_theory():
  """LP on the 3-rater mixture equals the closed form (1/3+eps/2, 1/3+eps/2, 1/3-eps) at eps = 0.1.

  Closed form: the shares s1 = 1/3 - eps (y2 > y1), s2 = s3 = 1/3 + eps/2 (y1 > y3, y3 > y2) give P - 1/2 a
  skew-symmetric three-cycle with margins s1/2, s2/2, s3/2; its equilibrium puts on each response the
  margin of the edge it is not on, pi = (s3, s2, s1) (then (P - 1/2) pi = 0 row by row).
  """
  with jax.enable_x64(True):
    mw = solvers.minimax_winners(games.three_rater_cycle(0.1))
  np.testing.assert_allclose(mw, [0.38333, 0.38333, 0.23333], atol=1e-5)


def test_minimax_winners_per_prompt():
  """Contextual LP per prompt: a BT prompt has its reward argmax as winner, a cycle the uniform policy."""
  p = np.stack([np.asarray(games.bradley_terry(jnp.array([0.0, 2.0, 1.0])).preference),
                np.asarray(games.condorcet_cycle(3, 0.9).preference)])
  mw = solvers.minimax_winners(ContextualPreferenceGame.from_matrices(p))
  np.testing.assert_allclose(mw, [[0, 1, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-7)


def test_contextual_constructors():
  """Annotator mixtures average the matrices; BT-per-prompt gives sigmoid(r_i - r_j)."""
  a = np.asarray(games.bradley_terry(jnp.array([0.0, 1.0])).preference)
  b = np.asarray(games.bradley_terry(jnp.array([1.0, 0.0])).preference)
  mix = games.annotator_mixture(np.stack([a, b]), [0.25, 0.75])
  np.testing.assert_allclose(np.asarray(mix.preference), 0.25 * a + 0.75 * b, atol=1e-6)
  btm = games.bradley_terry_mixture([[0.0, 1.0], [1.0, 0.0]], [0.25, 0.75])
  np.testing.assert_allclose(np.asarray(btm.preference), 0.25 * a + 0.75 * b, atol=1e-6)
  cg = games.contextual_bradley_terry([[0.0, 1.0], [3.0, 0.0]], [0.5, 0.5])
  np.testing.assert_allclose(float(cg.preference[1, 0, 1]), 1 / (1 + np.exp(-3.0)), rtol=1e-6)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_refused():
  """Non-skew P, a pi_ref with zeros, beta <= 0, and bad solver arguments raise ValueError naming them."""
  with pytest.raises(ValueError, match="preference"):
    PreferenceGame.from_matrix([[0.5, 0.7], [0.7, 0.5]])
  with pytest.raises(ValueError, match=r"preference\[1\]"):
    ContextualPreferenceGame.from_matrices([[[0.5, 0.2], [0.8, 0.5]], [[0.5, 0.6], [0.6, 0.5]]])
  g = games.condorcet_cycle(3)
  with pytest.raises(ValueError, match="pi_ref"):
    g.regularized(0.1, [0.5, 0.5, 0.0])
  with pytest.raises(ValueError, match="beta"):
    g.regularized(0.0)
  with pytest.raises(ValueError, match="beta"):
    g.regularized(-1.0)
  cg = ContextualPreferenceGame.from_games([g, g])
  with pytest.raises(ValueError, match="pi_ref"):
    cg.regularized(0.1, [[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
  with pytest.raises(ValueError, match="prompt_weights"):
    ContextualPreferenceGame.from_matrices(np.stack([np.asarray(g.preference)] * 2), [0.5, 0.6])
  with pytest.raises(ValueError, match="eta"):
    solvers.egpo(-0.1)
  with pytest.raises(ValueError, match="num_samples"):
    solvers.sppo(0.1, num_samples=0)
  with pytest.raises(ValueError, match="num_samples"):
    solvers.spo(0.1, num_samples=1)
  with pytest.raises(ValueError, match="weights"):
    solvers.mnpo(0.1, (0.7, 0.7))
  with pytest.raises(ValueError, match="ema"):
    solvers.nash_ema(0.1, 1.0)
  with pytest.raises(ValueError, match="game"):
    solvers.nash_md().init(g, jax.random.key(0))  # the theory schedule needs beta
  with pytest.raises(ValueError, match="game"):
    solvers.egpo(0.1).init(games.rock_paper_scissors(), jax.random.key(0))
  with pytest.raises(ValueError, match="game"):
    solvers.regularized_nash(g)


# ----------------------------------------------------------------------------- losses


def test_loss_values_at_reference():
  """At pi = pi_ref: DPO loss = log 2 and IPO loss = 1/(4 beta^2) (Rafailov et al. 2023; Azar et al. 2024)."""
  lw, ll = jnp.array([-1.3, -0.2]), jnp.array([-2.0, -0.9])
  for beta in (0.1, 0.5, 2.0):
    np.testing.assert_allclose(losses.dpo_loss(lw, ll, lw, ll, beta), np.log(2.0), rtol=1e-6)
    np.testing.assert_allclose(losses.ipo_loss(lw, ll, lw, ll, beta), 1 / (4 * beta**2), rtol=1e-6)


def test_online_ipo_is_label_averaged_ipo_up_to_a_constant():
  """p (h - c)^2 + (1 - p)(-h - c)^2 - online_ipo = c^2 (1 - (2p - 1)^2), independent of the policy."""
  rng = np.random.default_rng(0)
  beta, c = 0.3, 0.5 / 0.3
  for _ in range(5):
    la, lb, ra, rb, p = rng.normal(size=5)
    p = 1 / (1 + np.exp(-p))
    avg = p * losses.ipo_loss(la, lb, ra, rb, beta) + (1 - p) * losses.ipo_loss(lb, la, rb, ra, beta)
    np.testing.assert_allclose(avg - losses.online_ipo_loss(la, lb, ra, rb, p, beta),
                               c**2 * (1 - (2 * p - 1) ** 2), rtol=1e-5)


def test_inpo_loss_matches_its_formula_and_mnpo():
  """inpo_loss = (h_t - eta/2)^2 with h_t written out (INPO section 4), and equals mnpo_loss with anchors
  (pi_t, pi_ref) and weights (1 - eta tau, eta tau) (MNPO Table 1)."""
  rng = np.random.default_rng(1)
  lw, ll, rw, rl, pw, pl = rng.normal(size=(6, 7))
  eta, tau = 0.4, 0.3
  eta_p = 1 / eta  # the paper's inverse step
  h = (lw - ll) - (tau / eta_p) * (rw - rl) - ((eta_p - tau) / eta_p) * (pw - pl)
  np.testing.assert_allclose(losses.inpo_loss(lw, ll, rw, rl, pw, pl, eta, tau), (h - 1 / (2 * eta_p)) ** 2, rtol=1e-5)
  m = losses.mnpo_loss(lw, ll, np.stack([pw, rw], -1), np.stack([pl, rl], -1), np.array([1 - eta * tau, eta * tau]), eta)
  np.testing.assert_allclose(m, (h - eta / 2) ** 2, rtol=1e-5)


def _tabular(k=5, beta=0.4, seed=0):
  g = games.random_preference_game(jax.random.key(seed), k).regularized(
      beta, np.random.default_rng(seed).dirichlet(np.ones(k)))
  lp = jax.nn.log_softmax(jax.random.normal(jax.random.key(seed + 1), (k,), jnp.float64))
  state = nlhf.State(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.exp(lp), lp, (), jnp.zeros((), jnp.int32),
                     jax.random.key(0))
  return g, lp, state


def _assert_same_policy(theta, lp_expected):
  np.testing.assert_allclose(np.asarray(jax.nn.log_softmax(theta)), np.asarray(lp_expected), atol=1e-10)


@_x64
def test_sppo_update_is_one_gradient_step_of_its_loss():
  """theta <- theta - grad / (2 nu) of sum_y nu_y sppo_loss(theta_y), renormalised, is SPPO eq. 4.1."""
  g, lp, st = _tabular()
  g = g.replace(beta=None, log_ref=None)
  eta = 0.7
  r = g.preference @ jnp.exp(lp)
  nu = jnp.full(5, 0.2)
  grad = jax.grad(lambda th: jnp.sum(nu * losses.sppo_loss(th, lp, r, eta)))(lp)
  new = solvers.sppo(eta, iterate="last").step(g, st).log_probs
  _assert_same_policy(lp - grad / (2 * nu), new)


@_x64
def test_nash_md_update_is_one_natural_gradient_step_of_nash_md_pg():
  """Fisher-preconditioned step (grad / pi) of E_{y~pi} nash_md_pg_loss against the mixture = Nash-MD's step."""
  g, lp, st = _tabular()
  eta = 0.6
  pi = jnp.exp(lp)
  mix = jax.nn.log_softmax((1 - eta * g.beta) * lp + eta * g.beta * g.log_ref)
  pref = g.preference @ jnp.exp(mix)  # P(y > y'), y' ~ pi^mu, in expectation
  loss = lambda th: jnp.sum(pi * losses.nash_md_pg_loss(jax.nn.log_softmax(th), g.log_ref, pref, g.beta))
  grad = jax.grad(loss)(lp)
  new = solvers.nash_md(eta).step(g, st).log_probs
  _assert_same_policy(lp - eta * grad / pi, new)


@_x64
def test_egpo_half_step_is_one_gradient_step_of_its_loss():
  """With uniform pairs, theta - (eta beta K / 4) grad of mean egpo_loss = the mirror half-step (EGPO section 4)."""
  g, lp, st = _tabular()
  eta, k = 0.5, 5
  r = g.preference @ jnp.exp(lp)
  def loss(th):
    per = losses.egpo_loss(th[:, None], th[None, :], g.log_ref[:, None], g.log_ref[None, :], r[:, None], r[None, :], g.beta)
    return jnp.mean(per)
  grad = jax.grad(loss)(lp)
  half = nlhf._mirror(nlhf._view(g), lp, r, eta)
  _assert_same_policy(lp - eta * g.beta * k / 4 * grad, half)
  # and EGPO's full step uses the same map at the half-step's win rates
  full = solvers.egpo(eta).step(g, st).log_probs
  _assert_same_policy(nlhf._mirror(nlhf._view(g), lp, g.preference @ jnp.exp(half), eta), full)


@_x64
def test_inpo_update_is_one_gradient_step_of_its_pairwise_loss():
  """Pairs y, y' ~ pi_t, winner by P: theta - grad / (2 pi_t) of the expected inpo_loss = INPO eq. 5."""
  g, lp, st = _tabular()
  eta = 0.8
  nu = jnp.exp(lp)
  def loss(th):
    per = losses.inpo_loss(th[:, None], th[None, :], g.log_ref[:, None], g.log_ref[None, :], lp[:, None], lp[None, :],
                           eta, g.beta)
    return jnp.sum(nu[:, None] * nu[None, :] * g.preference * per)  # ordered (winner, loser) pairs
  grad = jax.grad(loss)(lp)
  new = solvers.inpo(eta).step(g, st).log_probs
  _assert_same_policy(lp - grad / (2 * nu), new)


@_x64
def test_dno_and_iterative_dpo_updates_minimise_their_losses():
  """The tabular DNO step is a stationary point of DNO's eq. 8 over pairs from pi_t; the iterative-DPO step of
  the DPO loss with reference pi_t (gradients vanish)."""
  g, lp, st = _tabular(beta=0.5)
  eta = 0.6
  nu = jnp.exp(lp)
  g0 = g.replace(beta=None, log_ref=None)
  r = g0.preference @ nu
  new = solvers.dno(eta, iterate="last").step(g0, st).log_probs
  def dno(th):
    per = losses.dno_loss(th[:, None], th[None, :], lp[:, None], lp[None, :], r[:, None], r[None, :], eta)
    return jnp.sum(nu[:, None] * nu[None, :] * per)
  assert float(jnp.abs(jax.grad(dno)(new)).max()) < 1e-10
  new = solvers.iterative_dpo("dpo").step(g, st).log_probs
  def dpo(th):
    per = losses.dpo_loss(th[:, None], th[None, :], lp[:, None], lp[None, :], g.beta)
    return jnp.sum(nu[:, None] * nu[None, :] * g.preference * per)
  assert float(jnp.abs(jax.grad(dpo)(new)).max()) < 1e-9


@_x64
def test_mnpo_with_all_weight_on_the_first_opponent_is_inpo():
  """MNPO weights (1, 0, 0) reproduce INPO's iterates to 1e-10: with one opponent MNPO's objective (Wu et
  al., arXiv:2509.23102, eq. 17) is INPO's (Zhang et al., arXiv:2407.00617); the second algorithm is
  solvers.inpo."""
  g = games.random_preference_game(jax.random.key(4), 6).regularized(0.3)
  a, _ = nashax.run(solvers.mnpo(0.5, (1.0, 0.0, 0.0)), g, jax.random.key(2), num_steps=50, every=50)
  b, _ = nashax.run(solvers.inpo(0.5), g, jax.random.key(2), num_steps=50, every=50)
  np.testing.assert_allclose(np.asarray(a.profile), np.asarray(b.profile), atol=1e-10)


@_x64
@pytest.mark.parametrize("win_rates", ["current", "history"])
def test_mnpo_step_is_the_minimiser_of_mnpo_loss(win_rates):
  """TD-MNPO (the default): after a few steps (so pi_t, pi_{t-1} differ), the tabular step is the minimiser of
  the population mnpo_loss (Wu, Huang et al. 2025, eq. 17) with pairs y, y' ~ pi_t labelled by P, anchors
  (pi_t, pi_{t-1}, pi_ref) and weights ((1 - eta beta) lambda, eta beta): its gradient there is 0 to 1e-10
  (the loss written out here by hand, independent of the solver). The history reading (win rates also averaged
  over past policies, eq. 10) is not that minimiser: its gradient there is >= 1e-4."""
  eta, lam = 0.4, np.array([0.6, 0.4])
  g = games.random_preference_game(jax.random.key(6), 5).regularized(0.5, np.array([0.1, 0.2, 0.3, 0.25, 0.15]))
  s = solvers.mnpo(eta, tuple(lam), win_rates=win_rates, init_scale=1.5)
  st = s.init(g, jax.random.key(3))
  for _ in range(3):
    st = s.step(g, st)
  hist = st.aux[0]  # [2, n]: log pi_{t-1}, log pi_{t-2} before this step's shift; recompute the anchors:
  anchors = jnp.stack([st.log_probs, hist[0], g.log_ref], -1)  # (pi_t, pi_{t-1}, pi_ref)
  weights = jnp.concatenate([(1 - eta * g.beta) * jnp.asarray(lam), jnp.asarray([eta * g.beta])])
  pi = jnp.exp(st.log_probs)
  new = s.step(g, st).log_probs

  def population(theta):
    lp = jax.nn.log_softmax(theta)
    per = losses.mnpo_loss(lp[:, None], lp[None, :], anchors[:, None, :], anchors[None, :, :], weights, eta)
    return jnp.sum(pi[:, None] * pi[None, :] * g.preference * per)

  grad = float(jnp.abs(jax.grad(population)(new)).max())
  if win_rates == "current":
    assert grad < 1e-10
  else:
    assert grad > 1e-4


def test_mnpo_rejects_an_unknown_reading():
  with pytest.raises(ValueError, match="win_rates"):
    solvers.mnpo(0.1, (0.5, 0.5), win_rates="average")


@_x64
def test_rlhf_optimum_equals_dpo_optimum_and_bt_fit_recovers_rewards():
  """DPO's population optimum (Newton on the DPO loss) = the RLHF optimum of the BT fit, pairs from pi_ref
  (Rafailov et al. 2023, section 5); on a BT game the fit recovers the rewards up to a shift."""
  ref = np.array([0.1, 0.2, 0.3, 0.25, 0.15])
  g = games.random_preference_game(jax.random.key(3), 5).regularized(0.2, ref)
  np.testing.assert_allclose(np.asarray(solvers.rlhf_optimum(g, steps=60)), np.asarray(solvers.dpo_optimum(g, steps=80)),
                             rtol=1e-9)
  r = np.array([0.3, -1.0, 2.0, 0.5])
  fit = np.asarray(solvers.fit_bradley_terry(games.bradley_terry(jnp.asarray(r)).preference))
  np.testing.assert_allclose(fit, r - r.mean(), atol=1e-8)


@_x64
def test_maxmin_rlhf_protects_the_minority():
  """MaxMin's worst-group objective >= pooled RLHF's (the egalitarian optimum maximises the minimum over
  groups, Chakraborty et al., arXiv:2402.08925) and its duality gap closes."""
  rewards = jnp.array([[1.0, 0.0, 0.0, 0.3], [0.0, 0.0, 1.0, 0.2]])
  ref = jnp.full(4, 0.25)
  mm = solvers.maxmin_rlhf(rewards, 0.1, ref)
  single, _ = solvers.pooled_rlhf(rewards, jnp.array([0.9, 0.1]), 0.1, ref)
  f_single = solvers.baselines.regularized_objective(rewards, single, 0.1, ref)
  assert float(mm.value) >= float(f_single.min()) + 0.1
  assert float(mm.upper_bound - mm.value) < 1e-3


# ----------------------------------------------------------------------------- the solvers reach pi*_beta

# name -> (factory, steps, tolerance on the gap and on KL(pi*||profile)); float64, random starts.
# Average-iterate methods (SPPO, SPO, DNO) converge like log(T)/T; last-iterate ones linearly.
NLHF = {
    "nash_md": (lambda: solvers.nash_md(), 20_000, 2e-4),
    "nash_ema": (lambda: solvers.nash_ema(0.3, 0.5), 2_000, 1e-9),
    "sppo": (lambda: solvers.sppo(0.3), 3_000, 2e-3),
    "spo": (lambda: solvers.spo(0.3), 3_000, 2e-3),
    "dno": (lambda: solvers.dno(0.3), 3_000, 2e-3),
    "inpo": (lambda: solvers.inpo(0.3), 2_000, 1e-9),
    "online_ipo": (lambda: solvers.online_ipo(0.1), 3_000, 1e-4),  # plain gradient: slow on rare responses
    "onpo": (lambda: solvers.onpo(0.3), 2_000, 1e-9),
    "egpo": (lambda: solvers.egpo(0.3), 2_000, 1e-9),
    "mnpo": (lambda: solvers.mnpo(0.3, (0.5, 0.3, 0.2)), 3_000, 1e-9),
    "mpo": (lambda: solvers.mpo(0.3), 2_000, 1e-9),
}
# measured against, not expected to reach the Nash equilibrium
BASELINES = {e.factory for e in solvers.catalogue.entries("baseline")}


def test_every_nlhf_factory_is_covered():
  """A new NLHF factory (a catalogue row tagged nlhf) must join the convergence catalogue or be a baseline."""
  nlhf_rows = {e.factory for e in solvers.catalogue.entries("nlhf")}
  assert set(nlhf.__all__) == nlhf_rows == set(NLHF) | BASELINES


def _catalogue():
  """Intransitive games with non-uniform references: random K=6, Condorcet cycles (n=3, 5), contextual, padded."""
  rng = np.random.default_rng(7)
  out = {
      "random6": games.random_preference_game(jax.random.key(21), 6).regularized(0.2, rng.dirichlet(np.ones(6))),
      "cycle3": games.condorcet_cycle(3, 1.0).regularized(0.1, [0.6, 0.3, 0.1]),
      "cycle5": games.condorcet_cycle(5, 0.8).regularized(0.1, [0.4, 0.1, 0.2, 0.2, 0.1]),
      "contextual": games.random_contextual_preference_game(jax.random.key(22), 3, 4).regularized(
          0.3, rng.dirichlet(np.ones(4), size=3)),
  }
  out["padded"] = games.pad(out["cycle3"], 5)
  return out


@pytest.mark.parametrize("name", sorted(NLHF))
def test_solver_reaches_regularized_equilibrium(name):
  """Every NLHF solver reaches the exact pi*_beta (gap and KL), from 3 random starts, on the catalogue;
  the reference is regularized_nash, itself checked against a damped fixed point above."""
  make, steps, tol = NLHF[name]
  with jax.enable_x64(True):
    for gname, g in _catalogue().items():
      opt = solvers.regularized_nash(g).policy
      keys = jax.random.split(jax.random.key(5), 3)
      f = lambda k: nashax.run(make(), g, k, num_steps=steps, every=steps)[0]
      states = jax.vmap(f)(keys)
      m = jax.vmap(lambda s: nashax.metrics(g, s, opt))(states)
      assert np.all(np.asarray(m.duality_gap) <= tol), (gname, np.asarray(m.duality_gap))
      assert np.all(np.asarray(m.kl_to_optimum) <= 2 * tol), (gname, np.asarray(m.kl_to_optimum))
      st0 = jax.vmap(lambda k: make().init(g, k))(keys)
      assert np.all(np.asarray(jax.vmap(lambda s: nashax.metrics(g, s).duality_gap)(st0)) > 1e-2)  # not started there


SAMPLED = {
    "nash_md": lambda: solvers.nash_md(0.05, num_samples=32),
    "nash_ema": lambda: solvers.nash_ema(0.05, 0.5, num_samples=32),
    "sppo": lambda: solvers.sppo(0.05, num_samples=32),
    "spo": lambda: solvers.spo(0.02, num_samples=32),
    "dno": lambda: solvers.dno(0.05, num_samples=32),
    "inpo": lambda: solvers.inpo(0.05, num_samples=32),
    "online_ipo": lambda: solvers.online_ipo(0.2, num_samples=256),
    "onpo": lambda: solvers.onpo(0.05, num_samples=32),
    "egpo": lambda: solvers.egpo(0.05, num_samples=32),
    "mnpo": lambda: solvers.mnpo(0.05, (0.5, 0.5), num_samples=32),
    "mpo": lambda: solvers.mpo(0.05, num_samples=32),
}


@pytest.mark.parametrize("name", sorted(SAMPLED))
def test_sampled_variant_approaches_equilibrium(name):
  """With preference queries instead of expectations, each solver ends within a small gap of pi*_beta from a
  random start whose gap is > 0.25 (a noise floor: constant steps and unbiased estimates), and counts queries."""
  g = games.random_preference_game(jax.random.key(21), 6).regularized(0.2)
  state, trace = nashax.run(SAMPLED[name](), g, jax.random.key(3), num_steps=2_000, every=2_000)
  st0 = SAMPLED[name]().init(g, jax.random.key(3))
  assert float(nashax.metrics(g, st0).duality_gap) > 0.25
  assert float(trace.duality_gap[-1]) < 0.03, float(trace.duality_gap[-1])
  assert int(state.queries) > 0


def test_iterative_dpo_does_not_find_the_minimax_winner_on_a_cycle():
  """The baseline follows a BT reward: on a Condorcet cycle (where pi*_beta is interior) it stays far from it."""
  with jax.enable_x64(True):
    g = games.condorcet_cycle(3, 1.0).regularized(0.1, [0.6, 0.3, 0.1])
    for loss in ("dpo", "ipo"):
      s, _ = nashax.run(solvers.iterative_dpo(loss), g, jax.random.key(0), num_steps=200, every=200)
      assert float(nashax.metrics(g, s).duality_gap) > 0.1


# ----------------------------------------------------------------------------- conformance


CONF = {**{k: v[0] for k, v in NLHF.items()}, "iterative_dpo": lambda: solvers.iterative_dpo("ipo"),
        "egpo_sampled": SAMPLED["egpo"], "spo_sampled": SAMPLED["spo"], "online_ipo_sampled": SAMPLED["online_ipo"]}


def _cgame():
  return games.random_contextual_preference_game(jax.random.key(9), 2, 4).regularized(0.3)


@pytest.mark.parametrize("name", sorted(CONF))
def test_nlhf_conformance(name):
  """Structure, shapes and dtypes kept; header valid at init; jit = eager; vmap over games = loop;
  a NaN preference gives NONFINITE (STYLE section 10.2)."""
  from _utils import assert_same_structure_shapes_dtypes, assert_trees_close
  s = CONF[name]()
  g = _cgame()
  key = jax.random.key(0)
  st0 = s.init(g, key)
  st1 = s.step(g, st0)
  assert_same_structure_shapes_dtypes(st0, st1)
  assert int(st0.step) == 0 and st0.oracle_calls.dtype == jnp.int32
  np.testing.assert_allclose(np.asarray(st0.profile.sum(-1)), 1.0, atol=1e-6)
  assert_trees_close(jax.jit(s.step)(g, st0).profile, st1.profile, rtol=1e-5, atol=1e-6)
  gs = jax.vmap(lambda k: games.random_contextual_preference_game(k, 2, 4).regularized(0.3))(
      jax.random.split(jax.random.key(1), 3))
  batched = jax.vmap(lambda gg: s.step(gg, s.init(gg, key)).profile)(gs)
  for i in range(3):
    gi = jax.tree.map(lambda a: a[i], gs)
    assert_trees_close(batched[i], s.step(gi, s.init(gi, key)).profile, rtol=1e-5, atol=1e-6)
  bad = g.replace(preference=g.preference.at[0, 0, 1].set(jnp.nan))
  _, info = nashax.solve(s, bad, key, tol=1e-6, max_steps=10)
  assert int(info.status) == nashax.core.NONFINITE


def test_new_step_size_does_not_retrace():
  """eta is traced: a sweep over it compiles once."""
  g = _cgame()
  traces = []
  @jax.jit
  def f(eta):
    traces.append(1)
    return nashax.core.solver._run(solvers.egpo(eta), g, jax.random.key(0), num_steps=5, every=5)[0].profile
  f(0.1); f(0.2)
  assert len(traces) == 1


def test_baselines_and_references_refuse_bad_input():
  """beta <= 0, a pi_ref with zeros, a wrong rewards shape, bad tol / max_steps, a bad eps: ValueError, not NaN."""
  r = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
  ref = jnp.full(3, 1 / 3)
  with pytest.raises(ValueError, match="beta"):
    solvers.maxmin_rlhf(r, 0.0, ref)
  with pytest.raises(ValueError, match="pi_ref"):
    solvers.maxmin_rlhf(r, 0.1, jnp.array([0.5, 0.5, 0.0]))
  with pytest.raises(ValueError, match="rewards"):
    solvers.pooled_rlhf(r[0], jnp.array([1.0]), 0.1, ref)
  with pytest.raises(ValueError, match="group_weights"):
    solvers.pooled_rlhf(r, jnp.array([0.9, 0.2]), 0.1, ref)
  g = games.condorcet_cycle(3).regularized(0.1)
  with pytest.raises(ValueError, match="tol"):
    solvers.regularized_nash(g, tol=0.0)
  with pytest.raises(ValueError, match="max_steps"):
    solvers.regularized_nash(g, max_steps=0)
  with pytest.raises(ValueError, match="eps"):
    games.three_rater_cycle(0.4)


def test_bradley_terry_fit_stays_finite_in_float32_after_convergence():
  """Regression: once the Newton gradient vanished, the singular Laplacian Hessian (ridge 1e-9 is below
  float32 resolution) gave NaN rewards, and rlhf_optimum returned NaN policies. The fit with pair
  weights 1/36 must equal the fit with unit weights (the likelihood is scale-free) at any step count."""
  from nashax import games, solvers

  g = games.random_preference_game(jax.random.key(0), 6)
  a = solvers.fit_bradley_terry(g.preference, jnp.full((6, 6), 1 / 36), steps=30)
  b = solvers.fit_bradley_terry(g.preference, steps=30)
  assert np.isfinite(np.asarray(a)).all()
  np.testing.assert_allclose(a, b, atol=1e-5)
  batch = jax.vmap(lambda k: games.random_preference_game(k, 6).regularized(0.05))(jax.random.split(jax.random.key(1), 200))
  assert np.isfinite(np.asarray(jax.vmap(solvers.rlhf_optimum)(batch))).all()
