# %% [markdown]
# # Intransitive preferences: RLHF's optimum versus the minimax winner
#
# **Question.** When the population's preferences are cyclic, what does
# RLHF (fit one Bradley-Terry reward, then KL-regularised optimisation) do, and
# how does that differ from the Nash / minimax winner that NLHF targets?
#
# Run as a script or open with jupytext. `NASHAX_SMOKE=1` shrinks the sizes.

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
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)

# %% [markdown]
# ## Three transitive raters, one cyclic population
# Three rater types, each with a strict ranking of three responses; their
# mixture is a Condorcet cycle. The shares are `1/3 - eps`, `1/3 + eps/2`,
# `1/3 + eps/2`, and the minimax winner is `(1/3 + eps/2, 1/3 + eps/2, 1/3 - eps)`:
# a three-cycle's equilibrium weights each response by the margin of the
# preference it is not part of.

# %%
g = games.three_rater_cycle(0.1)
P = np.asarray(g.preference)
print("population preference P[i, j] = Pr(i > j):\n", P.round(3))
winner = solvers.von_neumann_winner(P)
print("minimax (von Neumann) winner:", winner.round(4))

# %% [markdown]
# ## The two answers as the KL strength varies
# RLHF's policy `pi ∝ pi_ref exp(r̂ / beta)` uses the Bradley-Terry reward
# fitted to the cyclic data; the regularised Nash equilibrium `pi*_beta` is what
# Nash-MD and its relatives converge to. As `beta -> 0` the Nash equilibrium
# tends to the minimax winner, while RLHF concentrates on the fitted reward's
# argmax: one response that loses to another by a majority.

# %%
betas = np.geomspace(0.01, 3.0, 8 if SMOKE else 20)
rlhf, nash = [], []
for b in betas:
  gb = g.regularized(float(b))
  rlhf.append(np.asarray(solvers.rlhf_optimum(gb)))
  nash.append(np.asarray(solvers.regularized_nash(gb).policy))
rlhf, nash = np.array(rlhf), np.array(nash)
fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.8), sharey=True)
for k in range(3):
  axes[0].semilogx(betas, rlhf[:, k], label=f"response {k}")
  axes[1].semilogx(betas, nash[:, k], label=f"response {k}")
  axes[1].axhline(winner[k], color=f"C{k}", ls=":", lw=0.8)
axes[0].set_title("RLHF (Bradley-Terry fit)")
axes[1].set_title("regularised Nash (dotted: minimax winner)")
for ax in axes:
  ax.set_xlabel("beta")
axes[0].set_ylabel("probability")
axes[0].legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "intransitive_rlhf_vs_nash.png"), dpi=100)

# %% [markdown]
# ## Who beats whom?
# The worst-case win rate `min_j pi^T P e_j` is the quantity the minimax
# winner maximises; RLHF's low-beta policy has an opponent it loses to.

# %%
for name, pol in [("RLHF, beta=0.01", rlhf[0]), ("Nash, beta=0.01", nash[0]), ("minimax winner", winner)]:
  print(f"{name:16s} worst-case win rate {float(np.min(pol @ P)):.3f}")

# %% [markdown]
# ## Many random intransitive games at once
# One `vmap` computes both answers for a batch of random preference games and
# measures how often the RLHF policy is exploitable (a duality gap > 0.05 in
# the unregularised game) when the Nash policy is not.

# %%
n_games = 64 if SMOKE else 512
keys = jax.random.split(jax.random.key(0), n_games)
batch = jax.vmap(lambda k: games.random_preference_game(k, 6).regularized(0.05))(keys)
pol_rlhf = jax.vmap(solvers.rlhf_optimum)(batch)
unreg = jax.vmap(lambda k: games.random_preference_game(k, 6))(keys)
gap_rlhf = np.asarray(jax.vmap(lambda gm, p: nashax.metrics(gm, (p, p)).duality_gap)(unreg, pol_rlhf))
pol_vn = np.stack([solvers.von_neumann_winner(np.asarray(p)) for p in np.asarray(unreg.preference)])
gap_vn = np.asarray(jax.vmap(lambda gm, p: nashax.metrics(gm, (p, p)).duality_gap)(unreg, pol_vn))
fig, ax = plt.subplots(figsize=(5.6, 3.8))
ax.hist(gap_rlhf, bins=30, alpha=0.7, label="RLHF (beta = 0.05)")
ax.hist(gap_vn, bins=30, alpha=0.7, label="minimax winner (LP)")
ax.set_xlabel("duality gap in the unregularised preference game")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "intransitive_gap_histogram.png"), dpi=100)
print(f"RLHF gap > 0.05 in {np.mean(gap_rlhf > 0.05):.0%} of {n_games} games; minimax winner max gap {gap_vn.max():.1e}")
