# %% [markdown]
# # Alignment games of the literature
#
# **Question.** Several alignment arguments are small games with a theorem
# attached. Can we see each theorem happen on numbers: when does a robot keep
# its off-switch, what does equilibrium ranking do to a language model's
# candidates, what does a red-team equilibrium guarantee, and how much does
# best-of-N buy per nat of KL?
#
# Each section has a registered verifier in `nashax verify` (named below).

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np

import nashax
from nashax import solvers
from nashax.games import alignment as A

SMOKE = os.environ.get("NASHAX_SMOKE") == "1"
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)
jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## 1. The off-switch game (Hadfield-Menell et al. 2017; `off_switch_incentive`)
# The robot is unsure of its action's utility, `U ~ N(mu, sigma^2)`; waiting
# lets a human with Boltzmann noise `beta_H` veto it. The incentive to defer is
# `Delta = E[pi^H(U) U] - max(E U, 0)`. A rational human always makes waiting
# worth it (Theorem 1); a noisy human and a confident robot do not.

# %%
sig = np.linspace(0.05, 2.0, 30 if SMOKE else 80)
bh = np.linspace(0.0, 2.0, 31 if SMOKE else 81)
S, B = np.meshgrid(sig, bh, indexing="ij")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for ax, mu in zip(axes, (0.3, -0.3)):
  D = np.asarray(jax.jit(lambda s, b, m=mu: A.off_switch_incentive(m, s, b, num_points=8001))(S, B))
  cs = ax.contourf(bh, sig, D, levels=20, cmap="RdBu", vmin=-abs(D).max(), vmax=abs(D).max())
  ax.contour(bh, sig, D, levels=[0.0], colors="k")
  ax.set_title(f"mu = {mu}: Delta < 0 (red) means the robot disables the switch", fontsize=8)
  ax.set_xlabel("human noise beta_H")
  ax.set_ylabel("robot uncertainty sigma")
  fig.colorbar(cs, ax=ax)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "off_switch.png"), dpi=100)

# %% [markdown]
# ## 2. The consensus game (Jacob et al. 2024; `consensus_game_pikl`)
# A generator and a discriminator, both anchored to a language model's initial
# policies, play a signalling game; piKL's no-regret dynamics find its
# regularised equilibrium and re-rank the candidates (ER-G, ER-D).

# %%
game = A.random_consensus_game(jax.random.key(0), 6, 0.1)
tr = A.pikl(game, 2000 if SMOKE else 5000, 0.1, 0.1)
er_g, er_d = A.equilibrium_ranking(tr.pi_g, tr.pi_d)
print("initial generator ranking:", np.argsort(-np.asarray(game.log_gen_init[0])))
print("ER-G ranking:             ", np.argsort(-np.asarray(er_g)))
print("initial discriminator:    ", np.argsort(-np.asarray(game.log_disc_init[:, 0])))
print("ER-D ranking:             ", np.argsort(-np.asarray(er_d)))
fig, ax = plt.subplots(figsize=(5.6, 3.8))
ax.loglog(np.arange(1, tr.exploitability.size + 1), np.asarray(tr.exploitability))
ax.set_xlabel("round t")
ax.set_ylabel("exploitability (regularised game)")
fig.tight_layout()
fig.savefig(os.path.join(OUT, "consensus_pikl.png"), dpi=100)

# %% [markdown]
# ## 3. Red teaming as a zero-sum game (Self-RedTeam; `red_teaming_safety_guarantee`)
# The attacker picks a prompt; the defender sees only its surface form and
# refuses or complies. A disguised harmful prompt shares its surface form with
# a benign one, so the defender must mix. Its equilibrium strategy guarantees
# the game value against *every* attack; when a safe defence exists the value
# is 0 and the equilibrium defender is safe everywhere.

# %%
for seed in range(4):
  g, spec = A.random_red_teaming_game(seed, 8, 3, 0.5, disguise=0.5 if seed % 2 else 0.0)
  ex = solvers.exact_equilibrium(g)
  state, trace = nashax.run(solvers.extragradient(0.5), g, jax.random.key(seed), num_steps=2000, every=2000)
  pure = float(np.min(np.max(np.asarray(g.payoff), axis=0)))
  print(f"game {seed}: safe defence exists: {A.safe_defense_exists(spec['harmful'], spec['harm'], spec['observation'], 0.5)!s:5s}"
        f"  value (LP) {float(ex.value):.3f}  best pure defence {pure:.3f}  extragradient defender's worst case "
        f"{float(A.defender_worst_case(g, state.profile[1])):.3f} (gap {float(trace.duality_gap[-1]):.1e})")

# %% [markdown]
# ## 4. Best-of-N and the KL-optimal tilt (InfAlign; `best_of_n_win_rate`)
# Best-of-N wins `N/(N+1)` of the time against its base policy at a KL cost of
# `log N - (N-1)/N`. The exponential tilt of the calibrated reward is the
# KL-optimal way to buy win rate, and best-of-N sits just below it.

# %%
ts = np.linspace(0.05, 40, 400)
ns = np.arange(1, 65)
fig, ax = plt.subplots(figsize=(5.6, 3.8))
ax.plot(np.asarray(A.tilted_kl(ts)), np.asarray(A.tilted_win_rate(ts)), label="tilt pi_ref e^{t c}")
ax.plot(np.asarray(A.bon_kl(ns)), np.asarray(A.bon_win_rate(ns)), "o", ms=3, label="best-of-N")
ax.set_xlabel("KL to the base policy")
ax.set_ylabel("win rate against the base policy")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "best_of_n.png"), dpi=100)
k1, k2 = jax.random.split(jax.random.key(1))
num = 20_000 if SMOKE else 1_000_000
best = jnp.max(jax.random.normal(k1, (num, 4)), -1)
print(f"best-of-4 simulated win rate {float(jnp.mean(best > jax.random.normal(k2, (num,)))):.4f} vs 4/5")

# %% [markdown]
# ## 5. Transformed rewards (Wang et al. 2024; `transformed_rewards_and`)
# Summing `log sigmoid(r_i - r_ref_i)` over properties is `log P(all good)`,
# so the KL-optimal policy for it is the base policy conditioned on every
# property being good; a plain sum of rewards can be bought by one property.

# %%
rng = np.random.default_rng(0)
r = rng.normal(size=(2, 12))
r[0, 0], r[1, 0] = 6.0, -3.0  # response 0: great on property 1, bad on property 2
ref = np.median(r, axis=1, keepdims=True)
lref = jnp.full((12,), -np.log(12.0))
p_sum = np.asarray(A.kl_optimal_policy(jnp.asarray(r.sum(0)), lref))
p_lsc = np.asarray(A.kl_optimal_policy(A.lsc_transform(jnp.asarray(r), jnp.asarray(ref)).sum(0), lref))
good = np.prod(1 / (1 + np.exp(-(r - ref))), 0)
print(f"mass on the spurious response: sum {p_sum[0]:.2f}, LSC {p_lsc[0]:.2f};"
      f" P(all good): sum {p_sum @ good:.3f}, LSC {p_lsc @ good:.3f}")

# %% [markdown]
# ## 6. DPO's idealised ranking accuracy (Chen et al. 2024; `dpo_ranking_accuracy`)
# The exact DPO/RLHF optimum ranks almost every pair correctly, but a pair the
# reference ranks badly by `c` nats is ranked correctly only once its DPO loss
# falls below `-log sigmoid(beta c)`, which gradient training rarely reaches.

# %%
cs = np.linspace(0, 30, 100)
fig, ax = plt.subplots(figsize=(5.6, 3.8))
for beta in (0.01, 0.1, 0.5):
  ax.plot(cs, np.asarray(A.dpo_correct_iff_threshold(jnp.zeros_like(cs), jnp.asarray(cs), beta)), label=f"beta={beta}")
ax.axhline(np.log(2), color="k", ls=":", lw=0.8, label="loss at pi = pi_ref (log 2)")
ax.set_xlabel("reference ranking error c")
ax.set_ylabel("DPO loss needed to rank the pair correctly")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "dpo_threshold.png"), dpi=100)
