"""Live parity with transformers + PyTorch (``pytest -m parity``; needs the ``parity`` extra).

The default suite compares against committed goldens; these tests regenerate
the comparison live, and check that transformers reads what
``save_pretrained`` writes.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from nashax import lm  # noqa: E402
from nashax.lm.sampling import generate  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "lm"))
import tiny  # noqa: E402
from test_lm import write_tiny  # noqa: E402

pytestmark = pytest.mark.parity


def _hf(path, dtype=torch.float32):
  m = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager")
  return m.eval()


@pytest.mark.parametrize("family", sorted(tiny.FAMILIES))
def test_live_logits_and_greedy(tmp_path, family):
  """nashax and transformers on the same folder: logits to 3e-5 (float32 sums in another order: logits are
  O(10), so this is a few ulps of their scale), greedy continuations equal."""
  path = write_tiny(str(tmp_path), family, seed=3)
  ids, mask = tiny.inputs(seed=4)
  pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
  with torch.no_grad():
    m = _hf(path)
    gold = m(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(pos)).logits
    greedy = m.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False,
                        max_new_tokens=5, min_new_tokens=5, pad_token_id=0, eos_token_id=None).numpy()
  model = lm.load_pretrained(path)
  z = np.asarray(lm.logits(model.graphdef, model.params, jnp.asarray(ids), jnp.asarray(mask)))
  real = mask.astype(bool)
  np.testing.assert_allclose(z[real], gold.numpy()[real], rtol=1e-5, atol=3e-5)
  out = generate(model.graphdef, model.params, jax.random.key(0), jnp.asarray(ids), jnp.asarray(mask),
                 max_new_tokens=5, temperature=0.0)
  np.testing.assert_array_equal(np.asarray(out.tokens)[:, ids.shape[1]:], greedy[:, ids.shape[1]:])


@pytest.mark.parametrize("family", ["llama_untied_bias", "qwen3"])
def test_transformers_reads_what_save_pretrained_writes(tmp_path, family):
  """A random nashax decoder saved by ``save_pretrained`` (float32 and bfloat16, one file and sharded) loads in
  transformers with the same logits."""
  cfg = lm.DecoderConfig.from_hf(tiny.FAMILIES[family])
  g, p = lm.init_decoder(cfg, jax.random.key(1))
  p = jax.tree.map(lambda x: x * 20 if x.ndim == 2 else x, p)
  ids, mask = tiny.inputs(seed=5)
  pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
  ours = np.asarray(lm.logits(g, p, jnp.asarray(ids), jnp.asarray(mask)))
  real = mask.astype(bool)
  for name, kw in (("one", {}), ("sharded", {"max_shard_bytes": 30_000})):
    d = str(tmp_path / name)
    lm.save_pretrained(d, cfg, p, **kw)
    with torch.no_grad():
      z = _hf(d)(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask),
                 position_ids=torch.tensor(pos)).logits.numpy()
    np.testing.assert_allclose(ours[real], z[real], rtol=1e-4, atol=1e-4)
  pb = jax.tree.map(lambda x: x.astype(jnp.bfloat16), p)
  d = str(tmp_path / "bf16")
  lm.save_pretrained(d, cfg, pb)
  hf = _hf(d, dtype=None)
  assert next(hf.parameters()).dtype == torch.bfloat16
  sd = hf.state_dict()
  for name, a in lm.params_to_hf(cfg, pb).items():
    np.testing.assert_array_equal(np.asarray(a, np.float32), sd[name].float().numpy())
