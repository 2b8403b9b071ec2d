import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


# The slowest modules start first, so that with `-n 2 --dist worksteal` no long test is left running alone at
# the end while the other worker idles.
_FIRST = ("test_notebooks", "test_theory", "test_policies", "test_sweeps", "test_halpern", "test_nlhf")


def pytest_collection_modifyitems(items):
  def rank(item):
    name = item.path.stem
    return _FIRST.index(name) if name in _FIRST else len(_FIRST)
  items.sort(key=rank)  # stable: the order inside each module is kept


@pytest.fixture
def key():
  return jax.random.key(0)
