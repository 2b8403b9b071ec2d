# %% [markdown]
# # Gradients through equilibria: inverse games, sensitivities and rankings
#
# **Question.** How does an equilibrium move when the data that define it move?
# Which preference entries decide a minimax winner, how would the regularised
# Nash policy change if one annotator population's weight changed, and can we
# fit a preference model so that its equilibrium matches what we observe?
#
# `nashax.solvers.implicit` differentiates each solution through its optimality
# map (the implicit function theorem): one forward solve, then one linear
# system, with `jax.grad`, `jax.jacfwd`, `vmap` and `jit` all working, and a
# `status` that says when a derivative does not exist or is ill-conditioned.
# Run as a script or open with jupytext. `NASHAX_SMOKE=1` shrinks the sizes.

# %%
import os

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np

from nashax import games
from nashax.core.games import PreferenceGame
from nashax.solvers import implicit as I

SMOKE = os.environ.get("NASHAX_SMOKE") == "1"
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)
jax.config.update("jax_enable_x64", True)

# %% [markdown]
# ## 1. Which preference entries decide the minimax winner?
# The von Neumann winner of a random intransitive preference matrix is mixed.
# On a nondegenerate active set, its derivative w.r.t. `P` exists; we perturb
# `P` along skew directions (which keep `P + P^T = 1`) and read the sensitivity
# of each response's probability.

# %%
K = 5
P = games.random_preference_game(jax.random.key(2), K).preference
sol = I.zero_sum_equilibrium(P - 0.5)
print("minimax winner:", np.asarray(sol.x).round(3), "status:", I.STATUS_NAMES[int(sol.status)])
jac = jax.jacfwd(lambda p: I.zero_sum_equilibrium(p - 0.5).x)(P)  # [K, K, K]
# the skew part is what a preference perturbation can move: dP_ij = -dP_ji
skew = jac - jnp.swapaxes(jac, -1, -2)
print("|d x / d P_ij| summed over x (entries above the diagonal):")
print(np.triu(np.abs(np.asarray(skew)).sum(0), 1).round(2))

# %% [markdown]
# ## 2. Sensitivity to annotator mixture weights
# Three annotator populations with their own preference matrices; the pooled
# preference is `P(eta) = sum_u eta_u P_u`. We trace how the regularised Nash
# policy moves as the mixture moves from population 0 towards population 2.

# %%
ps = jnp.stack([games.random_preference_game(jax.random.key(10 + u), K).preference for u in range(3)])
beta = 0.2
policy = lambda eta: I.nash_equilibrium(PreferenceGame(jnp.einsum("u,uij->ij", eta, ps), jnp.asarray(beta),
                                                        jnp.full(K, -jnp.log(K)))).policy
ts = np.linspace(0.05, 0.9, 5 if SMOKE else 12)
etas = jnp.asarray([[0.9 - t, 0.1, t] for t in ts])
pols = jax.jit(jax.vmap(policy))(etas)
dpol = jax.jit(jax.vmap(lambda e: jax.jvp(policy, (e,), (jnp.array([-1.0, 0.0, 1.0]),))[1]))(etas)
fig, axs = plt.subplots(1, 2, figsize=(9, 3.4))
axs[0].plot(ts, pols); axs[0].set_xlabel("weight moved to population 2"); axs[0].set_ylabel("pi*_beta")
axs[1].plot(ts, dpol); axs[1].set_xlabel("weight moved to population 2"); axs[1].set_ylabel("d pi*_beta / d t (JVP)")
fig.tight_layout(); fig.savefig(os.path.join(OUT, "09_mixture_sensitivity.png"), dpi=100); plt.close(fig)
print("largest sensitivity along the path:", float(jnp.max(jnp.abs(dpol))))

# %% [markdown]
# ## 3. An inverse game: recover what the equilibrium identifies
# We observe only `pi* = pi*_beta(P)`. Gradient descent through the
# equilibrium fits a preference matrix `P'` that reproduces it. The fixed point
# `pi* = softmax(log pi_ref + P pi* / beta)` pins down `P pi*` up to a
# constant, and nothing more: `P'` matches that part, not `P` itself.

# %%
iu = np.triu_indices(K, 1)
pref = lambda th: jax.nn.sigmoid(jnp.zeros((K, K)).at[iu].set(th) - jnp.zeros((K, K)).at[iu].set(th).T)
lr = jnp.full(K, -jnp.log(K))
eq = lambda th: I.nash_equilibrium(PreferenceGame(pref(th), jnp.asarray(0.5), lr)).policy
true = jnp.asarray(np.random.default_rng(0).normal(size=iu[0].size))
target = eq(true)
loss = lambda th: 0.5 * jnp.sum((jnp.log(eq(th)) - jnp.log(target)) ** 2)
step = jax.jit(lambda th: th - 2.0 * jax.grad(loss)(th))
th = jnp.asarray(np.random.default_rng(1).normal(size=iu[0].size))
hist = []
for _ in range(40 if SMOKE else 300):
  th = step(th)
  hist.append(float(loss(th)))
ident = pref(th) @ target - pref(true) @ target
print(f"loss {hist[-1]:.2e}; P' pi* - P pi* (centred): {np.asarray(ident - ident.mean()).round(8)}; "
      f"max |P' - P| = {float(jnp.max(jnp.abs(pref(th) - pref(true)))):.2f}")
fig, ax = plt.subplots(figsize=(5, 3.2))
ax.semilogy(hist); ax.set_xlabel("gradient step"); ax.set_ylabel("loss")
fig.tight_layout(); fig.savefig(os.path.join(OUT, "09_inverse_nlhf.png"), dpi=100); plt.close(fig)

# %% [markdown]
# ## 4. alpha-rank: how does a model's mass respond to its payoffs?
# The gradient of model 0's alpha-rank mass w.r.t. its row of the meta-game,
# against central differences, and finite at `alpha = 1e4` (where the chain's
# rates are ~exp(-1e4): the derivative is formed from log-rates only).

# %%
M = jnp.asarray(np.random.default_rng(2).normal(size=(4, 4)))
mass = lambda m, a: I.alpharank(m, a, 20, single_population=True).pi[0]
g = jax.grad(mass)(M, 0.3)
h = 1e-6
fd = np.array([(float(mass(M.at[0, j].add(h), 0.3)) - float(mass(M.at[0, j].add(-h), 0.3))) / (2 * h)
               for j in range(4)])
print("pi:", np.asarray(I.alpharank(M, 0.3, 20, single_population=True).pi).round(4))
print("implicit d pi_0 / d M[0, :]:", np.array2string(np.asarray(g[0]), precision=8))
print("central differences       :", np.array2string(fd, precision=8))
big = I.alpharank(M, 1e4, 20, single_population=True)
g_big = jax.grad(lambda m: I.alpharank(m, 1e4, 20, single_population=True).log_pi[0])(M)
print("alpha = 1e4: status", I.STATUS_NAMES[int(big.status)],
      "finite gradient:", bool(np.isfinite(np.asarray(g_big)).all()))

# %% [markdown]
# ## 5. When there is no derivative, the status says so
# A game with a dominant row and tied columns has many minimax strategies: the
# equilibrium is not differentiable. The derivative is NaN and the status
# `degenerate`, rather than a plausible-looking number.

# %%
deg = I.zero_sum_equilibrium(jnp.array([[1.0, 1.0], [0.0, 0.0]]))
print("status:", I.STATUS_NAMES[int(deg.status)],
      "gradient:", np.asarray(jax.grad(lambda a: I.zero_sum_equilibrium(a).value)(jnp.array([[1.0, 1.0], [0.0, 0.0]]))))
