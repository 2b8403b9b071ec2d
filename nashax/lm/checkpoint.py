"""Hugging Face checkpoints: ``load_pretrained`` / ``save_pretrained`` with safetensors, and partition rules.

A checkpoint folder holds ``config.json`` and either ``model.safetensors`` or
``model.safetensors.index.json`` with the shards it names. Tensors keep their
stored dtype unless ``dtype`` says otherwise (bfloat16 checkpoints load as
bfloat16). With a ``mesh``, each tensor is placed on the devices by the
partition rules as it is read, one device's slice at a time, so a model
larger than one device never exists whole on one device.

Partition rules are a table of ``(regex, PartitionSpec)`` over parameter paths
such as ``layers/3/self_attn/q_proj/kernel``; the first match wins. Mesh axes
are ``data`` (batch only: parameters are replicated over it), ``fsdp``
(parameters and optimizer state split) and ``tensor`` (Megatron-style: the
column-parallel q/k/v/gate/up kernels split on their output, the row-parallel
o/down kernels on their input). An axis the mesh lacks, or one that does not
divide the dimension, is dropped for that dimension (the dimension is then
replicated), so one table serves every mesh.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from nashax.lm.config import DecoderConfig
from nashax.lm.decoder import graphdef_of

__all__ = ["DEFAULT_RULES", "Pretrained", "load_pretrained", "save_pretrained", "params_from_hf",
           "params_to_hf", "hf_name", "partition_spec", "param_shardings", "shard_params"]

DEFAULT_RULES: tuple = (
    (r"embed_tokens/embedding$", P("tensor", "fsdp")),
    (r"self_attn/(q|k|v)_proj/kernel$", P("fsdp", "tensor")),
    (r"self_attn/(q|k|v)_proj/bias$", P("tensor")),
    (r"self_attn/o_proj/kernel$", P("tensor", "fsdp")),
    (r"(gate|up)_proj/kernel$", P("fsdp", "tensor")),
    (r"(gate|up)_proj/bias$", P("tensor")),
    (r"down_proj/kernel$", P("tensor", "fsdp")),
    (r"lm_head/kernel$", P("fsdp", "tensor")),
    (r".*", P()),
)

_IGNORED = re.compile(r"(rotary_emb\.inv_freq|\.masked_bias|attn\.bias)$")


class Pretrained(NamedTuple):
  """What ``load_pretrained`` returns: the config and the split model."""

  config: DecoderConfig
  graphdef: Any
  params: Any


def hf_name(path: Sequence) -> tuple[str, bool]:
  """``(Hugging Face tensor name, transposed?)`` of an nnx parameter path such as ``('layers', 0, 'up_proj', 'kernel')``."""
  p = [str(x) for x in path]
  leaf = p[-1]
  hf_leaf = {"kernel": "weight", "bias": "bias", "scale": "weight", "embedding": "weight"}[leaf]
  if p[0] == "lm_head":
    return f"lm_head.{hf_leaf}", leaf == "kernel"
  if p[0] == "layers":
    i, mod = p[1], p[2:-1]
    if mod[0] in ("gate_proj", "up_proj", "down_proj"):
      mod = ["mlp"] + mod
    return "model.layers." + ".".join([i] + mod + [hf_leaf]), leaf == "kernel"
  return "model." + ".".join(p[:-1] + [hf_leaf]), leaf == "kernel"


def _flat(tree) -> dict:
  return {tuple(k.key if hasattr(k, "key") else k.idx for k in path): v
          for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def partition_spec(path: str, shape: Sequence[int], mesh: Mesh, rules: Sequence = DEFAULT_RULES) -> P:
  """The spec of parameter ``path`` (``/``-joined) on ``mesh``: the first matching rule, fitted to the mesh."""
  for pattern, spec in rules:
    if re.search(pattern, path):
      break
  else:
    spec = P()
  out = []
  for dim, axes in enumerate(tuple(spec) + (None,) * (len(shape) - len(spec))):
    if dim >= len(shape):
      break
    names = (axes,) if isinstance(axes, str) else tuple(axes or ())
    names = tuple(a for a in names if a in mesh.shape)
    size = int(np.prod([mesh.shape[a] for a in names])) if names else 1
    out.append(None if not names or shape[dim] % size else (names[0] if len(names) == 1 else names))
  return P(*out)


def param_shardings(params: Any, mesh: Mesh, rules: Sequence = DEFAULT_RULES) -> Any:
  """A pytree of ``NamedSharding`` for ``params`` (arrays or shape structs) by the rules."""
  def one(path, x):
    # DictKey / SequenceKey parts; nnx Variables add a trailing GetAttrKey("value"), which is not a name.
    name = "/".join(str(k.key if hasattr(k, "key") else k.idx) for k in path if not hasattr(k, "name"))
    return NamedSharding(mesh, partition_spec(name, x.shape, mesh, rules))
  return jax.tree_util.tree_map_with_path(one, params)


def shard_params(params: Any, mesh: Mesh, rules: Sequence = DEFAULT_RULES) -> Any:
  """``params`` placed on ``mesh`` by the partition rules."""
  return jax.device_put(params, param_shardings(params, mesh, rules))


def _build(config: DecoderConfig, shapes: Mapping[str, tuple], read: Callable, dtype, mesh, rules, remat, where):
  """Fills the abstract model's parameters by name; ``read(name, index_or_None)`` returns an array."""
  gd, abstract = graphdef_of(config, dtype=jnp.float32 if dtype is None else dtype, remat=remat)
  pure = abstract.to_pure_dict()
  flat = _flat(pure)
  wanted = {}
  for path, leaf in flat.items():
    name, transposed = hf_name(path)
    if name == "lm_head.weight" and config.tie_word_embeddings:
      continue
    if name not in shapes:
      raise ValueError(f"{where}: tensor {name!r} is missing (needed by the {config.model_type} config)")
    want = tuple(leaf.shape)
    got = tuple(shapes[name])
    if (got[::-1] if transposed else got) != want:
      raise ValueError(f"{where}: tensor {name!r} has shape {got}, the config needs "
                       f"{want[::-1] if transposed else want}")
    wanted[path] = (name, transposed)
  needed = {n for n, _ in wanted.values()} | ({"lm_head.weight"} if config.tie_word_embeddings else set())
  extra = sorted(n for n in shapes if n not in needed and not _IGNORED.search(n))
  if extra:
    raise ValueError(f"{where}: tensors the {config.model_type} config does not use: {extra[:5]}"
                     + (f" and {len(extra) - 5} more" if len(extra) > 5 else ""))

  def cast(x):
    return x if dtype is None else x.astype(dtype)

  values = {}
  for path, (name, transposed) in wanted.items():
    if mesh is None:
      x = jnp.asarray(read(name, None))
      values[path] = cast(x.T if transposed else x)
    else:
      shape = tuple(shapes[name])[::-1] if transposed else tuple(shapes[name])
      spec = partition_spec("/".join(map(str, path)), shape, mesh, rules)

      def cb(index, name=name, transposed=transposed):
        if transposed:
          return cast(jnp.asarray(read(name, (index[1], index[0]))).T)
        return cast(jnp.asarray(read(name, index)))

      values[path] = jax.make_array_from_callback(shape, NamedSharding(mesh, spec), cb)
  nested = pure
  for path, v in values.items():
    d = nested
    for k in path[:-1]:
      d = d[k]
    d[path[-1]] = v
  nnx.replace_by_pure_dict(abstract, nested)
  return gd, abstract


def params_from_hf(config: DecoderConfig, tensors: Mapping[str, Any], *, dtype=None, mesh: Optional[Mesh] = None,
                   rules: Sequence = DEFAULT_RULES, remat: bool = False):
  """``(graphdef, params)`` from an in-memory state dict in Hugging Face names and layouts.

  Args:
    config: the decoder's config.
    tensors: ``{name: array}``, e.g. ``model.layers.0.self_attn.q_proj.weight`` as ``[out, in]``.
    dtype: cast every parameter to it (default: keep each tensor's dtype).
    mesh, rules: place each parameter on ``mesh`` by the partition rules.
  """
  shapes = {k: tuple(np.shape(v)) for k, v in tensors.items()}

  def read(name, index):
    x = tensors[name]
    return x if index is None else x[tuple(index)]
  return _build(config, shapes, read, dtype, mesh, rules, remat, "tensors")


def _weight_files(path: str) -> list[str]:
  index = os.path.join(path, "model.safetensors.index.json")
  single = os.path.join(path, "model.safetensors")
  if os.path.exists(index):
    try:
      with open(index) as f:
        weight_map = json.load(f)["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
      raise ValueError(f"path: {index} is not a valid safetensors index ({e!r})") from None
    files = sorted(set(weight_map.values()))
    for f in files:
      if not os.path.exists(os.path.join(path, f)):
        raise ValueError(f"path: shard {f!r} named by {index} is missing")
    return [os.path.join(path, f) for f in files]
  if os.path.exists(single):
    return [single]
  raise ValueError(f"path: {path!r} has neither model.safetensors nor model.safetensors.index.json")


def load_pretrained(path: str, *, dtype=None, mesh: Optional[Mesh] = None, rules: Sequence = DEFAULT_RULES,
                    remat: bool = False) -> Pretrained:
  """Loads a local Hugging Face folder: ``config.json`` and safetensors weights (single file or sharded index).

  Args:
    path: the folder.
    dtype: cast the parameters to it (default: the stored dtype; bfloat16 stays bfloat16).
    mesh: place each tensor on this mesh by ``rules`` as it is read.
    rules: partition rules (``DEFAULT_RULES``).
    remat: rematerialise the blocks in the backward pass (``jax.checkpoint``).

  Returns:
    ``Pretrained(config, graphdef, params)``.
  """
  if not isinstance(path, (str, os.PathLike)) or not os.path.isdir(path):
    raise ValueError(f"path: {path!r} is not a folder")
  config = DecoderConfig.from_pretrained(path)
  from safetensors import safe_open

  handles, owner, shapes = [], {}, {}
  try:
    for f in _weight_files(path):
      try:
        h = safe_open(f, framework="flax")
      except Exception as e:  # safetensors raises its own error types for damaged files
        raise ValueError(f"path: {f} is not a readable safetensors file ({e})") from None
      handles.append(h)
      for k in h.keys():
        owner[k] = h
        shapes[k] = tuple(h.get_slice(k).get_shape())

    def read(name, index):
      if index is None:
        return owner[name].get_tensor(name)
      return owner[name].get_slice(name)[tuple(index)]
    gd, params = _build(config, shapes, read, dtype, mesh, rules, remat, f"path {path}")
  finally:
    for h in handles:
      if hasattr(h, "__exit__"):
        h.__exit__(None, None, None)
  return Pretrained(config, gd, params)


def params_to_hf(config: DecoderConfig, params: Any) -> dict:
  """``{Hugging Face name: numpy array}`` in Hugging Face layouts (kernels transposed back)."""
  out = {}
  for path, x in _flat(params.to_pure_dict() if hasattr(params, "to_pure_dict") else params).items():
    name, transposed = hf_name(path)
    a = np.asarray(jax.device_get(x))
    out[name] = np.ascontiguousarray(a.T if transposed else a)
  return out


def save_pretrained(path: str, config: DecoderConfig, params: Any, *, max_shard_bytes: Optional[int] = None,
                    generation_config: Optional[dict] = None) -> str:
  """Writes ``config.json`` and safetensors weights that ``load_pretrained`` and transformers read back.

  Args:
    path: the folder (created).
    config, params: the model.
    max_shard_bytes: split the weights into shards of at most this many bytes
      with a ``model.safetensors.index.json`` (default: one file).
    generation_config: written as ``generation_config.json`` if given.

  Returns:
    ``path``.
  """
  from safetensors.flax import save_file

  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    raise ValueError(f"path: cannot create {path!r} ({e.strerror})") from None
  tensors = params_to_hf(config, params)
  dtypes = {str(v.dtype) for v in tensors.values()}
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(config.to_hf(dtype=dtypes.pop() if len(dtypes) == 1 else "float32"), f, indent=2)
  if generation_config is not None:
    with open(os.path.join(path, "generation_config.json"), "w") as f:
      json.dump(generation_config, f, indent=2)
  meta = {"format": "pt"}
  as_jax = {k: jnp.asarray(v) for k, v in tensors.items()}
  if max_shard_bytes is None:
    save_file(as_jax, os.path.join(path, "model.safetensors"), metadata=meta)
    return path
  shards, cur, size = [], {}, 0
  for k in sorted(as_jax):
    nbytes = tensors[k].nbytes
    if cur and size + nbytes > max_shard_bytes:
      shards.append(cur)
      cur, size = {}, 0
    cur[k] = as_jax[k]
    size += nbytes
  shards.append(cur)
  weight_map = {}
  for i, shard in enumerate(shards):
    fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    save_file(shard, os.path.join(path, fname), metadata=meta)
    weight_map.update({k: fname for k in shard})
  with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
    json.dump({"metadata": {"total_size": int(sum(v.nbytes for v in tensors.values()))},
               "weight_map": weight_map}, f, indent=2)
  return path
