# %% [markdown]
# # Ranking agents whose strengths are cyclic: alpha-rank of a Kuhn poker meta-game
#
# **Question.** Given a population of agents (here Kuhn poker policies) and the
# table of who beats whom, which agents matter? Elo squeezes the table onto a
# line; Nash averaging and alpha-rank do not. Where do they disagree, and what
# does alpha-rank's `alpha` do?

# %%
import os

import jax
import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np

from nashax import games, solvers

SMOKE = os.environ.get("NASHAX_SMOKE") == "1"
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)
jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## The meta-game
# Eight random *pure* policies (every decision deterministic: such populations
# are full of cycles) and one of Kuhn's equilibrium policies (`alpha = 0.2`).
# `kuhn_meta_game` computes the exact expected payoffs over both seats.

# %%
rng = np.random.default_rng(0)
K = 8
policies = np.concatenate([rng.integers(0, 2, size=(K, 4, 3)).astype(float),
                           np.asarray(games.kuhn_nash_policy(0.2))[None]])
meta = games.kuhn_meta_game(policies)
M = np.asarray(meta.payoffs[0])
names = [f"random {i}" for i in range(K)] + ["Kuhn Nash"]
print("meta-game payoff M[i, j] (row's expected chips):\n", M.round(3))

# %% [markdown]
# ## Three rankings
# Win rates for Elo and Nash averaging come from the payoffs through a logistic
# link (`W = sigmoid(4 M)`, an illustrative choice); alpha-rank uses the
# payoffs themselves (single population, `m = 50`).

# %%
W = 1.0 / (1.0 + np.exp(-4.0 * M))
ar = solvers.alpha_rank(meta.payoffs, 10.0, 50, single_population=True)
na = solvers.nash_averaging(W)
el = solvers.elo(W)
print(f"{'agent':10s} {'alpha-rank':>10s} {'Nash avg':>9s} {'Elo':>8s}")
for i, n in enumerate(names):
  print(f"{n:10s} {float(ar.pi[i]):10.3f} {float(na.equilibrium[i]):9.3f} {float(el.ratings[i]):8.1f}")
best_elo = int(np.argmax(np.asarray(el.ratings)))
print(f"Elo's top agent: {names[best_elo]}; it scores {M[best_elo, K]:+.3f} chips against Kuhn Nash")

# %% [markdown]
# Elo fits one number per agent to the whole table, so an agent that crushes
# weak opponents can out-rate the equilibrium policy that beats it head to
# head. Nash averaging and alpha-rank look at who beats whom.

# %% [markdown]
# ## alpha-rank as selection pressure grows
# Small `alpha` is near uniform; large `alpha` concentrates on the sink
# strongly connected components of the response graph.

# %%
alphas = np.geomspace(0.01, 100.0, 12 if SMOKE else 40)
sweep = jax.jit(jax.vmap(lambda a: solvers.alpha_rank(meta.payoffs, a, 50, single_population=True).pi))(alphas)
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for i, n in enumerate(names):
  ax.semilogx(alphas, np.asarray(sweep)[:, i], label=n, lw=2.0 if n == "Kuhn Nash" else 1.0)
ax.set_xlabel("alpha (selection pressure)")
ax.set_ylabel("stationary mass")
ax.legend(fontsize=7, ncol=2)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "alpharank_kuhn.png"), dpi=100)

# %% [markdown]
# ## A thousand meta-games at once
# alpha-rank is a pure function of the payoff table, so a batch is one `vmap`:
# how often is the Kuhn equilibrium policy alpha-rank's top agent among random
# populations? (It never loses on average over seats, but a pure policy can tie
# it, and alpha-rank then shares the mass.)

# %%
batch = 64 if SMOKE else 1000
tables = []
for b in range(batch):
  pols = np.concatenate([rng.integers(0, 2, size=(K, 4, 3)).astype(float),
                         np.asarray(games.kuhn_nash_policy(0.2))[None]])
  tables.append(np.asarray(games.kuhn_meta_game(pols).payoffs))
tables = np.stack(tables)
pis = jax.jit(jax.vmap(lambda p: solvers.alpha_rank(p, 10.0, 50, single_population=True).pi))(tables)
top = np.argmax(np.asarray(pis), axis=1)
print(f"Kuhn Nash is alpha-rank's top agent in {np.mean(top == K):.0%} of {batch} random populations")
fig, ax = plt.subplots(figsize=(5.6, 3.6))
ax.hist(np.asarray(pis)[:, K], bins=30)
ax.set_xlabel("alpha-rank mass of the Kuhn equilibrium policy")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "alpharank_kuhn_batch.png"), dpi=100)
