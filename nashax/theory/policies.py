"""End-to-end claims: NLHF algorithms on a toy transformer and on a Llama-family decoder against an
intransitive oracle."""

from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np

from nashax.theory.claim_types import ClaimResult, claim, mutant_into, result_from_ratios, table

_MUTANTS = []  # this module's wrong variants, attached by `table` below
mutant = mutant_into(_MUTANTS)

# One layer and 100 steps in both modes: the stated tolerance holds with a margin there (measured:
# Nash-MD 0.008, INPO 0.011, EGPO 0.002, iterative DPO 0.108); at 2 layers the claim cost the most.
_CONFIG = {
    "name": "policy_nash_vs_dpo",
    "model": {"vocab_size": 4, "num_layers": 1, "num_heads": 2, "embed_dim": 16, "max_len": 8},
    "oracle": {"num_classes": 3, "response_len": 3, "margin": 0.3, "noise": 0.1},
    "train": {"algorithm": ["iterative_dpo", "nash_md", "inpo", "egpo"], "beta": 0.1, "eta": 1.0, "lr": 0.003,
              "batch_size": 64, "num_steps": 100, "refresh": 10, "init_scale": 1.5},
    "run": {"eval_every": 20, "checkpoint_every": 100},
}
TOL = 0.02  # absolute tolerance on the final exploitability (the regularised equilibrium's is 0)


@claim(
    "policy_nash_beats_iterative_dpo",
    summary=("a transformer trained with Nash-MD-PG, INPO or EGPO against a 3-class cyclic oracle ends "
             "within 0.02 of the KL-regularised equilibrium's exploitability (0), from a start at 0.04; "
             "iterative DPO, chasing the cycle, ends above 0.04"),
    theorem=("On a 3-class cyclic preference oracle over 3-token responses (27 responses, exact "
             "exploitability of the KL-regularised game, beta = 0.1, by enumeration), a 1-layer transformer"
             " trained for 100 steps with Nash-MD-PG, INPO or EGPO (sampled) from a random start "
             "(exploitability 0.042) ends within the absolute tolerance 0.02 of the regularised "
             "equilibrium, whose exploitability is 0, while iterative DPO, whose Bradley-Terry fit chases "
             "the cycle, ends above 2 x 0.02. SPPO is not in the sweep: it has no KL term toward pi_ref, so"
             " its target is the unregularised game, and its last iterate (multiplicative weights on win "
             "rates) cycles around that game's equilibrium rather than approaching the regularised one."),
    source=("Munos et al. 2024 (Nash-MD-PG), Zhang et al. 2025 (INPO), Zhou et al. 2025 (EGPO) against "
            "Xiong et al. 2024 (iterative DPO); the exact gap formula of nashax.policies.oracles (the "
            "K-class reduction)."),
    cost=60,
)
def policy_nash_beats_iterative_dpo(fast: bool, out_dir: str) -> ClaimResult:
  from nashax.policies import experiment

  cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in _CONFIG.items()}
  tmp = tempfile.mkdtemp(prefix="nashax_policy_claim_")
  try:
    res = experiment.run_experiment(cfg, tmp, progress=False, log=lambda s: None)
    shutil.copy(os.path.join(tmp, "comparison.png"), os.path.join(out_dir, "policy_nash_beats_iterative_dpo.png"))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  final = {a: float(np.mean(c["exploitability"][-2:])) for a, c in res.items()}  # last two evaluations
  start = {a: float(c["exploitability"][0]) for a, c in res.items()}  # step 0, before any update
  nash = [a for a in final if a != "iterative_dpo"]
  # Nash methods: final <= TOL; iterative DPO: 2 TOL / final <= 1.
  measured = np.array([final[a] for a in nash] + [2 * TOL])
  bound = np.array([TOL] * len(nash) + [final["iterative_dpo"]])
  details = (f"1 layer, 100 steps (fast and full), batch 64, beta = 0.1, tolerance {TOL}; final "
             "exploitability "
             "(mean of the last two evaluations): " + ", ".join(f"{a} {v:.4f}" for a, v in final.items())
             + "; at step 0: " + ", ".join(f"{a} {v:.4f}" for a, v in start.items()))
  return result_from_ratios("policy_nash_beats_iterative_dpo", measured, bound, details,
                            (os.path.join(out_dir, "policy_nash_beats_iterative_dpo.png"),), 0.0)


_LM_CONFIG = {
    "name": "lm_policy_claim",
    "policy": {"seed": 0, "init_std": 0.5,
               "random": {"model_type": "llama", "vocab_size": 4, "hidden_size": 32, "intermediate_size": 64,
                          "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
                          "max_position_embeddings": 8}},
    "prompts": {"bos": 64},
    "oracle": {"kind": "class", "num_classes": 3, "margin": 0.3, "noise": 0.1},
    "train": {"algorithm": ["iterative_dpo", "nash_md", "egpo", "inpo"], "beta": 0.1, "eta": 1.0, "lr": 0.003,
              "batch_size": 64, "num_steps": 200, "refresh": 10},
    "lm": {"max_new_tokens": 2, "eval_prompts": 8, "eval_samples": 8},
    "run": {"eval_every": 25, "checkpoint_every": 200, "export": False},
}
_LM_TOL = 0.02


@claim(
    "lm_policy_nash_reaches_the_regularised_equilibrium",
    summary=("a 2-layer Llama decoder (nashax.lm) trained with Nash-MD-PG, EGPO or INPO against the 3-class "
             "cyclic oracle ends within 0.02 of the KL-regularised equilibrium's exploitability (0); iterative "
             "DPO ends above 0.02"),
    theorem=("The policy claim carried over to the real-architecture decoder and its trainer (nashax.lm.train: "
             "the same algorithm table, prompts, the oracle interface): on the 3-class cyclic oracle over "
             "2-token responses after one-token prompts (16 responses per prompt, exact exploitability of the "
             "beta = 0.1 regularised game by enumeration, averaged over 8 evaluation prompts), a 2-layer "
             "Llama-config decoder from a skewed random start (weights' std 0.5) trained for 200 sampled steps "
             "with Nash-MD-PG, EGPO or INPO ends within the absolute tolerance 0.02 of the regularised "
             "equilibrium (exploitability 0), while iterative DPO does not (it collapses onto one class and "
             "chases the cycle)."),
    source=("Munos et al. 2024 (Nash-MD-PG, mixture eta beta), Zhou et al. 2025 (EGPO), Zhang et al. 2025 (INPO) "
            "against Xiong et al. 2024 (iterative DPO); the exact gap of nashax.policies.oracles per prompt."),
    cost=90,
    subject="Nash-MD's opponent: its geometric-mixture weight on pi_ref, solver(eta, beta) -> m",
)
def lm_policy_nash_reaches_the_regularised_equilibrium(fast: bool, out_dir: str, solver=None) -> ClaimResult:
  from nashax.lm import experiment

  cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in _LM_CONFIG.items()}
  if fast:
    cfg["train"] = {**cfg["train"], "algorithm": ["iterative_dpo", "nash_md"]}
  if solver is not None:
    cfg["train"] = {**cfg["train"], "mixture": float(solver(cfg["train"]["eta"], cfg["train"]["beta"]))}
  tmp = tempfile.mkdtemp(prefix="nashax_lm_policy_claim_")
  name = "lm_policy_nash_reaches_the_regularised_equilibrium"
  try:
    res = experiment.run_lm_experiment(cfg, tmp, progress=False, log=lambda s: None)
    shutil.copy(os.path.join(tmp, "comparison.png"), os.path.join(out_dir, f"{name}.png"))
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  final = {a: float(np.mean(c["exploitability"][-2:])) for a, c in res.items()}
  start = float(res["nash_md"]["exploitability"][0])
  nash = [a for a in final if a != "iterative_dpo"]
  # Each Nash method within the tolerance (final / tol <= 1); iterative DPO outside it (tol / final <= 1).
  measured = np.array([final[a] for a in nash] + [_LM_TOL])
  bound = np.array([_LM_TOL] * len(nash) + [final["iterative_dpo"]])
  details = (f"{'fast: Nash-MD only' if fast else 'Nash-MD, EGPO, INPO'} vs iterative DPO; 2-layer Llama decoder, "
             f"2-token responses (64 one-token prompts), 200 steps, batch 64, beta = 0.1, tolerance {_LM_TOL}; start "
             f"{start:.4f}; final (mean of the last two evaluations): "
             + ", ".join(f"{a} {v:.4f}" for a, v in final.items()))
  return result_from_ratios(name, measured, bound, details, (os.path.join(out_dir, f"{name}.png"),), 0.0)


# Measured in fast mode: the real weight (eta beta) ends at 0.0045; these end at 0.054 and 0.025 (tolerance 0.02).
mutant("lm_policy_nash_reaches_the_regularised_equilibrium", "opponent_is_reference",
       "the opponent is drawn from pi_ref (mixture weight 1) instead of the geometric mixture")(
    lambda eta, beta: 1.0)
mutant("lm_policy_nash_reaches_the_regularised_equilibrium", "opponent_is_policy",
       "the opponent is drawn from the current policy (mixture weight 0): self-play without the mixture")(
    lambda eta, beta: 0.0)


CLAIMS = table((policy_nash_beats_iterative_dpo, lm_policy_nash_reaches_the_regularised_equilibrium), _MUTANTS)
