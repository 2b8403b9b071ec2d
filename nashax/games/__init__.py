"""Concrete games and generators (``nashax.games``)."""

from nashax.core.games import pad, stack
from nashax.games.classic import (
    battle_of_the_sexes,
    colonel_blotto,
    matching_pennies,
    prisoners_dilemma,
    random_interior_zero_sum,
    random_zero_sum,
    rock_paper_scissors,
    shapley,
    weighted_rock_paper_scissors,
)
from nashax.games.finite_sum import (
    annotator_preference_sum,
    random_annotator_preference_sum,
    random_bilinear_sum,
    random_least_squares,
    robust_least_squares,
    robust_least_squares_solution,
)
from nashax.games import alignment
from nashax.games.metagames import (
    bernoulli_game,
    kuhn_meta_game,
    kuhn_nash_policy,
    kuhn_poker_value,
    payoff_table,
    sample_outcomes,
)
from nashax.games.preference import (
    annotator_mixture,
    bradley_terry,
    bradley_terry_mixture,
    contextual_bradley_terry,
    random_contextual_preference_game,
    three_rater_cycle,
    condorcet_cycle,
    intransitive_dice,
    random_preference_game,
)

__all__ = [
    "alignment",
    "kuhn_meta_game",
    "kuhn_nash_policy",
    "kuhn_poker_value",
    "bernoulli_game",
    "payoff_table",
    "sample_outcomes",
    "annotator_preference_sum",
    "random_annotator_preference_sum",
    "random_bilinear_sum",
    "random_least_squares",
    "robust_least_squares",
    "robust_least_squares_solution",
    "annotator_mixture",
    "bradley_terry_mixture",
    "contextual_bradley_terry",
    "random_contextual_preference_game",
    "three_rater_cycle",
    "battle_of_the_sexes",
    "bradley_terry",
    "colonel_blotto",
    "condorcet_cycle",
    "intransitive_dice",
    "matching_pennies",
    "pad",
    "prisoners_dilemma",
    "random_interior_zero_sum",
    "random_preference_game",
    "random_zero_sum",
    "rock_paper_scissors",
    "shapley",
    "stack",
    "weighted_rock_paper_scissors",
]
