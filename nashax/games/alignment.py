"""Alignment games of the literature, each with the quantity its theorem speaks of.

- the off-switch game (Hadfield-Menell et al. 2017): the robot's incentive to
  defer, by quadrature, by Stein's identity, in closed form and by Monte Carlo;
- the consensus game (Jacob et al. 2024): a generator/discriminator signalling
  game, piKL no-regret dynamics and equilibrium ranking;
- the red-teaming game (attacker/defender, zero-sum, as in Self-RedTeam): a
  matrix game whose equilibrium defender carries a worst-case safety guarantee;
- best-of-N and inference-aware alignment (InfAlign): closed-form win rates
  and KL of best-of-N and of exponentially tilted policies;
- transformed rewards (Wang et al. 2024): the log-sigmoid-centred transform
  and its "all properties good" reading when summed;
- the idealised ranking accuracy of the DPO/RLHF optimum (Chen et al. 2024).

The papers cited by each function hold the math; ``nashax verify`` runs
one claim per game (``nashax.theory.alignment``). Functions take arrays and
are jit/vmap-able unless they say otherwise; public constructors validate.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from nashax.core import _struct, validate
from nashax.core.games import MatrixGame

__all__ = [
    # off-switch
    "human_policy",
    "off_switch_incentive",
    "off_switch_monte_carlo",
    # consensus game
    "ConsensusGame",
    "consensus_game",
    "random_consensus_game",
    "consensus_utility",
    "consensus_exploitability",
    "PiKLTrace",
    "pikl",
    "equilibrium_ranking",
    # red teaming
    "red_teaming_game",
    "random_red_teaming_game",
    "defender_worst_case",
    "safe_defense_exists",
    # best-of-N / InfAlign
    "bon_win_rate",
    "bon_kl",
    "tilted_win_rate",
    "tilted_kl",
    "calibrated_reward",
    "best_of_n",
    # transformed rewards
    "lsc_transform",
    "kl_optimal_policy",
    # ranking accuracy
    "idealized_ranking_accuracy",
    "ranking_accuracy",
    "dpo_correct_iff_threshold",
]

_LOG2PI = float(np.log(2.0 * np.pi))


def _check(name: str, x, *, lo=None, hi=None, lo_open=True, hi_open=True, integer=False) -> None:
  """Refuses a concrete value outside its range with a ValueError naming it (tracers pass: vmap/jit callers)."""
  if validate.traced(x):
    return
  a = np.asarray(x, np.float64)
  bad = ~np.isfinite(a)
  if lo is not None:
    bad |= (a <= lo) if lo_open else (a < lo)
  if hi is not None:
    bad |= (a >= hi) if hi_open else (a > hi)
  if integer:
    bad |= a != np.floor(a)
  if bad.any():
    rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
    raise ValueError(f"{name}: must be finite{' integers' if integer else ''} in {rng}, got {a.ravel()[int(np.argmax(bad.ravel()))]}")


def _phi(z):
  return jnp.exp(-0.5 * z * z - 0.5 * _LOG2PI)


def _Phi(z):
  return 0.5 * jax.scipy.special.erfc(-z / jnp.sqrt(2.0))


# ------------------------------------------------------------------------------------------------
# The off-switch game
# ------------------------------------------------------------------------------------------------


def human_policy(u: jax.typing.ArrayLike, beta_h: jax.typing.ArrayLike) -> jax.Array:
  """``pi^H(u)``: the probability that the human lets action of utility ``u`` go.

  Boltzmann-rational ``sigmoid(u / beta_h)`` for ``beta_h > 0``; the rational
  ``1[u >= 0]`` at ``beta_h = 0``. Elementwise; ``beta_h`` broadcasts.
  """
  u = jnp.asarray(u)
  b = jnp.asarray(beta_h, u.dtype)
  soft = jax.nn.sigmoid(u / jnp.where(b > 0, b, 1.0))
  return jnp.where(b > 0, soft, (u >= 0).astype(u.dtype))


def _human_derivative(u, b):
  s = jax.nn.sigmoid(u / jnp.where(b > 0, b, 1.0))
  return s * (1.0 - s) / jnp.where(b > 0, b, 1.0)


def off_switch_incentive(mu: jax.typing.ArrayLike, sigma: jax.typing.ArrayLike, beta_h: jax.typing.ArrayLike,
                         *, method: str = "quadrature", num_points: int = 40_001) -> jax.Array:
  r"""The robot's incentive to defer, ``Delta = E[pi^H(U) U] - max(E U, 0)``, for ``U ~ N(mu, sigma^2)``.

  ``Delta > 0``: waiting for the human beats both acting now and switching
  off. Methods:

  - ``"quadrature"``: the expectation on a uniform grid of ``num_points`` over
    ``mu +- 12 sigma`` (trapezoid rule; for the rational human the grid starts
    at the kink ``u = 0``);
  - ``"stein"``: eq. 7 of the paper, ``Delta = sigma^2 E[pi^H'(U)] - |mu| Pr(C)``
    with ``Pr(C) = 1 - E[pi^H]`` (``mu >= 0``) or ``E[pi^H]`` (``mu < 0``); the
    rational human's ``E[pi^H'] = phi(mu/sigma)/sigma`` (a point mass at 0);
  - ``"closed_form"``: only for the rational human (``beta_h = 0``),
    ``sigma phi(mu/sigma) - |mu| Phi(-|mu|/sigma)``.

  Args:
    mu, sigma: the robot's Gaussian belief over the action's utility
      (``sigma > 0``); ``beta_h >= 0`` the human's Boltzmann temperature.
    method: ``"quadrature"``, ``"stein"`` or ``"closed_form"`` (static).
    num_points: quadrature grid size (static).

  Returns:
    ``Delta`` (scalars broadcast).

  References:
    Hadfield-Menell, Dragan, Abbeel, Russell, "The Off-Switch Game", IJCAI 2017,
    arXiv:1611.08219, eq. 1, Theorems 1-2, eq. 7.

  >>> round(float(off_switch_incentive(0.3, 1.0, 0.0, method="closed_form")), 4)
  0.2668
  """
  if method not in ("quadrature", "stein", "closed_form"):
    raise ValueError(f"method: must be 'quadrature', 'stein' or 'closed_form', got {method!r}")
  _check("mu", mu)
  _check("sigma", sigma, lo=0.0)
  _check("beta_h", beta_h, lo=0.0, lo_open=False)
  if method == "closed_form" and not validate.traced(beta_h) and np.any(np.asarray(beta_h) != 0):
    raise ValueError("beta_h: the closed form is for the rational human (beta_h = 0); use 'quadrature' or 'stein'")
  mu, sigma, b = jnp.broadcast_arrays(*(jnp.asarray(x, jnp.result_type(float)) for x in (mu, sigma, beta_h)))
  if method == "closed_form":
    return sigma * _phi(mu / sigma) - jnp.abs(mu) * _Phi(-jnp.abs(mu) / sigma)
  # The rational human's integrand has a kink at u = 0: its grid starts there (z = -mu/sigma).
  lo = jnp.where(b > 0, -12.0, jnp.clip(-mu / sigma, -12.0, 12.0))
  lead = (1,) * mu.ndim
  frac = jnp.linspace(0.0, 1.0, num_points, dtype=mu.dtype).reshape(lead + (num_points,))
  z = lo[..., None] + (12.0 - lo[..., None]) * frac
  h = (12.0 - lo)[..., None] / (num_points - 1)
  trap = jnp.ones((num_points,), mu.dtype).at[jnp.array([0, num_points - 1])].set(0.5).reshape(lead + (num_points,))
  w = h * trap * _phi(z)
  u = mu[..., None] + sigma[..., None] * z
  bb = b[..., None]
  e_pi = jnp.sum(w * human_policy(u, bb), -1)
  if method == "quadrature":
    return jnp.sum(w * human_policy(u, bb) * u, -1) - jnp.maximum(mu, 0.0)
  e_dpi = jnp.where(b > 0, jnp.sum(w * _human_derivative(u, bb), -1), _phi(mu / sigma) / sigma)
  pr_c = jnp.where(mu >= 0, 1.0 - e_pi, e_pi)
  return sigma ** 2 * e_dpi - jnp.abs(mu) * pr_c


def off_switch_monte_carlo(key: jax.Array, mu: jax.typing.ArrayLike, sigma: jax.typing.ArrayLike,
                           beta_h: jax.typing.ArrayLike, num_samples: int) -> tuple[jax.Array, jax.Array]:
  """Monte Carlo ``Delta``: the human is simulated (a Bernoulli ``pi^H(U)`` lets the action go).

  Returns:
    ``(estimate, standard_error)`` of ``mean(G U) - max(mean U, 0)`` with
    ``G ~ Bernoulli(pi^H(U))`` (the standard error of the first mean).
  """
  _check("sigma", sigma, lo=0.0)
  _check("beta_h", beta_h, lo=0.0, lo_open=False)
  if not isinstance(num_samples, int) or num_samples < 2:
    raise ValueError(f"num_samples: must be an integer >= 2, got {num_samples!r}")
  ku, kh = jax.random.split(key)
  u = mu + sigma * jax.random.normal(ku, (num_samples,))
  go = jax.random.uniform(kh, (num_samples,)) < human_policy(u, beta_h)
  x = jnp.where(go, u, 0.0)
  return jnp.mean(x) - jnp.maximum(jnp.mean(u), 0.0), jnp.std(x) / jnp.sqrt(num_samples)


# ------------------------------------------------------------------------------------------------
# The consensus game
# ------------------------------------------------------------------------------------------------


@_struct.dataclass
class ConsensusGame:
  """The generator/discriminator signalling game of equilibrium ranking.

  Nature draws ``v`` in {correct (0), incorrect (1)} uniformly; the generator
  sees ``v`` and picks a candidate ``y``; the discriminator sees ``y`` and
  guesses ``v``; both get 1 when the guess is right. Each player is
  KL-regularised toward its initial (language-model) policy.

  Attributes:
    log_gen_init: ``[2, Y]`` ``log pi_G^(1)(y | v)``.
    log_disc_init: ``[Y, 2]`` ``log pi_D^(1)(v | y)``.
    lam_g, lam_d: ``[]`` KL strengths ``lambda_G, lambda_D > 0``.
  """

  log_gen_init: jax.Array
  log_disc_init: jax.Array
  lam_g: jax.Array
  lam_d: jax.Array


def consensus_game(gen_init: jax.typing.ArrayLike, disc_init: jax.typing.ArrayLike,
                   lam_g: jax.typing.ArrayLike = 0.1, lam_d: jax.typing.ArrayLike = 0.1) -> ConsensusGame:
  """Builds a ``ConsensusGame`` from initial policies (rows are distributions with full support).

  Args:
    gen_init: ``[2, Y]``, row ``v`` is ``pi_G^(1)(. | v)``.
    disc_init: ``[Y, 2]``, row ``y`` is ``pi_D^(1)(. | y)``.
    lam_g, lam_d: KL strengths, > 0.
  """
  g = validate.finite_array(gen_init, "gen_init")
  d = validate.finite_array(disc_init, "disc_init")
  if g.ndim != 2 or g.shape[0] != 2:
    raise ValueError(f"gen_init: expected [2, Y] (rows: correct, incorrect), got shape {g.shape}")
  if d.shape != (g.shape[1], 2):
    raise ValueError(f"disc_init: expected [Y, 2] = [{g.shape[1]}, 2], got shape {d.shape}")
  for name, a in (("gen_init", g), ("disc_init", d)):
    if (a <= 0).any() or not np.allclose(a.sum(-1), 1.0, atol=1e-5):
      raise ValueError(f"{name}: rows must be distributions with full support (entries > 0, summing to 1)")
  validate.positive_scalar(lam_g, "lam_g")
  validate.positive_scalar(lam_d, "lam_d")
  dt = jnp.result_type(float)
  return ConsensusGame(jnp.log(jnp.asarray(g, dt)), jnp.log(jnp.asarray(d, dt)), jnp.asarray(lam_g, dt),
                       jnp.asarray(lam_d, dt))


def random_consensus_game(key: jax.Array, num_candidates: int, lam: jax.typing.ArrayLike = 0.1,
                          scale: float = 1.0) -> ConsensusGame:
  """Random initial policies (softmax of ``scale`` times Gaussian logits); vmap over keys."""
  _check("lam", lam, lo=0.0)
  kg, kd = jax.random.split(key)
  lg = jax.nn.log_softmax(scale * jax.random.normal(kg, (2, num_candidates)), -1)
  ld = jax.nn.log_softmax(scale * jax.random.normal(kd, (num_candidates, 2)), -1)
  lam = jnp.asarray(lam, lg.dtype)
  return ConsensusGame(lg, ld, lam, lam)


def consensus_utility(pi_g: jax.Array, pi_d: jax.Array) -> jax.Array:
  """The shared payoff ``(1/2) sum_v sum_y pi_G(y|v) pi_D(v|y)`` (probability the guess is right)."""
  return 0.5 * jnp.sum(pi_g * pi_d.T)


def _kl_rows(p, logq):
  return jnp.sum(p * (jnp.log(jnp.maximum(p, 1e-300)) - logq), -1)


def _regularized_values(game: ConsensusGame, pi_g, pi_d):
  u = consensus_utility(pi_g, pi_d)
  return (u - game.lam_g * jnp.sum(_kl_rows(pi_g, game.log_gen_init)),
          u - game.lam_d * jnp.sum(_kl_rows(pi_d, game.log_disc_init)))


def _best_values(game: ConsensusGame, pi_g, pi_d):
  """Each player's best regularised value against the other (closed form: a log-sum-exp)."""
  bg = game.lam_g * jnp.sum(jax.nn.logsumexp(game.log_gen_init + 0.5 * pi_d.T / game.lam_g, -1))
  bd = game.lam_d * jnp.sum(jax.nn.logsumexp(game.log_disc_init + 0.5 * pi_g.T / game.lam_d, -1))
  return bg, bd


def consensus_exploitability(game: ConsensusGame, pi_g: jax.Array, pi_d: jax.Array) -> jax.Array:
  """NashConv of ``(pi_G, pi_D)`` in the regularised game: the sum of both best-response gains.

  A player's best regularised response is ``pi^(1) exp(payoff / lambda)``
  normalised (per ``v`` for the generator, per ``y`` for the discriminator).
  """
  vg, vd = _regularized_values(game, pi_g, pi_d)
  bg, bd = _best_values(game, pi_g, pi_d)
  return (bg - vg) + (bd - vd)


class PiKLTrace(NamedTuple):
  """What ``pikl`` returns.

  Attributes:
    pi_g: ``[2, Y]`` last generator iterate; ``pi_d``: ``[Y, 2]`` last discriminator iterate.
    regret_g, regret_d: ``[T]`` each learner's external regret (regularised utility) after ``t`` rounds.
    exploitability: ``[T]`` ``consensus_exploitability`` of the iterate played at round ``t``.
  """

  pi_g: jax.Array
  pi_d: jax.Array
  regret_g: jax.Array
  regret_d: jax.Array
  exploitability: jax.Array


def pikl(game: ConsensusGame, num_steps: int, eta_g: jax.typing.ArrayLike = 0.1,
         eta_d: jax.typing.ArrayLike = 0.1) -> PiKLTrace:
  r"""piKL no-regret dynamics on the consensus game (equilibrium ranking).

  .. math::
     Q_G^{(t)}(y|v) = \frac{1}{2t}\sum_{\tau\le t}\pi_D^{(\tau)}(v|y),\qquad
     \pi_G^{(t+1)}(y|v) \propto \exp\Big\{\frac{Q_G^{(t)}(y|v) + \lambda_G\log\pi_G^{(1)}(y|v)}
       {1/(\eta_G t) + \lambda_G}\Big\}

  and symmetrically for the discriminator; round 1 plays the initial
  policies. ``Q`` is the *average* payoff (one re-implementation of the paper
  sums with weights ``1/(2t)`` instead).

  Args:
    game: a ``ConsensusGame``.
    num_steps: rounds ``T`` (static).
    eta_g, eta_d: learning rates.

  Returns:
    ``PiKLTrace``.

  References:
    Jacob, Shen, Farina, Andreas, "The Consensus Game: Language Model
    Generation via Equilibrium Search", ICLR 2024, arXiv:2310.09139, sec. 3;
    piKL: Jacob et al., ICML 2022, arXiv:2112.07544.
  """
  if not isinstance(num_steps, int) or num_steps < 1:
    raise ValueError(f"num_steps: must be a positive integer, got {num_steps!r}")
  _check("eta_g", eta_g, lo=0.0)
  _check("eta_d", eta_d, lo=0.0)
  lg0, ld0 = game.log_gen_init, game.log_disc_init

  def regrets(sum_d, sum_g, acc_g, acc_d, t):
    # Best fixed regularised response in hindsight to the cumulative opponent (closed form).
    best_g = t * game.lam_g * jnp.sum(jax.nn.logsumexp(lg0 + 0.5 * sum_d.T / (t * game.lam_g), -1))
    best_d = t * game.lam_d * jnp.sum(jax.nn.logsumexp(ld0 + 0.5 * sum_g.T / (t * game.lam_d), -1))
    return best_g - acc_g, best_d - acc_d

  def step(carry, t):
    pi_g, pi_d, sum_g, sum_d, acc_g, acc_d = carry
    vg, vd = _regularized_values(game, pi_g, pi_d)
    expl = consensus_exploitability(game, pi_g, pi_d)
    sum_g, sum_d = sum_g + pi_g, sum_d + pi_d
    acc_g, acc_d = acc_g + vg, acc_d + vd
    rg, rd = regrets(sum_d, sum_g, acc_g, acc_d, t)
    qg = sum_d.T / (2.0 * t)
    qd = sum_g.T / (2.0 * t)
    new_g = jax.nn.softmax((qg + game.lam_g * lg0) / (1.0 / (eta_g * t) + game.lam_g), -1)
    new_d = jax.nn.softmax((qd + game.lam_d * ld0) / (1.0 / (eta_d * t) + game.lam_d), -1)
    return (new_g, new_d, sum_g, sum_d, acc_g, acc_d), (rg, rd, expl)

  z = jnp.zeros((), lg0.dtype)
  init = (jnp.exp(lg0), jnp.exp(ld0), jnp.zeros_like(lg0), jnp.zeros_like(ld0), z, z)
  ts = jnp.arange(1, num_steps + 1, dtype=lg0.dtype)
  (pg, pd, *_), (rg, rd, ex) = jax.lax.scan(step, init, ts)
  return PiKLTrace(pg, pd, rg, rd, ex)


def equilibrium_ranking(pi_g: jax.Array, pi_d: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The two equilibrium-ranking scores of the candidates.

  Returns:
    ``(er_g, er_d)``: ``pi_G*(y | correct)`` (ER-G) and ``pi_D*(correct | y)``
    (ER-D), each ``[Y]``; higher is better.
  """
  return pi_g[0], pi_d[:, 0]


# ------------------------------------------------------------------------------------------------
# The red-teaming game
# ------------------------------------------------------------------------------------------------


def _policies(num_observations: int) -> np.ndarray:
  return np.asarray(list(itertools.product((0, 1), repeat=num_observations)), np.int32)


def red_teaming_game(harmful: jax.typing.ArrayLike, harm: jax.typing.ArrayLike, observation: jax.typing.ArrayLike,
                     refusal_cost: jax.typing.ArrayLike = 0.5) -> MatrixGame:
  """The attacker/defender game: the attacker picks a prompt, the defender a refusal policy.

  Prompt ``p`` is harmful (``harmful[p] = 1``) or benign; the defender sees
  only its surface form ``observation[p]`` (a jailbreak disguises a harmful
  request as a benign one) and, per observation, complies or refuses. A pure
  defence is a bit per observation (``2^O`` of them). The attacker's payoff,
  which the defender pays (zero-sum, as in Self-RedTeam), is ``harm[p]`` when a
  harmful prompt is complied with and ``refusal_cost`` when a benign one is
  refused.

  Args:
    harmful: ``[P]`` 0/1.
    harm: ``[P]`` in ``[0, 1]``: the damage of complying with prompt ``p``.
    observation: ``[P]`` integers in ``[0, O)``, ``O <= 12``.
    refusal_cost: the cost of refusing a benign prompt, ``>= 0``.

  Returns:
    A ``MatrixGame`` ``[P, 2^O]``; rows are the attacker's prompts (maximising),
    column ``d`` refuses observation ``o`` iff bit ``o`` of ``d`` (in
    ``itertools.product`` order) is 1.

  References:
    Liu, Jiang, Liang, Du, Choi, Althoff, Jaques, "Chasing Moving Targets with
    Online Self-Play Reinforcement Learning for Safer Language Models"
    (Self-RedTeam), arXiv:2506.07468: a zero-sum attacker/defender game whose
    equilibrium defender is safe against any adversarial input.
  """
  hf = validate.finite_array(harmful, "harmful")
  hm = validate.finite_array(harm, "harm")
  ob = np.asarray(observation)
  if hf.ndim != 1 or hm.shape != hf.shape or ob.shape != hf.shape:
    raise ValueError(f"harmful/harm/observation: expected equal [P] shapes, got {hf.shape}, {hm.shape}, {ob.shape}")
  if not np.isin(hf, (0, 1)).all():
    raise ValueError("harmful: entries must be 0 or 1")
  if (hm < 0).any() or (hm > 1).any():
    raise ValueError("harm: entries must lie in [0, 1]")
  if not np.issubdtype(ob.dtype, np.integer) or ob.min() < 0:
    raise ValueError(f"observation: expected integers >= 0, got {ob}")
  num_obs = int(ob.max()) + 1
  if num_obs > 12:
    raise ValueError(f"observation: at most 12 distinct observations (2^O defences), got {num_obs}")
  c = float(refusal_cost)
  if not np.isfinite(c) or c < 0:
    raise ValueError(f"refusal_cost: must be finite and >= 0, got {refusal_cost}")
  refuse = _policies(num_obs)[:, ob].T  # [P, 2^O]
  s = hf[:, None] * hm[:, None] * (1 - refuse) + (1 - hf[:, None]) * c * refuse
  return MatrixGame(jnp.asarray(s, jnp.result_type(float)))


def random_red_teaming_game(seed: int, num_prompts: int = 8, num_observations: int = 3,
                            refusal_cost: float = 0.5, disguise: float = 0.5) -> tuple[MatrixGame, dict]:
  """A random red-teaming game (NumPy generator, outside jit).

  Half the prompts are harmful; each harmful prompt is disguised (shares an
  observation with benign prompts) with probability ``disguise``.

  Returns:
    ``(game, spec)`` with ``spec = {"harmful", "harm", "observation"}``.
  """
  rng = np.random.default_rng(seed)
  harmful = (np.arange(num_prompts) % 2).astype(np.float64)
  harm = rng.uniform(0.3, 1.0, num_prompts) * harmful
  benign_obs = rng.integers(0, max(num_observations - 1, 1), num_prompts)
  own = num_observations - 1
  obs = np.where(harmful == 0, benign_obs, np.where(rng.uniform(size=num_prompts) < disguise, benign_obs, own))
  spec = {"harmful": harmful, "harm": harm, "observation": obs.astype(np.int32)}
  return red_teaming_game(harmful, harm, obs.astype(np.int32), refusal_cost), spec


def defender_worst_case(game: MatrixGame, defender: jax.Array) -> jax.Array:
  """The defender's guarantee: the attacker's best-response payoff ``max_p (S y)_p``."""
  return jnp.max(game.payoff @ defender)


def safe_defense_exists(harmful, harm, observation, refusal_cost) -> bool:
  """Whether some pure defence has zero loss against every prompt (a combinatorial check).

  True iff no observation is shared by a harmful prompt with ``harm > 0`` and
  a benign prompt (when ``refusal_cost > 0``): then refusing exactly the
  harmful observations is safe everywhere.
  """
  harmful, harm, observation = map(np.asarray, (harmful, harm, observation))
  if refusal_cost == 0:
    return True
  for o in np.unique(observation):
    sel = observation == o
    if (harmful[sel] * harm[sel] > 0).any() and (harmful[sel] == 0).any():
      return False
  return True


# ------------------------------------------------------------------------------------------------
# Best-of-N and inference-aware alignment
# ------------------------------------------------------------------------------------------------


def bon_win_rate(n: jax.typing.ArrayLike) -> jax.Array:
  """Win rate of best-of-``n`` of ``pi_ref`` against ``pi_ref`` (continuous rewards): ``n / (n + 1)``.

  The calibrated reward of the best of ``n`` is ``Beta(n, 1)``, whose mean is ``n/(n+1)``.
  """
  _check("n", n, lo=1.0, lo_open=False, integer=True)
  n = jnp.asarray(n, jnp.result_type(float))
  return n / (n + 1.0)


def bon_kl(n: jax.typing.ArrayLike) -> jax.Array:
  """``KL(BoN_n || pi_ref) = log n - (n - 1)/n`` for continuous, distinct outcomes (Beirami et al. 2024)."""
  _check("n", n, lo=1.0, lo_open=False, integer=True)
  n = jnp.asarray(n, jnp.result_type(float))
  return jnp.log(n) - (n - 1.0) / n


def tilted_win_rate(t: jax.typing.ArrayLike) -> jax.Array:
  """Win rate against ``pi_ref`` of ``pi_t ∝ pi_ref e^{t c}`` (``c`` the calibrated reward):
  ``1/(1 - e^{-t}) - 1/t``."""
  _check("t", t, lo=0.0)
  t = jnp.asarray(t, jnp.result_type(float))
  return 1.0 / (-jnp.expm1(-t)) - 1.0 / t


def tilted_kl(t: jax.typing.ArrayLike) -> jax.Array:
  """``KL(pi_t || pi_ref) = t W_1(t) - log((e^t - 1)/t)``."""
  _check("t", t, lo=0.0)
  t = jnp.asarray(t, jnp.result_type(float))
  return t * tilted_win_rate(t) - jnp.log(jnp.expm1(t) / t)


def calibrated_reward(rewards: jax.Array, ref_rewards: jax.Array) -> jax.Array:
  """``C_r(y) = P_{z ~ pi_ref}(r(z) < r(y)) + P(r(z) = r(y)) / 2``, from samples ``ref_rewards [M]``."""
  r = jnp.asarray(rewards)[..., None]
  z = jnp.asarray(ref_rewards)
  z = z.reshape((1,) * (r.ndim - 1) + z.shape)
  return jnp.mean((z < r) + 0.5 * (z == r), -1)


def best_of_n(key: jax.Array, rewards_fn, sample_fn, n: int, num: int) -> jax.Array:
  """Rewards of ``num`` best-of-``n`` draws: ``sample_fn(key, shape) -> outcomes``, kept by ``rewards_fn``."""
  y = sample_fn(key, (num, n))
  r = rewards_fn(y)
  return jnp.max(r, -1)


# ------------------------------------------------------------------------------------------------
# Transformed rewards
# ------------------------------------------------------------------------------------------------


def lsc_transform(rewards: jax.Array, reference: jax.Array) -> jax.Array:
  """The log-sigmoid-centred utility ``log sigmoid(r - r_ref)`` = ``log P(good)`` under Bradley-Terry.

  Summed over properties it is ``log P(all good)`` for independent properties
  (a logical AND), which a plain sum of rewards is not.

  References:
    Wang et al., "Transforming and Combining Rewards for Aligning Large
    Language Models", ICML 2024, arXiv:2402.00742.
  """
  return jax.nn.log_sigmoid(rewards - reference)


def kl_optimal_policy(utility: jax.Array, log_ref: jax.Array, gamma: jax.typing.ArrayLike = 1.0) -> jax.Array:
  """``argmax_pi E_pi[u] - gamma KL(pi || pi_ref)`` = ``softmax(log pi_ref + u / gamma)``."""
  _check("gamma", gamma, lo=0.0)
  return jax.nn.softmax(log_ref + utility / gamma, -1)


# ------------------------------------------------------------------------------------------------
# Ranking accuracy of the DPO/RLHF optimum
# ------------------------------------------------------------------------------------------------


def idealized_ranking_accuracy(log_ref_w: jax.Array, log_ref_l: jax.Array, alpha: jax.Array,
                               beta: jax.typing.ArrayLike, weights: Optional[jax.Array] = None) -> jax.Array:
  r"""Theorem 3.1: the ranking accuracy of the idealised DPO/RLHF optimum.

  .. math:: R^* = E_D\, 1\big[\pi_{ref}(y_w)\,(\alpha/(1-\alpha))^{1/\beta} \ge \pi_{ref}(y_l)\big]

  Args:
    log_ref_w, log_ref_l: ``[D]`` reference log-probabilities of the chosen and rejected responses.
    alpha: ``[D]`` the aggregated preference ``P(y_w > y_l)`` in ``(0, 1)``.
    beta: the KL strength.
    weights: optional ``[D]`` data weights (default uniform).

  References:
    Chen et al., "Preference Learning Algorithms Do Not Learn Preference
    Rankings", NeurIPS 2024, arXiv:2405.19534, Theorem 3.1.
  """
  _check("alpha", alpha, lo=0.0, hi=1.0)
  _check("beta", beta, lo=0.0)
  lhs = log_ref_w + (jnp.log(alpha) - jnp.log1p(-alpha)) / beta
  ok = (lhs >= log_ref_l).astype(jnp.result_type(float))
  w = jnp.ones_like(ok) if weights is None else weights
  return jnp.sum(w * ok) / jnp.sum(w)


def ranking_accuracy(logp_w: jax.Array, logp_l: jax.Array, weights: Optional[jax.Array] = None) -> jax.Array:
  """``R(pi) = E_D 1[pi(y_w) >= pi(y_l)]`` (Def. 2.3 of Chen et al. 2024)."""
  ok = (logp_w >= logp_l).astype(jnp.result_type(float))
  w = jnp.ones_like(ok) if weights is None else weights
  return jnp.sum(w * ok) / jnp.sum(w)


def dpo_correct_iff_threshold(log_ref_w: jax.Array, log_ref_l: jax.Array, beta: jax.typing.ArrayLike) -> jax.Array:
  """Theorem 4.1's threshold: the policy ranks the pair correctly iff ``L_DPO <= -log sigmoid(beta c)``.

  ``c = log(pi_ref(y_l)/pi_ref(y_w))`` is the reference's ranking error; the
  margin is ``m = beta[log(pi(y_w)/pi(y_l)) + c]`` and correctness is ``m >= beta c``.
  """
  _check("beta", beta, lo=0.0)
  c = log_ref_l - log_ref_w
  return -jax.nn.log_sigmoid(beta * c)
