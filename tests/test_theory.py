"""The registered claims pass in fast mode, and `nashax verify` reports failures."""

import json
import os

import numpy as np
import pytest

from nashax import cli
from nashax import theory
from nashax.theory import claim_types, registry, runner

FOUNDATION_CLAIMS = ["hedge_average_gap", "extragradient_ergodic_gap", "optimistic_mwu_last_iterate"]
NLHF_CLAIMS = ["nash_md_last_iterate_kl", "egpo_linear_rate", "mpo_linear_rate", "inpo_last_iterate_kl",
               "sppo_average_gap", "onpo_average_gap", "bt_rlhf_vs_minimax_winner", "maxmin_rlhf_impossibility"]
MONOTONE_CLAIMS = ["halpern_last_iterate", "eag_feg_residual", "vr_halpern_complexity", "exit_criterion_sound"]
FDIV_CLAIMS = ["divergence_axioms", "f_dpg_reaches_target", "f_dpg_alignment_diversity", "f_dpo_optimum",
               "f_game_equilibrium"]
RANKING_CLAIMS = ["alpharank_limits", "response_graph_ucb_guarantees"]
ALIGNMENT_CLAIMS = ["off_switch_incentive", "consensus_game_pikl", "red_teaming_safety_guarantee", "best_of_n_win_rate",
                    "transformed_rewards_and", "dpo_ranking_accuracy"]
POLICY_CLAIMS = ["policy_nash_beats_iterative_dpo", "lm_policy_nash_reaches_the_regularised_equilibrium"]


def test_issue_claims_are_registered():
  names = [c.name for c in registry.claims()]
  for n in FOUNDATION_CLAIMS + NLHF_CLAIMS + MONOTONE_CLAIMS + FDIV_CLAIMS + RANKING_CLAIMS + ALIGNMENT_CLAIMS + POLICY_CLAIMS:
    assert n in names


@pytest.mark.parametrize("name", FOUNDATION_CLAIMS + NLHF_CLAIMS + MONOTONE_CLAIMS + FDIV_CLAIMS + RANKING_CLAIMS + ALIGNMENT_CLAIMS + POLICY_CLAIMS)
def test_claim_passes_fast(name, tmp_path):
  (r,) = registry.run_claims(name, fast=True, out_dir=str(tmp_path))
  assert r.status == "pass", r
  # Claims whose bound is attained exactly (Halpern's T = -I, FEG's tight instance) pass at 1 + rounding.
  assert 0 < r.worst_ratio <= 1.0 + 1e-6
  assert all(os.path.getsize(f) > 1000 for f in r.figures)


def test_alpharank_reference_matches_a_hand_computed_two_strategy_chain():
  """The 60-digit reference of the alpha-rank claim against a hand computation: two populations, one with two
  strategies and gain Delta f = 1 for switching 0 -> 1, the other with one strategy; at alpha = 1, m = 2 the
  fixation probabilities are (1 - e^-1)/(1 - e^-2) = 1/(1 + e^-1) and (1 - e)/(1 - e^2) = 1/(1 + e), so
  pi_1/pi_0 = rho(0->1)/rho(1->0) = e."""
  from nashax.theory import ranking as TR

  payoffs = np.zeros((2, 2, 1))
  payoffs[0, 1, 0] = 1.0
  pi = TR.alpharank_reference(payoffs, 1.0, 2)
  np.testing.assert_allclose(pi[1] / pi[0], np.e, rtol=1e-14)


def test_result_from_ratios_fails_above_one():
  r = registry.result_from_ratios("x", np.array([0.5, 2.0]), np.array([1.0, 1.0]), "", (), 0.0)
  assert r.status == "fail" and r.worst_ratio == 2.0 and r.measured == 2.0
  r = registry.result_from_ratios("x", np.array([0.5, np.nan]), np.array([1.0, 1.0]), "", (), 0.0)
  assert r.status == "fail"


def test_cli_json_list_and_exit_codes(tmp_path, monkeypatch, capsys):
  out = tmp_path / "verify"
  js = tmp_path / "r.json"
  assert cli.main(["verify", "--fast", "--only", "hedge*", "--out", str(out), "--json", str(js)]) == 0
  rows = json.loads(js.read_text())
  assert [r["name"] for r in rows] == ["hedge_average_gap"]
  assert set(rows[0]) >= {"name", "status", "bound", "measured", "worst_ratio"}
  assert (out / "report.md").exists() and (out / "hedge_average_gap.png").exists()
  assert "mutants rejected" in (out / "report.md").read_text()
  assert cli.main(["verify", "--list"]) == 0
  listed = capsys.readouterr().out
  assert "extragradient_ergodic_gap" in listed
  assert "rejects no_extragradient: plain mirror descent" in listed  # the mutants each claim rejects
  assert cli.main(["verify", "--only", "no-such-claim", "--out", str(out)]) == 2

  # A user's claim whose measurement exceeds its bound makes the command fail.
  monkeypatch.setattr(runner, "_USER", {})
  registry.register(registry.Claim(
      "always_fails", "measured 2 <= bound 1", "test",
      lambda fast, d: registry.result_from_ratios("always_fails", np.array([2.0]), np.array([1.0]), "", (),
                                                  0.0)))
  assert cli.main(["verify", "--only", "always_fails", "--out", str(out), "--jobs", "2"]) == 1
  with pytest.raises(ValueError, match="name"):
    registry.register(registry.Claim("always_fails", "t", "s", lambda fast, d: None))


def test_run_claims_in_worker_processes_matches_in_process(tmp_path):
  """`jobs=2` runs each claim in a fresh process: the measurements must equal the in-process ones
  (every claim is seeded), and the results come back in registration order."""
  names = "hedge_average_gap,extragradient_ergodic_gap"
  here = registry.run_claims(names, fast=True, out_dir=str(tmp_path / "a"), jobs=1)
  there = registry.run_claims(names, fast=True, out_dir=str(tmp_path / "b"), jobs=2)
  assert [r.name for r in there] == [r.name for r in here] == names.split(",")
  for a, b in zip(here, there):
    assert b.status == a.status == "pass"
    np.testing.assert_allclose(b.measured, a.measured, rtol=1e-6)
    np.testing.assert_allclose(b.worst_ratio, a.worst_ratio, rtol=1e-6)
  with pytest.raises(ValueError, match="jobs"):
    registry.run_claims(names, fast=True, out_dir=str(tmp_path), jobs=0)
  for cost in (0.0, float("nan"), True, "5"):
    with pytest.raises(ValueError, match="cost"):
      registry.claim("bad_cost", "t", "s", cost=cost)(lambda fast, d: None)
  assert "bad_cost" not in [c.name for c in registry.claims()]


def test_claims_are_tables_without_registration():
  """Each claim module exports its table; `nashax.theory.CLAIMS` is their concatenation in module order, and
  importing a claim module registers nothing (the user table stays empty)."""
  from nashax.theory import fdiv, monotone

  assert isinstance(monotone.CLAIMS, tuple) and all(isinstance(c, theory.Claim) for c in monotone.CLAIMS)
  names = [c.name for c in theory.CLAIMS]
  assert len(names) == len(set(names)) == len(registry.claims()) - len(runner._USER)
  assert names[names.index(fdiv.CLAIMS[0].name):][:len(fdiv.CLAIMS)] == [c.name for c in fdiv.CLAIMS]
  assert sum(len(c.mutants) for c in theory.CLAIMS) == len(theory.mutants()) >= 50
  c = claim_types.claim("x", "t", "s", subject="f")(lambda fast, d, solver=None: None)
  m = claim_types.mutant("x", "bug", "words")(lambda: None)
  with pytest.raises(ValueError, match="name"):
    claim_types.table((c,), (m, m))
  with pytest.raises(ValueError, match="claim_name"):
    claim_types.table((c,), (claim_types.mutant("y", "bug", "words")(lambda: None),))
  with pytest.raises(ValueError, match="subject"):
    claim_types.claim("z", "t", "s", subject="f")(lambda fast, d: None)


def test_user_claim_with_mutant_runs_and_lists(tmp_path, monkeypatch, capsys):
  """A user's claim and mutant added through the decorators run like built-in ones (in this process)."""
  monkeypatch.setattr(runner, "_USER", {})

  @registry.claim("user_square", "x^2 = 4 at x = 2", "arithmetic", subject="f(x) -> x^2")
  def user_square(fast, out_dir, solver=None):
    f = (lambda x: x * x) if solver is None else solver
    return registry.result_from_ratios("user_square", np.array([abs(f(2.0) - 4.0)]), np.array([1e-12]), "", (),
                                       0.0)

  registry.mutant("user_square", "cube", "x^3")(lambda x: x ** 3)
  assert registry.run_claim("user_square", out_dir=str(tmp_path)).status == "pass"
  assert registry.run_claim("user_square", out_dir=str(tmp_path), variant="cube").status == "fail"
  assert cli.main(["verify", "--list", "--markdown"]) == 0
  table = capsys.readouterr().out
  assert "| `user_square` | x^2 = 4 at x = 2 | `cube` |" in table
  assert "| `halpern_last_iterate` |" in table and table.count("\n") == len(registry.claims()) + 2
