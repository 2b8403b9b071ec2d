"""Bad input at the public boundary raises ValueError naming what is wrong."""

import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games, solvers
from nashax.core import validate


def test_preference_not_square():
  with pytest.raises(ValueError, match=r"preference: expected a square \[n, n\] matrix, got shape \(2, 3\)"):
    nashax.PreferenceGame.from_matrix(np.full((2, 3), 0.5))


def test_preference_not_skew_symmetric():
  p = np.array([[0.5, 0.9, 0.5], [0.4, 0.5, 0.5], [0.5, 0.5, 0.5]])
  with pytest.raises(ValueError, match=r"P \+ P.T must equal 1 \(max deviation 0.3 at \[0, 1\]\)"):
    nashax.PreferenceGame.from_matrix(p)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_entries(bad):
  a = np.zeros((2, 2)); a[1, 0] = bad
  with pytest.raises(ValueError, match=r"payoff: 1 non-finite entries .* first at \[1, 0\]"):
    nashax.MatrixGame.from_payoff(a)
  p = np.full((2, 2), 0.5); p[0, 1] = bad
  with pytest.raises(ValueError, match="preference: 1 non-finite"):
    nashax.PreferenceGame.from_matrix(p)
  with pytest.raises(ValueError, match="rewards: 1 non-finite"):
    games.bradley_terry([0.0, bad])


def test_preference_entries_outside_unit_interval():
  with pytest.raises(ValueError, match=r"entries are probabilities in \[0, 1\]"):
    nashax.PreferenceGame.from_matrix([[0.5, 1.5], [-0.5, 0.5]])


@pytest.mark.parametrize("pi_ref, msg", [
    ([0.5, 0.6], "pi_ref: is not a distribution: entries sum to 1.1"),
    ([1.2, -0.2], "pi_ref: is not a distribution: entry 1 is negative"),
    ([1.0, 0.0], r"pi_ref: must be > 0 wherever"),
    ([0.2, 0.3, 0.5], "pi_ref: expected 2 entries, got 3"),
])
def test_bad_reference_policy(pi_ref, msg):
  g = nashax.PreferenceGame.from_matrix([[0.5, 0.7], [0.3, 0.5]])
  with pytest.raises(ValueError, match=msg):
    g.regularized(0.1, pi_ref)


@pytest.mark.parametrize("beta", [0.0, -1.0, np.nan])
def test_bad_beta(beta):
  g = nashax.PreferenceGame.from_matrix([[0.5, 0.7], [0.3, 0.5]])
  with pytest.raises(ValueError, match="beta"):
    g.regularized(beta)


def test_strategy_not_a_distribution():
  with pytest.raises(ValueError, match="x: is not a distribution: entries sum to 0.9"):
    validate.distribution([0.4, 0.5], "x")


def test_wrong_player_axis():
  nashax.NormalFormGame.from_payoffs(np.zeros((2, 3, 2)))  # [p=2, a_1=3, a_2=2] is fine
  with pytest.raises(ValueError, match=r"payoffs: the player axis must come first: a 2-player tensor has shape \[2, a_1, \.\.\., a_2\], but axis 0 has length 3"):
    nashax.NormalFormGame.from_payoffs(np.zeros((3, 2, 2)))


def test_payoff_wrong_rank_and_bimatrix_shapes():
  with pytest.raises(ValueError, match=r"payoff: expected a 2-D \[n, m\] matrix, got shape \(3,\)"):
    nashax.MatrixGame.from_payoff(np.zeros(3))
  with pytest.raises(ValueError, match=r"b: must have the shape of a \(2, 2\), got \(2, 3\)"):
    nashax.NormalFormGame.from_bimatrix(np.zeros((2, 2)), np.zeros((2, 3)))


def test_solver_options_and_generators():
  with pytest.raises(ValueError, match="geometry: must be one of"):
    solvers.extragradient(0.1, geometry="hyperbolic")
  with pytest.raises(ValueError, match="average: must be one of"):
    solvers.mwu(0.1, average="exponential")
  with pytest.raises(ValueError, match="n: a regular tournament needs an odd n >= 3, got 4"):
    games.condorcet_cycle(4)
  with pytest.raises(ValueError, match="soldiers: must be a positive integer"):
    games.colonel_blotto(0, 3)


def test_regularized_game_refused_by_unregularized_solver():
  import jax
  g = nashax.PreferenceGame.from_matrix([[0.5, 0.7], [0.3, 0.5]]).regularized(0.1)
  with pytest.raises(ValueError, match="game: this solver solves unregularised games"):
    solvers.mwu(0.1).init(g, jax.random.key(0))


def test_run_rejects_uneven_chunks():
  import jax
  with pytest.raises(ValueError, match="num_steps: must be a multiple of every=3"):
    nashax.run(solvers.mwu(0.1), games.matching_pennies(), jax.random.key(0), num_steps=10, every=3)


@pytest.mark.parametrize("make, msg", [
    (lambda: solvers.mwu(-0.1), "eta: must be finite and > 0, got -0.1"),
    (lambda: solvers.optimistic_mwu(np.nan), "eta: must be finite and > 0, got nan"),
    (lambda: solvers.extragradient(0.0), "eta: must be finite and > 0, got 0.0"),
    (lambda: solvers.mmd(0.1, -1.0), "tau: must be finite and > 0, got -1.0"),
    (lambda: solvers.replicator(0.1, init_scale=-1.0), "init_scale: must be finite and >= 0, got -1.0"),
    (lambda: solvers.mwu(jnp.array([0.1, np.inf])), "eta: must be finite and > 0, got inf"),
])
def test_bad_hyperparameters_refused_before_jit(make, msg):
  with pytest.raises(ValueError, match=msg):
    make()


def test_traced_hyperparameters_still_vmap():
  import jax
  g = games.matching_pennies()
  st, _ = jax.vmap(lambda e: nashax.run(solvers.mwu(e), g, jax.random.key(0), num_steps=2))(jnp.array([0.1, 0.2]))
  assert st.step.shape == (2,)


@pytest.mark.parametrize("kw, msg", [
    (dict(tol=np.nan, max_steps=10), "tol: must be finite and > 0, got nan"),
    (dict(tol=-1e-3, max_steps=10), "tol: must be finite and > 0"),
    (dict(tol=1e-3, max_steps=0), "max_steps: must be a positive integer, got 0"),
    (dict(tol=1e-3, max_steps=10, check_every=0), "check_every: must be a positive integer"),
])
def test_bad_driver_arguments(kw, msg):
  import jax
  with pytest.raises(ValueError, match=msg):
    nashax.solve(solvers.mwu(0.1), games.matching_pennies(), jax.random.key(0), **kw)
  with pytest.raises(ValueError, match="num_steps: must be a positive integer, got 0"):
    nashax.run(solvers.mwu(0.1), games.matching_pennies(), jax.random.key(0), num_steps=0)
