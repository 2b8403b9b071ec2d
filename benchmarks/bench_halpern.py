"""Component evaluations and wall time to residual 1e-4 on a finite-sum bilinear game.

Problem: ``games.random_bilinear_sum`` with ``n`` components (default 1,000),
``dim x dim`` blocks, average Lipschitz constant ``L = 1``, unconstrained, in
float64. Methods, each with the default step from the stated constants:
VR-Halpern (Algorithm 2: inexact resolvent by EG-VR, counted in component
evaluations), deterministic Halpern (resolvent by fixed-point steps, ``n`` per
full ``F``), EAG-V and projected extragradient (``2n`` per step). Each stops on
the natural residual ``|F z| <= tol``, checked every ``check_every`` steps;
VR-Halpern's checks cost ``n`` evaluations each and are added to its count.
Timed after a compiled warm-up. A bilinear sum could be collapsed to its mean
matrix, which would make a full ``F`` as cheap as one component; the benchmark
does not collapse it (every full ``F`` evaluates all ``n`` components), so the
wall times are those of a general finite sum.

``--batch-size B`` also runs VR-Halpern with minibatches of ``B`` components per
inner step (one ``vmap``; default ``floor(sqrt(n))``; 0 skips it), whose row is
``vr_halpern_resolvent_b{B}``.

Prints a table and ``halpern_bilinear_{n}: ratio=VALUE``: deterministic
Halpern's component evaluations over VR-Halpern's (higher favours VR-Halpern),
``halpern_bilinear_{n}_wall: ratio=VALUE`` (Halpern's wall time over VR-Halpern's),
the same two for the minibatched VR-Halpern (``..._b{B}``), and
``vr_halpern_evals_per_s_{n}: ratio=VALUE``: the minibatched inner loop's component
evaluations per second over a full vectorised pass's (Halpern's).

Usage: python benchmarks/bench_halpern.py [--n 1000] [--dim 10] [--tol 1e-4] [--methods a,b] [--batch-size B]
       [--gpu] [--json PATH]
(``--methods`` runs a subset; the ratio line needs both halpern and vr_halpern_resolvent.)
"""

import argparse
import math
import time

import jax

import _figures

jax.config.update("jax_enable_x64", True)

import nashax  # noqa: E402
from nashax import games  # noqa: E402
from nashax.core import operators as ops  # noqa: E402
from nashax.solvers import halpern as H  # noqa: E402


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--n", type=int, default=1000)
  ap.add_argument("--dim", type=int, default=10)
  ap.add_argument("--tol", type=float, default=1e-4)
  ap.add_argument("--max-steps", type=int, default=2_000_000)
  ap.add_argument("--methods", default="vr_halpern_resolvent,halpern,eag_varying,extragradient")
  ap.add_argument("--batch-size", type=int, default=None)
  _figures.add_args(ap)
  args = ap.parse_args()
  if args.gpu:
    args.n = max(args.n, 10_000)
  b = math.isqrt(args.n) if args.batch_size is None else args.batch_size
  fs = games.random_bilinear_sum(jax.random.key(0), args.n, args.dim, 1.0)
  fs = fs.replace(mean_fn=None, mean_data=None)  # full F = mean of the n components
  methods = {
      "vr_halpern_resolvent": (H.vr_halpern_resolvent(), 1, True),
      "halpern": (H.halpern(), 10, False),
      "eag_varying": (H.eag(variant="varying"), 10, False),
      "extragradient": (H.projected_extragradient(), 10, False),
  }
  if b:
    methods[f"vr_halpern_resolvent_b{b}"] = (H.vr_halpern_resolvent(batch_size=b), 1, True)
  unknown = set(args.methods.split(",")) - set(methods)
  if unknown:
    raise SystemExit(f"--methods: unknown {sorted(unknown)}; choose from {sorted(methods)}")
  methods = {k: v for k, v in methods.items() if k.split("_b")[0] in args.methods.split(",")}
  rows = {}
  for name, (solver, every, vr) in methods.items():
    problem = fs if vr else fs.full()
    f = jax.jit(lambda k, s=solver, p=problem, e=every: nashax.solve(
        s, p, k, tol=args.tol, max_steps=args.max_steps, check_every=e, residual_fn=ops.residual))
    jax.block_until_ready(f(jax.random.key(1)))  # compile (and a first run)
    t0 = time.perf_counter()
    st, info = jax.block_until_ready(f(jax.random.key(1)))
    secs = time.perf_counter() - t0
    steps = int(info.num_steps)
    calls = int(info.oracle_calls) * (1 if vr else args.n)
    if vr:
      calls += args.n * (steps // every)
    rows[name] = (int(info.status), steps, calls, secs, float(info.residual))
    print(f"{name:22s} status={int(info.status)} steps={steps:9d} component_evals={calls:13d} "
          f"wall={secs:8.2f}s residual={float(info.residual):.2e}", flush=True)
  ok = all(r[0] == nashax.core.SUCCESS for r in rows.values())
  if not ok:
    print("warning: some method did not reach the tolerance (status != 0); its count is a lower bound")
  for name, r in rows.items():
    _figures.figure(f"{name}_{args.n}", {"status": r[0], "steps": r[1], "component_evals": r[2], "wall_s": r[3]})
  if "halpern" in rows:
    for vr in [k for k in rows if k.startswith("vr_halpern_resolvent")]:
      for name, r in rows.items():
        print(f"{name:26s} evals / {vr} evals = {r[2] / rows[vr][2]:.2f}, wall / {vr} wall = {r[3] / rows[vr][3]:.2f}")
      tag = vr[len("vr_halpern_resolvent"):]
      _figures.ratio(f"halpern_bilinear_{args.n}{tag}", rows["halpern"][2] / rows[vr][2])
      _figures.ratio(f"halpern_bilinear_{args.n}{tag}_wall", rows["halpern"][3] / rows[vr][3])
    if b and f"vr_halpern_resolvent_b{b}" in rows:
      rb, rh = rows[f"vr_halpern_resolvent_b{b}"], rows["halpern"]
      _figures.ratio(f"vr_halpern_evals_per_s_{args.n}", (rb[2] / rb[3]) / (rh[2] / rh[3]))
  _figures.write(args.json, "halpern")

if __name__ == "__main__":
  main()
