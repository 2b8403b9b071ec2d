"""Real language models (``nashax.lm``): Llama-family decoders in Flax NNX, checkpoints, tokenizers, sampling.

Needs the ``lm`` extra (``safetensors``, ``tokenizers``, ``jinja2``; GGUF files
also ``gguf``). Like ``nashax.policies``, it imports flax, so ``import nashax``
does not import it.

- ``config``: ``DecoderConfig`` from a Hugging Face ``config.json`` (llama, qwen2, qwen3, mistral);
- ``decoder``: the NNX decoder and its pure functions ``logits``, ``sequence_logp``, ``hidden_states``;
- ``checkpoint``: ``load_pretrained`` / ``save_pretrained`` (safetensors, sharded index, partition rules);
- ``sampling``: ``generate`` (KV cache, EOS stops, temperature, top-p) and ``generate_mixture``;
- ``tokenizer``: ``Tokenizer`` (``tokenizers`` + chat templates in a jinja2 sandbox, EOS ids, padding);
- ``gguf``: ``read_gguf`` (llama.cpp's files, dequantized, in Hugging Face names) and ``load_gguf``;
- ``preference``: Bradley-Terry, pairwise and general preference heads on the decoder, trained with optax,
  and the one oracle interface ``PreferenceOracle.prob(prompt, a, b)``;
- ``judge``: ``LLMJudge``, an instruct model's P(a > b) from its next-token logits, averaged over both orders;
- ``layers``: attention, rotary embeddings and RMSNorm, shared with ``nashax.policies.transformer``.
"""

from nashax.lm import checkpoint, config, decoder, gguf, judge, layers, preference, sampling, tokenizer
from nashax.lm.checkpoint import (DEFAULT_RULES, Pretrained, load_pretrained, param_shardings, params_from_hf,
                                  params_to_hf, save_pretrained, shard_params)
from nashax.lm.config import MODEL_TYPES, DecoderConfig
from nashax.lm.decoder import (graphdef_of, hidden_states, init_decoder, logits, num_params, sequence_logp,
                               token_logp)
from nashax.lm.judge import LLMJudge, judge_template
from nashax.lm.preference import LearnedPreference, PreferenceHead, PreferenceOracle, RuleJudge
from nashax.lm.sampling import Generation, generate, generate_mixture
from nashax.lm.gguf import load_gguf, read_gguf
from nashax.lm.tokenizer import Tokenizer

__all__ = [
    "DEFAULT_RULES",
    "MODEL_TYPES",
    "DecoderConfig",
    "Generation",
    "LLMJudge",
    "LearnedPreference",
    "PreferenceHead",
    "PreferenceOracle",
    "Pretrained",
    "RuleJudge",
    "Tokenizer",
    "checkpoint",
    "config",
    "decoder",
    "generate",
    "generate_mixture",
    "gguf",
    "graphdef_of",
    "hidden_states",
    "init_decoder",
    "judge",
    "judge_template",
    "layers",
    "load_gguf",
    "load_pretrained",
    "logits",
    "num_params",
    "param_shardings",
    "params_from_hf",
    "params_to_hf",
    "preference",
    "read_gguf",
    "sampling",
    "save_pretrained",
    "sequence_logp",
    "shard_params",
    "token_logp",
    "tokenizer",
]
