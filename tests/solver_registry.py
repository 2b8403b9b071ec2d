"""Every solver factory, with hyperparameters for the shared test suites.

``make(eta=None, **kw)`` builds the solver; ``eta`` is None for solvers
without a step size. New factories must be added here (a test checks).
"""

from nashax import solvers

SOLVERS = {
    "mwu": (lambda eta=0.1, **kw: solvers.mwu(eta, **kw), 0.1),
    "optimistic_mwu": (lambda eta=0.1, **kw: solvers.optimistic_mwu(eta, **kw), 0.1),
    "extragradient_entropic": (lambda eta=0.3, **kw: solvers.extragradient(eta, geometry="entropic", **kw), 0.3),
    "extragradient_euclidean": (
        lambda eta=0.3, **kw: solvers.extragradient(eta, geometry="euclidean", iterate="last", **kw), 0.3),
    "fictitious_play": (lambda eta=None, **kw: solvers.fictitious_play(**kw), None),
    "regret_matching_plus": (lambda eta=None, **kw: solvers.regret_matching_plus(**kw), None),
    "replicator": (lambda eta=0.1, **kw: solvers.replicator(eta, **kw), 0.1),
    "mmd": (lambda eta=0.3, **kw: solvers.mmd(eta, 0.1, **kw), 0.3),
    # Monotone-inclusion methods (solvers.halpern) on the game's operator (-A y, A^T x).
    "halpern_resolvent": (
        lambda eta=0.2, **kw: solvers.halpern_iteration(solvers.resolvent_step(eta), **kw), 0.2),
    "eag_constant": (lambda eta=0.1, **kw: solvers.eag(eta, **kw), 0.1),
    "eag_varying": (lambda eta=0.3, **kw: solvers.eag(eta, variant="varying", **kw), 0.3),
    "feg": (lambda eta=0.5, **kw: solvers.feg(1.0 / eta, **kw), 0.5),
    "projected_extragradient": (lambda eta=0.3, **kw: solvers.projected_extragradient(eta, **kw), 0.3),
    "vr_halpern_resolvent": (lambda eta=1.0, **kw: solvers.vr_halpern_resolvent(eta, **kw), 1.0),
}

# Factories covered above, by module-level name.
COVERED_FACTORIES = {
    "mwu", "optimistic_mwu", "extragradient", "fictitious_play", "regret_matching_plus", "replicator", "mmd",
}

# solvers.halpern factories that run on matrix games (vr_halpern needs a cocoercive finite sum and
# forward_step / resolvent_step are base maps; tests/test_halpern.py covers them).
COVERED_HALPERN = {"halpern", "eag", "feg", "projected_extragradient", "vr_halpern_resolvent"}

# Stochastic with a component count that padding changes (rows): excluded from the padding test.
ROW_SPLIT = {"vr_halpern_resolvent"}

ENTROPIC = ["mwu", "optimistic_mwu", "extragradient_entropic", "replicator", "mmd"]
