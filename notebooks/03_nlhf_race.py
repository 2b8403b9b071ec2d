# %% [markdown]
# # A race of NLHF solvers, as one resumable sweep
#
# **Question.** On the same KL-regularised intransitive preference games, how
# fast do Nash-MD, SPPO, EGPO, INPO and online IPO reach the regularised Nash
# equilibrium, and how sensitive is each to its step size?
#
# The whole grid (solvers x step sizes x seeds) runs through `nashax.sweeps`:
# one vmapped batch axis per solver, chunks written to disk as they finish (a
# killed run resumes), a tidy table, and the standard figures. The same sweep
# from the command line is `nashax sweep examples/sweeps/nlhf_race.toml`.

# %%
import os

import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np

from nashax import sweeps

SMOKE = os.environ.get("NASHAX_SMOKE") == "1"
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# ## The sweep
# Every grid point runs on the same `seeds` games (paired comparisons): a seed
# fixes the game and the random start, never the uniform policy.

# %%
etas = [0.1, 0.5] if SMOKE else [0.03, 0.1, 0.3, 1.0]
config = {
    "name": "nlhf_race",
    "game": {"family": "random_preference", "size": 10, "beta": 0.1},
    "solver": [
        {"name": "nash_md", "eta": etas},
        {"name": "sppo", "eta": etas, "iterate": "last"},
        {"name": "egpo", "eta": etas},
        {"name": "inpo", "eta": etas},
        {"name": "online_ipo", "eta": etas},
    ],
    "run": {"seeds": 4 if SMOKE else 16, "steps": 300 if SMOKE else 3000, "every": 10 if SMOKE else 50,
            "metrics": ["duality_gap"]},
}
res = sweeps.run_sweep(config, os.path.join(OUT, "nlhf_race"), progress=not SMOKE)
t = res.table
print("columns:", list(t))

# %% [markdown]
# ## Final gap per solver and step size (median over seeds)

# %%
for name in dict.fromkeys(t["solver"]):
  row = []
  for eta in etas:
    sel = (t["solver"] == name) & (t["eta"] == eta)
    row.append(f"eta={eta:<5g} {np.median(t['duality_gap'][sel]):.1e}")
  print(f"{name:11s} " + "   ".join(row))

# %% [markdown]
# ## Each solver at its best step size

# %%
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for name in dict.fromkeys(t["solver"]):
  best = min(etas, key=lambda e: np.median(t["duality_gap"][(t["solver"] == name) & (t["eta"] == e)]))
  sel = (t["solver"] == name) & (t["eta"] == best)
  q25, q50, q75 = np.percentile(res.traces["duality_gap"][sel], [25, 50, 75], axis=0)
  line, = ax.semilogy(res.steps, np.maximum(q50, 1e-9), label=f"{name} (eta={best:g})")
  ax.fill_between(res.steps, np.maximum(q25, 1e-9), np.maximum(q75, 1e-9), color=line.get_color(), alpha=0.2)
ax.set_xlabel("step")
ax.set_ylabel("duality gap of the regularised game")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "nlhf_race.png"), dpi=100)

# %% [markdown]
# The sweep's own figures (trace with seed bands, final gap against eta):

# %%
print(sweeps.plot_results(res.out))
