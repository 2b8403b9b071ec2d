"""Real language models (``nashax.lm``): Llama-family decoders in Flax NNX, checkpoints, tokenizers, sampling.

Needs the ``lm`` extra (``safetensors``, ``tokenizers``, ``jinja2``; GGUF files
also ``gguf``). Like ``nashax.policies``, it imports flax, so ``import nashax``
does not import it.

- ``config``: ``DecoderConfig`` from a Hugging Face ``config.json`` (llama, qwen2, qwen3, mistral);
- ``decoder``: the NNX decoder and its pure functions ``logits``, ``sequence_logp``, ``hidden_states``;
- ``checkpoint``: ``load_pretrained`` / ``save_pretrained`` (safetensors, sharded index, partition rules);
- ``sampling``: ``generate`` (KV cache, EOS stops, temperature, top-p) and ``generate_mixture``;
- ``layers``: attention, rotary embeddings and RMSNorm, shared with ``nashax.policies.transformer``.
"""

from nashax.lm import checkpoint, config, decoder, layers, sampling
from nashax.lm.checkpoint import (DEFAULT_RULES, Pretrained, load_pretrained, param_shardings, params_from_hf,
                                  params_to_hf, save_pretrained, shard_params)
from nashax.lm.config import MODEL_TYPES, DecoderConfig
from nashax.lm.decoder import (graphdef_of, hidden_states, init_decoder, logits, num_params, sequence_logp,
                               token_logp)
from nashax.lm.sampling import Generation, generate, generate_mixture

__all__ = [
    "DEFAULT_RULES",
    "MODEL_TYPES",
    "DecoderConfig",
    "Generation",
    "Pretrained",
    "checkpoint",
    "config",
    "decoder",
    "generate",
    "generate_mixture",
    "graphdef_of",
    "hidden_states",
    "init_decoder",
    "layers",
    "load_pretrained",
    "logits",
    "num_params",
    "param_shardings",
    "params_from_hf",
    "params_to_hf",
    "sampling",
    "save_pretrained",
    "sequence_logp",
    "shard_params",
    "token_logp",
]
