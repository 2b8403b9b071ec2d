# %% [markdown]
# # Halpern iteration and variance reduction: a residual you can certify
#
# **Question.** Anchoring (Halpern, EAG, FEG) gives the *last* iterate an
# `O(1/k)` operator residual on monotone problems, where plain extragradient's
# last iterate only gets `O(1/sqrt(k))`. For finite sums, variance reduction
# trades full passes for cheap component evaluations: `O(n + sqrt(n) L/eps)`
# instead of `O(n L/eps)`. How do these look on real runs?

# %%
import math
import os

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use(os.environ.get("MPLBACKEND", "Agg"))
import matplotlib.pyplot as plt
import numpy as np

import nashax
from nashax import games, solvers
from nashax.core import operators

SMOKE = os.environ.get("NASHAX_SMOKE") == "1"
OUT = os.environ.get("NASHAX_NOTEBOOK_OUT", "runs/notebooks")
os.makedirs(OUT, exist_ok=True)
jax.config.update("jax_enable_x64", True)  # residuals down to 1e-8 need float64

# %% [markdown]
# ## Last-iterate residuals on a zero-sum game
# The operator of a matrix game is `F(x, y) = (-A y, A^T x)` on a product of
# simplices; the certificate is the natural residual `|z - Pi(z - F z)|`.

# %%
g = games.random_zero_sum(jax.random.key(0), 8, 8, dtype=jnp.float64)
op = operators.from_matrix_game(g)
L = float(op.lipschitz)
steps = 2_000 if SMOKE else 20_000
every = steps // 100
race = {
    "Halpern (resolvent)": solvers.halpern_iteration(solvers.resolvent_step(1.0 / L)),
    "EAG (constant)": solvers.eag(1.0 / (8 * L)),
    "FEG": solvers.feg(L),
    "extragradient (last iterate)": solvers.projected_extragradient(0.5 / L),
}
fig, ax = plt.subplots(figsize=(6.4, 4.2))
k = np.arange(1, 101) * every
for name, solver in race.items():
  _, trace = nashax.run(solver, op, jax.random.key(1), num_steps=steps, every=every)
  ax.loglog(k, np.maximum(np.asarray(trace), 1e-16), label=name)
  print(f"{name:30s} residual after {steps} steps: {float(trace[-1]):.2e}")
ax.loglog(k, 1.0 / k, "k:", lw=0.8, label="1/k")
ax.set_xlabel("step k")
ax.set_ylabel("natural residual")
ax.set_title("a random 8x8 zero-sum game", fontsize=10)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(OUT, "halpern_last_iterate.png"), dpi=100)

# %% [markdown]
# Note what the picture says and what it does not: a random matrix game is
# polyhedral, and there extragradient's last iterate converges *linearly*
# (metric subregularity), far below its worst-case `O(1/sqrt(k))`. The anchored
# methods' `1/k` is a worst-case guarantee that holds with no such structure;
# the worst cases (rotations, where it is tight) are in
# `nashax verify --only halpern_last_iterate,eag_feg_residual`.

# %% [markdown]
# ## Variance reduction on a finite sum
# `random_least_squares` has `n` unit rows (average cocoercivity 1 for every n).
# We count component evaluations until `|F z| <= eps`, each solver stopping on
# its certificate with `nashax.solve`.

# %%
eps = 1e-3 if SMOKE else 1e-4
ns = [100, 1000] if SMOKE else [100, 1000, 10000]
vr, det = [], []
for n in ns:
  fs = games.random_least_squares(jax.random.key(n), n, 5, dtype=jnp.float64)
  check = 4 * max(1, math.isqrt(n))
  _, info = nashax.solve(solvers.vr_halpern(1.0 / float(fs.lipschitz)), fs, jax.random.key(0), tol=eps,
                         max_steps=10 ** 7, check_every=check, residual_fn=operators.residual)
  nashax.check(info)
  vr.append(int(info.oracle_calls) + n * (int(info.num_steps) // check))
  _, info = nashax.solve(solvers.halpern_iteration(solvers.forward_step(1.0 / float(fs.full_lipschitz))), fs.full(),
                         jax.random.key(0), tol=eps, max_steps=10 ** 7, residual_fn=operators.residual)
  nashax.check(info)
  det.append(int(info.num_steps) * n)
  print(f"n = {n:6d}: VR-Halpern {vr[-1]:>10,d} evaluations, Halpern {det[-1]:>12,d}  (x{det[-1] / vr[-1]:.1f})")
fig, ax = plt.subplots(figsize=(5.6, 4.0))
ax.loglog(ns, vr, "o-", label="VR-Halpern")
ax.loglog(ns, det, "s-", label="Halpern (full passes)")
ax.set_xlabel("n (components)")
ax.set_ylabel(f"component evaluations to |F z| <= {eps:g}")
ax.legend()
fig.tight_layout()
fig.savefig(os.path.join(OUT, "vr_halpern_evaluations.png"), dpi=100)

# %% [markdown]
# At small `n` (and loose `eps`) VR-Halpern's occasional full passes dominate
# and plain Halpern can be cheaper; the `sqrt(n)` advantage appears as `n`
# grows (the full run goes to `n = 10,000`, and `benchmarks/bench_halpern.py`
# to `n = 10^6`).
