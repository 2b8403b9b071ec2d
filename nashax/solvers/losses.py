"""Log-probability losses of preference optimisation, shared by tabular solvers and Flax policies.

Every function is elementwise over leading (batch) axes and returns one loss
per example; reduce with ``mean`` yourself (optax/rlax style). Inputs are
sequence log-probabilities (sums over tokens for a language model, one table
entry for a tabular policy):

* ``logp_*``: ``log pi_theta(y|x)`` (differentiate through these);
* ``ref_*``: ``log pi_ref(y|x)``; ``prev_*``: ``log pi_t(y|x)`` of the policy
  that generated the data (treated as constants);
* win-rate estimates ``P(y > pi_t)`` or preference probabilities
  ``P(y > y')`` in ``[0, 1]``.

Learning-rate convention: ``eta`` is always a step size (larger = bigger
step). Papers that use ``eta`` as an inverse step size (INPO, DNO) map as
``eta_paper = 1 / eta`` (the docstrings say where).

The tabular solvers in ``nashax.solvers.nlhf`` use these functions, and a
test checks that each tabular update is one (natural-)gradient step, or the
exact minimiser, of its loss on a one-token "language" with a table of logits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nashax.core.divergences import Divergence

__all__ = [
    "dpo_loss",
    "ipo_loss",
    "online_ipo_loss",
    "sppo_loss",
    "nash_md_pg_loss",
    "inpo_loss",
    "mnpo_loss",
    "egpo_loss",
    "dno_loss",
    "f_dpo_loss",
    "f_dpg_loss",
    "f_dpg_pseudo_reward",
    "log_partition_estimate",
]

Array = jax.Array
ArrayLike = jax.typing.ArrayLike


def _h(logp_a, logp_b, ref_a, ref_b) -> Array:
  """``log(pi(a)/ref(a)) - log(pi(b)/ref(b))``: the implicit reward margin."""
  return (jnp.asarray(logp_a) - jnp.asarray(ref_a)) - (jnp.asarray(logp_b) - jnp.asarray(ref_b))


def dpo_loss(logp_chosen: ArrayLike, logp_rejected: ArrayLike, ref_chosen: ArrayLike,
             ref_rejected: ArrayLike, beta: ArrayLike) -> Array:
  r"""Direct preference optimisation: ``-log sigmoid(beta h)``.

  .. math:: h = \log\frac{\pi(y_w)}{\pi_{ref}(y_w)} - \log\frac{\pi(y_l)}{\pi_{ref}(y_l)}

  At ``pi = pi_ref`` the loss is ``log 2``. Its population minimiser over a
  tabular policy with pairs from ``pi_ref`` is the KL-regularised optimum of
  the Bradley-Terry reward fitted to the same pairs (``nlhf.dpo_optimum``).

  References:
    Rafailov et al., "Direct Preference Optimization", NeurIPS 2023,
    arXiv:2305.18290, eq. 7.
  """
  return -jax.nn.log_sigmoid(beta * _h(logp_chosen, logp_rejected, ref_chosen, ref_rejected))


def ipo_loss(logp_chosen: ArrayLike, logp_rejected: ArrayLike, ref_chosen: ArrayLike,
             ref_rejected: ArrayLike, beta: ArrayLike) -> Array:
  r"""Identity preference optimisation: ``(h - 1 / (2 beta))^2``; ``1/(4 beta^2)`` at ``pi = pi_ref``.

  References:
    Azar et al., "A General Theoretical Paradigm to Understand Learning from
    Human Preferences", AISTATS 2024, arXiv:2310.12036, eq. 17.
  """
  return (_h(logp_chosen, logp_rejected, ref_chosen, ref_rejected) - 0.5 / beta) ** 2


def online_ipo_loss(logp_y: ArrayLike, logp_y2: ArrayLike, ref_y: ArrayLike, ref_y2: ArrayLike,
                    preference: ArrayLike, beta: ArrayLike) -> Array:
  r"""Online IPO with a soft label ``p = P(y > y')``: ``(h(y, y') - (p - 1/2) / beta)^2``.

  It is the IPO loss averaged over the label (``y`` wins w.p. ``p``) up to a
  term that does not depend on the policy:
  ``p (h - c)^2 + (1 - p)(-h - c)^2 = (h - c(2p - 1))^2 + c^2 (1 - (2p - 1)^2)``
  with ``c = 1 / (2 beta)``. With ``y, y'`` drawn from the current policy
  (online), its fixed point is the regularised Nash equilibrium
  ``pi ∝ pi_ref exp(P pi / beta)``.

  References:
    Calandriello et al., "Human Alignment of Large Language Models through
    Online Preference Optimisation", ICML 2024, arXiv:2403.08635.
  """
  return (_h(logp_y, logp_y2, ref_y, ref_y2) - (jnp.asarray(preference) - 0.5) / beta) ** 2


def egpo_loss(logp_y: ArrayLike, logp_y2: ArrayLike, ref_y: ArrayLike, ref_y2: ArrayLike,
              win_y: ArrayLike, win_y2: ArrayLike, beta: ArrayLike) -> Array:
  r"""EGPO's online-IPO loss with win rates against opponent samples.

  .. math:: \Big(h(y, y') - \frac{\hat P(y \succ \pi_o) - \hat P(y' \succ \pi_o)}{\beta}\Big)^2

  where ``win_y = P̂(y > y'')`` averages comparisons of ``y`` with samples
  ``y''`` of the opponent (the current policy at the extrapolation step, the
  half-step policy at the update step). A gradient step of this loss in the
  natural (Fisher) geometry is the exact mirror-descent half step of EGPO.

  References:
    Zhou, Fazel and Du, "Extragradient Preference Optimization (EGPO)",
    arXiv:2503.08942, section 4 (the equivalent online-IPO implementation);
    the authors' ``ExtragradientTrainer._compute_losses``.
  """
  return (_h(logp_y, logp_y2, ref_y, ref_y2) - (jnp.asarray(win_y) - jnp.asarray(win_y2)) / beta) ** 2


def sppo_loss(logp: ArrayLike, prev: ArrayLike, win_rate: ArrayLike, eta: ArrayLike) -> Array:
  r"""SPPO's square loss ``(log(pi(y)/pi_t(y)) - eta (P̂(y > pi_t) - 1/2))^2``.

  ``log Z`` is approximated by ``eta / 2`` (SPPO eq. 4.6-4.7). The authors'
  code uses the sum of this loss over a (winner, loser) pair, halved, with
  ``beta = 1 / eta``.

  References:
    Wu et al., "Self-Play Preference Optimization for Language Model
    Alignment", ICLR 2025, arXiv:2405.00675, eq. 4.7.
  """
  return (jnp.asarray(logp) - jnp.asarray(prev) - eta * (jnp.asarray(win_rate) - 0.5)) ** 2


def nash_md_pg_loss(logp: ArrayLike, ref: ArrayLike, preference: ArrayLike, tau: ArrayLike) -> Array:
  r"""Surrogate whose gradient is Nash-MD-PG's estimate, for ``y ~ pi``.

  .. math:: \nabla = -\nabla\log\pi(y)\,\big(P(y \succ y') - \tfrac12 - \tau\log\tfrac{\pi(y)}{\pi_{ref}(y)}\big)

  with ``y'`` drawn from the geometric mixture of ``pi`` and ``pi_ref``; the
  advantage is held constant (stop-gradient), so ``jax.grad`` of the mean
  loss over samples ``y ~ pi`` is the (negated) policy-gradient estimate.

  References:
    Munos et al., "Nash Learning from Human Feedback", ICML 2024,
    arXiv:2312.00886, section 7 (Nash-MD-PG).
  """
  logp = jnp.asarray(logp)
  adv = jax.lax.stop_gradient(jnp.asarray(preference) - 0.5 - tau * (logp - jnp.asarray(ref)))
  return -logp * adv


def inpo_loss(logp_w: ArrayLike, logp_l: ArrayLike, ref_w: ArrayLike, ref_l: ArrayLike,
              prev_w: ArrayLike, prev_l: ArrayLike, eta: ArrayLike, tau: ArrayLike) -> Array:
  r"""INPO's pairwise loss ``(h_t(y_w, y_l) - eta / 2)^2`` (no win-rate estimates needed).

  .. math:: h_t = \log\frac{\pi(y_w)}{\pi(y_l)} - \eta\tau\log\frac{\pi_{ref}(y_w)}{\pi_{ref}(y_l)}
            - (1 - \eta\tau)\log\frac{\pi_t(y_w)}{\pi_t(y_l)}

  In the paper's notation ``eta_paper = 1 / eta`` (target ``1 / (2 eta_paper)``).
  With ``y, y' ~ pi_t`` and the winner drawn by the preference, its minimiser
  is INPO's mirror-descent step (Prop. 6).

  References:
    Zhang et al., "Iterative Nash Policy Optimization", ICLR 2025,
    arXiv:2407.00617, section 4.
  """
  a = eta * tau
  lam = jnp.stack([jnp.broadcast_to(1.0 - a, jnp.shape(a)), jnp.broadcast_to(a, jnp.shape(a))], -1)
  anchors_w = jnp.stack(jnp.broadcast_arrays(jnp.asarray(prev_w), jnp.asarray(ref_w)), -1)
  anchors_l = jnp.stack(jnp.broadcast_arrays(jnp.asarray(prev_l), jnp.asarray(ref_l)), -1)
  return mnpo_loss(logp_w, logp_l, anchors_w, anchors_l, lam, eta)


def mnpo_loss(logp_w: ArrayLike, logp_l: ArrayLike, anchors_w: ArrayLike, anchors_l: ArrayLike,
              weights: ArrayLike, eta: ArrayLike) -> Array:
  r"""TD-MNPO's loss against a population of anchor policies.

  .. math:: \Big(\log\frac{\pi(y_w)}{\pi(y_l)} - \sum_j \lambda_j \log\frac{\pi_j(y_w)}{\pi_j(y_l)} - \frac{\eta}{2}\Big)^2

  Args:
    logp_w, logp_l: ``[...]`` log-probabilities of the winner / loser.
    anchors_w, anchors_l: ``[..., m]`` their log-probabilities under the m
      anchor policies (past policies and, optionally, ``pi_ref``).
    weights: ``[m]`` (or ``[..., m]``) anchor weights ``lambda_j``.
    eta: step size (the target is ``eta / 2``).

  With anchors ``(pi_t, pi_ref)`` and weights ``(1 - eta tau, eta tau)`` this
  is exactly ``inpo_loss`` (MNPO, Table 1).

  References:
    Wu, Huang et al., "Multiplayer Nash Preference Optimization",
    arXiv:2509.23102, eq. 17.
  """
  diff = jnp.asarray(anchors_w) - jnp.asarray(anchors_l)
  centre = jnp.sum(jnp.broadcast_to(jnp.asarray(weights), diff.shape) * diff, axis=-1)
  return (jnp.asarray(logp_w) - jnp.asarray(logp_l) - centre - 0.5 * eta) ** 2


def dno_loss(logp_1: ArrayLike, logp_2: ArrayLike, prev_1: ArrayLike, prev_2: ArrayLike,
             reward_1: ArrayLike, reward_2: ArrayLike, eta: ArrayLike) -> Array:
  r"""DNO's regression loss (eq. 8, negated to be minimised).

  .. math:: -\sigma(r_1 - r_2)\log\sigma\big(\tfrac1\eta\Delta_1 - \tfrac1\eta\Delta_2\big)
            - \sigma(r_2 - r_1)\log\sigma\big(\tfrac1\eta\Delta_2 - \tfrac1\eta\Delta_1\big),
     \quad \Delta_i = \log\frac{\pi(y_i)}{\pi_t(y_i)}

  with ``r_i = P(y_i > pi_t)``. Its minimiser over a tabular policy is the
  soft-policy-iteration target ``pi_t exp(eta r)`` (the paper's temperature
  is ``1 / eta``).

  References:
    Rosset et al., "Direct Nash Optimization", arXiv:2404.03715, Algorithm 1, eq. 8.
  """
  d = ((jnp.asarray(logp_1) - jnp.asarray(prev_1)) - (jnp.asarray(logp_2) - jnp.asarray(prev_2))) / eta
  s = jax.nn.sigmoid(jnp.asarray(reward_1) - jnp.asarray(reward_2))
  return -(s * jax.nn.log_sigmoid(d) + (1.0 - s) * jax.nn.log_sigmoid(-d))


def f_dpo_loss(logp_chosen: ArrayLike, logp_rejected: ArrayLike, ref_chosen: ArrayLike,
               ref_rejected: ArrayLike, beta: ArrayLike, divergence: Divergence) -> Array:
  r"""f-DPO: ``-log sigmoid(beta [f'(pi/ref)(y_w) - f'(pi/ref)(y_l)])``.

  The implicit reward ``beta f'(pi(y)/pi_ref(y))`` replaces DPO's
  ``beta log(pi(y)/pi_ref(y))``: by the KKT conditions of
  ``max_pi E_pi r - beta D_f(pi || pi_ref)``, ``r(y) = beta f'(pi*(y)/pi_ref(y)) + const``
  (``divergences.regularized_argmax`` inverts it). With ``reverse_kl`` it is
  ``dpo_loss``, operation for operation. Total variation is excluded by the
  paper (``f'`` is not invertible) but computes.

  References:
    Wang et al., "Beyond Reverse KL: Generalizing Direct Preference
    Optimization with Diverse Divergence Constraints", ICLR 2024,
    arXiv:2309.16240, Theorem 1 and eq. 8.
  """
  lw = divergence.link(jnp.asarray(logp_chosen) - jnp.asarray(ref_chosen))
  ll = divergence.link(jnp.asarray(logp_rejected) - jnp.asarray(ref_rejected))
  return -jax.nn.log_sigmoid(beta * (lw - ll))


def log_partition_estimate(log_target: ArrayLike, log_proposal: ArrayLike, axis: int = -1) -> Array:
  """``log Z_hat = log mean_i P(x_i) / q(x_i)`` for samples ``x_i ~ q`` (unbiased ``Z_hat``).

  References:
    Go et al., ICML 2023, arXiv:2302.08215, Sec. 3 (the importance-sampling estimate of ``Z``).
  """
  w = jnp.asarray(log_target) - jnp.asarray(log_proposal)
  return jax.scipy.special.logsumexp(w, axis=axis) - jnp.log(w.shape[axis])


def f_dpg_pseudo_reward(logp: ArrayLike, log_target: ArrayLike, log_partition: ArrayLike,
                        divergence: Divergence) -> Array:
  """f-DPG's pseudo-reward ``-f'(pi(x) / p(x))``, ``p = P / Z`` (no gradient flows through it).

  References:
    Go et al., ICML 2023, arXiv:2302.08215, Theorem 1 (``-f'`` as the reward of a policy gradient).
  """
  log_t = jax.lax.stop_gradient(jnp.asarray(logp)) - (jnp.asarray(log_target) - log_partition)
  return -divergence.fprime_log(divergence.alpha, log_t)


def f_dpg_loss(logp: ArrayLike, log_target: ArrayLike, log_proposal: ArrayLike, log_partition: ArrayLike,
               baseline: ArrayLike, divergence: Divergence) -> Array:
  r"""Surrogate loss whose gradient is the f-DPG estimator of ``grad D_f(pi_theta || p)``.

  .. math:: \ell(x) = -\frac{\pi(x)}{q(x)}\,\big(-f'(\pi(x)/p(x)) - B\big)\,\log\pi_\theta(x),
     \qquad x \sim q,

  with ``p = P / Z`` the normalised target (``log_target = log P``, ``log Z``
  exact or ``log_partition_estimate``), the importance weight and the
  pseudo-reward ``-f'`` held constant, and ``B`` a baseline (a moving average
  of past pseudo-rewards, as in the authors' code). Since
  ``E_pi grad log pi = 0``, any constant ``B`` leaves the expectation
  ``grad D_f = E_pi[f'(pi/p) grad log pi]`` unchanged. ``q = pi`` (on-policy:
  pass ``log_proposal = logp``) gives weights 1. With ``reverse_kl`` and
  ``P = a e^{r/beta}`` the gradient is ``-(1/beta) grad(E_pi r - beta KL(pi||a))``
  (RLHF with a KL penalty).

  References:
    Go et al., "Aligning Language Models with Preferences through
    f-divergence Minimization", ICML 2023, arXiv:2302.08215, Theorem 1 and
    Algorithm 1; the authors' library naver/disco (``FDivergenceLoss``).
  """
  logp = jnp.asarray(logp)
  w = jnp.exp(jax.lax.stop_gradient(logp) - jnp.asarray(log_proposal))
  adv = f_dpg_pseudo_reward(logp, log_target, log_partition, divergence) - baseline
  return -jax.lax.stop_gradient(w * adv) * logp
