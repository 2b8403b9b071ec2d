"""Generation: the cache against full passes, EOS stops, batching, top-p, and the two geometric mixtures."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nashax import lm
from nashax.lm.sampling import generate, generate_mixture, nucleus_logits

CFG = lm.DecoderConfig(model_type="llama", vocab_size=6, hidden_size=16, intermediate_size=32, num_layers=2,
                       num_heads=2, num_kv_heads=1, head_dim=8, max_position_embeddings=32)


def _model(seed, scale=12.0):
  g, p = lm.init_decoder(CFG, jax.random.key(seed))
  # Larger weights than the 0.02 init, so that the distributions are far from uniform.
  return g, jax.tree.map(lambda x: x * scale if x.ndim == 2 else x, p)


PROMPTS = jnp.array([[0, 0, 3, 4], [5, 1, 2, 3], [0, 4, 4, 1]])
MASK = jnp.array([[0, 0, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]])


def test_sampled_logp_equals_sequence_logp_and_rows_stop_at_eos():
  """Second computation: ``sequence_logp`` by a full pass over the sampled tokens; EOS rows are masked after."""
  g, p = _model(0)
  eos = (2,)
  out = generate(g, p, jax.random.key(3), PROMPTS, MASK, max_new_tokens=8, eos_ids=eos)
  lp = lm.sequence_logp(g, p, out.tokens, out.response_mask, out.attention_mask)
  np.testing.assert_allclose(np.asarray(out.logp), np.asarray(lp), rtol=1e-5, atol=1e-5)
  new = np.asarray(out.tokens)[:, 4:]
  resp = np.asarray(out.response_mask)[:, 4:]
  stopped = 0
  for row, m in zip(new, resp):
    hits = np.flatnonzero(row == 2)
    if hits.size:
      stopped += 1
      assert m[:hits[0] + 1].all() and not m[hits[0] + 1:].any()
      assert (row[hits[0] + 1:] == 0).all()
    else:
      assert m.all()
  assert stopped >= 1


def test_a_batch_gives_the_tokens_of_one_row_at_a_time_and_the_cache_matches_full_passes():
  """Greedy decoding of a padded batch = each row decoded alone (same shapes, so one compile) = teacher-forced
  argmax of one full forward pass without a cache over the generated sequence."""
  g, p = _model(1)
  out = generate(g, p, jax.random.key(0), PROMPTS, MASK, max_new_tokens=5, temperature=0.0)
  for i in range(3):
    one = generate(g, p, jax.random.key(0), PROMPTS[i:i + 1], MASK[i:i + 1], max_new_tokens=5, temperature=0.0)
    np.testing.assert_array_equal(np.asarray(one.tokens)[0], np.asarray(out.tokens)[i])
  z = lm.logits(g, p, out.tokens, out.attention_mask)
  np.testing.assert_array_equal(np.asarray(jnp.argmax(z[:, 3:-1], -1)), np.asarray(out.tokens)[:, 4:])


def test_nucleus_keeps_the_smallest_set_reaching_top_p():
  """Hand-computed: p = (0.5, 0.3, 0.15, 0.05), top_p = 0.7 keeps {0, 1}, renormalised to (0.625, 0.375)."""
  z = jnp.log(jnp.array([[0.15, 0.5, 0.05, 0.3]]))
  q = np.exp(np.asarray(nucleus_logits(z, jnp.float32(1.0), jnp.float32(0.7))))
  np.testing.assert_allclose(q, [[0, 0.625, 0, 0.375]], atol=1e-6)
  q = np.exp(np.asarray(nucleus_logits(z, jnp.float32(1.0), jnp.float32(0.01))))
  np.testing.assert_allclose(q, [[0, 1, 0, 0]], atol=1e-6)


@pytest.mark.parametrize("kw, match", [({"max_new_tokens": 0}, "max_new_tokens"), ({"top_p": 0.0}, "top_p"),
                                       ({"temperature": -1.0}, "temperature"), ({"eos_ids": (99,)}, "eos_ids"),
                                       ({"max_new_tokens": 40}, "max_position_embeddings")])
def test_bad_arguments_are_refused_by_name(kw, match):
  g, p = _model(0)
  args = dict(max_new_tokens=3)
  args.update(kw)
  with pytest.raises(ValueError, match=match):
    generate(g, p, jax.random.key(0), PROMPTS, MASK, **args)
  with pytest.raises(ValueError, match="left-padded"):
    generate(g, p, jax.random.key(0), PROMPTS, jnp.array([[1, 1, 1, 0]] * 3), max_new_tokens=3)


def _enumerate(g, p, prompt, length):
  """``[V^L]`` exact log-probabilities of every response of ``length`` tokens (full passes, no cache)."""
  ys = np.array(list(itertools.product(range(CFG.vocab_size), repeat=length)), np.int32)
  toks = jnp.concatenate([jnp.broadcast_to(prompt, (len(ys), prompt.shape[1])), jnp.asarray(ys)], 1)
  mask = jnp.concatenate([jnp.zeros((len(ys), prompt.shape[1]), jnp.int32), jnp.ones(ys.shape, jnp.int32)], 1)
  per_token = lm.token_logp(g, p, toks)[:, prompt.shape[1] - 1:]
  return ys, per_token, lm.sequence_logp(g, p, toks, mask)


def test_token_level_mixture_against_the_sequence_level_mixture_on_an_enumerable_toy():
  """The token-level sampler draws from prod_t softmax((1-m) log pi_t + m log pi_ref_t), computed here by
  enumerating all 6^3 responses with full passes; its sample frequencies match that law, its reported
  log-density is exact, and it differs from the sequence-level pi^(1-m) pi_ref^m / Z by a TV distance
  that the test measures (printed; 0.06 here) and requires to be visible (> 0.01)."""
  pol, ref = _model(2, 10.0), _model(5, 10.0)
  prompt = jnp.array([[1, 3]])
  m = 0.5
  ys, tp, lp = _enumerate(*pol, prompt, 3)
  _, tr, lr = _enumerate(*ref, prompt, 3)
  # Token level, from per-position log-softmaxes over the vocabulary at each enumerated prefix.
  toks = jnp.concatenate([jnp.broadcast_to(prompt, (len(ys), 2)), jnp.asarray(ys)], 1)
  zp = jax.nn.log_softmax(lm.logits(*pol, toks)[:, 1:4], -1)
  zr = jax.nn.log_softmax(lm.logits(*ref, toks)[:, 1:4], -1)
  step = jax.nn.log_softmax((1 - m) * zp + m * zr, -1)
  log_q_tok = np.asarray(jnp.sum(jnp.take_along_axis(step, jnp.asarray(ys)[:, :, None], -1)[..., 0], -1))
  log_q_seq = np.asarray(jax.nn.log_softmax((1 - m) * lp + m * lr))
  q_tok, q_seq = np.exp(log_q_tok), np.exp(log_q_seq)
  tv = 0.5 * np.abs(q_tok - q_seq).sum()
  print(f"TV(token-level, sequence-level geometric mixture) = {tv:.4f} at m = {m}")
  assert tv > 0.01
  n = 4096
  out = generate_mixture(pol, ref, jax.random.key(7), jnp.broadcast_to(prompt, (n, 2)), jnp.ones((n, 2), jnp.int32),
                         mixture=m, max_new_tokens=3)
  drawn = np.asarray(out.tokens)[:, 2:]
  idx = (drawn * np.array([36, 6, 1])).sum(1)
  np.testing.assert_allclose(np.asarray(out.sample_logp), log_q_tok[idx], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(out.logp), np.asarray(lp)[idx], rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.asarray(out.token_logp[1]).sum(-1), np.asarray(lr)[idx], rtol=1e-4, atol=1e-4)
  freq = np.bincount(idx, minlength=len(ys)) / n
  # The sampling error of a TV distance over 216 cells at n = 4096 is about sqrt(216 / (2 pi n)) ~ 0.09, so
  # frequencies cannot tell the two mixtures apart (TV 0.004), but they do reject either model alone.
  tv = lambda q: 0.5 * np.abs(freq - q).sum()
  print(f"TV(sample frequencies, token-level law) = {tv(q_tok):.3f}; to the policy's law "
        f"{tv(np.exp(np.asarray(lp))):.3f}, to the reference's {tv(np.exp(np.asarray(lr))):.3f}")
  assert tv(q_tok) < 0.12
  assert tv(q_tok) < tv(np.exp(np.asarray(lp))) - 0.05 and tv(q_tok) < tv(np.exp(np.asarray(lr))) - 0.05
  # m = 0 is plain generation from the policy.
  zero = generate_mixture(pol, ref, jax.random.key(7), jnp.broadcast_to(prompt, (n, 2)), jnp.ones((n, 2), jnp.int32),
                          mixture=0.0, max_new_tokens=3)
  idx0 = (np.asarray(zero.tokens)[:, 2:] * np.array([36, 6, 1])).sum(1)
  np.testing.assert_allclose(np.asarray(zero.sample_logp), np.asarray(lp)[idx0], rtol=1e-4, atol=1e-4)
