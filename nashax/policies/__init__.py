"""Flax policies (``nashax.policies``): the NLHF algorithms on small transformers.

The only package that imports ``flax.nnx``; ``import nashax`` does not import
it. ``transformer`` (the model and its pure log-prob / sampling functions),
``oracles`` (synthetic preference oracles with exact exploitability),
``reward_model`` (Bradley-Terry and general preference models),
``train`` (pure, sharded train steps using ``nashax.solvers.losses``),
``checkpoint`` (orbax) and ``experiment`` (TOML -> runs, ``nashax train``).
"""

from nashax.policies import checkpoint, experiment, oracles, reward_model, train, transformer
from nashax.policies.checkpoint import Checkpoints
from nashax.policies.experiment import Experiment, experiment_from_dict, load_experiment, run_experiment
from nashax.policies.oracles import SequenceOracle, all_responses, cyclic_oracle, exact_gap, sequence_oracle
from nashax.policies.reward_model import PreferenceModel
from nashax.policies.train import ALGORITHMS, TrainConfig, TrainState, Trainer, make_trainer
from nashax.policies.transformer import TransformerConfig, init_model, sample, sequence_logp

__all__ = [
    "ALGORITHMS",
    "Checkpoints",
    "Experiment",
    "PreferenceModel",
    "SequenceOracle",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "TransformerConfig",
    "all_responses",
    "checkpoint",
    "cyclic_oracle",
    "exact_gap",
    "experiment",
    "experiment_from_dict",
    "init_model",
    "load_experiment",
    "make_trainer",
    "oracles",
    "reward_model",
    "run_experiment",
    "sample",
    "sequence_logp",
    "sequence_oracle",
    "train",
    "transformer",
]
