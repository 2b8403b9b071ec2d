"""Tokenizer, chat templates and padding (nashax.lm.tokenizer).

The fixture folder ``tests/fixtures/lm/tokenizer/`` is a 256-id byte-level BPE
with SmolLM2's special tokens and SmolLM2-135M-Instruct's chat template; its
``goldens.json`` was made by transformers' ``AutoTokenizer`` and
``apply_chat_template`` (``tests/fixtures/lm/make_tokenizer_goldens.py``). The
default tests compare with those goldens without transformers; the ``parity``
test compares with transformers live.
"""

import datetime
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("jinja2")

from nashax.lm.tokenizer import Tokenizer, render_chat_template  # noqa: E402

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "lm" / "tokenizer"
GOLDENS = json.loads((FIXTURE / "goldens.json").read_text(encoding="utf-8"))


def _golden_module():
  import importlib.util

  spec = importlib.util.spec_from_file_location("make_tokenizer_goldens", FIXTURE.parent / "make_tokenizer_goldens.py")
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


GEN = _golden_module()


@pytest.fixture(scope="module")
def tok():
  return Tokenizer.from_pretrained(FIXTURE)


def _copy(tmp_path):
  dst = tmp_path / "tok"
  shutil.copytree(FIXTURE, dst)
  return dst


def _edit_json(path, **changes):
  data = json.loads(path.read_text(encoding="utf-8"))
  for k, v in changes.items():
    if v is None:
      data.pop(k, None)
    else:
      data[k] = v
  path.write_text(json.dumps(data), encoding="utf-8")


def test_fixture_is_small_and_has_256_ids(tok):
  """Hand count: the fixture promises exactly 256 ids, SmolLM2's special tokens
  at SmolLM2's ids (<|endoftext|> 0, <|im_start|> 1, <|im_end|> 2), and well
  under 300 KiB on disk."""
  size = sum(p.stat().st_size for p in FIXTURE.iterdir())
  assert size < 100 * 1024
  assert tok.vocab_size == 256
  assert [tok.token_to_id(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [0, 1, 2]
  assert tok.token_to_id("<empty_output>") == 16


def test_special_tokens_match_transformers(tok):
  """Reference: transformers' special_tokens_map and all_special_ids of the same
  folder (goldens.json), and the hand-written generation_config.json, whose
  eos_token_id is the list [2, 0]."""
  assert tok.special_tokens == GOLDENS["special_tokens_map"]
  assert list(tok.all_special_ids) == GOLDENS["all_special_ids"]
  assert tok.additional_special_tokens == ("<|im_start|>", "<|im_end|>")
  assert tok.eos_ids == (2, 0)
  assert tok.pad_id == 2  # pad_token <|im_end|>
  assert (tok.bos_id, tok.eos_id, tok.unk_id) == (1, 2, 0)


@pytest.mark.parametrize("case", GOLDENS["chat"], ids=lambda c: f"{c['conversation']}-{c['template']}-{c.get('add_generation_prompt', 'continue')}")
def test_chat_template_matches_transformers_goldens(tok, case):
  """Reference: transformers' apply_chat_template on the same folder and
  conversation: the rendered string and its token ids, for SmolLM2's template
  (system turn, several turns, generation prompt on/off, continue_final_message)
  and for a template that uses tojson, namespace, dict, loop controls,
  generation blocks, whitespace control and tools."""
  conv = GEN.CONVERSATIONS[case["conversation"]]
  kwargs = {}
  if case["template"] == "features":
    kwargs = {"chat_template": GEN.FEATURE_TEMPLATE, "tools": GEN.FEATURE_TOOLS}
  if case.get("continue_final_message"):
    kwargs["continue_final_message"] = True
  else:
    kwargs["add_generation_prompt"] = case["add_generation_prompt"]
  text = tok.apply_chat_template(conv, **kwargs)
  assert text == case["text"]
  assert tok.apply_chat_template(conv, tokenize=True, **kwargs) == case["ids"]


@pytest.mark.parametrize("case", GOLDENS["encode"], ids=lambda c: repr(c["text"][:12]))
def test_encode_decode_matches_transformers_goldens(tok, case):
  """Reference: transformers' tokenizer call and decode on the same folder."""
  assert tok.encode(case["text"]) == case["ids"]
  assert tok.encode(case["text"], add_special_tokens=True) == case["ids_add_special_tokens"]
  assert tok.decode(case["ids"]) == case["decode"]
  assert tok.decode(np.asarray(case["ids"], np.int64), skip_special_tokens=True) == case["decode_skip_special_tokens"]


def test_batched_chat_and_batch_encode_chats(tok):
  """Reference: the transformers goldens of each conversation, padded by hand:
  a batch gives each conversation's own ids, left-aligned to the end."""
  names = ["no_system", "system_and_turns"]
  want = {
    c["conversation"]: c["ids"]
    for c in GOLDENS["chat"]
    if c["template"] == "smollm2" and c.get("add_generation_prompt") is True and c["conversation"] in names
  }
  convs = [GEN.CONVERSATIONS[n] for n in names]
  assert tok.apply_chat_template(convs, add_generation_prompt=True, tokenize=True) == [want[n] for n in names]
  ids, mask = tok.batch_encode_chats(convs)
  T = max(len(want[n]) for n in names)
  assert ids.shape == mask.shape == (2, T) and ids.dtype == np.int32 and mask.dtype == bool
  for b, n in enumerate(names):
    L = len(want[n])
    assert ids[b, T - L :].tolist() == want[n]
    assert mask[b].tolist() == [False] * (T - L) + [True] * L
    assert (ids[b, : T - L] == 2).all()


def test_pad_left_right_and_truncation(tok):
  """Hand-written expected arrays."""
  seqs = [[5, 6, 7], [8]]
  ids, mask = tok.pad(seqs, side="left")
  assert ids.tolist() == [[5, 6, 7], [2, 2, 8]]
  assert mask.tolist() == [[True, True, True], [False, False, True]]
  ids, mask = tok.pad(seqs, side="right", max_length=4, pad_id=0)
  assert ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
  assert mask.tolist() == [[True, True, True, False], [True, False, False, False]]
  ids, mask = tok.pad(seqs, side="left", max_length=2, truncation="left")
  assert ids.tolist() == [[6, 7], [2, 8]]
  ids, _ = tok.pad(seqs, side="right", max_length=2, truncation="right")
  assert ids.tolist() == [[5, 6], [8, 2]]
  ids, mask = tok.pad([[], [3]], side="right")
  assert ids.tolist() == [[2], [3]] and mask.tolist() == [[False], [True]]


def test_bad_input_is_a_value_error(tok, tmp_path):
  """Each bad input is refused with a ValueError that names what is wrong."""
  with pytest.raises(ValueError, match="side"):
    tok.pad([[1]], side="middle")
  with pytest.raises(ValueError, match="truncation"):
    tok.pad([[1]], truncation="middle")
  with pytest.raises(ValueError, match="max_length"):
    tok.pad([[1, 2, 3]], max_length=2)
  with pytest.raises(ValueError, match="max_length"):
    tok.pad([[1]], max_length=0)
  with pytest.raises(ValueError, match=r"sequences\[1\]"):
    tok.pad([[1], [999]])
  with pytest.raises(ValueError, match="sequences"):
    tok.pad([])
  with pytest.raises(ValueError, match="ids"):
    tok.decode([256])
  with pytest.raises(ValueError, match="path"):
    Tokenizer.from_pretrained(tmp_path / "missing")
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="tokenizer.json"):
    Tokenizer.from_pretrained(tmp_path / "empty")
  with pytest.raises(ValueError, match="chat_template"):
    tok.apply_chat_template([{"role": "tool", "content": "x"}], chat_template=GEN.FEATURE_TEMPLATE)
  with pytest.raises(ValueError, match="messages"):
    tok.apply_chat_template([])
  with pytest.raises(ValueError, match="continue_final_message"):
    tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, continue_final_message=True)
  bare = Tokenizer(tok.backend)
  with pytest.raises(ValueError, match="chat_template"):
    bare.apply_chat_template([{"role": "user", "content": "hi"}])
  with pytest.raises(ValueError, match="pad_id"):
    bare.pad([[1]])
  with pytest.raises(ValueError, match="eos_token"):
    Tokenizer(tok.backend, eos_token="<not a token>")
  with pytest.raises(ValueError, match="eos_token_ids"):
    Tokenizer(tok.backend, eos_token_ids=[300])
  d = _copy(tmp_path)
  _edit_json(d / "tokenizer_config.json", chat_template=None)
  with pytest.raises(ValueError, match="chat_template"):
    Tokenizer.from_pretrained(d).apply_chat_template([{"role": "user", "content": "hi"}])
  (d / "generation_config.json").write_text('{"eos_token_id": "2"}')
  with pytest.raises(ValueError, match="generation_config.json"):
    Tokenizer.from_pretrained(d)


def test_template_files_and_metadata_variants(tok, tmp_path):
  """Hand-written folders: chat_template.jinja wins over the config (as in
  transformers); the list form of named templates; an int eos_token_id; no
  generation_config.json (EOS from eos_token); no pad token (pad = first EOS);
  a token declared only in added_tokens_decoder is added at its id."""
  msgs = [{"role": "user", "content": "hi"}]
  d = _copy(tmp_path)
  (d / "chat_template.jinja").write_text("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}")
  assert Tokenizer.from_pretrained(d).apply_chat_template(msgs) == "<user>hi"
  os.remove(d / "chat_template.jinja")

  _edit_json(
    d / "tokenizer_config.json",
    chat_template=[{"name": "default", "template": "D{{ messages[0].content }}"}, {"name": "tool_use", "template": "T"}],
  )
  t = Tokenizer.from_pretrained(d)
  assert t.apply_chat_template(msgs) == "Dhi"
  assert t.apply_chat_template(msgs, chat_template="tool_use") == "T"
  with pytest.raises(ValueError, match="named templates"):
    t.apply_chat_template(msgs, chat_template="nope")

  (d / "generation_config.json").write_text('{"eos_token_id": 0}')
  assert Tokenizer.from_pretrained(d).eos_ids == (0,)
  os.remove(d / "generation_config.json")
  _edit_json(d / "tokenizer_config.json", pad_token=None)
  _edit_json(d / "special_tokens_map.json", pad_token=None)
  t = Tokenizer.from_pretrained(d)
  assert t.eos_ids == (2,) and t.pad_id == 2 and "pad_token" not in t.special_tokens

  cfg = json.loads((d / "tokenizer_config.json").read_text())
  cfg["added_tokens_decoder"]["256"] = {"content": "<extra>", "special": True}
  (d / "tokenizer_config.json").write_text(json.dumps(cfg))
  t = Tokenizer.from_pretrained(d)
  assert t.vocab_size == 257 and t.encode("a<extra>") == [t.token_to_id("a"), 256]
  cfg["added_tokens_decoder"]["300"] = {"content": "<gap>", "special": True}
  (d / "tokenizer_config.json").write_text(json.dumps(cfg))
  with pytest.raises(ValueError, match="added_tokens_decoder"):
    Tokenizer.from_pretrained(d)


def test_environment_globals():
  """References: datetime for strftime_now; json.dumps without HTML escaping for
  tojson (jinja2's own filter would write \\u003c); jinja2's trim_blocks and
  lstrip_blocks semantics, written out by hand."""
  msgs = [{"role": "user", "content": "<a&b>"}]
  year = render_chat_template("{{ strftime_now('%Y') }}", msgs)
  assert year == str(datetime.datetime.now().year)
  assert render_chat_template("{{ messages[0].content | tojson }}", msgs) == json.dumps("<a&b>")
  assert render_chat_template("{{ 'caf\u00e9' | tojson }}", msgs) == '"caf\u00e9"'  # not "caf\\u00e9"
  # The block tags' own lines vanish: only the body line remains, unindented tags and all.
  assert render_chat_template("  {% if true %}\nX\n  {% endif %}\nY", msgs) == "X\nY"
  assert render_chat_template("{{ extra }}|{{ bos_token }}", msgs, extra=3) == "3|"


@pytest.mark.parity
def test_live_parity_with_transformers(tok):
  """Reference: transformers' AutoTokenizer on the fixture folder, live, on the
  conversations of the goldens script and on random conversations drawn from
  the training text's words."""
  transformers = pytest.importorskip("transformers")
  ref = transformers.AutoTokenizer.from_pretrained(str(FIXTURE))
  rng = np.random.default_rng(0)
  words = GEN.TRAINING_TEXT.replace("\n", " ").split(" ")
  convs = list(GEN.CONVERSATIONS.values())
  for _ in range(8):
    n = int(rng.integers(1, 6))
    roles = (["system"] if rng.random() < 0.5 else []) + ["user", "assistant"] * 3
    convs.append([
      {"role": roles[i], "content": " ".join(rng.choice(words, int(rng.integers(0, 12))))} for i in range(n)
    ])  # fmt: skip
  for conv in convs:
    for gen in (False, True):
      want = ref.apply_chat_template(conv, add_generation_prompt=gen, tokenize=False)
      assert tok.apply_chat_template(conv, add_generation_prompt=gen) == want
      want_ids = ref.apply_chat_template(conv, add_generation_prompt=gen, tokenize=True, return_dict=False)
      assert tok.apply_chat_template(conv, add_generation_prompt=gen, tokenize=True) == want_ids
      assert tok.decode(want_ids, skip_special_tokens=True) == ref.decode(want_ids, skip_special_tokens=True)
