"""benchmarks/bench_lm_train.py: its smoke mode runs and prints parseable lines; its FLOP count is the stated one.

Timings are never checked here (they belong to the benchmark's output); only that the script runs, the lines
parse to finite positive numbers, the peer agrees on the first DPO loss (the script exits non-zero otherwise)
and the model-FLOP formula matches a count from the parameter shapes.
"""

import importlib.util
import math
import os
import re
import subprocess
import sys

import jax
import pytest
from flax import nnx

from nashax import lm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "bench_lm_train.py")
LINE = re.compile(r"^(lm_train_\w+): ((?:\w+=\S+ ?)+)$")


def run(args, tmp_path, hide_torch=False):
  """Runs the script in smoke mode; returns ``(stdout, {name: {key: float}})``."""
  path = [ROOT]
  if hide_torch:  # a `torch` package that fails to import, ahead of the real one
    fake = tmp_path / "hide" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    path.insert(0, str(tmp_path / "hide"))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, SCRIPT, "--smoke"] + args, cwd=ROOT, env=env, capture_output=True,
                     text=True, timeout=600)
  assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
  lines = {}
  for line in r.stdout.splitlines():
    m = LINE.match(line)
    if m:
      assert m.group(1) not in lines, f"{m.group(1)} printed twice"
      lines[m.group(1)] = {k: float(v) for k, v in (kv.split("=") for kv in m.group(2).split())}
  for name, kv in lines.items():
    for k, v in kv.items():
      assert math.isfinite(v) and v > 0, f"{name}: {k}={v}"
  return r.stdout, lines


def check_steps(lines, steps):
  for s in steps:
    assert set(lines[f"lm_train_{s}_smoke"]) == {"tokens_per_s", "mfu"}
    assert lines[f"lm_train_{s}"] == lines[f"lm_train_{s}_smoke"]  # the reference size is the only size


def test_smoke_dpo_pairs_against_the_peer(tmp_path):
  """The DPO step against transformers + PyTorch (when installed): the ratio line, and the same first loss."""
  out, lines = run(["--only", "dpo_pairs"], tmp_path)
  assert "FLOPs: f(c) = 2 n + 4 L H d c per token" in out
  check_steps(lines, ["dpo_pairs"])
  has_peer = importlib.util.find_spec("torch") and importlib.util.find_spec("transformers")
  if has_peer:
    assert set(lines["lm_train_dpo"]) == {"ratio"}
    assert lines["lm_train_dpo"] == lines["lm_train_dpo_smoke"]
    a, b = re.search(r"first DPO loss: nashax (\S+), transformers (\S+)", out).groups()
    assert abs(float(a) - float(b)) < 1e-3
  else:
    assert "transformers + torch not installed" in out and "lm_train_dpo" not in lines


@pytest.mark.slow
def test_smoke_without_torch_says_so_and_skips_the_peer(tmp_path):
  out, lines = run(["--only", "dpo_pairs"], tmp_path, hide_torch=True)
  assert "transformers + torch not installed (the `parity` extra): no peer" in out
  assert "lm_train_dpo" not in lines and "lm_train_dpo_smoke" not in lines
  check_steps(lines, ["dpo_pairs"])


@pytest.mark.slow
def test_smoke_every_step(tmp_path):
  """The trainer's DPO, Nash-MD and SPPO steps (with generation) run and report tokens/s and MFU."""
  _, lines = run(["--no-peer"], tmp_path)
  check_steps(lines, ["dpo_pairs", "dpo_step", "nash_md", "sppo"])
  assert "lm_train_dpo" not in lines


def _bench():
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  try:
    spec = importlib.util.spec_from_file_location("bench_lm_train", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
  finally:
    sys.path.pop(0)
  return mod


def test_flop_count_matches_the_parameter_shapes():
  """Source: the module docstring's formula, with ``n`` counted from the decoder's own kernels.

  ``n`` = every projection kernel plus the tied unembedding ``V h``; ``f(c) = 2 n + 4 L H d c``. A response of
  ``N = 3`` tokens after ``P = 2`` costs ``2 f(2)`` (the prompt) ``+ f(3) + f(4)`` (two decoded tokens).
  """
  b = _bench()
  shape, _ = b.SMOKE_SIZES["smoke"]
  cfg = lm.DecoderConfig(**shape)
  _, params = lm.init_decoder(cfg, jax.random.key(0))
  kernels = sum(v[...].size for path, v in nnx.to_flat_state(params) if path[-1] == "kernel")
  n = kernels + cfg.vocab_size * cfg.hidden_size
  attn = 4 * cfg.num_layers * cfg.num_heads * cfg.head_dim

  def f(c):
    return 2 * n + attn * c
  gen = 2 * f(2) + f(3) + f(4)
  assert b.generated_flops(cfg, 1, 2, 3) == pytest.approx(gen, rel=1e-12)
  T = 5
  trained, scored = 3 * T * f(T), T * f(T)
  B, m, k = 2, 3, 4
  assert b.step_flops(cfg, "dpo_pairs", B, 2, 3, m, k) == pytest.approx(2 * B * trained, rel=1e-12)
  assert b.step_flops(cfg, "dpo_step", B, 2, 3, m, k) == pytest.approx(2 * B * (gen + scored + trained), rel=1e-12)
  assert b.step_flops(cfg, "nash_md", B, 2, 3, m, k) == pytest.approx(
      B * (1 + m) * gen + (2 * B * m + B) * scored + B * trained, rel=1e-12)
  assert b.step_flops(cfg, "sppo", B, 2, 3, m, k) == pytest.approx(B * (1 + k) * gen + B * scored + B * trained,
                                                                   rel=1e-12)
  assert b.step_tokens("dpo_pairs", B, 2, 3) == 2 * B * T and b.step_tokens("sppo", B, 2, 3) == B * T
