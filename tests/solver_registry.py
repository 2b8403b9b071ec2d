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
}

# Factories covered above, by module-level name.
COVERED_FACTORIES = {
    "mwu", "optimistic_mwu", "extragradient", "fictitious_play", "regret_matching_plus", "replicator", "mmd",
}

ENTROPIC = ["mwu", "optimistic_mwu", "extragradient_entropic", "replicator", "mmd"]
