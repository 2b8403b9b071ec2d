# %% [markdown]
# # f-divergences: one regulariser, many alignment objectives
#
# **Question.** RLHF regularises with reverse KL. f-DPO / f-DPG and the
# f-regularised preference game swap in any f-divergence (forward KL,
# Jensen-Shannon, chi-squared, Hellinger, alpha). What changes: how fast a
# policy reaches a target, and how diverse the regularised Nash equilibrium is?

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np

import nashax
from nashax import TargetDistribution, divergences, games, solvers

SMOKE = os.environ.get("NASHAX_SMOKE") == "1"
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)
jax.config.update("jax_enable_x64", True)
DIVS = [("reverse KL", divergences.reverse_kl()), ("forward KL", divergences.forward_kl()),
        ("Jensen-Shannon", divergences.jensen_shannon()), ("chi-squared", divergences.chi_squared()),
        ("squared Hellinger", divergences.squared_hellinger()), ("alpha = 0.5", divergences.alpha_divergence(0.5))]

# %% [markdown]
# ## The generators
# `D_f(p || q) = sum_x q(x) f(p(x)/q(x))`, with `f` convex and `f(1) = 0`.

# %%
u = np.linspace(0.05, 4.0, 200)
fig, ax = plt.subplots(figsize=(5.6, 3.8))
for name, d in DIVS:
  ax.plot(u, np.asarray(d.f(u)), label=name)
ax.set_xlabel("u = p / q")
ax.set_ylabel("f(u)")
ax.set_ylim(-0.5, 3.0)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "f_generators.png"), dpi=100)

# %% [markdown]
# ## f-DPG toward an energy-based target, with sampled gradients
# The target is `p ∝ a e^{r / beta}` (RLHF's optimum). f-DPG follows
# `grad D_f(pi_theta || p)` estimated from `num_samples` draws of the policy
# per step; the certificate traced by `run` is the total-variation distance.

# %%
rng = np.random.default_rng(0)
n = 30
target = TargetDistribution.from_reward(rng.normal(size=n), 0.5, rng.dirichlet(np.ones(n)))
steps = 300 if SMOKE else 3000
fig, ax = plt.subplots(figsize=(6.4, 4.2))
for name, d in DIVS:
  solver = solvers.f_dpg(d, 0.5, num_samples=64)
  _, trace = nashax.run(solver, target, jax.random.key(1), num_steps=steps, every=steps // 100)
  ax.semilogy(np.arange(1, 101) * (steps // 100), np.asarray(trace), label=name)
  print(f"{name:18s} TV to the target after {steps} steps: {float(trace[-1]):.3f}")
ax.set_xlabel("step")
ax.set_ylabel("TV(pi_theta, p)")
ax.set_title("f-DPG, 64 samples per step", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "f_dpg_sampled.png"), dpi=100)

# %% [markdown]
# ## The f-regularised preference game
# `V(pi, pi') = pi^T P pi' - beta D_f(pi || pi_ref) + beta D_f(pi' || pi_ref)`.
# Mirror-prox (`f_extragradient`) solves it to a certified duality gap; we
# record how much entropy the equilibrium keeps and how it fares against its
# worst opponent in the *unregularised* game.

# %%
g = games.random_preference_game(jax.random.key(3), 12, dtype=jnp.float64)
P = np.asarray(g.preference)
betas = np.geomspace(0.02, 2.0, 5 if SMOKE else 12)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for name, d in DIVS:
  ent, worst = [], []
  for b in betas:
    gb = g.f_regularized(float(b), d)
    state, info = nashax.solve(solvers.f_extragradient(), gb, jax.random.key(0), tol=1e-8, max_steps=200_000)
    nashax.check(info)
    pi = np.asarray(state.profile[0])
    ent.append(float(-np.sum(pi * np.log(np.maximum(pi, 1e-300)))))
    worst.append(float(np.min(pi @ P)))
  axes[0].semilogx(betas, ent, "o-", ms=3, label=name)
  axes[1].semilogx(betas, worst, "o-", ms=3, label=name)
axes[0].set_ylabel("entropy of the equilibrium")
axes[1].set_ylabel("worst-case win rate (unregularised)")
for ax in axes:
  ax.set_xlabel("beta")
axes[0].legend(fontsize=7)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "f_game_equilibria.png"), dpi=100)
