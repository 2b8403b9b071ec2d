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

__all__ = ["ALGORITHMS", "TrainConfig", "TrainState", "Trainer", "make_trainer"]

ALGORITHMS = ("dpo", "ipo", "iterative_dpo", "online_ipo", "sppo", "nash_md", "inpo", "mnpo", "egpo")
_ANCHORED = ("iterative_dpo", "sppo", "inpo", "mnpo")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Hyperparameters of a training run (frozen; ``validate`` names the bad field).

  Attributes:
    algorithm: one of ``ALGORITHMS``.
    beta: KL strength toward ``pi_ref`` (the game's), ``> 0``.
    eta: NLHF step size of SPPO / INPO / MNPO (``> 0``).
    mixture: Nash-MD's geometric-mixture weight on ``pi_ref``, in ``[0, 1]``.
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
  mixture: float = 0.125
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
    if not isinstance(self.mixture, numbers.Real) or not 0 <= self.mixture <= 1:
      raise ValueError(f"train.mixture: must lie in [0, 1], got {self.mixture!r}")
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


def make_trainer(model_config: T.TransformerConfig, train_config: TrainConfig, oracle: SequenceOracle,
                 preference: Optional[Callable] = None, mesh: Optional[jax.sharding.Mesh] = None) -> Trainer:
  """Builds the pure init/step/evaluate functions of a run (validating everything first).

  Args:
    model_config: the transformer's sizes.
    train_config: the algorithm and its hyperparameters.
    oracle: the ``SequenceOracle`` that defines the game (and evaluates).
    preference: ``P(y > y')`` used for training (default: the oracle's; a
      trained ``reward_model.PreferenceModel.probability`` swaps it in).
    mesh: a one-axis ``Mesh`` named ``"data"``: every sampled batch is
      constrained to be sharded along it (parameters stay replicated), so
      the forward and backward passes split over the devices.

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
    batch_sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
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
    won = jax.random.uniform(k3, (cfg.dataset_size,)) < oracle_or_model(y, y2)
    w, l = jnp.where(won[:, None], y, y2), jnp.where(won[:, None], y2, y)
    return {"w": w, "l": l, "ref_w": logp(params, w), "ref_l": logp(params, l)}  # cached once

  def init(key: jax.Array) -> TrainState:
    k_model, k_data, k_run, k_bias = jax.random.split(key, 4)
    params = params_init(k_model, k_bias)
    if cfg.algorithm in ("dpo", "ipo") and not cfg.exact:
      data = dataset(params, k_data)
    else:  # a one-row placeholder when there is no offline dataset (orbax refuses zero-size arrays)
      data = {"w": jnp.ones((1, L), jnp.int32), "l": jnp.ones((1, L), jnp.int32),
              "ref_w": jnp.zeros((1,)), "ref_l": jnp.zeros((1,))}
    return TrainState(params, tx.init(params), (params, params), params, data, jnp.zeros((), jnp.int32),
                      jax.random.key_data(k_run))

  def oracle_or_model(y, y2):
    return pref(y, y2)

  # ---- sampled losses ---------------------------------------------------------------------------
  def sampled_loss(params, st: TrainState, key, look_ahead=None):
    a = cfg.algorithm
    sg = jax.lax.stop_gradient
    keys = jax.random.split(key, 6)
    if a in ("dpo", "ipo"):
      idx = shard(jax.random.randint(keys[0], (B,), 0, cfg.dataset_size))
      w, l = shard(st.data["w"][idx]), shard(st.data["l"][idx])
      lw, ll = logp(params, w), logp(params, l)
      f = losses.dpo_loss if a == "dpo" else losses.ipo_loss
      return jnp.mean(f(lw, ll, st.data["ref_w"][idx], st.data["ref_l"][idx], beta))
    if a == "iterative_dpo":
      anchor = st.anchors[0]
      y, y2 = draw(anchor, keys[0], B), draw(anchor, keys[1], B)
      won = jax.random.uniform(keys[2], (B,)) < pref(y, y2)
      w, l = jnp.where(won[:, None], y, y2), jnp.where(won[:, None], y2, y)
      return jnp.mean(losses.dpo_loss(logp(params, w), logp(params, l), sg(logp(anchor, w)), sg(logp(anchor, l)),
                                      beta))
    if a == "online_ipo":
      y, y2 = draw(sg(params), keys[0], B), draw(sg(params), keys[1], B)
      return jnp.mean(losses.online_ipo_loss(logp(params, y), logp(params, y2), logp(st.ref, y), logp(st.ref, y2),
                                             pref(y, y2), beta))
    if a == "sppo":
      anchor = st.anchors[0]
      y = draw(anchor, keys[0], B)
      opp = draw(anchor, keys[1], B * cfg.num_opponents).reshape(B, cfg.num_opponents, L)
      win = jnp.mean(pref(jnp.broadcast_to(y[:, None], opp.shape), opp), axis=1)
      return jnp.mean(losses.sppo_loss(logp(params, y), sg(logp(anchor, y)), win, eta))
    if a == "nash_md":
      cur = sg(params)
      y = draw(cur, keys[0], B)
      m = cfg.mixture_candidates
      cand = draw(cur, keys[1], B * m).reshape(B, m, L)
      flat = cand.reshape(B * m, L)
      logw = (cfg.mixture * (logp(st.ref, flat) - logp(cur, flat))).reshape(B, m)
      pick = jax.random.categorical(keys[2], logw, axis=-1)
      y2 = jnp.take_along_axis(cand, pick[:, None, None], axis=1)[:, 0]
      return jnp.mean(losses.nash_md_pg_loss(logp(params, y), logp(st.ref, y), pref(y, y2), beta))
    if a in ("inpo", "mnpo"):
      anchor = st.anchors[0]
      y, y2 = draw(anchor, keys[0], B), draw(anchor, keys[1], B)
      won = jax.random.uniform(keys[2], (B,)) < pref(y, y2)
      w, l = jnp.where(won[:, None], y, y2), jnp.where(won[:, None], y2, y)
      lw, ll = logp(params, w), logp(params, l)
      rw, rl = logp(st.ref, w), logp(st.ref, l)
      if a == "inpo":
        return jnp.mean(losses.inpo_loss(lw, ll, rw, rl, sg(logp(anchor, w)), sg(logp(anchor, l)), eta, beta))
      aw = jnp.stack([logp(st.anchors[0], w), logp(st.anchors[1], w), rw], -1)
      al = jnp.stack([logp(st.anchors[0], l), logp(st.anchors[1], l), rl], -1)
      lam = jnp.concatenate([(1 - eta * beta) * jnp.asarray(cfg.mnpo_weights), jnp.asarray([eta * beta])])
      return jnp.mean(losses.mnpo_loss(lw, ll, sg(aw), sg(al), lam, eta))
    if a == "egpo":
      cur = sg(params)
      y, y2 = draw(cur, keys[0], B), draw(cur, keys[1], B)
      opp_params = cur if look_ahead is None else look_ahead
      opp = draw(opp_params, keys[3], B * cfg.num_opponents).reshape(B, cfg.num_opponents, L)
      win = lambda z: jnp.mean(pref(jnp.broadcast_to(z[:, None], opp.shape), opp), axis=1)
      return jnp.mean(losses.egpo_loss(logp(params, y), logp(params, y2), logp(st.ref, y), logp(st.ref, y2),
                                       win(y), win(y2), beta))
    raise AssertionError(a)

  # ---- exact (population) losses ---------------------------------------------------------------
  pm = pref(responses[:, None, :], responses[None, :, :]) if cfg.exact else None  # [N, N]

  def exact_loss(params, st: TrainState, key, look_ahead=None):
    del key
    a = cfg.algorithm
    sg = jax.lax.stop_gradient
    lp = all_logp(params)
    ref = all_logp(st.ref)
    anc = sg(all_logp(st.anchors[0]))
    pi_a, pi_cur, pi_ref = jnp.exp(anc), sg(jnp.exp(lp)), jnp.exp(ref)
    col, row = lambda v: v[:, None], lambda v: v[None, :]
    if a in ("dpo", "ipo", "iterative_dpo"):
      base, r = (pi_ref, ref) if a != "iterative_dpo" else (pi_a, anc)
      wts = col(base) * row(base) * pm * (1 - jnp.eye(pm.shape[0]))
      f = losses.ipo_loss if a == "ipo" else losses.dpo_loss
      return jnp.sum(wts * f(col(lp), row(lp), col(r), row(r), beta))
    if a == "online_ipo":
      return jnp.sum(col(pi_cur) * row(pi_cur) * losses.online_ipo_loss(col(lp), row(lp), col(ref), row(ref), pm, beta))
    if a == "sppo":
      return jnp.sum(pi_a * losses.sppo_loss(lp, anc, pm @ pi_a, eta))
    if a == "nash_md":
      mix = jax.nn.softmax((1 - cfg.mixture) * sg(lp) + cfg.mixture * ref)
      return jnp.sum(pi_cur * losses.nash_md_pg_loss(lp, ref, pm @ mix, beta))
    if a == "inpo":
      wts = col(pi_a) * row(pi_a) * pm
      return jnp.sum(wts * losses.inpo_loss(col(lp), row(lp), col(ref), row(ref), col(anc), row(anc), eta, beta))
    if a == "mnpo":
      prev = sg(all_logp(st.anchors[1]))
      wts = col(pi_a) * row(pi_a) * pm
      anchors = jnp.stack([anc, prev, ref], -1)
      lam = jnp.concatenate([(1 - eta * beta) * jnp.asarray(cfg.mnpo_weights), jnp.asarray([eta * beta])])
      return jnp.sum(wts * losses.mnpo_loss(col(lp), row(lp), anchors[:, None, :], anchors[None, :, :], lam, eta))
    if a == "egpo":
      opp = pi_cur if look_ahead is None else sg(jnp.exp(all_logp(look_ahead)))
      win = pm @ opp
      return jnp.mean(losses.egpo_loss(col(lp), row(lp), col(ref), row(ref), col(win), row(win), beta))
    raise AssertionError(a)

  loss_fn = exact_loss if cfg.exact else sampled_loss

  def step(st: TrainState) -> tuple[TrainState, dict]:
    key = jax.random.fold_in(jax.random.wrap_key_data(st.key), st.step)
    if cfg.algorithm == "egpo":  # extragradient: look ahead with a copy of the optimizer, then step from theta
      g_half = jax.grad(loss_fn)(st.params, st, key)
      upd, _ = tx.update(g_half, st.opt_state, st.params)
      half = optax.apply_updates(st.params, upd)
      loss, g = jax.value_and_grad(loss_fn)(st.params, st, key, half)
    else:
      loss, g = jax.value_and_grad(loss_fn)(st.params, st, key)
    upd, opt = tx.update(g, st.opt_state, st.params)
    params = optax.apply_updates(st.params, upd)
    nxt = st.step + 1
    refresh = (nxt % cfg.refresh == 0) if cfg.algorithm in _ANCHORED else jnp.asarray(True)
    anchors = jax.tree.map(lambda new, a0, a1: (jnp.where(refresh, new, a0), jnp.where(refresh, a0, a1)),
                           params, st.anchors[0], st.anchors[1])
    anchors = (jax.tree.map(lambda t: t[0], anchors, is_leaf=lambda x: isinstance(x, tuple)),
               jax.tree.map(lambda t: t[1], anchors, is_leaf=lambda x: isinstance(x, tuple)))
    return st._replace(params=params, opt_state=opt, anchors=anchors, step=nxt), {"loss": loss}

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
