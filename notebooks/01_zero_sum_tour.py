# %% [markdown]
# # A tour of nashax on zero-sum games
#
# **Question.** How fast do the classic no-regret dynamics reach equilibrium,
# and does the certificate (the duality gap) agree with the exact LP answer?
#
# Run as a script (`python notebooks/01_zero_sum_tour.py`) or open it in
# Jupyter with jupytext. `NASHAX_SMOKE=1` shrinks the sizes (the test suite
# runs it that way).

# %%
import os

import jax
import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np

import nashax
from nashax import games, solvers

SMOKE = os.environ.get("NASHAX_SMOKE") == "1"
STEPS = 2_000 if SMOKE else 20_000
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# ## One game, several solvers, one certificate
# A random 8x8 zero-sum game; every solver starts from a random point.

# %%
g = games.random_zero_sum(jax.random.key(0), 8, 8)
exact = solvers.exact_equilibrium(g)
L = float(np.linalg.norm(np.asarray(g.payoff), 2))
race = {
    "MWU (average)": solvers.mwu(0.05),
    "optimistic MWU (last)": solvers.optimistic_mwu(0.5),
    "extragradient, entropic (average)": solvers.extragradient(0.5),
    "extragradient, Euclidean (last)": solvers.extragradient(0.9 / L, geometry="euclidean", iterate="last"),
    "regret matching+ (linear average)": solvers.regret_matching_plus(),
}
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for label, solver in race.items():
    state, trace = nashax.run(solver, g, jax.random.key(1), num_steps=STEPS, every=STEPS // 100)
    ax.loglog(np.arange(1, 101) * (STEPS // 100), np.maximum(trace.duality_gap, 1e-9), label=label)
    x, y = state.profile
    print(f"{label:36s} gap {float(trace.duality_gap[-1]):.2e}   value {float(x @ g.payoff @ y):+.5f}")
print(f"{'LP (scipy HiGHS)':36s}              value {float(exact.value):+.5f}")
ax.set_xlabel("step"); ax.set_ylabel("duality gap"); ax.legend(fontsize=7)
fig.savefig(os.path.join(OUT, "01_race.png"), dpi=100)

# %% [markdown]
# ## A sweep is a vmap
# 256 games and 4 step sizes, one compiled call: the final gap of projected
# extragradient as a function of the step size (relative to 1/||A||_2).

# %%
keys = jax.random.split(jax.random.key(2), 64 if SMOKE else 256)
gs = jax.vmap(lambda k: games.random_zero_sum(k, 8, 8))(keys)
norms = np.linalg.norm(np.asarray(gs.payoff), 2, axis=(-2, -1))
scales = np.array([0.25, 0.5, 0.9, 1.5])


def final_gap(scale, g, k, norm):
    s = solvers.extragradient(scale / norm, geometry="euclidean", iterate="last")
    return nashax.run(s, g, k, num_steps=STEPS, every=STEPS)[1].duality_gap[-1]


gaps = jax.jit(jax.vmap(jax.vmap(final_gap, (None, 0, 0, 0)), (0, None, None, None)))(scales, gs, keys, norms)
for s_, row in zip(scales, np.asarray(gaps)):
    print(f"eta = {s_:4.2f}/||A||:  median final gap {np.median(row):.2e}, worst {row.max():.2e}")
# The theory asks for eta <= 1/L; beyond it some games no longer converge.
assert np.asarray(gaps)[3].max() > 10 * np.asarray(gaps)[2].max()
