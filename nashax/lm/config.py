"""``DecoderConfig``: the shape of a Llama-family decoder, read from a Hugging Face ``config.json``.

Supported ``model_type`` values and what each adds to the plain Llama block
(pre-norm RMSNorm, grouped-query attention with rotary embeddings, SwiGLU MLP):

- ``llama``: optional ``attention_bias`` (q, k, v and o) and ``mlp_bias``; rotary
  frequencies plain or with Llama-3's ``llama3`` scaling (Llama-3.1/3.2, SmolLM2 uses plain);
- ``qwen2``: a bias on q, k and v (not o); no sliding window;
- ``qwen3``: an RMSNorm over each head of q and k before the rotary embedding,
  and an explicit ``head_dim``;
- ``mistral``: as Llama, with ``sliding_window`` null.

A field whose value the decoder does not implement (another rope type, an
active sliding window, mixture-of-experts, another activation) raises a
``ValueError`` naming the field, so that no checkpoint is loaded into the
wrong architecture silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Optional

__all__ = ["DecoderConfig", "MODEL_TYPES"]

MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")
_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                  "mistral": "MistralForCausalLM"}
# Fields that, when present with a value other than the one given, describe something this decoder lacks.
_MOE_FIELDS = ("num_local_experts", "num_experts", "n_routed_experts", "moe_intermediate_size")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
  """Sizes and options of a Llama-family decoder (frozen).

  Attributes:
    model_type: one of ``MODEL_TYPES``.
    vocab_size, hidden_size, intermediate_size, num_layers: sizes.
    num_heads, num_kv_heads, head_dim: query heads, key/value heads (grouped-query
      attention: ``num_heads`` is a multiple of ``num_kv_heads``) and the head size.
    rms_norm_eps: the RMSNorm epsilon.
    rope_theta: the rotary base.
    rope_scaling: ``None`` or the ``llama3`` parameters as a sorted tuple of
      ``(name, value)`` pairs (``factor``, ``low_freq_factor``, ``high_freq_factor``,
      ``original_max_position_embeddings``).
    max_position_embeddings: the longest sequence the model was trained for.
    tie_word_embeddings: the unembedding is the embedding's transpose.
    qkv_bias, o_bias, mlp_bias: biases (``qwen2``: q, k, v; ``llama`` with
      ``attention_bias``: all four attention projections).
    qk_norm: ``qwen3``'s per-head RMSNorm on queries and keys.
    bos_token_id, eos_token_id, pad_token_id: as the config states them (the
      tokenizer and ``generation_config.json`` have the final word on EOS).
  """

  model_type: str
  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10_000.0
  rope_scaling: Optional[tuple] = None
  max_position_embeddings: int = 2048
  tie_word_embeddings: bool = False
  qkv_bias: bool = False
  o_bias: bool = False
  mlp_bias: bool = False
  qk_norm: bool = False
  bos_token_id: Any = None
  eos_token_id: Any = None
  pad_token_id: Any = None

  def __post_init__(self):
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                 "head_dim", "max_position_embeddings"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name}: must be a positive integer, got {v!r}")
    if self.model_type not in MODEL_TYPES:
      raise ValueError(f"model_type: {self.model_type!r} is not supported (supported: {', '.join(MODEL_TYPES)})")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(f"num_key_value_heads: {self.num_kv_heads} does not divide num_attention_heads={self.num_heads}")
    if self.head_dim % 2:
      raise ValueError(f"head_dim: must be even for rotary embeddings, got {self.head_dim}")
    if not (isinstance(self.rms_norm_eps, (int, float)) and not isinstance(self.rms_norm_eps, bool)
            and 0 < self.rms_norm_eps < 1):
      raise ValueError(f"rms_norm_eps: must be in (0, 1), got {self.rms_norm_eps!r}")
    if not (isinstance(self.rope_theta, (int, float)) and not isinstance(self.rope_theta, bool) and self.rope_theta > 1):
      raise ValueError(f"rope_theta: must be a number > 1, got {self.rope_theta!r}")

  @property
  def group_size(self) -> int:
    """Query heads per key/value head."""
    return self.num_heads // self.num_kv_heads

  def rope_scaling_dict(self) -> Optional[dict]:
    return None if self.rope_scaling is None else dict(self.rope_scaling)

  # ---------------------------------------------------------------- reading
  @classmethod
  def from_hf(cls, d: dict) -> "DecoderConfig":
    """Reads a Hugging Face ``config.json`` (as a dict); refuses fields it does not implement, by name."""
    if not isinstance(d, dict):
      raise ValueError(f"config: expected a dict from config.json, got {type(d).__name__}")
    mt = d.get("model_type")
    if mt not in MODEL_TYPES:
      raise ValueError(f"model_type: {mt!r} is not supported (supported: {', '.join(MODEL_TYPES)})")
    for f in _MOE_FIELDS:
      if d.get(f):
        raise ValueError(f"{f}: mixture-of-experts models are not supported (got {d[f]!r})")
    act = d.get("hidden_act", d.get("hidden_activation", "silu"))
    if act != "silu":
      raise ValueError(f"hidden_act: only 'silu' (SwiGLU) is supported, got {act!r}")
    _check_sliding_window(d, mt)
    for key in ("num_attention_heads", "hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"):
      if key not in d:
        raise ValueError(f"{key}: missing from config.json")
    heads = d["num_attention_heads"]
    kv = d.get("num_key_value_heads") or heads
    head_dim = d.get("head_dim") or (d["hidden_size"] // heads if isinstance(heads, int) and heads else 0)
    theta, scaling = _rope(d)
    return cls(
        model_type=mt, vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
        intermediate_size=d["intermediate_size"], num_layers=d["num_hidden_layers"], num_heads=heads,
        num_kv_heads=kv, head_dim=head_dim, rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)), rope_theta=theta,
        rope_scaling=scaling, max_position_embeddings=d.get("max_position_embeddings", 2048),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        qkv_bias=mt == "qwen2" or (mt in ("llama", "qwen3") and bool(d.get("attention_bias", False))),
        o_bias=mt in ("llama", "qwen3") and bool(d.get("attention_bias", False)),
        mlp_bias=mt == "llama" and bool(d.get("mlp_bias", False)), qk_norm=mt == "qwen3",
        bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"), pad_token_id=d.get("pad_token_id"))

  @classmethod
  def from_pretrained(cls, path: str) -> "DecoderConfig":
    """Reads ``path/config.json`` (``path`` a model folder or the file itself)."""
    f = os.path.join(path, "config.json") if os.path.isdir(path) else path
    if not os.path.exists(f):
      raise ValueError(f"path: no config.json at {f!r}")
    try:
      with open(f) as fh:
        d = json.load(fh)
    except json.JSONDecodeError as e:
      raise ValueError(f"path: {f} is not valid JSON ({e})") from None
    return cls.from_hf(d)

  def to_hf(self, dtype: str = "float32") -> dict:
    """The ``config.json`` dict that transformers reads back as this architecture."""
    d = {
        "architectures": [_ARCHITECTURES[self.model_type]], "model_type": self.model_type,
        "vocab_size": self.vocab_size, "hidden_size": self.hidden_size,
        "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
        "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads, "head_dim": self.head_dim,
        "hidden_act": "silu", "rms_norm_eps": self.rms_norm_eps, "rope_theta": self.rope_theta,
        "rope_scaling": None if self.rope_scaling is None else {"rope_type": "llama3", **dict(self.rope_scaling)},
        "max_position_embeddings": self.max_position_embeddings, "tie_word_embeddings": self.tie_word_embeddings,
        "bos_token_id": self.bos_token_id, "eos_token_id": self.eos_token_id, "pad_token_id": self.pad_token_id,
        "torch_dtype": dtype,
    }
    if self.model_type in ("llama", "qwen3"):
      d["attention_bias"] = self.o_bias
    if self.model_type == "llama":
      d["mlp_bias"] = self.mlp_bias
    if self.model_type == "mistral":
      d["sliding_window"] = None
    if self.model_type in ("qwen2", "qwen3"):
      d["use_sliding_window"] = False
    return d

  def flops_per_token(self, seq_len: int, *, training: bool = True) -> float:
    """Model FLOPs per token: ``2 N + 4 n_layer T n_head d_head`` forward (times 3 for training).

    ``N`` counts the matrix parameters that multiply each token (attention and
    MLP projections and the unembedding; embeddings and norms excluded); the
    second term is the attention scores ``QK^T`` and the weighted sum of values
    over a context of ``T`` positions (averaged causally it is half of that;
    PaLM's MFU convention counts it in full).
    """
    h, d = self.hidden_size, self.head_dim
    attn = h * self.num_heads * d * 2 + h * self.num_kv_heads * d * 2
    mlp = 3 * h * self.intermediate_size
    n = self.num_layers * (attn + mlp) + h * self.vocab_size
    fwd = 2 * n + 4 * self.num_layers * seq_len * self.num_heads * d
    return float(3 * fwd if training else fwd)


def _check_sliding_window(d: dict, mt: str) -> None:
  if mt in ("qwen2", "qwen3"):
    if d.get("use_sliding_window"):
      raise ValueError("use_sliding_window: sliding-window attention is not supported")
  elif d.get("sliding_window") is not None:
    raise ValueError(f"sliding_window: sliding-window attention is not supported (got {d['sliding_window']!r}; "
                     "null means full attention)")
  types = d.get("layer_types")
  if types and any(t != "full_attention" for t in types):
    raise ValueError(f"layer_types: only 'full_attention' layers are supported, got {sorted(set(types))}")


def _rope(d: dict) -> tuple[float, Optional[tuple]]:
  """``(rope_theta, llama3 scaling or None)`` from either ``rope_theta``/``rope_scaling`` or v5's ``rope_parameters``."""
  params = d.get("rope_parameters")
  scaling = d.get("rope_scaling")
  theta = d.get("rope_theta")
  if isinstance(params, dict):
    theta = params.get("rope_theta", theta)
    scaling = params if params.get("rope_type", params.get("type", "default")) != "default" else scaling
  theta = 10_000.0 if theta is None else theta
  if not isinstance(theta, (int, float)) or isinstance(theta, bool):
    raise ValueError(f"rope_theta: must be a number, got {theta!r}")
  if scaling is None:
    return float(theta), None
  if not isinstance(scaling, dict):
    raise ValueError(f"rope_scaling: expected a dict or null, got {scaling!r}")
  kind = scaling.get("rope_type", scaling.get("type", "default"))
  if kind == "default":
    return float(theta), None
  if kind != "llama3":
    raise ValueError(f"rope_scaling.rope_type: {kind!r} is not supported (supported: default, llama3)")
  names = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
  out = []
  for n in names:
    v = scaling.get(n)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
      raise ValueError(f"rope_scaling.{n}: must be a positive number, got {v!r}")
    out.append((n, int(v) if n == "original_max_position_embeddings" else float(v)))
  if dict(out)["high_freq_factor"] <= dict(out)["low_freq_factor"]:
    raise ValueError("rope_scaling.high_freq_factor: must exceed low_freq_factor")
  return float(theta), tuple(out)
