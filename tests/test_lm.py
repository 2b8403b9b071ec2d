"""The Llama-family decoder against transformers + PyTorch, checkpoints, and config refusals.

Golden logits and greedy continuations come from ``tests/fixtures/lm/make_goldens.py``
(transformers 5.24 + torch 2.13 CPU, float32, eager attention) on weights that
``tests/fixtures/lm/tiny.py`` builds from seeds with numpy alone.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import save_file

from nashax import lm
from nashax.lm import checkpoint as ckpt
from nashax.lm.sampling import generate

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "fixtures", "lm"))
import tiny  # noqa: E402

GOLDENS = np.load(os.path.join(os.path.dirname(__file__), "fixtures", "lm", "goldens.npz"))


def write_tiny(path, family, seed=0):
  cfg = tiny.FAMILIES[family]
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(cfg, f)
  save_file(tiny.weights(cfg, seed), os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
  return path


@pytest.mark.parametrize("family", sorted(tiny.FAMILIES))
def test_logits_and_greedy_match_transformers(tmp_path, family):
  """Logits at every real token equal transformers' (goldens) to 1e-5, on a batch with a left-padded row;
  greedy decoding with the KV cache reproduces transformers' ``generate`` (goldens; llama3 rope and qwen3)."""
  model = lm.load_pretrained(write_tiny(str(tmp_path), family))
  ids, mask = tiny.inputs()
  z = np.asarray(lm.logits(model.graphdef, model.params, jnp.asarray(ids), jnp.asarray(mask)))
  gold = GOLDENS[f"{family}/logits"]
  real = mask.astype(bool)
  assert np.abs(gold[real]).max() > 1.0  # the goldens are not trivially small
  np.testing.assert_allclose(z[real], gold[real], rtol=1e-5, atol=1e-5)
  if family not in ("llama", "qwen3"):  # the cache path is shared; two families keep the compile count down
    return
  out = generate(model.graphdef, model.params, jax.random.key(0), jnp.asarray(ids), jnp.asarray(mask),
                 max_new_tokens=6, temperature=0.0)
  np.testing.assert_array_equal(np.asarray(out.tokens)[:, ids.shape[1]:], GOLDENS[f"{family}/greedy"])


def test_a_padded_row_equals_the_row_alone(tmp_path):
  """Left padding changes nothing at the real tokens (positions come from the mask): a second computation."""
  model = lm.load_pretrained(write_tiny(str(tmp_path), "qwen3"))
  ids, mask = tiny.inputs()
  z = lm.logits(model.graphdef, model.params, jnp.asarray(ids), jnp.asarray(mask))
  alone = lm.logits(model.graphdef, model.params, jnp.asarray(ids[:1, 3:]))
  np.testing.assert_allclose(np.asarray(z[0, 3:]), np.asarray(alone[0]), rtol=1e-5, atol=1e-5)


def test_save_load_round_trip_is_bit_exact_single_sharded_and_bf16(tmp_path):
  """load -> save -> load gives identical arrays (float32, a sharded index, and bfloat16 kept as bfloat16)."""
  src = write_tiny(str(tmp_path / "src"), "llama_untied_bias")
  a = lm.load_pretrained(src)
  ckpt.save_pretrained(str(tmp_path / "one"), a.config, a.params)
  ckpt.save_pretrained(str(tmp_path / "many"), a.config, a.params, max_shard_bytes=20_000)
  index = json.load(open(tmp_path / "many" / "model.safetensors.index.json"))
  assert len(set(index["weight_map"].values())) > 2
  for d in ("one", "many"):
    b = lm.load_pretrained(str(tmp_path / d))
    assert b.config == a.config
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), a.params, b.params)
  src_w = tiny.weights(tiny.FAMILIES["llama_untied_bias"])
  back = ckpt.params_to_hf(a.config, lm.load_pretrained(str(tmp_path / "many")).params)
  assert sorted(back) == sorted(src_w)
  for k in src_w:
    np.testing.assert_array_equal(back[k], src_w[k])
  h = lm.load_pretrained(src, dtype=jnp.bfloat16)
  ckpt.save_pretrained(str(tmp_path / "bf16"), h.config, h.params)
  assert json.load(open(tmp_path / "bf16" / "config.json"))["torch_dtype"] == "bfloat16"
  c = lm.load_pretrained(str(tmp_path / "bf16"))
  assert {x.dtype for x in jax.tree.leaves(c.params)} == {jnp.dtype(jnp.bfloat16)}
  jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x, np.float32), np.asarray(y, np.float32)),
               h.params, c.params)


@pytest.mark.parametrize("change, field", [
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_scaling.rope_type"),
    ({"model_type": "mistral", "sliding_window": 4096}, "sliding_window"),
    ({"model_type": "qwen2", "use_sliding_window": True, "sliding_window": 32}, "use_sliding_window"),
    ({"num_local_experts": 8}, "num_local_experts"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"model_type": "gpt2"}, "model_type"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"layer_types": ["full_attention", "sliding_attention"]}, "layer_types"),
])
def test_unsupported_config_fields_are_refused_by_name(change, field):
  """Each architecture the decoder lacks is a ValueError that names the config field."""
  d = dict(tiny.FAMILIES["llama"], **change)
  with pytest.raises(ValueError, match=field.replace(".", r"\.")):
    lm.DecoderConfig.from_hf(d)


def test_checkpoint_errors_name_the_tensor_or_file(tmp_path):
  """A missing tensor, a wrong shape, an unused tensor and a missing shard are refused in words."""
  cfg = tiny.FAMILIES["qwen2"]
  w = tiny.weights(cfg)
  for name, mutate, msg in (
      ("missing", lambda w: w.pop("model.norm.weight"), "model.norm.weight"),
      ("shape", lambda w: w.__setitem__("model.norm.weight", np.ones(7, np.float32)), "shape"),
      ("extra", lambda w: w.__setitem__("model.layers.9.mlp.up_proj.weight", np.ones(2, np.float32)), "does not use"),
  ):
    d = tmp_path / name
    os.makedirs(d)
    ww = dict(w)
    mutate(ww)
    json.dump(cfg, open(d / "config.json", "w"))
    save_file(ww, str(d / "model.safetensors"))
    with pytest.raises(ValueError, match=msg):
      lm.load_pretrained(str(d))
  d = tmp_path / "shards"
  os.makedirs(d)
  json.dump(cfg, open(d / "config.json", "w"))
  json.dump({"weight_map": {"model.norm.weight": "model-00001-of-00002.safetensors"}},
            open(d / "model.safetensors.index.json", "w"))
  with pytest.raises(ValueError, match="missing"):
    lm.load_pretrained(str(d))
  with pytest.raises(ValueError, match="not a folder"):
    lm.load_pretrained(str(tmp_path / "nowhere"))


def test_partition_rules_fit_the_mesh():
  """The rules split q/k/v and MLP kernels (fsdp x tensor) and drop axes a mesh lacks or that do not divide."""
  from jax.sharding import PartitionSpec as P
  mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("fsdp", "tensor"))
  assert ckpt.partition_spec("layers/0/self_attn/q_proj/kernel", (32, 32), mesh) == P("fsdp", "tensor")
  assert ckpt.partition_spec("layers/0/down_proj/kernel", (64, 32), mesh) == P("tensor", "fsdp")
  assert ckpt.partition_spec("norm/scale", (32,), mesh) == P(None)
  data_only = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
  assert ckpt.partition_spec("layers/0/up_proj/kernel", (32, 64), data_only) == P(None, None)


_MESH_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh
    sys.path.insert(0, {fixtures!r})
    import tiny
    from nashax import lm
    assert len(jax.devices()) == 8
    mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("fsdp", "tensor"))
    one = lm.load_pretrained({path!r})
    many = lm.load_pretrained({path!r}, mesh=mesh)
    q = many.params["layers"][0]["self_attn"]["q_proj"]["kernel"][...]
    assert q.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor"), q.sharding.spec
    assert len(q.addressable_shards) == 8 and q.addressable_shards[0].data.shape == (8, 16)
    ids, mask = tiny.inputs()
    a = np.asarray(lm.logits(one.graphdef, one.params, jnp.asarray(ids), jnp.asarray(mask)))
    b = np.asarray(jax.jit(lambda p, i, m: lm.logits(many.graphdef, p, i, m))(many.params, jnp.asarray(ids),
                                                                              jnp.asarray(mask)))
    real = mask.astype(bool)
    print(json.dumps({{"max_diff": float(np.abs(a[real] - b[real]).max())}}))
""")


def test_a_4x2_mesh_gives_the_logits_of_one_device(tmp_path):
  """Loading onto 8 host devices (fsdp 4 x tensor 2) by the partition rules: same logits as one device."""
  path = write_tiny(str(tmp_path / "m"), "llama")
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  script = _MESH_SCRIPT.format(fixtures=os.path.join(os.path.dirname(__file__), "fixtures", "lm"), path=path)
  r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert json.loads(r.stdout.strip().splitlines()[-1])["max_diff"] < 1e-5
