"""Tokenizers and chat templates for real language models, read from a local folder.

``Tokenizer.from_pretrained(path)`` reads a Hugging Face tokenizer folder
(``tokenizer.json`` through the ``tokenizers`` package, ``tokenizer_config.json``,
``chat_template.jinja``, ``special_tokens_map.json``, ``generation_config.json``)
without transformers or PyTorch. Chat templates are rendered in a jinja2
sandbox with the environment that transformers' ``apply_chat_template`` uses
(``trim_blocks``, ``lstrip_blocks``, the ``loopcontrols`` extension, a
``tojson`` filter that does not escape HTML, and the ``raise_exception`` and
``strftime_now`` globals), so a rendered prompt and its token ids are the
ones transformers produces.

``pad`` turns token lists into ``[B, T]`` int32 arrays and masks (left padding
for prompts that a decoder continues, right padding for training targets).

Example:
  >>> import tokenizers
  >>> from tokenizers import models
  >>> raw = tokenizers.Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2, "<e>": 3}, [("a", "b")]))
  >>> tok = Tokenizer(raw, eos_token="<e>")
  >>> tok.encode("abab")
  [2, 2]
  >>> ids, mask = tok.pad([[0], [2, 1]], side="left")
  >>> ids.tolist(), mask.tolist()
  ([[3, 0], [2, 1]], [[False, True], [True, True]])
"""

from __future__ import annotations

import datetime
import json
import os
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["Tokenizer", "render_chat_template", "SPECIAL_TOKEN_NAMES"]

# The named special tokens of a Hugging Face tokenizer, in transformers' order.
SPECIAL_TOKEN_NAMES = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)

_CLEANUP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def _import_tokenizers():
  try:
    import tokenizers
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
      "nashax.lm.tokenizer needs the `tokenizers` package: pip install 'nashax[lm]'"
    ) from e
  return tokenizers


def _token_content(value: Any, what: str) -> Optional[str]:
  """A special token given as a string or as a serialized ``AddedToken`` dict."""
  if value is None:
    return None
  if isinstance(value, str):
    return value
  if isinstance(value, Mapping) and isinstance(value.get("content"), str):
    return value["content"]
  raise ValueError(f"{what}: expected a string or an AddedToken dict with 'content', got {value!r}")


def _read_json(path: str, what: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except json.JSONDecodeError as e:
    raise ValueError(f"{what}: {path} is not valid JSON ({e})") from e
  if not isinstance(data, dict):
    raise ValueError(f"{what}: {path} must hold a JSON object, got {type(data).__name__}")
  return data


def _normalize_chat_template(value: Any, what: str) -> Union[None, str, dict]:
  """A chat template string, or a dict name -> template from the list form."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, Mapping):
    out = dict(value)
  elif isinstance(value, (list, tuple)):
    out = {}
    for item in value:
      if not (isinstance(item, Mapping) and isinstance(item.get("name"), str) and isinstance(item.get("template"), str)):
        raise ValueError(f"{what}: each named chat template must be a dict with 'name' and 'template' strings, got {item!r}")
      out[item["name"]] = item["template"]
  else:
    raise ValueError(f"{what}: expected a string or a list of named templates, got {type(value).__name__}")
  for name, template in out.items():
    if not isinstance(template, str):
      raise ValueError(f"{what}: template {name!r} is not a string")
  return out


# ----------------------------------------------------------------------------- jinja


def _jinja_environment():
  try:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment
  except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("chat templates need the `jinja2` package: pip install 'nashax[lm]'") from e

  class _Generation(Extension):
    """``{% generation %}...{% endgeneration %}``: renders its body unchanged.

    Templates written for transformers' assistant-token masks use this tag;
    here it only has to render, as it does in transformers.
    """

    tags = {"generation"}

    def parse(self, parser):
      lineno = next(parser.stream).lineno
      body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
      return nodes.Scope(body, lineno=lineno)

  def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

  def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # Unlike jinja2's own filter, this one does not escape HTML characters.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

  def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)

  env = ImmutableSandboxedEnvironment(
    trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, jinja2.ext.loopcontrols]
  )
  class _Dict:
    """``dict(...)`` and ``dict.fromkeys(...)`` without the type's other attributes."""

    def __call__(self, *args, **kwargs):
      return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
      return dict.fromkeys(*args, **kwargs)

  def _check(name):
    if isinstance(name, str) and name.startswith("_"):
      raise jinja2.exceptions.SecurityError(f"chat templates cannot set underscore attributes on a namespace: {name!r}")

  class _Namespace(jinja2.utils.Namespace):
    """jinja2's ``namespace`` that refuses underscore-prefixed attributes."""

    def __init__(*args, **kwargs):
      self, args = args[0], args[1:]
      attrs = dict(*args, **kwargs)
      for name in attrs:
        _check(name)
      jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
      _check(name)
      jinja2.utils.Namespace.__setitem__(self, name, value)

  env.filters["tojson"] = tojson
  env.globals["raise_exception"] = raise_exception
  env.globals["strftime_now"] = strftime_now
  env.globals["dict"] = _Dict()
  env.globals["namespace"] = _Namespace
  return env


_ENV = None
_COMPILED: dict = {}


def _compile(template: str):
  global _ENV
  if _ENV is None:
    _ENV = _jinja_environment()
  if template not in _COMPILED:
    import jinja2

    if len(_COMPILED) > 32:
      _COMPILED.clear()
    try:
      _COMPILED[template] = _ENV.from_string(template)
    except jinja2.TemplateSyntaxError as e:
      raise ValueError(f"chat_template: not a valid jinja2 template ({e})") from e
  return _COMPILED[template]


_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _plain(value: Any) -> Any:
  """Template data rebuilt from plain JSON types (the sandbox sees nothing else).

  Subclasses of str/int/float and numpy scalars become their base values;
  any other object becomes the inert string ``"<TypeName>"``.
  """
  if value is None or type(value) in (str, int, float, bool):
    return value
  if isinstance(value, str):
    return str.__str__(value)
  if isinstance(value, bool):
    return bool(value)
  if isinstance(value, int):
    return int.__int__(value)
  if isinstance(value, float):
    return float.__float__(value)
  if isinstance(value, Mapping):
    return {_plain(k): _plain(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_plain(v) for v in value]
  if isinstance(value, tuple):
    return tuple(_plain(v) for v in value)
  if isinstance(value, np.generic):
    return _plain(value.item())
  return f"<{type(value).__name__}>"


def render_chat_template(
  template: str,
  messages: Sequence[Mapping[str, Any]],
  *,
  add_generation_prompt: bool = False,
  continue_final_message: bool = False,
  tools: Optional[Sequence[Mapping[str, Any]]] = None,
  documents: Optional[Sequence[Mapping[str, Any]]] = None,
  **variables: Any,
) -> str:
  """Renders one conversation with a chat template, as transformers does.

  As in transformers: message keys whose value is None are dropped; a message
  with a reasoning field (``reasoning_content``, ``thinking`` or
  ``reasoning``) gets the first of them under both ``thinking`` and
  ``reasoning_content``; everything the template sees is rebuilt from plain
  JSON types. With ``continue_final_message``, a marker is appended to the
  final message's content before rendering, and the output is cut at the
  marker (and right-stripped if the template trimmed the space after it).

  Args:
    template: the jinja2 source.
    messages: the conversation, dicts with ``role`` and ``content``.
    add_generation_prompt: ask the template to open an assistant turn.
    continue_final_message: end right after the final message's text, so that
      a model continues it (incompatible with ``add_generation_prompt``).
    tools, documents: JSON-schema tool descriptions and retrieval documents.
    **variables: further template variables (``bos_token``, ...).

  Returns:
    The rendered string.
  """
  if not isinstance(template, str):
    raise ValueError(f"template: expected a string, got {type(template).__name__}")
  if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
    raise ValueError(f"messages: expected a list of {{'role', 'content'}} dicts, got {type(messages).__name__}")
  if not messages:
    raise ValueError("messages: the conversation is empty")
  chat = []
  for i, m in enumerate(messages):
    if not isinstance(m, Mapping):
      raise ValueError(f"messages[{i}]: expected a dict with 'role' and 'content', got {type(m).__name__}")
    m = {k: v for k, v in m.items() if v is not None}
    reasoning = next((m[k] for k in _REASONING_FIELDS if k in m), None)
    if reasoning is not None:
      m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
    chat.append(_plain(m))
  if continue_final_message and add_generation_prompt:
    raise ValueError("continue_final_message: cannot be combined with add_generation_prompt")
  if tools is not None:
    for i, t in enumerate(tools):
      if not isinstance(t, Mapping):
        raise ValueError(f"tools[{i}]: expected a JSON-schema dict, got {type(t).__name__}")
  if documents is not None:
    for i, d in enumerate(documents):
      if not isinstance(d, Mapping):
        raise ValueError(f"documents[{i}]: expected a dict with 'title' and 'text', got {type(d).__name__}")
  final = None
  if continue_final_message:
    content = chat[-1].get("content")
    if isinstance(content, str):
      final = content
      chat[-1]["content"] = content + _CONTINUE_TAG
    elif isinstance(content, (list, tuple)):
      for block in reversed(content):
        if isinstance(block, dict) and isinstance(block.get("text"), str):
          final = block["text"]
          block["text"] = final + _CONTINUE_TAG
          break
    if final is None:
      raise ValueError("continue_final_message: the final message has no text content to continue")
  compiled = _compile(template)
  import jinja2

  try:
    rendered = compiled.render(
      messages=chat,
      tools=_plain(None if tools is None else list(tools)),
      documents=_plain(None if documents is None else list(documents)),
      add_generation_prompt=add_generation_prompt,
      **_plain(variables),
    )
  except jinja2.TemplateError as e:
    raise ValueError(f"chat_template: rendering failed: {e}") from e
  if continue_final_message:
    tag = _CONTINUE_TAG.strip()
    if final.strip() not in rendered or tag not in rendered:
      raise ValueError("continue_final_message: the final message does not appear in the rendered template")
    loc = rendered.rindex(tag)
    if rendered[loc : loc + len(_CONTINUE_TAG)] == _CONTINUE_TAG:
      rendered = rendered[:loc]
    else:
      rendered = rendered[:loc].rstrip()
  return rendered


# ----------------------------------------------------------------------------- Tokenizer


class Tokenizer:
  """A ``tokenizers.Tokenizer`` with its special tokens, EOS ids and chat template.

  Args:
    tokenizer: the ``tokenizers.Tokenizer`` (byte-level BPE, SentencePiece-style, ...).
    chat_template: a jinja2 template, or a dict name -> template (transformers'
      named templates; ``"default"`` is used when no name is asked for).
    bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: the named special
      tokens (strings in the vocabulary).
    additional_special_tokens: more special tokens (strings).
    eos_token_ids: the ids that end a generation (``generation_config.json``'s
      ``eos_token_id``); default: the id of ``eos_token``.
    clean_up_tokenization_spaces: apply transformers' space clean-up in
      ``decode`` (``" ."`` -> ``"."``, ...).
    name_or_path: where it was read from (for messages).
  """

  def __init__(
    self,
    tokenizer: Any,
    *,
    chat_template: Union[None, str, Mapping[str, str]] = None,
    bos_token: Optional[str] = None,
    eos_token: Optional[str] = None,
    unk_token: Optional[str] = None,
    sep_token: Optional[str] = None,
    pad_token: Optional[str] = None,
    cls_token: Optional[str] = None,
    mask_token: Optional[str] = None,
    additional_special_tokens: Sequence[str] = (),
    eos_token_ids: Union[None, int, Sequence[int]] = None,
    clean_up_tokenization_spaces: bool = False,
    name_or_path: Optional[str] = None,
  ):
    tk = _import_tokenizers()
    if not isinstance(tokenizer, tk.Tokenizer):
      raise ValueError(f"tokenizer: expected a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
    self._tok = tokenizer
    self.name_or_path = name_or_path
    self.chat_template = _normalize_chat_template(chat_template, "chat_template")
    self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
    named = dict(
      bos_token=bos_token,
      eos_token=eos_token,
      unk_token=unk_token,
      sep_token=sep_token,
      pad_token=pad_token,
      cls_token=cls_token,
      mask_token=mask_token,
    )
    self._named: dict = {}
    for name in SPECIAL_TOKEN_NAMES:
      value = _token_content(named[name], name)
      if value is not None:
        if tokenizer.token_to_id(value) is None:
          raise ValueError(f"{name}: {value!r} is not in the vocabulary")
        self._named[name] = value
    extra = []
    for i, t in enumerate(additional_special_tokens or ()):
      value = _token_content(t, f"additional_special_tokens[{i}]")
      if tokenizer.token_to_id(value) is None:
        raise ValueError(f"additional_special_tokens[{i}]: {value!r} is not in the vocabulary")
      extra.append(value)
    self._additional = tuple(extra)
    vocab = self.vocab_size
    if eos_token_ids is None:
      ids = () if "eos_token" not in self._named else (self.token_to_id(self._named["eos_token"]),)
    else:
      raw = (eos_token_ids,) if isinstance(eos_token_ids, (int, np.integer)) else tuple(eos_token_ids)
      for i in raw:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= int(i) < vocab:
          raise ValueError(f"eos_token_ids: {i!r} is not a token id in [0, {vocab})")
      ids = tuple(int(i) for i in raw)
    self._eos_ids = ids

  # -- construction ------------------------------------------------------------

  @classmethod
  def from_tokenizers(cls, tokenizer: Any, **metadata: Any) -> "Tokenizer":
    """From an in-memory ``tokenizers.Tokenizer`` plus the metadata of ``__init__``."""
    return cls(tokenizer, **metadata)

  @classmethod
  def from_pretrained(cls, path: Union[str, os.PathLike]) -> "Tokenizer":
    """Reads a local Hugging Face tokenizer folder.

    Files: ``tokenizer.json`` (required); ``tokenizer_config.json`` (special
    tokens, ``added_tokens_decoder``, ``chat_template`` as a string or a list
    of named templates, ``clean_up_tokenization_spaces``);
    ``chat_template.jinja`` (preferred over the config's template, as in
    transformers); ``special_tokens_map.json`` (its entries override the
    config's); ``generation_config.json`` (``eos_token_id``, an int or a list).

    Args:
      path: the folder.

    Returns:
      The ``Tokenizer``.
    """
    tk = _import_tokenizers()
    path = os.fspath(path)
    if not os.path.isdir(path):
      raise ValueError(f"path: {path!r} is not a directory")
    tok_file = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(tok_file):
      raise ValueError(f"path: {path!r} has no tokenizer.json (only fast tokenizers are supported)")
    try:
      raw = tk.Tokenizer.from_file(tok_file)
    except Exception as e:
      raise ValueError(f"tokenizer.json: {tok_file} could not be read by `tokenizers` ({e})") from e

    config = {}
    cfg_file = os.path.join(path, "tokenizer_config.json")
    if os.path.isfile(cfg_file):
      config = _read_json(cfg_file, "tokenizer_config.json")

    # Tokens that tokenizer_config.json declares but tokenizer.json lacks.
    decoder = config.get("added_tokens_decoder") or {}
    if not isinstance(decoder, Mapping):
      raise ValueError("tokenizer_config.json: added_tokens_decoder must be an object id -> token")
    for key in sorted(decoder, key=lambda k: int(k)):
      entry = decoder[key]
      content = _token_content(entry, f"tokenizer_config.json: added_tokens_decoder[{key}]")
      want = int(key)
      have = raw.token_to_id(content)
      if have is None:
        options = entry if isinstance(entry, Mapping) else {}
        added = tk.AddedToken(
          content,
          single_word=bool(options.get("single_word", False)),
          lstrip=bool(options.get("lstrip", False)),
          rstrip=bool(options.get("rstrip", False)),
          normalized=bool(options.get("normalized", not options.get("special", False))),
          special=bool(options.get("special", False)),
        )
        if added.special:
          raw.add_special_tokens([added])
        else:
          raw.add_tokens([added])
        have = raw.token_to_id(content)
      if have != want:
        raise ValueError(
          f"tokenizer_config.json: added_tokens_decoder[{key}] is {content!r}, which tokenizer.json gives id {have}"
        )

    special = {name: config.get(name) for name in SPECIAL_TOKEN_NAMES}
    additional = config.get("additional_special_tokens") or []
    map_file = os.path.join(path, "special_tokens_map.json")
    if os.path.isfile(map_file):
      smap = _read_json(map_file, "special_tokens_map.json")
      for name in SPECIAL_TOKEN_NAMES:
        if smap.get(name) is not None:
          special[name] = smap[name]
      if smap.get("additional_special_tokens"):
        additional = smap["additional_special_tokens"]
    special = {k: _token_content(v, f"tokenizer_config.json: {k}") for k, v in special.items()}
    additional = [_token_content(v, "additional_special_tokens") for v in additional]

    template = _normalize_chat_template(config.get("chat_template"), "tokenizer_config.json: chat_template")
    jinja_file = os.path.join(path, "chat_template.jinja")
    if os.path.isfile(jinja_file):
      with open(jinja_file, encoding="utf-8") as f:
        jinja = f.read()
      if isinstance(template, dict):
        template = {**template, "default": jinja}
      else:
        template = jinja

    eos_ids = None
    gen_file = os.path.join(path, "generation_config.json")
    if os.path.isfile(gen_file):
      gen = _read_json(gen_file, "generation_config.json")
      eos_ids = gen.get("eos_token_id")
      if eos_ids is not None and not isinstance(eos_ids, (int, list)):
        raise ValueError(f"generation_config.json: eos_token_id must be an int or a list, got {eos_ids!r}")

    try:
      return cls(
        raw,
        chat_template=template,
        additional_special_tokens=additional,
        eos_token_ids=eos_ids,
        clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
        name_or_path=path,
        **special,
      )
    except ValueError as e:
      raise ValueError(f"{path}: {e}") from e

  # -- vocabulary ----------------------------------------------------------------

  @property
  def backend(self) -> Any:
    """The underlying ``tokenizers.Tokenizer``."""
    return self._tok

  @property
  def vocab_size(self) -> int:
    """Number of ids, added tokens included."""
    return self._tok.get_vocab_size(with_added_tokens=True)

  def __len__(self) -> int:
    return self.vocab_size

  def token_to_id(self, token: str) -> int:
    """The id of ``token`` (a ``ValueError`` if it is not in the vocabulary)."""
    i = self._tok.token_to_id(token)
    if i is None:
      raise ValueError(f"token: {token!r} is not in the vocabulary")
    return i

  def id_to_token(self, i: int) -> str:
    """The string of id ``i``."""
    t = self._tok.id_to_token(int(i))
    if t is None:
      raise ValueError(f"i: {i} is not a token id in [0, {self.vocab_size})")
    return t

  @property
  def special_tokens(self) -> dict:
    """The named special tokens that are set (transformers' ``special_tokens_map``),
    e.g. ``{"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", ...}``."""
    return dict(self._named)

  @property
  def additional_special_tokens(self) -> tuple:
    """The extra special tokens of ``tokenizer_config.json`` / ``special_tokens_map.json``."""
    return self._additional

  @property
  def all_special_ids(self) -> tuple:
    """Sorted ids of the named and the additional special tokens (as transformers'
    ``all_special_ids``). ``decode(skip_special_tokens=True)`` skips every added
    token that ``tokenizers`` marks special, which may be more."""
    ids = {self.token_to_id(t) for t in self._named.values()}
    ids |= {self.token_to_id(t) for t in self._additional}
    return tuple(sorted(ids))

  def _named_id(self, name: str) -> Optional[int]:
    t = self._named.get(name)
    return None if t is None else self.token_to_id(t)

  @property
  def bos_token(self) -> Optional[str]:
    return self._named.get("bos_token")

  @property
  def eos_token(self) -> Optional[str]:
    return self._named.get("eos_token")

  @property
  def pad_token(self) -> Optional[str]:
    return self._named.get("pad_token")

  @property
  def bos_id(self) -> Optional[int]:
    """Id of ``bos_token`` (None if unset)."""
    return self._named_id("bos_token")

  @property
  def eos_id(self) -> Optional[int]:
    """Id of ``eos_token`` (None if unset)."""
    return self._named_id("eos_token")

  @property
  def unk_id(self) -> Optional[int]:
    return self._named_id("unk_token")

  @property
  def eos_ids(self) -> tuple:
    """The ids that end a generation: ``generation_config.json``'s list, else ``(eos_id,)``."""
    return self._eos_ids

  @property
  def pad_id(self) -> Optional[int]:
    """Id of ``pad_token``, else the first EOS id (None if neither exists)."""
    i = self._named_id("pad_token")
    if i is not None:
      return i
    return self._eos_ids[0] if self._eos_ids else None

  # -- text <-> ids --------------------------------------------------------------

  def encode(self, text: str, add_special_tokens: bool = False) -> list:
    """Token ids of ``text``.

    Args:
      text: the string.
      add_special_tokens: apply the tokenizer's post-processor (e.g. a BOS
        prefix). Off by default: chat templates already write their special
        tokens.

    Returns:
      ``list[int]``.
    """
    if not isinstance(text, str):
      raise ValueError(f"text: expected a string, got {type(text).__name__}")
    return list(self._tok.encode(text, add_special_tokens=add_special_tokens).ids)

  def encode_batch(self, texts: Sequence[str], add_special_tokens: bool = False) -> list:
    """``[encode(t) for t in texts]``, in one call of the Rust tokenizer."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
      raise ValueError("texts: expected a list of strings")
    return [list(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]

  def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
    """The string of token ids (``ids`` may be a list or a 1-D array)."""
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
      raise ValueError(f"ids: expected a 1-D sequence of integer ids, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
      raise ValueError(f"ids: token ids must lie in [0, {self.vocab_size})")
    text = self._tok.decode([int(i) for i in arr], skip_special_tokens=skip_special_tokens)
    if self.clean_up_tokenization_spaces:
      for a, b in _CLEANUP:
        text = text.replace(a, b)
    return text

  # -- chat templates --------------------------------------------------------------

  def get_chat_template(self, chat_template: Optional[str] = None) -> str:
    """The template source: ``chat_template`` itself if it is a template, a
    name among the named templates, or the default one."""
    if isinstance(self.chat_template, dict):
      if chat_template is not None and chat_template in self.chat_template:
        return self.chat_template[chat_template]
      if chat_template is not None:
        if "{" in chat_template:
          return chat_template
        raise ValueError(
          f"chat_template: {chat_template!r} is not one of the named templates {sorted(self.chat_template)}"
        )
      if "default" in self.chat_template:
        return self.chat_template["default"]
      raise ValueError(
        f"chat_template: this tokenizer has named templates {sorted(self.chat_template)} and none is 'default'; pass one"
      )
    if chat_template is not None:
      return chat_template
    if self.chat_template is None:
      where = f" ({self.name_or_path})" if self.name_or_path else ""
      raise ValueError(
        f"chat_template: this tokenizer{where} has none (no chat_template in tokenizer_config.json, "
        "no chat_template.jinja); pass chat_template=..."
      )
    return self.chat_template

  def apply_chat_template(
    self,
    messages: Sequence[Any],
    *,
    add_generation_prompt: bool = False,
    tokenize: bool = False,
    chat_template: Optional[str] = None,
    continue_final_message: bool = False,
    tools: Optional[Sequence[Mapping[str, Any]]] = None,
    documents: Optional[Sequence[Mapping[str, Any]]] = None,
    **extra: Any,
  ) -> Any:
    """Renders a conversation (or a batch of them) with the chat template.

    The template sees ``messages``, ``tools``, ``documents``,
    ``add_generation_prompt``, the named special tokens (``bos_token``,
    ``eos_token``, ...) and ``**extra`` (which override them), as in
    transformers. A ``raise_exception`` in the template, or any other template
    error, is a ``ValueError``. Token ids are computed from the rendered string with
    ``add_special_tokens=False``, since the template writes them.

    Args:
      messages: a list of ``{"role", "content"}`` dicts, or a list of such lists.
      add_generation_prompt: open an assistant turn at the end.
      tokenize: return token ids instead of the string.
      chat_template: a template source or the name of a named template.
      continue_final_message: end right after the final message's text.
      tools, documents: passed to the template.
      **extra: more template variables.

    Returns:
      ``str`` or ``list[int]``; a list of them for a batch.
    """
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
      raise ValueError(f"messages: expected a list of messages or a list of conversations, got {type(messages).__name__}")
    batched = bool(messages) and all(isinstance(m, (list, tuple)) for m in messages)
    template = self.get_chat_template(chat_template)
    variables = dict(self.special_tokens)
    variables.update(extra)
    convs = messages if batched else [messages]
    out = []
    for conv in convs:
      text = render_chat_template(
        template,
        conv,
        add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message,
        tools=tools,
        documents=documents,
        **variables,
      )
      out.append(self.encode(text, add_special_tokens=False) if tokenize else text)
    return out if batched else out[0]

  # -- padding -------------------------------------------------------------------

  def pad(
    self,
    sequences: Sequence[Sequence[int]],
    *,
    side: str = "left",
    max_length: Optional[int] = None,
    truncation: Optional[str] = None,
    pad_id: Optional[int] = None,
  ) -> tuple:
    """Pads token lists into one array.

    Args:
      sequences: ``B`` lists of token ids.
      side: ``"left"`` (prompts that a decoder continues: the last real token
        of every row is at ``T - 1``) or ``"right"``.
      max_length: ``T``; default the longest sequence.
      truncation: what to do with a sequence longer than ``max_length``:
        ``None`` refuses it (``ValueError``), ``"left"`` drops its first tokens
        (keeps the end, as for a prompt), ``"right"`` drops its last ones.
      pad_id: the filler id (default ``self.pad_id``); masked out either way.

    Returns:
      ``(ids, mask)``: ``ids`` ``[B, T]`` int32, ``mask`` ``[B, T]`` bool,
      True on real tokens.
    """
    if side not in ("left", "right"):
      raise ValueError(f"side: expected 'left' or 'right', got {side!r}")
    if truncation not in (None, "left", "right"):
      raise ValueError(f"truncation: expected None, 'left' or 'right', got {truncation!r}")
    if isinstance(sequences, np.ndarray) and sequences.ndim == 2:
      sequences = sequences.tolist()
    if isinstance(sequences, (str, bytes)) or not isinstance(sequences, Sequence) or not len(sequences):
      raise ValueError("sequences: expected a non-empty list of token-id lists")
    rows = []
    for b, s in enumerate(sequences):
      arr = np.asarray(s)
      if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"sequences[{b}]: expected a 1-D list of integer ids, got shape {arr.shape} dtype {arr.dtype}")
      if arr.size and (arr.min() < 0 or arr.max() >= self.vocab_size):
        raise ValueError(f"sequences[{b}]: token ids must lie in [0, {self.vocab_size})")
      rows.append(arr.astype(np.int32))
    if max_length is None:
      T = max(len(r) for r in rows)
    else:
      if isinstance(max_length, bool) or not isinstance(max_length, (int, np.integer)) or max_length < 1:
        raise ValueError(f"max_length: expected a positive int, got {max_length!r}")
      T = int(max_length)
    T = max(T, 1)
    if pad_id is None:
      pad_id = self.pad_id
      if pad_id is None:
        raise ValueError("pad_id: this tokenizer has neither a pad token nor an EOS token; pass pad_id=...")
    elif isinstance(pad_id, bool) or not isinstance(pad_id, (int, np.integer)) or not 0 <= pad_id < self.vocab_size:
      raise ValueError(f"pad_id: {pad_id!r} is not a token id in [0, {self.vocab_size})")
    ids = np.full((len(rows), T), pad_id, np.int32)
    mask = np.zeros((len(rows), T), bool)
    for b, r in enumerate(rows):
      if len(r) > T:
        if truncation is None:
          raise ValueError(
            f"sequences[{b}]: {len(r)} tokens exceed max_length={T}; pass truncation='left' or 'right'"
          )
        r = r[len(r) - T :] if truncation == "left" else r[:T]
      n = len(r)
      if side == "left":
        ids[b, T - n :] = r
        mask[b, T - n :] = True
      else:
        ids[b, :n] = r
        mask[b, :n] = True
    return ids, mask

  def batch_encode_chats(
    self,
    conversations: Sequence[Sequence[Mapping[str, Any]]],
    *,
    add_generation_prompt: bool = True,
    side: str = "left",
    max_length: Optional[int] = None,
    truncation: Optional[str] = None,
    **template_kwargs: Any,
  ) -> tuple:
    """Renders, tokenizes and pads a batch of conversations (prompts for generation).

    Args:
      conversations: ``B`` conversations.
      add_generation_prompt: open an assistant turn (default True: these are prompts).
      side, max_length, truncation: as in ``pad``.
      **template_kwargs: as in ``apply_chat_template``.

    Returns:
      ``(ids [B, T] int32, mask [B, T] bool)``.
    """
    if isinstance(conversations, (str, bytes)) or not isinstance(conversations, Sequence) or not len(conversations):
      raise ValueError("conversations: expected a non-empty list of conversations")
    for b, c in enumerate(conversations):
      if not isinstance(c, (list, tuple)):
        raise ValueError(f"conversations[{b}]: expected a list of messages, got {type(c).__name__}")
    seqs = self.apply_chat_template(
      list(conversations), add_generation_prompt=add_generation_prompt, tokenize=True, **template_kwargs
    )
    return self.pad(seqs, side=side, max_length=max_length, truncation=truncation)

  def __repr__(self) -> str:
    return (
      f"Tokenizer(vocab_size={self.vocab_size}, special_tokens={self.special_tokens}, "
      f"eos_ids={self.eos_ids}, chat_template={'yes' if self.chat_template else 'no'})"
    )
