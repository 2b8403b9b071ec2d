"""Sweeps over every problem type and solver, the user's own factories, rankings and float64.

Each sweep row is compared with the direct Python call for the same seed: the game built by the
public constructors (``nashax.games``, ``PreferenceGame.regularized``, ``alignment.red_teaming_game``,
``games.payoff_table``), the solver by its public factory, one game at a time with ``nashax.run``. The
sweep takes a different path (stacked solver pytrees, ``vmap`` inside ``lax.map``, traced game
hyperparameters, a traced divergence index), so a wrong game, a wrong key or a wrong hyperparameter in
the grid shows as a mismatch.
"""

import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import nashax
from nashax import games, solvers, sweeps
from nashax.core import divergences as D
from nashax.core.metrics import default_residual
from nashax.games import alignment
from nashax.sweeps import rankers, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = {"progress": False, "log": lambda s: None}


def _keys(seed, base=0):
  key = jax.random.fold_in(jax.random.key(base), seed)
  return jax.random.split(key)


def _direct(solver, game, skey, steps, every, metric):
  fn = (lambda g, s: default_residual(g, s)) if metric == "residual" else \
      (lambda g, s: getattr(nashax.metrics(g, s), metric))
  _, trace = nashax.run(solver, game, skey, num_steps=steps, every=every, metric_fn=fn)
  return np.asarray(trace, np.float64)


def _check_rows(res, metric, make, rtol=2e-4, atol=1e-6):
  """``make(row) -> (solver, game, skey)``; every row's trace equals the direct run's."""
  t = res.table
  steps, every = int(t["steps"][0]), int(res.steps[0])
  assert len(t["point"]) >= 2
  for i in range(len(t["point"])):
    solver, game, skey = make(t, i)
    want = _direct(solver, game, skey, steps, every, metric)
    np.testing.assert_allclose(res.traces[metric][i], want, rtol=rtol, atol=atol, err_msg=f"row {i}")


def _pref(gkey, n, beta):
  return games.random_preference_game(gkey, n).regularized(beta)


# ------------------------------------------------------------------------------------------------ families


def _contextual(tmp_path):
  cfg = {"game": {"family": "contextual_preference", "size": 3, "num_prompts": [2, 3], "beta": 0.5},
         "solver": {"name": "nash_md", "eta": 0.2}, "run": {"seeds": 2, "steps": 20, "every": 10,
                                                          "metrics": ["duality_gap"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    g = games.random_contextual_preference_game(gkey, int(t["num_prompts"][i]), 3).regularized(0.5)
    return solvers.nash_md(0.2), g, skey
  return cfg, "duality_gap", make


def _contextual_weights(tmp_path):
  w = [[1.0, 3.0], [2.0, 2.0]]
  cfg = {"game": {"family": "contextual_preference", "size": 3, "num_prompts": 2, "beta": 0.5,
                  "prompt_weights": w},
         "solver": {"name": "sppo", "eta": 0.3}, "run": {"seeds": 2, "steps": 20, "every": 10,
                                                       "metrics": ["duality_gap"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    p = games.random_contextual_preference_game(gkey, 2, 3).preference
    wv = np.asarray([float(x) for x in str(t["prompt_weights"][i]).split()])
    g = nashax.ContextualPreferenceGame.from_matrices(np.asarray(p), wv / wv.sum()).regularized(0.5)
    return solvers.sppo(0.3), g, skey
  return cfg, "duality_gap", make


def _f_regularized(tmp_path):
  """The divergence is a grid axis (a traced ``divergences.switch`` index); the direct call builds each
  member by name with ``PreferenceGame.f_regularized``."""
  cfg = {"game": {"family": "f_regularized", "size": 4, "beta": 0.3, "alpha": 0.3,
                  "divergence": ["reverse_kl", "chi_squared", "alpha"]},
         "solver": {"name": "f_extragradient", "eta": 0.2}, "run": {"seeds": 2, "steps": 20, "every": 10,
                                                                  "metrics": ["duality_gap"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    name = str(t["divergence"][i])
    div = D.alpha_divergence(0.3) if name == "alpha" else D.get(name)
    g = games.random_preference_game(gkey, 4).f_regularized(0.3, div)
    return solvers.f_extragradient(0.2), g, skey
  return cfg, "duality_gap", make


def _bilinear(tmp_path):
  cfg = {"game": {"family": "bilinear_sum", "size": 3, "components": 2, "lipschitz": [1.0, 2.5]},
         "solver": {"name": "eag", "alpha": 0.1}, "run": {"seeds": 1, "steps": 20, "every": 10,
                                                         "metrics": ["residual"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    fs = games.random_bilinear_sum(gkey, 2, 3, float(t["lipschitz"][i]))
    return solvers.eag(0.1), fs, skey
  return cfg, "residual", make


def _least_squares(tmp_path):
  cfg = {"game": {"family": "least_squares", "size": 3, "components": 16, "noise": [0.0, 0.5]},
         "solver": {"name": "vr_halpern"}, "run": {"seeds": 2, "steps": 20, "every": 10, "metrics": ["residual"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    fs = games.random_least_squares(gkey, 16, 3, noise=float(t["noise"][i]))
    return solvers.vr_halpern(), fs, skey
  return cfg, "residual", make


def _annotators(tmp_path):
  cfg = {"game": {"family": "annotator_sum", "size": 3, "components": 5},
         "solver": {"name": "eag", "alpha": 0.2}, "run": {"seeds": 2, "steps": 10, "every": 5,
                                                        "metrics": ["residual"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    return solvers.eag(0.2), games.random_annotator_preference_sum(gkey, 5, 3), skey
  return cfg, "residual", make


def _red_teaming(tmp_path):
  """The attacker/defender matrix comes from the public ``alignment.red_teaming_game`` on the prompts
  drawn with the row's key (the draws of ``random_red_teaming_game``, in JAX)."""
  cfg = {"game": {"family": "red_teaming", "size": 6, "observations": 3, "refusal_cost": [0.2, 0.5],
                  "disguise": 0.5},
         "solver": {"name": "extragradient", "eta": 0.2}, "run": {"seeds": 2, "steps": 20, "every": 10,
                                                                "metrics": ["duality_gap"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    k1, k2, k3 = jax.random.split(gkey, 3)
    harmful = (np.arange(6) % 2).astype(float)
    harm = np.asarray(jax.random.uniform(k1, (6,), minval=0.3, maxval=1.0)) * harmful
    benign = np.asarray(jax.random.randint(k2, (6,), 0, 2))
    disguised = np.asarray(jax.random.uniform(k3, (6,))) < 0.5
    obs = np.where(harmful == 0, benign, np.where(disguised, benign, 2)).astype(np.int32)
    g = alignment.red_teaming_game(harmful, harm, obs, float(t["refusal_cost"][i]))
    return solvers.extragradient(0.2), g, skey
  return cfg, "duality_gap", make


def _three_rater(tmp_path):
  cfg = {"game": {"family": "three_rater_cycle", "eps": [-0.1, 0.1]},
         "solver": {"name": "mwu", "eta": 0.1}, "run": {"seeds": 2, "steps": 20, "every": 10,
                                                      "metrics": ["duality_gap"]}}

  def make(t, i):
    _, skey = _keys(int(t["seed"][i]))
    return solvers.mwu(0.1), games.three_rater_cycle(float(t["eps"][i])), skey
  return cfg, "duality_gap", make


def _payoff_table(tmp_path):
  """A zero-sum CSV in ``games.payoff_table``'s long format and a general-sum ``.npy``: the direct call
  reads the same files with ``games.payoff_table``."""
  a = np.asarray(jax.random.uniform(jax.random.key(5), (3, 4), minval=-1, maxval=1), np.float64)
  rows = ["s1,s2,u1,u2"] + [f"{i},{j},{float(a[i, j])!r},{-float(a[i, j])!r}" for i in range(3) for j in range(4)]
  (tmp_path / "zs.csv").write_text("\n".join(rows) + "\n")
  cfg = {"game": {"family": "payoff_table", "path": str(tmp_path / "zs.csv")},
         "solver": {"name": "optimistic_mwu", "eta": [0.1, 0.3]}, "run": {"seeds": 2, "steps": 20, "every": 10,
                                                                        "metrics": ["duality_gap"]}}

  def make(t, i):
    _, skey = _keys(int(t["seed"][i]))
    nf = games.payoff_table(str(tmp_path / "zs.csv"))
    g = nashax.MatrixGame(jnp.asarray(nf.payoffs[0]))
    return solvers.optimistic_mwu(float(t["eta"][i])), g, skey
  return cfg, "duality_gap", make


def _target(tmp_path):
  cfg = {"game": {"family": "target", "size": 5, "beta": 0.5},
         "solver": {"name": "f_dpg", "divergence": ["reverse_kl", "jensen_shannon"], "lr": 0.05},
         "run": {"seeds": 1, "steps": 20, "every": 10, "metrics": ["residual"]}}

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    target = nashax.TargetDistribution.from_reward(np.asarray(jax.random.normal(gkey, (5,))), 0.5)
    return solvers.f_dpg(D.get(str(t["divergence"][i])), 0.05), target, skey
  return cfg, "residual", make


FAMILIES = {"contextual_preference": _contextual, "contextual_weights": _contextual_weights,
            "f_regularized": _f_regularized, "bilinear_sum": _bilinear, "least_squares": _least_squares,
            "annotator_sum": _annotators, "red_teaming": _red_teaming, "three_rater_cycle": _three_rater,
            "payoff_table": _payoff_table, "target": _target}


@pytest.mark.parametrize("case", list(FAMILIES))
def test_new_family_rows_equal_direct_calls(case, tmp_path):
  """A smoke sweep over each new family gives, row by row, the direct call's trace for the same seed."""
  cfg, metric, make = FAMILIES[case](tmp_path)
  res = sweeps.run_sweep(cfg, str(tmp_path / "out"), **QUIET)
  assert res.table["finite"].all()
  _check_rows(res, metric, make)


def test_every_new_family_has_a_case():
  """A family added to the registry without a row-equality case above fails here."""
  old = {"random_zero_sum", "random_interior_zero_sum", "random_preference", "bradley_terry", "condorcet_cycle",
         "rock_paper_scissors"}
  assert set(registry.GAME_FAMILIES) - old == set(FAMILIES) - {"contextual_weights"}


def test_payoff_table_file_change_is_a_different_sweep(tmp_path):
  """The table file's sha256 is part of the fingerprint: editing the file and resuming is refused."""
  cfg, _, _ = _payoff_table(tmp_path)
  cfg["solver"]["eta"] = 0.1
  cfg["run"].update(seeds=1, steps=2, every=1)
  sweeps.run_sweep(cfg, str(tmp_path / "out"), **QUIET)
  path = tmp_path / "zs.csv"
  lines = path.read_text().splitlines()
  lines[1] = "0,0,0.25,-0.25"
  path.write_text("\n".join(lines) + "\n")
  with pytest.raises(ValueError, match="holds a different sweep"):
    sweeps.run_sweep(cfg, str(tmp_path / "out"), **QUIET)


# ------------------------------------------------------------------------------------------------ solvers

_MATRIX = {"family": "random_zero_sum", "size": 3}
_PREF = {"family": "random_preference", "size": 4, "beta": 0.5}
_LSQ = {"family": "least_squares", "size": 3, "components": 9}

# solver -> (game table, swept hparams, direct factory call for one row)
SOLVER_CASES = {
    "mwu": (_MATRIX, {"eta": 0.1}, lambda: solvers.mwu(0.1)),
    "optimistic_mwu": (_MATRIX, {"eta": 0.1}, lambda: solvers.optimistic_mwu(0.1)),
    "extragradient": (_MATRIX, {"eta": 0.2, "geometry": "euclidean"},
                      lambda: solvers.extragradient(0.2, geometry="euclidean")),
    "fictitious_play": (_MATRIX, {}, lambda: solvers.fictitious_play()),
    "regret_matching_plus": (_MATRIX, {}, lambda: solvers.regret_matching_plus()),
    "replicator": (_MATRIX, {"eta": 0.1}, lambda: solvers.replicator(0.1)),
    "mmd": (_MATRIX, {"eta": 0.2, "tau": 0.1}, lambda: solvers.mmd(0.2, 0.1)),
    "eag": (_MATRIX, {"alpha": 0.1, "variant": "varying"}, lambda: solvers.eag(0.1, variant="varying")),
    "feg": (_MATRIX, {"lipschitz": 2.0}, lambda: solvers.feg(2.0)),
    "projected_extragradient": (_MATRIX, {"eta": 0.2}, lambda: solvers.projected_extragradient(0.2)),
    "halpern": (_MATRIX, {"eta": 0.3, "base": "resolvent"},
                lambda: solvers.halpern_iteration(solvers.resolvent_step(0.3))),
    "vr_halpern": (_LSQ, {}, lambda: solvers.vr_halpern()),
    "vr_halpern_resolvent": (_MATRIX, {}, lambda: solvers.vr_halpern_resolvent()),
    "nash_md": (_PREF, {"eta": 0.2}, lambda: solvers.nash_md(0.2)),
    "nash_ema": (_PREF, {"eta": 0.2}, lambda: solvers.nash_ema(0.2)),
    "sppo": (_PREF, {"eta": 0.2, "iterate": "last"}, lambda: solvers.sppo(0.2, iterate="last")),
    "spo": (_PREF, {"eta": 0.2}, lambda: solvers.spo(0.2)),
    "dno": (_PREF, {"eta": 0.2}, lambda: solvers.dno(0.2)),
    "inpo": (_PREF, {"eta": 0.2}, lambda: solvers.inpo(0.2)),
    "online_ipo": (_PREF, {"eta": 0.5}, lambda: solvers.online_ipo(0.5)),
    "onpo": (_PREF, {"eta": 0.2}, lambda: solvers.onpo(0.2)),
    "egpo": (_PREF, {"eta": 0.2}, lambda: solvers.egpo(0.2)),
    "mnpo": (_PREF, {"eta": 0.2, "weights": [[0.7, 0.3]]}, lambda: solvers.mnpo(0.2, (0.7, 0.3))),
    "mpo": (_PREF, {"eta": 0.2}, lambda: solvers.mpo(0.2)),
    "iterative_dpo": (_PREF, {"loss": "ipo"}, lambda: solvers.iterative_dpo("ipo")),
    "f_extragradient": ({"family": "f_regularized", "size": 4, "beta": 0.3, "divergence": "chi_squared"},
                        {"eta": 0.2}, lambda: solvers.f_extragradient(0.2)),
    "f_dpg": ({"family": "target", "size": 4, "beta": 1.0}, {"divergence": "forward_kl", "lr": 0.1},
              lambda: solvers.f_dpg(D.forward_kl(), 0.1)),
}


def _game_of(table, gkey):
  fam = table["family"]
  if fam == "random_zero_sum":
    return games.random_zero_sum(gkey, 3, 3)
  if fam == "random_preference":
    return _pref(gkey, 4, 0.5)
  if fam == "least_squares":
    return games.random_least_squares(gkey, 9, 3)
  if fam == "f_regularized":
    return games.random_preference_game(gkey, 4).f_regularized(0.3, D.chi_squared())
  return nashax.TargetDistribution.from_reward(np.asarray(jax.random.normal(gkey, (4,))), 1.0)


def test_every_catalogued_solver_has_a_case():
  """A solver added to the sweep registry without a row-equality case below fails here."""
  assert set(SOLVER_CASES) == set(registry.SOLVERS)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SOLVER_CASES))
def test_every_solver_sweep_equals_the_direct_call(name, tmp_path):
  """Each catalogued solver swept in smoke size (2 seeds, 10 steps) equals ``nashax.run`` of its public
  factory on the game built from the row's seed."""
  table, hp, make_solver = SOLVER_CASES[name]
  metric = "residual" if table["family"] in ("least_squares", "target") else "duality_gap"
  cfg = {"game": dict(table), "solver": {"name": name, **hp},
         "run": {"seeds": 2, "steps": 10, "every": 5, "metrics": [metric]}}
  res = sweeps.run_sweep(cfg, str(tmp_path), **QUIET)

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    return make_solver(), _game_of(table, gkey), skey
  _check_rows(res, metric, make)


# ------------------------------------------------------------------------------------------------ user code

USER = '''
"""A user's own game and solver factories (written by the test)."""
import jax
import jax.numpy as jnp
import numpy as np

from nashax import solvers
from nashax.core.games import PreferenceGame


def my_game(key, size, beta=0.5, temperature=1.0):
  """Bradley-Terry-like preferences with a temperature, KL-regularised toward uniform."""
  u = temperature * jax.random.normal(key, (size,))
  p = jax.nn.sigmoid(u[:, None] - u[None, :]) * 0.6 + 0.2 * jnp.tril(jnp.ones((size, size)), -1)
  p = jnp.triu(p, 1) + jnp.tril(1.0 - jnp.triu(p, 1).T, -1) + 0.5 * jnp.eye(size)
  return PreferenceGame(p, jnp.asarray(beta, p.dtype), jnp.full((size,), -jnp.log(size), p.dtype))


def not_traceable(key, size, beta=0.5):
  """Uses NumPy on a traced hyperparameter: refused before compiling."""
  return PreferenceGame(jnp.full((size, size), 0.5), jnp.asarray(float(np.asarray(beta))),
                        jnp.full((size,), -np.log(size)))


def my_solver(eta=0.1, *, init_scale=1.0):
  """The user's solver: SPPO's last iterate under another name."""
  return solvers.sppo(eta, iterate="last", init_scale=init_scale)
'''


def _user_cfg():
  return {"game": {"family": "user_sweep_mod:my_game", "size": 4, "temperature": [0.5, 2.0], "beta": 0.3},
          "solver": {"name": "user_sweep_mod:my_solver", "eta": [0.1, 0.4]},
          "run": {"seeds": 2, "steps": 20, "every": 10, "metrics": ["duality_gap"], "chunk": 2}}


@pytest.fixture
def user_module(tmp_path, monkeypatch):
  d = tmp_path / "pkg"
  d.mkdir()
  (d / "user_sweep_mod.py").write_text(textwrap.dedent(USER))
  monkeypatch.syspath_prepend(str(d))
  yield d
  sys.modules.pop("user_sweep_mod", None)


def test_user_factories_are_validated_before_compiling(user_module, tmp_path):
  """Misspelt hyperparameters of the user's game and solver are named; an untraceable factory and a
  missing module are refused with the reason; all before anything compiles."""
  from test_sweeps import _compilations

  bad = [
      ({"game": {"temprature": 1.0}}, r"game.temprature: family 'user_sweep_mod:my_game' takes no hyperparameter "
                                      r"'temprature' \(it takes: \['beta', 'temperature'\]\)"),
      ({"solver": {"etta": 0.1}}, r"solver.etta: solver 'user_sweep_mod:my_solver' takes no hyperparameter"),
      ({"solver": {"eta": -1.0}}, r"solver: user_sweep_mod:my_solver\(eta=-1.0\) is refused: eta"),
      ({"game": {"family": "user_sweep_mod:not_traceable", "temperature": None}},
       r"game.family: 'user_sweep_mod:not_traceable' cannot be traced .*inside jit.*TracerArrayConversionError"),
      ({"game": {"family": "no_such_mod:my_game"}}, r"game.family: cannot import module 'no_such_mod'"),
      ({"game": {"family": "user_sweep_mod:my_gmae"}}, r"game.family: module 'user_sweep_mod' has no attribute"),
  ]
  for patch, message in bad:
    cfg = _user_cfg()
    for k, v in patch.items():
      cfg[k].update(v)
      for kk in [kk for kk, vv in v.items() if vv is None]:
        cfg[k].pop(kk)
    with _compilations() as compiles:
      with pytest.raises(ValueError, match=message):
        sweeps.run_sweep(cfg, str(tmp_path / "out"), **QUIET)
    assert not compiles, (message, compiles)
  assert not (tmp_path / "out").exists()


_KILL_AFTER_FIRST_CHUNK = """
import os, signal, sys
from nashax.sweeps import runner
write = runner._write_verified
def write_then_die(path, fn):
  write(path, fn)
  if "chunks" in path:
    os.kill(os.getpid(), signal.SIGKILL)
runner._write_verified = write_then_die
import json
from nashax import sweeps
sweeps.run_sweep(json.loads(sys.argv[1]), sys.argv[2], progress=False, log=lambda s: None)
"""


def test_user_factory_sweep_equals_direct_calls_and_resumes_after_a_kill(user_module, tmp_path):
  """The user's game and solver, swept: every row equals the direct call of the user's functions; a
  process SIGKILLed right after its first chunk, resumed, writes the uninterrupted run's results.csv."""
  import json

  import user_sweep_mod as U

  cfg = _user_cfg()
  env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.pathsep.join([str(user_module), ROOT]))
  killed = tmp_path / "killed"
  p = subprocess.run([sys.executable, "-c", _KILL_AFTER_FIRST_CHUNK, json.dumps(cfg), str(killed)], env=env,
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
  assert len(list((killed / "chunks").glob("*.npz"))) == 1 and not (killed / "results.csv").exists()
  msgs = []
  res = sweeps.run_sweep(cfg, str(killed), progress=False, log=msgs.append)
  assert res.computed == 3 and any("1 of 4 chunks already done" in m for m in msgs), msgs
  full = sweeps.run_sweep(cfg, str(tmp_path / "full"), **QUIET)
  assert (killed / "results.csv").read_text() == (tmp_path / "full" / "results.csv").read_text()

  def make(t, i):
    gkey, skey = _keys(int(t["seed"][i]))
    return U.my_solver(float(t["eta"][i])), U.my_game(gkey, 4, 0.3, float(t["temperature"][i])), skey
  _check_rows(full, "duality_gap", make)


# ------------------------------------------------------------------------------------------------ float64


def _egpo(x64):
  return {"game": {"family": "random_preference", "size": 16, "beta": 0.1},
          "solver": {"name": "egpo", "eta": 0.8},
          "run": {"seeds": 3, "steps": 600, "every": 300, "metrics": ["duality_gap"], "x64": x64}}


def test_float64_sweep_reaches_gaps_float32_cannot(tmp_path):
  """EGPO converges linearly, ``KL(pi*, pi_t) <= (1 - eta beta)^t KL(pi*, pi_0)`` (Cen, Wei & Chi 2021,
  arXiv:2105.15186; eta = 0.8 <= 1 / (beta + 2 max|P - 1/2|)), so after 600 steps the exact gap is
  ~e^-48 and only rounding remains: with ``x64 = true`` the final |duality gap| is below 1e-12 on every
  seed, while the float32 sweep stops at its rounding floor (1e-9 < max |gap| < 1e-5; float32's epsilon
  is 1.2e-7). The table says which precision ran. (Nash-MD, which the issue names, cannot serve: with a
  constant step its fixed point is O(eta) from the equilibrium, and with the theory schedule its gap
  falls as O(1/t).)"""
  r64 = sweeps.run_sweep(_egpo(True), str(tmp_path / "f64"), **QUIET)
  r32 = sweeps.run_sweep(_egpo(False), str(tmp_path / "f32"), **QUIET)
  g64, g32 = np.abs(r64.table["duality_gap"]), np.abs(r32.table["duality_gap"])
  assert g64.max() < 1e-12, g64
  assert 1e-9 < g32.max() < 1e-5, g32
  assert set(r64.table["precision"]) == {"float64"} and set(r32.table["precision"]) == {"float32"}
  assert "float64" in (tmp_path / "f64" / "results.csv").read_text().splitlines()[1]


def test_resume_refuses_a_folder_of_the_other_precision(tmp_path):
  """A float32 folder resumed with x64 = true (and the reverse) is refused, naming both precisions."""
  cfg = {"game": {"family": "random_preference", "size": 3, "beta": 0.5}, "solver": {"name": "nash_md", "eta": 0.2},
         "run": {"seeds": 1, "steps": 2, "every": 1, "metrics": ["duality_gap"]}}
  sweeps.run_sweep(cfg, str(tmp_path / "a"), **QUIET)
  with pytest.raises(ValueError, match=r"holds a float32 sweep and this config runs in float64"):
    sweeps.run_sweep({**cfg, "run": {**cfg["run"], "x64": True}}, str(tmp_path / "a"), **QUIET)
  sweeps.run_sweep({**cfg, "run": {**cfg["run"], "x64": True}}, str(tmp_path / "b"), **QUIET)
  with pytest.raises(ValueError, match=r"holds a float64 sweep and this config runs in float32"):
    sweeps.run_sweep(cfg, str(tmp_path / "b"), **QUIET)


# ------------------------------------------------------------------------------------------------ rankings


def test_alpharank_sweep_over_alpha_equals_direct_calls(tmp_path):
  """alpha in {0.1, 1, 10, 100, inf} on random preference games: every row's pi is ``solvers.alpha_rank``
  of the game's ``(P - 1/2, P^T - 1/2)`` table, and its ``sink_mass`` is pi's mass on the sink components
  that scipy finds in the weak response graph (``rank.diagnostics.sink_components``, a second algorithm);
  at alpha = inf all mass is there (the infinite-alpha limit of Omidshafiei et al. 2019)."""
  from nashax.rank.diagnostics import sink_components
  from nashax.solvers.alpharank import response_graph

  cfg = {"game": {"family": "random_preference", "size": 3},
         "solver": {"name": "alpharank", "alpha": [0.1, 1.0, 10.0, 100.0, float("inf")], "m": 20},
         "run": {"seeds": 2}}
  res = sweeps.run_sweep(cfg, str(tmp_path), **QUIET)
  t = res.table
  assert len(t["point"]) == 5 * 2 and set(res.traces) >= {"sink_mass", "max_mass", "residual", "pi"}
  for i in range(len(t["point"])):
    gkey, _ = _keys(int(t["seed"][i]))
    a = games.random_preference_game(gkey, 3).preference - 0.5
    u = jnp.stack([a, a.T])
    want = np.asarray(solvers.alpha_rank(u, float(t["alpha"][i]), 20).pi)
    np.testing.assert_allclose(res.traces["pi"][i, 0], want, rtol=1e-4, atol=1e-6, err_msg=f"row {i}")
    sinks = [v for c in sink_components(np.asarray(response_graph(u, weak=True))) for v in c]
    np.testing.assert_allclose(t["sink_mass"][i], want[sinks].sum(), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(t["sink_mass"][np.isinf(t["alpha"])], 1.0, atol=1e-5)


def test_nash_averaging_sweep_equals_direct_calls(tmp_path):
  """Nash averaging of preference games of two sizes equals ``solvers.nash_averaging`` of P (pi padded
  with NaN past each game's size)."""
  na = sweeps.run_sweep({"game": {"family": "random_preference", "size": [3, 4]},
                         "solver": {"name": "nash_averaging", "steps": 500}, "run": {"seeds": 2}},
                        str(tmp_path / "na"), **QUIET)
  for i in range(len(na.table["point"])):
    gkey, _ = _keys(int(na.table["seed"][i]))
    n = int(na.table["size"][i])
    r = solvers.nash_averaging(games.random_preference_game(gkey, n).preference, steps=500)
    np.testing.assert_allclose(na.traces["pi"][i, 0, :n], r.equilibrium, rtol=1e-4, atol=1e-6)
    assert np.isnan(na.traces["pi"][i, 0, n:]).all()
    np.testing.assert_allclose(na.table["gap"][i], r.gap, atol=1e-6)


def test_response_graph_ucb_sweep_over_delta_equals_direct_calls(tmp_path):
  """ResponseGraphUCB over delta equals ``solvers.response_graph_ucb`` on the (P, P^T) Bernoulli means with
  the row's key (samples; errors counted here in NumPy from the true means, edge by edge), and a smaller
  delta costs more samples."""
  ucb = sweeps.run_sweep({"game": {"family": "random_preference", "size": 3},
                          "solver": {"name": "response_graph_ucb", "delta": [0.05, 0.3]}, "run": {"seeds": 2}},
                         str(tmp_path / "ucb"), **QUIET)
  for i in range(len(ucb.table["point"])):
    gkey, skey = _keys(int(ucb.table["seed"][i]))
    p = games.random_preference_game(gkey, 3).preference
    r = solvers.response_graph_ucb(skey, jnp.stack([p, p.T]), float(ucb.table["delta"][i]))
    assert int(ucb.table["samples"][i]) == int(r.samples) == int(ucb.table["oracle_calls"][i])
    mu = np.stack([np.asarray(p), np.asarray(p).T]).reshape(2, 9)  # player k's mean at each profile
    est = np.asarray(r.graph)
    wrong = sum(bool(est[s, d]) != bool(mu[k, d] > mu[k, s]) for s, d, k in np.asarray(r.edges)
                if mu[k, d] != mu[k, s])
    assert int(ucb.table["errors"][i]) == wrong
  d = ucb.table["delta"]
  assert ucb.table["samples"][d == 0.05].sum() > ucb.table["samples"][d == 0.3].sum()


BAD = [
    ({"game": {"family": "contextual_preference", "size": 3, "num_prompts": 2, "prompt_weights": [[1.0, 2.0, 3.0]]}},
     r"game.prompt_weights: a vector of num_prompts = 2 entries, got 3"),
    ({"game": {"family": "f_regularized", "size": 3, "divergence": ["reverse_kl", "kl"]}},
     r"game.divergence: unknown value 'kl'"),
    ({"game": {"family": "red_teaming", "size": 4, "observations": 13}}, r"game.observations: must be"),
    ({"game": {"family": "red_teaming", "size": 4, "disguise": 1.5}}, r"game.disguise: must be finite numbers >= 0 and <= 1"),
    ({"game": {"family": "payoff_table"}}, r"game.path: missing"),
    ({"game": {"family": "payoff_table", "path": "/no/such.csv"}}, r"game.path: no such file"),
    ({"solver": [{"name": "nash_md", "eta": 0.1}, {"name": "alpharank"}]}, r"solver: a sweep holds iterative solvers or rankers"),
    ({"solver": {"name": "alpharank"}, "run": {"seeds": 1, "steps": 10}}, r"run.steps: a ranking sweep makes one call"),
    ({"solver": {"name": "alpharank"}, "run": {"seeds": 1, "metrics": ["duality_gap"]}}, r"run.metrics: unknown metric 'duality_gap'; one of \['sink_mass'"),
    ({"solver": {"name": "alpharank", "alpha": -1.0}, "run": {"seeds": 1}}, r"alpharank\(alpha=-1.0\) is refused"),
    ({"run": {"seeds": 1, "steps": 2, "x64": "yes"}}, r"run.x64"),
]


@pytest.mark.parametrize("patch,message", BAD, ids=[m for _, m in BAD])
def test_bad_new_keys_are_refused_before_compiling(patch, message, tmp_path):
  from test_sweeps import _compilations

  cfg = {"game": {"family": "random_preference", "size": 4}, "solver": {"name": "nash_md", "eta": 0.1},
         "run": {"seeds": 2, "steps": 10}}
  cfg.update(patch)
  with _compilations() as compiles:
    with pytest.raises(ValueError, match=message):
      sweeps.run_sweep(cfg, str(tmp_path / "out"), **QUIET)
  assert not compiles, compiles


def test_every_example_config_is_valid(monkeypatch):
  """Each shipped example validates (families, solvers, files, the user's factories) without running."""
  folder = os.path.join(ROOT, "examples", "sweeps")
  monkeypatch.syspath_prepend(folder)
  names = sorted(f for f in os.listdir(folder) if f.endswith(".toml"))
  assert {"f_divergences.toml", "halpern_finite_sum.toml", "alpharank_alpha.toml", "egpo_float64.toml",
          "user_factory.toml", "payoff_table.toml"} <= set(names)
  for f in names:
    cfg = sweeps.load_config(os.path.join(folder, f))
    assert sweeps.from_dict(cfg.to_dict()) == cfg, f
  sys.modules.pop("my_factories", None)


# ------------------------------------------------------------------------------------------------ policy runs

POLICY = {"model": {"vocab_size": 4, "num_layers": 1, "num_heads": 2, "embed_dim": 16, "max_len": 4},
          "oracle": {"num_classes": 3, "response_len": 2},
          "train": {"algorithm": "egpo", "seed": [0, 1], "batch_size": 8, "num_steps": 6},
          "run": {"eval_every": 2, "checkpoint_every": 2}}


def test_policy_grid_expands_and_names_its_runs():
  """Lists under algorithm, beta, eta and seed are grid axes (one run per combination, named by the swept
  values); a list under another key is refused naming it."""
  from nashax.policies import experiment as E

  cfg = {**POLICY, "train": {**POLICY["train"], "algorithm": ["egpo", "sppo"], "beta": [0.1, 0.2]}}
  exp = E.experiment_from_dict(cfg)
  assert len(exp.trains) == 8
  assert exp.labels[:3] == ["egpo-beta0.1-seed0", "egpo-beta0.1-seed1", "egpo-beta0.2-seed0"]
  assert E.experiment_from_dict({**POLICY, "train": {"algorithm": ["egpo", "sppo"]}}).labels == ["egpo", "sppo"]
  with pytest.raises(ValueError, match=r"train.lr: a list is a grid axis only for"):
    E.experiment_from_dict({**POLICY, "train": {**POLICY["train"], "lr": [0.1, 0.2]}})
  with pytest.raises(ValueError, match=r"train.seed: a grid axis is a non-empty list without repeats"):
    E.experiment_from_dict({**POLICY, "train": {**POLICY["train"], "seed": [1, 1]}})


def test_two_point_policy_sweep_killed_and_resumed_gives_the_uninterrupted_table(tmp_path):
  """Two seeds of one algorithm: a run stopped mid-way (``stop_after``, after a checkpoint) and resumed
  writes the same ``runs.csv`` (both runs' metrics in one tidy table) as an uninterrupted run (the
  reference), and the seeds really differ."""
  import csv

  from nashax.policies import experiment as E

  quiet = dict(progress=False, log=lambda s: None)
  E.run_experiment(POLICY, str(tmp_path / "full"), **quiet)
  E.run_experiment(POLICY, str(tmp_path / "cut"), stop_after=3, **quiet)
  assert (tmp_path / "cut" / "runs.csv").exists()
  msgs = []
  E.run_experiment(POLICY, str(tmp_path / "cut"), progress=False, log=msgs.append)
  assert sum("resuming from step 2" in m for m in msgs) == 2, msgs
  full = (tmp_path / "full" / "runs.csv").read_text()
  assert (tmp_path / "cut" / "runs.csv").read_text() == full
  rows = list(csv.DictReader(full.splitlines()))
  assert {r["run"] for r in rows} == {"egpo-seed0", "egpo-seed1"} and len(rows) == 2 * 4
  last = {r["run"]: r for r in rows if r["step"] == "6"}
  assert last["egpo-seed0"]["kl_ref"] != last["egpo-seed1"]["kl_ref"]
  assert (tmp_path / "full" / "comparison.png").exists()
