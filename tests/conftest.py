import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
  return jax.random.key(0)


# The heaviest cases, measured with `make test --durations` on 2 CPU cores (20-70 s each), run under
# `pytest -m slow` (`make slow`) so that `make test` stays under 20 minutes. Each is a compile-bound
# duplicate in kind of a cheaper test that stays in the default run (another notebook, another claim,
# another sharded path).
_SLOW = (
    "tests/test_notebooks.py::test_notebook_runs_in_smoke_mode[03_",
    "tests/test_notebooks.py::test_notebook_runs_in_smoke_mode[04_",
    "tests/test_notebooks.py::test_notebook_runs_in_smoke_mode[06_",
    "tests/test_notebooks.py::test_notebook_runs_in_smoke_mode[07_",
    "tests/test_notebooks.py::test_notebook_runs_in_smoke_mode[08_",
    "tests/test_notebooks.py::test_notebook_runs_in_smoke_mode[09_",
    "tests/test_nlhf.py::test_solver_reaches_regularized_equilibrium[dno]",
    "tests/test_policies.py::test_sharded_over_8_cpu_devices_equals_one_device",
    "tests/test_sweeps.py::test_sharded_over_8_cpu_devices_equals_one_device",
    "tests/test_theory.py::test_run_claims_in_worker_processes_matches_in_process",
    "tests/test_theory.py::test_claim_passes_fast[nash_md_last_iterate_kl]",
    "tests/test_theory.py::test_claim_passes_fast[f_game_equilibrium]",
    "tests/test_theory.py::test_claim_passes_fast[exit_criterion_sound]",
    "tests/test_theory.py::test_claim_passes_fast[vr_halpern_complexity]",
    "tests/test_theory.py::test_claim_passes_fast[f_dpg_reaches_target]",
    "tests/test_theory.py::test_claim_passes_fast[policy_nash_beats_iterative_dpo]",
    "tests/test_theory.py::test_claim_passes_fast[lm_policy_nash_reaches_the_regularised_equilibrium]",
    "tests/test_halpern.py::test_wrong_constants_are_detected",
    "tests/test_policies.py::test_sample_and_logp_vmap_over_keys_and_parameters",
    "tests/test_policies.py::test_kv_cache_decoding_equals_the_full_forward_pass",
    "tests/test_policies.py::test_general_preference_model_learns_the_cycle_bradley_terry_cannot",
    "tests/test_ranking.py::test_rank_policies_side_by_side_exact_and_sampled",
    "tests/test_alpharank.py::test_infinite_alpha_lives_on_the_sink_components",
    "tests/test_fdiv.py::test_fdiv_conformance[f_dpg]",
    "tests/test_halpern.py::test_vr_inner_minibatch_of_one_has_the_sequential_law",
    "tests/test_lm_train.py::test_fsdp_by_data_mesh_of_8_devices_equals_one_device",
    "tests/test_multihost.py::test_bad_launches_are_refused_in_words_within_the_timeout",
    "tests/test_lm_train.py::test_token_and_sequence_level_nash_md_samplers_against_the_exact_mixture",
    "tests/test_lm_train.py::test_rule_and_learned_oracles_run_from_a_config",
    "tests/test_multihost.py::test_train_two_processes_resume_equals_one_process_and_loads_in_one",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  for item in items:
    if item.nodeid.startswith(_SLOW):
      item.add_marker(pytest.mark.slow)
