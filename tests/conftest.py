import os
import shutil
import tempfile

# Before jax is imported: one persistent compilation cache shared by this run's xdist workers and the
# subprocesses they start (CLI, notebooks), so a computation compiled once is loaded, not recompiled;
# and XLA's slow optimisation passes off (the tests are dominated by compiling small programs).
# A fresh directory per run: timings match a fresh clone's, and nothing is reused across versions.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="nashax-test-jax-cache-")
  os.environ["NASHAX_TEST_OWNS_CACHE"] = os.environ["JAX_COMPILATION_CACHE_DIR"]
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_unconfigure(config):
  owned = os.environ.get("NASHAX_TEST_OWNS_CACHE")
  if owned and not hasattr(config, "workerinput"):  # the controller (or a run without xdist) cleans up
    shutil.rmtree(owned, ignore_errors=True)


@pytest.fixture
def key():
  return jax.random.key(0)
