"""nashax.policies: the transformer, oracles, preference models, train steps, sharding, checkpoints."""

import contextlib
import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games, solvers
from nashax.policies import experiment as E
from nashax.policies import oracles as O
from nashax.policies import reward_model as RM
from nashax.policies import train as TR
from nashax.policies import transformer as T
from nashax.solvers import nlhf
from _utils import x64

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = T.TransformerConfig(vocab_size=5, num_layers=2, num_heads=2, embed_dim=16, max_len=6)


def test_kv_cache_decoding_equals_the_full_forward_pass():
  """Logits computed one position at a time through the cache equal the causal full-sequence pass."""
  g, p = T.init_model(SMALL, jax.random.key(0))
  tokens = jax.random.randint(jax.random.key(1), (3, 6), 1, 5).at[:, 0].set(T.BOS)
  full = T.logits(g, p, tokens)
  model = nashax_merge(g, p)
  caches = T._empty_caches(SMALL, 3, 6, jnp.float32)
  for i in range(6):
    z, caches = model(tokens[:, i:i + 1], jnp.full((3, 1), i), caches)
    np.testing.assert_allclose(z[:, 0, 1:], full[:, i, 1:], atol=1e-5)


def nashax_merge(g, p):
  from flax import nnx
  return nnx.merge(g, p)


def test_sequence_logp_is_a_distribution_and_sampling_follows_it():
  """Over all 4^2 responses the probabilities sum to 1, and 40,000 samples match them (4.5 standard errors)."""
  g, p = T.init_model(SMALL, jax.random.key(2))
  R = jnp.asarray(O.all_responses(5, 2))
  tok, mask = TR._with_bos(R)
  lp = np.asarray(T.sequence_logp(g, p, tok, mask))
  assert abs(np.exp(lp).sum() - 1) < 1e-5
  n = 40_000
  s = np.asarray(jax.jit(lambda k: T.sample(g, p, k, jnp.zeros((n, 1), jnp.int32), 2))(jax.random.key(3)))
  assert (s[:, 0] == T.BOS).all() and (s[:, 1:] >= 1).all()
  emp = np.bincount((s[:, 1] - 1) * 4 + (s[:, 2] - 1), minlength=16) / n
  pi = np.exp(lp)
  assert (np.abs(emp - pi) <= 4.5 * np.sqrt(pi * (1 - pi) / n) + 1e-9).all()


@pytest.mark.parametrize("field,value,match", [
    ("embed_dim", 17, "model.embed_dim: 17 is not divisible"),
    ("embed_dim", 30, "model.embed_dim: the head size 15 must be even"),
    ("vocab_size", 1, "model.vocab_size"),
    ("num_layers", 0, "model.num_layers"),
])
def test_transformer_config_is_validated(field, value, match):
  with pytest.raises(ValueError, match=match):
    dataclasses.replace(SMALL, **{field: value}).validate()


@x64
def test_exact_gap_equals_the_class_game_and_vanishes_at_the_equilibrium():
  """The sequence gap equals the closed form over all sequences (best responses by log-sum-exp over the 16
  responses, not classes); for within-class conditionals equal to pi_ref's it is the K-class game's gap;
  at pi_ref tilted by the class game's regularised equilibrium (solvers.regularized_nash, an iterative
  solver) it is 0; any other within-class shape only adds KL."""
  o = O.cyclic_oracle(3, 5, 2)
  R = jnp.asarray(O.all_responses(5, 2))
  c = np.asarray(o.classes(R))
  rng = np.random.default_rng(0)
  ref = rng.dirichlet(np.ones(len(R)))
  q_ref = np.bincount(c, weights=ref, minlength=3)
  q = rng.dirichlet(np.ones(3))
  pi = ref * q[c] / q_ref[c]
  game = o.class_game(0.3, q_ref)
  gap = float(O.exact_gap(o, jnp.log(pi), jnp.log(ref), R, 0.3))
  assert abs(gap - float(nashax.metrics(game, (q, q)).duality_gap)) < 1e-12
  star = np.asarray(solvers.regularized_nash(game).policy)
  pi_star = ref * star[c] / q_ref[c]
  assert abs(float(O.exact_gap(o, jnp.log(pi_star), jnp.log(ref), R, 0.3))) < 1e-9
  # An arbitrary policy against the sequence-level closed form, best responses over all 16 sequences:
  # max_pi' V(pi', pi) - min_pi'' V(pi, pi'') = 2 beta log sum_y ref(y) e^{(P q)_{c(y)}/beta} + 2 beta KL - 1.
  arb = rng.dirichlet(np.ones(len(R)))
  u = (np.asarray(o.preference) @ np.bincount(c, weights=arb, minlength=3))[c]
  brute = 2 * 0.3 * np.log(np.sum(ref * np.exp(u / 0.3))) + 2 * 0.3 * np.sum(arb * np.log(arb / ref)) - 1
  assert abs(float(O.exact_gap(o, jnp.log(arb), jnp.log(ref), R, 0.3)) - brute) < 1e-12
  other = pi * rng.uniform(0.5, 1.5, len(R))
  other = other / np.bincount(c, weights=other, minlength=3)[c] * q[c]  # same class marginals
  assert float(O.exact_gap(o, jnp.log(other), jnp.log(ref), R, 0.3)) > gap
  assert abs(float(O.exact_gap(o, jnp.log(pi), jnp.log(ref), R, 0.0))
             - float(nashax.metrics(o.class_game(None), (q, q)).duality_gap)) < 1e-12


def test_oracle_refuses_a_vocabulary_too_small():
  with pytest.raises(ValueError, match="vocab_size: the oracle has 5 classes and needs at least 5 response tokens"):
    O.cyclic_oracle(5, 5, 2)
  with pytest.raises(ValueError, match="num_classes"):
    O.cyclic_oracle(4, 9, 2)


def test_general_preference_model_learns_the_cycle_bradley_terry_cannot():
  """Trained on noisy comparisons of a 3-class cycle, the skew-symmetric model reproduces the cyclic class
  preferences (within 0.1) while any Bradley-Terry model is transitive: its class matrix has no cycle."""
  o = O.cyclic_oracle(3, 5, 2, margin=0.4, noise=0.05)
  R = jnp.asarray(O.all_responses(5, 2))
  c = np.asarray(o.classes(R))
  true = np.asarray(o.preference)

  def class_matrix(m):
    p = np.asarray(m.probability(R[:, None, :], R[None, :, :]))
    return np.array([[p[np.ix_(c == a, c == b)].mean() for b in range(3)] for a in range(3)])

  gpm = class_matrix(RM.fit("general", o, jax.random.key(0), num_steps=1500))
  assert np.abs(gpm - true).max() < 0.1
  bt = class_matrix(RM.fit("bradley_terry", o, jax.random.key(0), num_steps=1500))
  beats = bt > 0.5
  cyc = beats[0, 1] and beats[1, 2] and beats[2, 0] or beats[1, 0] and beats[2, 1] and beats[0, 2]
  assert not cyc
  with pytest.raises(ValueError, match="kind"):
    RM.fit("plackett", o, jax.random.key(0))


@contextlib.contextmanager
def _compilations():
  seen = []
  listener = lambda name, *a, **k: seen.append(name) if "backend_compile" in name else None
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield seen
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


BASE = {"model": {"vocab_size": 4, "num_layers": 1, "num_heads": 2, "embed_dim": 16, "max_len": 4},
        "oracle": {"num_classes": 3, "response_len": 2},
        "train": {"algorithm": "nash_md", "batch_size": 8, "num_steps": 6},
        "run": {"eval_every": 2, "checkpoint_every": 2}}


@pytest.mark.parametrize("patch,match", [
    ({"train": {"algorithm": "nash_mdd"}}, r"train.algorithm: unknown algorithm 'nash_mdd'"),
    ({"train": {"algorithm": "sppo", "beta": -0.1}}, r"train.beta: must be a finite number > 0"),
    ({"model": {"vocab_size": 3}}, r"model.vocab_size: the oracle has 3 classes and needs at least 3 response tokens"),
    ({"train": {"algorithm": "sppo", "lrr": 1}}, r"train.lrr: unknown key"),
    ({"run": {"preference": "pairrm"}}, r"run.preference"),
    ({"oracle": {"num_classes": 3, "response_len": 9}}, r"oracle.response_len: .* responses"),
])
def test_bad_config_is_refused_before_compiling(patch, match, tmp_path):
  d = json.loads(json.dumps(BASE))
  for k, v in patch.items():
    d[k].update(v)
  with _compilations() as seen:
    with pytest.raises(ValueError, match=match):
      E.run_experiment(d, str(tmp_path / "out"), progress=False, log=lambda s: None)
  assert not seen
  assert not (tmp_path / "out").exists()


def _one_token(alg, **kw):
  """A one-layer, one-token model (vocab = BOS + 5 responses, one class per response) and its trainer."""
  o = O.cyclic_oracle(5, 6, 1)
  mc = T.TransformerConfig(vocab_size=6, num_layers=1, num_heads=2, embed_dim=16, max_len=2)
  tc = TR.TrainConfig(alg, beta=0.4, exact=True, init_scale=1.0, **kw)
  tr = TR.make_trainer(mc, tc, o)
  st = tr.init(jax.random.key(7))
  # Move the policy off pi_ref (params = anchors != ref), so that no term vanishes trivially.
  bumped = TR._random_bias(st.params, jax.random.key(8), 1.0)
  st = st._replace(params=bumped, anchors=(bumped, bumped))
  return o, tr, st


def _bias(tree):
  out = []
  jax.tree_util.tree_map_with_path(
      lambda p, x: out.append(x) if "unembed" in str(p) and "bias" in str(p) else None, tree)
  return out[0]


def _policy(tr, params):
  return jax.nn.log_softmax(T.next_token_logits(tr.graphdef, params, jnp.zeros((1, 1), jnp.int32))[0, 1:])


def _tabular_state(lp):
  return nlhf.State(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32), jnp.exp(lp), lp, (), jnp.zeros((), jnp.int32),
                    jax.random.key(0))


@x64
@pytest.mark.parametrize("alg", ["nash_md", "sppo", "inpo", "egpo"])
def test_one_token_train_step_equals_the_tabular_update(alg):
  """One-layer, one-token model, exact expectations: the train loss's gradient in the output logits (the
  unembedding bias) moved with the tabular preconditioner gives a model whose policy is the tabular solver's
  next iterate (nashax.solvers.nlhf, the NLHF issue's updates): Nash-MD (natural gradient, mixture eta beta),
  SPPO (grad / (2 pi_t)), INPO (grad / (2 pi_t); MNPO: test_one_token_mnpo_step_is_td_mnpo), EGPO's half step
  (eta beta K / 4 grad)."""
  eta = 0.6
  o, tr, st = _one_token(alg, eta=eta)  # Nash-MD's mixture defaults to eta * beta, the tabular weight
  lp = _policy(tr, st.params)
  pi = jnp.exp(lp)
  ref = _policy(tr, st.ref)
  g = o.class_game(0.4, np.exp(np.asarray(ref)))
  grad = _bias(jax.jit(jax.grad(tr.loss))(st.params, st, jax.random.key(0)))[1:]
  if alg == "nash_md":
    expected, move = solvers.nash_md(eta).step(g, _tabular_state(lp)).log_probs, eta * grad / pi
  elif alg == "sppo":
    g = g.replace(beta=None, log_ref=None)
    expected, move = solvers.sppo(eta, iterate="last").step(g, _tabular_state(lp)).log_probs, grad / (2 * pi)
  elif alg == "inpo":
    expected, move = solvers.inpo(eta).step(g, _tabular_state(lp)).log_probs, grad / (2 * pi)
  else:
    expected, move = nlhf._mirror(nlhf._view(g), lp, g.preference @ pi, eta), eta * 0.4 * 5 / 4 * grad
  new_params = jax.tree_util.tree_map_with_path(
      lambda p, x: x.at[1:].add(-move) if "unembed" in str(p) and "bias" in str(p) else x, st.params)
  # The model's parameters are float32: 1e-6 is a few float32 ulps here, while the update moves the
  # log-probabilities by ~0.1-1 (a wrong loss or preconditioner misses by that much).
  assert float(jnp.max(jnp.abs(_policy(tr, new_params) - lp))) > 1e-2
  np.testing.assert_allclose(_policy(tr, new_params), expected, atol=1e-6)


@x64
def test_one_token_mnpo_step_is_td_mnpo():
  """One-token model, exact expectations, distinct anchors pi_t != pi_{t-1} and weights (0.6, 0.4): one step of
  the trainer's mnpo_loss (pairs from pi_t, anchors (pi_t, pi_{t-1}, pi_ref); Wu, Huang et al. 2025, eq. 17 and
  TD-MNPO) moved with the tabular preconditioner grad / (2 pi_t) is the default tabular step (win rates against
  pi_t) to 1e-6; the history reading (win rates averaged over pi_t, pi_{t-1}, eq. 10) differs from it by
  > 1e-3, so the test tells the two readings apart."""
  eta, lam = 0.6, (0.6, 0.4)
  o, tr, st = _one_token("mnpo", eta=eta, mnpo_weights=lam)
  prev = TR._random_bias(st.params, jax.random.key(9), 1.0)
  st = st._replace(anchors=(st.params, prev))
  lp, lp_prev = _policy(tr, st.params), _policy(tr, prev)
  pi = jnp.exp(lp)
  g = o.class_game(0.4, np.exp(np.asarray(_policy(tr, st.ref))))
  hist = jnp.stack([lp_prev, lp_prev])  # the step shifts in log pi_t: anchors (pi_t, pi_{t-1})
  rates = jnp.stack([g.preference @ jnp.exp(lp_prev)] * 2)
  tab = _tabular_state(lp)._replace(aux=(hist, rates))
  td = solvers.mnpo(eta, lam).step(g, tab).log_probs
  averaged = solvers.mnpo(eta, lam, win_rates="history").step(g, tab).log_probs
  grad = _bias(jax.jit(jax.grad(tr.loss))(st.params, st, jax.random.key(0)))[1:]
  new_params = jax.tree_util.tree_map_with_path(
      lambda p, x: x.at[1:].add(-grad / (2 * pi)) if "unembed" in str(p) and "bias" in str(p) else x, st.params)
  got = _policy(tr, new_params)
  assert float(jnp.max(jnp.abs(got - lp))) > 1e-2
  np.testing.assert_allclose(got, td, atol=1e-6)
  assert float(jnp.max(jnp.abs(got - averaged))) > 1e-3


def _tiny(alg="nash_md", **kw):
  o = O.cyclic_oracle(3, 4, 2)
  mc = T.TransformerConfig(vocab_size=4, num_layers=1, num_heads=2, embed_dim=16, max_len=4)
  return TR.make_trainer(mc, TR.TrainConfig(alg, batch_size=16, **kw), o)


def test_resume_from_an_orbax_checkpoint_is_bit_for_bit(tmp_path):
  """A run stopped after 4 of 8 steps and resumed from its checkpoint writes the same metrics and the same
  final parameters, bit for bit, as an uninterrupted run (the uninterrupted run is the reference)."""
  cfg = json.loads(json.dumps(BASE))
  cfg["train"]["num_steps"] = 8
  cfg["train"]["algorithm"] = ["egpo"]
  quiet = dict(progress=False, log=lambda s: None)
  E.run_experiment(cfg, str(tmp_path / "full"), **quiet)
  E.run_experiment(cfg, str(tmp_path / "cut"), stop_after=4, **quiet)
  assert not os.path.exists(tmp_path / "cut" / "egpo" / "checkpoints" / "8")
  msgs = []
  E.run_experiment(cfg, str(tmp_path / "cut"), progress=False, log=msgs.append)
  assert any("resuming from step 4" in m for m in msgs)
  exp = E.experiment_from_dict(cfg)
  for alg in ("egpo",):
    assert (tmp_path / "full" / alg / "metrics.csv").read_text() == (tmp_path / "cut" / alg / "metrics.csv").read_text()
    tr = TR.make_trainer(exp.model, exp.trains[0], exp.build_oracle())
    like = tr.init(jax.random.key(0))
    from nashax.policies.checkpoint import Checkpoints
    a = Checkpoints(str(tmp_path / "full" / alg / "checkpoints")).restore(8, like)
    b = Checkpoints(str(tmp_path / "cut" / alg / "checkpoints")).restore(8, like)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
      np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  msgs = []
  E.run_experiment(cfg, str(tmp_path / "cut"), progress=False, log=msgs.append)
  assert all("already finished" in m for m in msgs if "nashax train" in m)


def test_sharded_over_8_cpu_devices_equals_one_device():
  """Data-parallel training over a Mesh of 8 host devices gives the parameters of a one-device run after
  5 steps (float tolerance), for a sampled algorithm (Nash-MD) and the offline DPO dataset."""
  code = """
import jax, numpy as np
from nashax.policies import oracles as O, train as TR, transformer as T
assert jax.device_count() == 8
o = O.cyclic_oracle(3, 4, 2)
mc = T.TransformerConfig(vocab_size=4, num_layers=1, num_heads=2, embed_dim=16, max_len=4)
mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
rep = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
for alg in ("nash_md", "dpo"):
  cfg = TR.TrainConfig(alg, batch_size=32, dataset_size=64)
  one = TR.make_trainer(mc, cfg, o)
  many = TR.make_trainer(mc, cfg, o, mesh=mesh)
  a = one.init(jax.random.key(0))
  b = jax.device_put(many.init(jax.random.key(0)), rep)
  sa, sb = jax.jit(one.step), jax.jit(many.step)
  for _ in range(5):
    a, _ = sa(a)
    b, _ = sb(b)
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5)
  assert len(jax.tree.leaves(b.params)[0].sharding.device_set) == 8
print("ok")
"""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-3000:]


def test_train_command_writes_metrics_and_plot(tmp_path):
  """`nashax train` on a tiny config: exit 0, metrics.csv per algorithm with finite exact metrics, the plot."""
  from nashax import cli

  cfg = tmp_path / "tiny.toml"
  cfg.write_text("""
[model]
vocab_size = 4
num_layers = 1
num_heads = 2
embed_dim = 16
max_len = 4
[oracle]
num_classes = 3
response_len = 2
[train]
algorithm = ["online_ipo", "inpo"]
batch_size = 8
num_steps = 4
[run]
eval_every = 2
checkpoint_every = 4
""")
  assert cli.main(["train", str(cfg), "--out", str(tmp_path / "out"), "--quiet"]) == 0
  for alg in ("online_ipo", "inpo"):
    rows = (tmp_path / "out" / alg / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,loss,kl_ref,win_rate_ref,exploitability,gap_unregularized" and len(rows) == 4
  assert os.path.getsize(tmp_path / "out" / "comparison.png") > 1000
  assert cli.main(["train", str(tmp_path / "missing.toml")]) == 2


def test_import_nashax_does_not_import_flax_nnx():
  r = subprocess.run([sys.executable, "-c", "import sys, nashax; print('flax.nnx' in sys.modules)"],
                     cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert r.stdout.strip() == "False", r.stderr


def test_sample_and_logp_vmap_over_keys_and_parameters():
  """``sample`` vmaps over PRNG keys (each slice equals its own call) and ``sequence_logp`` over stacked
  parameters (each slice equals the unbatched call)."""
  g, p = T.init_model(SMALL, jax.random.key(0))
  keys = jax.random.split(jax.random.key(1), 3)
  prompts = jnp.zeros((2, 1), jnp.int32)
  batched = jax.jit(jax.vmap(lambda k: T.sample(g, p, k, prompts, 3)))(keys)
  assert batched.shape == (3, 2, 4)
  for i in range(3):
    np.testing.assert_array_equal(batched[i], T.sample(g, p, keys[i], prompts, 3))
  _, p2 = T.init_model(SMALL, jax.random.key(5))
  stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), p, p2)
  tok, mask = TR._with_bos(batched[0, :, 1:])
  lps = jax.vmap(lambda q: T.sequence_logp(g, q, tok, mask))(stacked)
  np.testing.assert_allclose(lps[1], T.sequence_logp(g, p2, tok, mask), atol=1e-6)


def test_policy_algorithms_are_the_catalogue_rows_tagged_policy():
  """Each policy-training algorithm but the offline DPO and IPO is a tabular solver of the catalogue (tag
  "policy"), and every such solver has a policy algorithm."""
  assert set(TR.ALGORITHMS) - {"dpo", "ipo"} == set(solvers.catalogue.factories(tag="policy"))
  assert {n for n, a in TR.ALGORITHMS.items() if a.offline} == {"dpo", "ipo"}
