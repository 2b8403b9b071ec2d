"""Real language models: tokenizers, chat templates and GGUF files (``nashax.lm``)."""
