"""Small file helpers shared by sweeps and policy experiments: TOML configs and result folders."""

from __future__ import annotations

import json
import os
from typing import Optional


def read_toml(path: str) -> dict:
  """Reads a TOML file; a missing file or bad TOML is a ``ValueError`` naming ``config``."""
  try:
    import tomllib
  except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib
  if not os.path.isfile(path):
    raise ValueError(f"config: no such file {path!r}")
  with open(path, "rb") as f:
    try:
      return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
      raise ValueError(f"config: {path} is not valid TOML: {e}") from None


def stem(path: str) -> str:
  """The file name without folder and extension (a config's default name)."""
  return os.path.splitext(os.path.basename(path))[0]


def check_folder(manifest_path: str, fingerprint: str, what: str) -> Optional[dict]:
  """The manifest already in a results folder, or None; refuses a folder that holds a different ``what``."""
  if not os.path.exists(manifest_path):
    return None
  with open(manifest_path) as f:
    old = json.load(f)
  if old.get("fingerprint") != fingerprint:
    folder = os.path.dirname(manifest_path)
    raise ValueError(f"out: {folder} holds a different {what} (fingerprint {old.get('fingerprint')} != "
                     f"{fingerprint}); choose another folder or delete it")
  return old
