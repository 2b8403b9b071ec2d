"""Pure train steps for the NLHF / DPO families on transformer policies, sharded and checkpointed.

The policy is ``pi_theta(y) = sequence_logp(graphdef, params, [BOS, y])``; the
game is the oracle's preference over responses, KL-regularised toward the
initial policy ``pi_ref`` with strength ``beta``. Every algorithm assembles
its loss from ``nashax.solvers.losses``, the functions the tabular solvers
use:

==============  ==========================================================================
algorithm        data and loss per step
==============  ==========================================================================
dpo, ipo         a fixed dataset of pairs from ``pi_ref`` labelled by the preference (its
                 reference log-probabilities computed once); ``dpo_loss`` / ``ipo_loss``
iterative_dpo    pairs from the anchor ``pi_t`` (refreshed every ``refresh`` steps), the
                 anchor as reference, temperature ``beta``; ``dpo_loss``
online_ipo       ``y, y' ~ pi_theta``; ``online_ipo_loss`` with ``P(y > y')``
sppo             ``y ~ pi_t``, win rate against ``num_opponents`` samples of ``pi_t``;
                 ``sppo_loss`` with step ``eta``
nash_md          ``y ~ pi_theta``, ``y'`` from the *sequence-level* geometric mixture
                 ``pi_theta^(1-m) pi_ref^m`` (``m = mixture``) by sampling-importance-
                 resampling from ``mixture_candidates`` draws of ``pi_theta`` (exact as
                 candidates grow); ``nash_md_pg_loss``
inpo             ``y, y' ~ pi_t``, the winner drawn by the preference; ``inpo_loss``
mnpo             as INPO with anchors ``(pi_t, pi_{t-1}, pi_ref)``; ``mnpo_loss``
egpo             extragradient: a look-ahead step with win rates against ``pi_theta``, then
                 the real step from ``theta`` with win rates against the look-ahead policy;
                 ``egpo_loss``
==============  ==========================================================================

``exact=True`` replaces every sample by the exact expectation over the
enumerated responses (small vocabularies and lengths): the loss is then the
population loss of the tabular solvers, which the tests use to match the
tabular updates on a one-token language.

The train state is a plain pytree (params, optax state, anchors, the
reference, step, PRNG key data), so orbax saves it and ``NamedSharding``
places it; the batch is sharded over a one-axis ``Mesh`` of all devices
(the random draws are partitionable, so one device and eight give the same
numbers up to float reassociation).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nashax.policies import transformer as T
from nashax.policies.oracles import SequenceOracle, all_responses, class_marginals, exact_gap
from nashax.solvers import losses

__all__ = ["ALGORITHMS", "PolicyAlgorithm", "TrainConfig", "TrainState", "Trainer", "make_trainer", "mnpo_weights",
           "nash_md_mixture", "mixture_sample", "preferred_pair", "train_update", "win_rate"]



@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyperparameters of a training run (frozen; ``validate`` names the bad field).

  Attributes:
    algorithm: one of ``ALGORITHMS``.
    beta: KL strength toward ``pi_ref`` (the game's), ``> 0``.
    eta: NLHF step size of SPPO / INPO / MNPO (``> 0``).
    mixture: Nash-MD's geometric-mixture weight on ``pi_ref``, in ``[0, 1]``; ``None`` (the default) is
      ``eta * beta``, the tabular solver's weight (``nash_md_mixture``).
    lr: Adam learning rate.
    batch_size: pairs (or responses) per step.
    num_steps: optimizer steps.
    refresh: steps between anchor refreshes (``pi_t <- pi_theta``).
    num_opponents: opponent samples per response for win rates (SPPO, EGPO).
    mixture_candidates: draws of ``pi_theta`` per mixture sample (Nash-MD).
    mnpo_weights: weights of the past-policy anchors ``(pi_t, pi_{t-1})`` of
      MNPO (scaled to ``1 - eta beta``; ``pi_ref`` gets ``eta beta``).
    dataset_size: pairs in the offline DPO/IPO dataset.
    init_scale: standard deviation of the random unembedding bias of the
      initial policy (= ``pi_ref``), so runs start from a random, skewed
      policy rather than the near-uniform one of a fresh network.
    exact: exact expectations over the enumerated responses instead of samples.
    seed: the run's seed.
  """

  algorithm: str
  beta: float = 0.1
  eta: float = 1.0
  mixture: Optional[float] = None
  lr: float = 3e-3
  batch_size: int = 64
  num_steps: int = 300
  refresh: int = 10
  num_opponents: int = 4
  mixture_candidates: int = 16
  mnpo_weights: tuple = (0.5, 0.5)
  dataset_size: int = 2048
  init_scale: float = 1.0
  exact: bool = False
  seed: int = 0

  def validate(self) -> "TrainConfig":
    if self.algorithm not in ALGORITHMS:
      raise ValueError(f"train.algorithm: unknown algorithm {self.algorithm!r}; one of {list(ALGORITHMS)}")
    for name in ("beta", "eta", "lr"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v) or v <= 0:
        raise ValueError(f"train.{name}: must be a finite number > 0, got {v!r}")
    if self.mixture is not None and (isinstance(self.mixture, bool) or not isinstance(self.mixture, numbers.Real)
                                     or not 0 <= self.mixture <= 1):
      raise ValueError(f"train.mixture: must lie in [0, 1] (or be left out for eta * beta), got {self.mixture!r}")
    if self.algorithm == "nash_md" and self.mixture is None and self.eta * self.beta > 1:
      raise ValueError(f"train.eta: Nash-MD's default mixture eta * beta must be <= 1, got eta={self.eta}, "
                       f"beta={self.beta} (or set train.mixture)")
    for name in ("batch_size", "num_steps", "refresh", "num_opponents", "mixture_candidates", "dataset_size"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"train.{name}: must be a positive integer, got {v!r}")
    w = np.asarray(self.mnpo_weights, float)
    if w.shape != (2,) or (w < 0).any() or not np.isclose(w.sum(), 1.0):
      raise ValueError(f"train.mnpo_weights: two nonnegative weights summing to 1, got {self.mnpo_weights!r}")
    if self.algorithm in ("inpo", "mnpo") and self.eta * self.beta >= 1:
      raise ValueError(f"train.eta: INPO/MNPO need eta * beta < 1, got eta={self.eta}, beta={self.beta}")
    if isinstance(self.init_scale, bool) or not isinstance(self.init_scale, numbers.Real) or self.init_scale < 0:
      raise ValueError(f"train.init_scale: must be a number >= 0, got {self.init_scale!r}")
    if not isinstance(self.seed, numbers.Integral) or self.seed < 0:
      raise ValueError(f"train.seed: must be an integer >= 0, got {self.seed!r}")
    return self


class TrainState(NamedTuple):
  """Everything a run needs to continue exactly (a pytree of arrays).

  Attributes:
    params: the policy's parameters.
    opt_state: optax state.
    anchors: ``(pi_t, pi_{t-1})`` parameters (refreshed every ``refresh`` steps).
    ref: ``pi_ref``'s parameters (fixed).
    data: the offline dataset (``dpo``/``ipo``) or empty arrays.
    step: ``int32[]`` steps taken.
    key: ``uint32[2]`` PRNG key data of the run.
  """

  params: Any
  opt_state: Any
  anchors: Any
  ref: Any
  data: Any
  step: jax.Array
  key: jax.Array


class Trainer(NamedTuple):
  """Pure functions of a run (from ``make_trainer``).

  Attributes:
    init: ``(key) -> TrainState`` (``pi_ref`` = the initial policy).
    step: ``(state) -> (state, metrics)``; metrics ``{"loss"}``.
    evaluate: ``(state) -> metrics``: ``kl_ref``, ``win_rate_ref``, ``exploitability``
      (exact, regularised), ``gap_unregularized``, ``class_marginals``.
    loss: ``(params, state, key) -> []`` the algorithm's loss (EGPO: its look-ahead loss).
    graphdef, model_config, train_config, oracle, responses: what they close over.
  """

  init: Callable
  step: Callable
  evaluate: Callable
  loss: Callable
  graphdef: Any
  model_config: T.TransformerConfig
  train_config: TrainConfig
  oracle: SequenceOracle
  responses: Any


def _with_bos(y: jax.Array) -> tuple[jax.Array, jax.Array]:
  tokens = jnp.concatenate([jnp.full(y.shape[:-1] + (1,), T.BOS, y.dtype), y], axis=-1)
  mask = jnp.concatenate([jnp.zeros(y.shape[:-1] + (1,), jnp.float32), jnp.ones(y.shape, jnp.float32)], axis=-1)
  return tokens, mask


def _random_bias(params: Any, key: jax.Array, scale: float) -> Any:
  """Sets the unembedding bias to ``scale * N(0, 1)`` (a random starting policy)."""
  def f(path, x):
    names = [getattr(p, "key", getattr(p, "name", None)) for p in path]
    if "unembed" in names and "bias" in names:
      return scale * jax.random.normal(key, x.shape, x.dtype)
    return x
  return jax.tree_util.tree_map_with_path(f, params)


# ---- the algorithm table ------------------------------------------------------------------------
class _Context(NamedTuple):
  """What a loss needs from its trainer: the config, sizes, and the closures over the model and oracle."""

  cfg: Any            # TrainConfig
  B: int              # batch size
  L: int              # response length
  logp: Callable      # (params, y [n, L]) -> [n]
  draw: Callable      # (params, key, n) -> y [n, L]
  pref: Callable      # (y, y2) -> P(y > y2)
  shard: Callable     # a batch sharding constraint
  all_logp: Callable  # params -> [N] over the enumerated responses
  pm: Any             # [N, N] preference over the enumerated responses (exact mode) or None


class PolicyAlgorithm(NamedTuple):
  """One row of ``ALGORITHMS``: an algorithm's two losses and how the step treats it.

  Attributes:
    sampled: ``(ctx, params, state, key, look_ahead) -> []`` the loss on sampled responses.
    exact: ``(ctx, params, state, look_ahead) -> []`` the population loss over the enumerated
      responses (the tabular solver's update, as a loss).
    offline: trains on a fixed dataset of pairs from ``pi_ref``, drawn once at ``init``.
    pair_loss: for an offline row, its loss on labelled pairs,
      ``(logp_w, logp_l, ref_w, ref_l, beta) -> [n]`` (the decoder trainer draws its pairs per batch).
    anchored: its anchor ``pi_t`` is refreshed every ``refresh`` steps (else every step).
    extragradient: the step looks ahead first and passes the look-ahead policy as ``look_ahead``.
  """

  sampled: Callable
  exact: Callable
  offline: bool = False
  anchored: bool = False
  extragradient: bool = False
  pair_loss: Optional[Callable] = None


def preferred_pair(key: jax.Array, y: jax.Array, y2: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
  """``(winner, loser)`` of each pair ``y [n, L]`` against ``y2``, the winner drawn with ``P(y > y2) = p [n]``."""
  won = jax.random.uniform(key, p.shape) < p
  return jnp.where(won[:, None], y, y2), jnp.where(won[:, None], y2, y)


def win_rate(pref: Callable, y: jax.Array, opponents: jax.Array) -> jax.Array:
  """``[n]`` mean of ``P(y > o)`` over ``opponents [n, k, L]`` (a sampled ``(P pi)(y)``)."""
  return jnp.mean(pref(jnp.broadcast_to(y[:, None], opponents.shape), opponents), axis=1)


def nash_md_mixture(cfg: Any) -> float:
  """Nash-MD's geometric-mixture weight on ``pi_ref``: ``cfg.mixture``, or ``eta * beta`` when it is None.

  The tabular ``nash_md`` step mixes ``pi_t^(1 - eta beta) pi_ref^(eta beta)``
  (Munos et al. 2024, arXiv:2312.00886, eq. 11), so the default keeps the two
  scales the same algorithm.
  """
  return cfg.eta * cfg.beta if cfg.mixture is None else cfg.mixture


def mnpo_weights(cfg: Any) -> jax.Array:
  """MNPO's anchor weights over ``(pi_t, pi_{t-1}, pi_ref)``: ``(1 - eta beta) w`` then ``eta beta``."""
  return jnp.concatenate([(1 - cfg.eta * cfg.beta) * jnp.asarray(cfg.mnpo_weights), jnp.asarray([cfg.eta * cfg.beta])])


_sg = jax.lax.stop_gradient


def _col(v):
  return v[:, None]


def _row(v):
  return v[None, :]


def _offline_sampled(loss):
  def f(c, params, st, key, look_ahead):
    idx = c.shard(jax.random.randint(jax.random.split(key, 6)[0], (c.B,), 0, c.cfg.dataset_size))
    w, l = c.shard(st.data["w"][idx]), c.shard(st.data["l"][idx])
    return jnp.mean(loss(c.logp(params, w), c.logp(params, l), st.data["ref_w"][idx], st.data["ref_l"][idx],
                         c.cfg.beta))
  return f


def _pairs_exact(loss, anchored):
  """DPO / IPO / iterative DPO in population: pairs from ``pi_ref`` (or the anchor), labelled by ``P``."""
  def f(c, params, st, look_ahead):
    lp = c.all_logp(params)
    r = _sg(c.all_logp(st.anchors[0])) if anchored else c.all_logp(st.ref)
    base = jnp.exp(r)
    wts = _col(base) * _row(base) * c.pm * (1 - jnp.eye(c.pm.shape[0]))
    return jnp.sum(wts * loss(_col(lp), _row(lp), _col(r), _row(r), c.cfg.beta))
  return f


def _iterative_dpo_sampled(c, params, st, key, look_ahead):
  keys = jax.random.split(key, 6)
  anchor = st.anchors[0]
  y, y2 = c.draw(anchor, keys[0], c.B), c.draw(anchor, keys[1], c.B)
  w, l = preferred_pair(keys[2], y, y2, c.pref(y, y2))
  return jnp.mean(losses.dpo_loss(c.logp(params, w), c.logp(params, l), _sg(c.logp(anchor, w)),
                                  _sg(c.logp(anchor, l)), c.cfg.beta))


def _online_ipo_sampled(c, params, st, key, look_ahead):
  keys = jax.random.split(key, 6)
  y, y2 = c.draw(_sg(params), keys[0], c.B), c.draw(_sg(params), keys[1], c.B)
  return jnp.mean(losses.online_ipo_loss(c.logp(params, y), c.logp(params, y2), c.logp(st.ref, y),
                                         c.logp(st.ref, y2), c.pref(y, y2), c.cfg.beta))


def _online_ipo_exact(c, params, st, look_ahead):
  lp, ref = c.all_logp(params), c.all_logp(st.ref)
  pi = _sg(jnp.exp(lp))
  return jnp.sum(_col(pi) * _row(pi) * losses.online_ipo_loss(_col(lp), _row(lp), _col(ref), _row(ref), c.pm,
                                                              c.cfg.beta))


def _sppo_sampled(c, params, st, key, look_ahead):
  keys = jax.random.split(key, 6)
  anchor = st.anchors[0]
  y = c.draw(anchor, keys[0], c.B)
  opp = c.draw(anchor, keys[1], c.B * c.cfg.num_opponents).reshape(c.B, c.cfg.num_opponents, c.L)
  return jnp.mean(losses.sppo_loss(c.logp(params, y), _sg(c.logp(anchor, y)), win_rate(c.pref, y, opp), c.cfg.eta))


def _sppo_exact(c, params, st, look_ahead):
  lp, anc = c.all_logp(params), _sg(c.all_logp(st.anchors[0]))
  pi_a = jnp.exp(anc)
  return jnp.sum(pi_a * losses.sppo_loss(lp, anc, c.pm @ pi_a, c.cfg.eta))


def mixture_sample(c: Any, params: Any, ref: Any, key: jax.Array, mixture: Any, candidates: int) -> jax.Array:
  """``[B, L]`` draws from the sequence-level geometric mixture ``pi^(1-m) pi_ref^m / Z`` (``m = mixture``).

  Sampling-importance-resampling: ``candidates`` draws of ``pi`` per row, one
  kept with probability proportional to ``(pi_ref / pi)^m``. With one
  candidate it is ``pi`` itself; as candidates grow its law tends to the
  mixture (the self-normalised weights' bias is ``O(1 / candidates)``; Smith
  and Gelfand 1992). ``tests/test_lm_train.py`` measures the distance.
  """
  k1, k2 = jax.random.split(key)
  cand = c.draw(params, k1, c.B * candidates).reshape(c.B, candidates, c.L)
  flat = cand.reshape(c.B * candidates, c.L)
  logw = (mixture * (c.logp(ref, flat) - c.logp(params, flat))).reshape(c.B, candidates)
  pick = jax.random.categorical(k2, logw, axis=-1)
  return jnp.take_along_axis(cand, pick[:, None, None], axis=1)[:, 0]


def _nash_md_sampled(c, params, st, key, look_ahead):
  keys = jax.random.split(key, 6)
  cur = _sg(params)
  y = c.draw(cur, keys[0], c.B)
  y2 = mixture_sample(c, cur, st.ref, keys[1], nash_md_mixture(c.cfg), c.cfg.mixture_candidates)
  return jnp.mean(losses.nash_md_pg_loss(c.logp(params, y), c.logp(st.ref, y), c.pref(y, y2), c.cfg.beta))


def _nash_md_exact(c, params, st, look_ahead):
  lp, ref = c.all_logp(params), c.all_logp(st.ref)
  m = nash_md_mixture(c.cfg)
  mix = jax.nn.softmax((1 - m) * _sg(lp) + m * ref)
  return jnp.sum(_sg(jnp.exp(lp)) * losses.nash_md_pg_loss(lp, ref, c.pm @ mix, c.cfg.beta))


def _anchor_pairs(c, params, st, key):
  """Pairs from the anchor ``pi_t``, winner by the preference: ``(w, l)`` and their log-probabilities."""
  keys = jax.random.split(key, 6)
  anchor = st.anchors[0]
  y, y2 = c.draw(anchor, keys[0], c.B), c.draw(anchor, keys[1], c.B)
  w, l = preferred_pair(keys[2], y, y2, c.pref(y, y2))
  return w, l, c.logp(params, w), c.logp(params, l), c.logp(st.ref, w), c.logp(st.ref, l)


def _inpo_sampled(c, params, st, key, look_ahead):
  w, l, lw, ll, rw, rl = _anchor_pairs(c, params, st, key)
  anchor = st.anchors[0]
  return jnp.mean(losses.inpo_loss(lw, ll, rw, rl, _sg(c.logp(anchor, w)), _sg(c.logp(anchor, l)), c.cfg.eta,
                                   c.cfg.beta))


def _inpo_exact(c, params, st, look_ahead):
  lp, ref, anc = c.all_logp(params), c.all_logp(st.ref), _sg(c.all_logp(st.anchors[0]))
  pi_a = jnp.exp(anc)
  wts = _col(pi_a) * _row(pi_a) * c.pm
  return jnp.sum(wts * losses.inpo_loss(_col(lp), _row(lp), _col(ref), _row(ref), _col(anc), _row(anc), c.cfg.eta,
                                        c.cfg.beta))


def _mnpo_sampled(c, params, st, key, look_ahead):
  w, l, lw, ll, rw, rl = _anchor_pairs(c, params, st, key)
  aw = jnp.stack([c.logp(st.anchors[0], w), c.logp(st.anchors[1], w), rw], -1)
  al = jnp.stack([c.logp(st.anchors[0], l), c.logp(st.anchors[1], l), rl], -1)
  return jnp.mean(losses.mnpo_loss(lw, ll, _sg(aw), _sg(al), mnpo_weights(c.cfg), c.cfg.eta))


def _mnpo_exact(c, params, st, look_ahead):
  lp, ref = c.all_logp(params), c.all_logp(st.ref)
  anc, prev = _sg(c.all_logp(st.anchors[0])), _sg(c.all_logp(st.anchors[1]))
  pi_a = jnp.exp(anc)
  wts = _col(pi_a) * _row(pi_a) * c.pm
  anchors = jnp.stack([anc, prev, ref], -1)
  return jnp.sum(wts * losses.mnpo_loss(_col(lp), _row(lp), anchors[:, None, :], anchors[None, :, :],
                                        mnpo_weights(c.cfg), c.cfg.eta))


def _egpo_sampled(c, params, st, key, look_ahead):
  keys = jax.random.split(key, 6)
  cur = _sg(params)
  y, y2 = c.draw(cur, keys[0], c.B), c.draw(cur, keys[1], c.B)
  opp_params = cur if look_ahead is None else look_ahead
  opp = c.draw(opp_params, keys[3], c.B * c.cfg.num_opponents).reshape(c.B, c.cfg.num_opponents, c.L)
  return jnp.mean(losses.egpo_loss(c.logp(params, y), c.logp(params, y2), c.logp(st.ref, y), c.logp(st.ref, y2),
                                   win_rate(c.pref, y, opp), win_rate(c.pref, y2, opp), c.cfg.beta))


def _egpo_exact(c, params, st, look_ahead):
  lp, ref = c.all_logp(params), c.all_logp(st.ref)
  opp = _sg(jnp.exp(lp)) if look_ahead is None else _sg(jnp.exp(c.all_logp(look_ahead)))
  win = c.pm @ opp
  return jnp.mean(losses.egpo_loss(_col(lp), _row(lp), _col(ref), _row(ref), _col(win), _row(win), c.cfg.beta))


def _offline(loss: Callable) -> PolicyAlgorithm:
  return PolicyAlgorithm(_offline_sampled(loss), _pairs_exact(loss, False), offline=True, pair_loss=loss)


ALGORITHMS: dict[str, PolicyAlgorithm] = {
    "dpo": _offline(losses.dpo_loss),
    "ipo": _offline(losses.ipo_loss),
    "iterative_dpo": PolicyAlgorithm(_iterative_dpo_sampled, _pairs_exact(losses.dpo_loss, True), anchored=True),
    "online_ipo": PolicyAlgorithm(_online_ipo_sampled, _online_ipo_exact),
    "sppo": PolicyAlgorithm(_sppo_sampled, _sppo_exact, anchored=True),
    "nash_md": PolicyAlgorithm(_nash_md_sampled, _nash_md_exact),
    "inpo": PolicyAlgorithm(_inpo_sampled, _inpo_exact, anchored=True),
    "mnpo": PolicyAlgorithm(_mnpo_sampled, _mnpo_exact, anchored=True),
    "egpo": PolicyAlgorithm(_egpo_sampled, _egpo_exact, extragradient=True),
}


def train_update(alg: PolicyAlgorithm, cfg: Any, tx: optax.GradientTransformation, loss_fn: Callable, st: Any,
                 *args) -> tuple:
  """One optimizer step of an ``ALGORITHMS`` row, shared by the toy and the decoder trainers.

  ``loss_fn(params, *args, look_ahead=None)``; an extragradient row first
  looks ahead with a copy of the optimizer and then steps from ``theta`` with
  the look-ahead policy passed as ``look_ahead``. The anchors ``(pi_t,
  pi_{t-1})`` shift every ``cfg.refresh`` steps for an anchored row, every
  step otherwise.

  Returns:
    ``(state, {"loss"})``.
  """
  if alg.extragradient:
    g_half = jax.grad(loss_fn)(st.params, *args)
    upd, _ = tx.update(g_half, st.opt_state, st.params)
    half = optax.apply_updates(st.params, upd)
    loss, g = jax.value_and_grad(loss_fn)(st.params, *args, half)
  else:
    loss, g = jax.value_and_grad(loss_fn)(st.params, *args)
  upd, opt = tx.update(g, st.opt_state, st.params)
  params = optax.apply_updates(st.params, upd)
  nxt = st.step + 1
  refresh = (nxt % cfg.refresh == 0) if alg.anchored else jnp.asarray(True)
  a0 = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), params, st.anchors[0])
  a1 = jax.tree.map(lambda old0, old1: jnp.where(refresh, old0, old1), st.anchors[0], st.anchors[1])
  return st._replace(params=params, opt_state=opt, anchors=(a0, a1), step=nxt), {"loss": loss}


def make_trainer(model_config: T.TransformerConfig, train_config: TrainConfig, oracle: SequenceOracle,
                 preference: Optional[Callable] = None, mesh: Optional[jax.sharding.Mesh] = None) -> Trainer:
  """Builds the pure init/step/evaluate functions of a run (validating everything first).

  Args:
    model_config: the transformer's sizes.
    train_config: the algorithm and its hyperparameters.
    oracle: the ``SequenceOracle`` that defines the game (and evaluates).
    preference: ``P(y > y')`` used for training (default: the oracle's; a
      trained ``reward_model.PreferenceModel.probability`` swaps it in).
    mesh: a ``Mesh`` (``("data",)``, or ``("data", "fsdp")`` when the
      caller shards the parameters): every sampled batch is constrained to
      be sharded over all its axes, so the forward and backward passes split
      over the devices; the parameters keep the sharding of the state passed in.

  Raises:
    ValueError: naming the field, for an unknown algorithm, a bad
      hyperparameter, a vocabulary that differs from the oracle's, or a
      context too short for the response; before anything compiles.
  """
  model_config.validate()
  cfg = train_config.validate()
  if model_config.vocab_size != oracle.vocab_size:
    raise ValueError(f"model.vocab_size: {model_config.vocab_size} differs from the oracle's vocabulary "
                     f"{oracle.vocab_size} (the oracle needs {oracle.num_classes + 1} tokens or more)")
  if model_config.max_len < oracle.response_len + 1:
    raise ValueError(f"model.max_len: {model_config.max_len} cannot hold BOS + {oracle.response_len} response tokens")
  pref = preference or oracle.probability
  L = oracle.response_len
  n_resp = (oracle.vocab_size - 1) ** L
  if cfg.exact and n_resp > 4096:
    raise ValueError(f"train.exact: needs an enumerable response space (<= 4096 responses), got {n_resp}")
  # Enumerated for the exact metrics (and exact mode); large spaces train without them.
  responses = jnp.asarray(all_responses(oracle.vocab_size, L)) if n_resp <= 4096 else None
  graphdef = T.graphdef_of(model_config)
  tx = optax.adam(cfg.lr)
  beta, eta = cfg.beta, cfg.eta
  B = cfg.batch_size

  def logp(params, y):
    tok, mask = _with_bos(y)
    return T.sequence_logp(graphdef, params, tok, mask)

  if mesh is not None:
    batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(tuple(mesh.axis_names)))
    shard = lambda x: jax.lax.with_sharding_constraint(x, batch_sharding)
  else:
    shard = lambda x: x

  def draw(params, key, n):
    prompts = shard(jnp.full((n, 1), T.BOS, jnp.int32))
    return shard(T.sample(graphdef, params, key, prompts, L)[:, 1:])

  def all_logp(params):
    return logp(params, responses)

  params_init = _params_init(model_config, float(cfg.init_scale))

  @jax.jit
  def dataset(params, key):
    k1, k2, k3 = jax.random.split(key, 3)
    y, y2 = draw(params, k1, cfg.dataset_size), draw(params, k2, cfg.dataset_size)
    w, l = preferred_pair(k3, y, y2, pref(y, y2))
    return {"w": w, "l": l, "ref_w": logp(params, w), "ref_l": logp(params, l)}  # cached once

  def init(key: jax.Array) -> TrainState:
    k_model, k_data, k_run, k_bias = jax.random.split(key, 4)
    params = params_init(k_model, k_bias)
    if alg.offline and not cfg.exact:
      data = dataset(params, k_data)
    else:  # a one-row placeholder when there is no offline dataset (orbax refuses zero-size arrays)
      data = {"w": jnp.ones((1, L), jnp.int32), "l": jnp.ones((1, L), jnp.int32),
              "ref_w": jnp.zeros((1,)), "ref_l": jnp.zeros((1,))}
    return TrainState(params, tx.init(params), (params, params), params, data, jnp.zeros((), jnp.int32),
                      jax.random.key_data(k_run))

  pm = pref(responses[:, None, :], responses[None, :, :]) if cfg.exact else None  # [N, N]
  ctx = _Context(cfg, B, L, logp, draw, pref, shard, all_logp, pm)
  alg = ALGORITHMS[cfg.algorithm]
  if cfg.exact:
    def loss_fn(params, st, key, look_ahead=None):
      del key
      return alg.exact(ctx, params, st, look_ahead)
  else:
    def loss_fn(params, st, key, look_ahead=None):
      return alg.sampled(ctx, params, st, key, look_ahead)


  def step(st: TrainState) -> tuple[TrainState, dict]:
    key = jax.random.fold_in(jax.random.wrap_key_data(st.key), st.step)
    return train_update(alg, cfg, tx, loss_fn, st, st, key)

  def evaluate(st: TrainState) -> dict:
    if responses is None:
      raise ValueError(f"evaluate: {n_resp} responses are too many to enumerate for the exact metrics")
    lp, ref = all_logp(st.params), all_logp(st.ref)
    q = class_marginals(oracle, lp, responses)
    q_ref = class_marginals(oracle, ref, responses)
    return {"kl_ref": jnp.sum(jnp.exp(lp) * (lp - ref)),
            "win_rate_ref": q @ oracle.preference @ q_ref,
            "exploitability": exact_gap(oracle, lp, ref, responses, beta),
            "gap_unregularized": exact_gap(oracle, lp, ref, responses, 0.0),
            "class_marginals": q}

  return Trainer(init, step, evaluate, loss_fn, graphdef, model_config, cfg, oracle, responses)


@functools.lru_cache(maxsize=16)
def _params_init(model_config: T.TransformerConfig, init_scale: float) -> Callable:
  """``(k_model, k_bias) -> params``, jitted and shared by every trainer of the same model: run eagerly,
  the model's construction dispatches op by op (seconds on a CPU); compiled, it takes about a second."""
  def params_init(k_model, k_bias):
    _, params = T.init_model(model_config, k_model)
    return _random_bias(params, k_bias, init_scale)
  return jax.jit(params_init)
