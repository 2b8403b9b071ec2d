"""Real language models (``nashax.lm``): Llama-family decoders in Flax NNX, checkpoints, tokenizers, sampling.

Needs the ``lm`` extra (``safetensors``, ``tokenizers``, ``jinja2``; GGUF files
also ``gguf``). Like ``nashax.policies``, it imports flax, so ``import nashax``
does not import it.
"""

from nashax.lm import config, decoder, layers
from nashax.lm.config import MODEL_TYPES, DecoderConfig
from nashax.lm.decoder import graphdef_of, hidden_states, init_decoder, logits, sequence_logp, token_logp

__all__ = [
    "MODEL_TYPES",
    "DecoderConfig",
    "config",
    "decoder",
    "graphdef_of",
    "hidden_states",
    "init_decoder",
    "layers",
    "logits",
    "sequence_logp",
    "token_logp",
]
