"""The ``nashax`` command line: ``verify`` (theory claims), ``sweep``, ``plot``, ``train`` and ``rank``."""

from __future__ import annotations

import argparse
import os
import sys

_EPILOG = """examples:
  nashax verify                         run every claim, write runs/verify/report.md and PNG plots
  nashax verify --fast --only hedge     small sizes, only the claims whose names match 'hedge'
  nashax verify --list                  name the claims
  nashax verify --list --markdown       the README's claim table
  nashax verify --json runs/verify.json machine-readable results
"""

_SWEEP_EPILOG = """examples:
  nashax sweep examples/sweeps/nash_md_eta.toml            run (or resume) into runs/sweeps/nash_md_eta/
  nashax sweep examples/sweeps/nlhf_race.toml --out /tmp/race
  nashax sweep --list                                      game families and solvers a config may name

A config is TOML with [game] (family, size, family hyperparameters), one or more
[[solver]] tables (name and hyperparameters) and [run] (seeds, steps, every,
metrics, chunk, batch_size, seed, x64). A list is a grid axis. family and name
may be "module:function", your own factory; a solver name may be a ranker
(alpharank, nash_averaging, response_graph_ucb); x64 = true runs in float64. A
killed sweep started again resumes from its last finished chunk; a finished one
does nothing.
"""

_PLOT_EPILOG = """examples:
  nashax plot runs/sweeps/nash_md_eta                 PNGs in runs/sweeps/nash_md_eta/plots/
  nashax plot runs/sweeps/nash_md_eta --metric duality_gap
"""


def _cli_errors(prog: str):
  """Wraps a subcommand: a user error is one line on stderr and exit 2, never a traceback.

  User errors are ``ValueError`` (a bad config, argument or state file, named
  by the message), ``FloatingPointError`` (NaN or overflow in training, with
  the step and the value) and ``OSError`` (a file or folder that cannot be
  read or written). Anything else is a bug: its traceback is printed, with a
  line asking for a report, and the exit code is 1. In a multi-process run, a
  collective that failed because another process died ends the process with
  exit code 3 and a line saying so, and any failure ends it at once (JAX's
  exit handler would wait for processes that may never arrive).
  """
  import functools

  def wrap(fn):
    @functools.wraps(fn)
    def run(args: argparse.Namespace) -> int:
      code = guarded(args)
      from nashax import _distributed

      if code and _distributed.active():
        _distributed.exit_now("", code)
      return code

    def guarded(args: argparse.Namespace) -> int:
      try:
        return fn(args)
      except (ValueError, FloatingPointError) as e:
        print(f"nashax {prog}: {e}", file=sys.stderr)
        return 2
      except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"nashax {prog}: {where}{e.strerror or e}", file=sys.stderr)
        return 2
      except KeyboardInterrupt:
        print(f"nashax {prog}: interrupted", file=sys.stderr)
        return 130
      except Exception as e:  # noqa: BLE001 - an internal error: show it, and ask for a report
        _stop_if_peer_lost(prog, e)
        import traceback

        traceback.print_exc()
        print(f"nashax {prog}: internal error (not a problem with your input); please report it to the "
              "nashax maintainers, with the traceback above and the command line", file=sys.stderr)
        return 1
    return run
  return wrap


def _stop_if_peer_lost(prog: str, e: BaseException) -> None:
  """Ends a multi-process command at once, in words, when a collective failed because another process died."""
  from nashax import _distributed

  if _distributed.peer_lost(e):
    first = str(e).strip().splitlines()[0][:300]
    _distributed.exit_now(
        f"nashax {prog}: process {_distributed.process_index()} of {_distributed.process_count()} stopped: "
        f"another process of the run died or stopped ({type(e).__name__}: {first}). Finished work is kept; "
        f"start all {_distributed.process_count()} processes again to resume.", 3)


_DIST_EPILOG = """several processes (one per host; see docs/multihost.md):
  nashax {cmd} CONFIG --coordinator HOST:PORT --num-processes N --process-id I
  (or JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID; --coordinator auto on SLURM or a TPU pod)
"""


def _add_distributed_flags(p: argparse.ArgumentParser) -> None:
  from nashax import _distributed as D

  g = p.add_argument_group("several processes (JAX's distributed runtime)")
  g.add_argument("--coordinator", metavar="HOST:PORT",
                 help="process 0's address, the same for every process; 'auto' lets JAX detect SLURM, a TPU pod "
                      "slice, Open MPI or Kubernetes (default: JAX_COORDINATOR_ADDRESS, else one process)")
  g.add_argument("--num-processes", type=int, metavar="N", help="processes in the run (default JAX_NUM_PROCESSES)")
  g.add_argument("--process-id", type=int, metavar="I", help="this process's index 0..N-1 (default JAX_PROCESS_ID)")
  g.add_argument("--timeout", type=float, default=D.DEFAULT_TIMEOUT, metavar="S",
                 help=f"seconds to wait for every process to join (default {D.DEFAULT_TIMEOUT})")
  g.add_argument("--heartbeat-timeout", type=float, default=D.DEFAULT_HEARTBEAT, metavar="S",
                 help=f"seconds of silence after which a process counts as dead and the run stops "
                      f"(default {D.DEFAULT_HEARTBEAT})")


def _join(args: argparse.Namespace):
  from nashax import _distributed

  return _distributed.initialize(args.coordinator, args.num_processes, args.process_id, timeout=args.timeout,
                                 heartbeat_timeout=args.heartbeat_timeout)


@_cli_errors("sweep")
def _sweep(args: argparse.Namespace) -> int:
  from nashax import sweeps

  if args.list:
    print("game families:")
    for k, f in sweeps.GAME_FAMILIES.items():
      print(f"  {k:26s} {f.doc}" + (f"  [hyperparameters: {', '.join(f.params)}]" if f.params else ""))
    print("  module:function            your own factory fn(key, [size,] **hyperparameters)")
    print("solvers (hyperparameters are the factory's keyword arguments):")
    for k in sweeps.SOLVERS:
      params, _ = sweeps.registry.solver_params(k)
      print(f"  {k:26s} {', '.join(params)}")
    print("  module:function            your own factory returning a Solver")
    print("rankers (one call per row; metrics):")
    for k in sweeps.rankers.RANKERS:
      params, _ = sweeps.registry.solver_params(k)
      print(f"  {k:26s} {', '.join(params)}  [metrics: {', '.join(sweeps.rankers.METRICS[k])}]")
    return 0
  if not args.config:
    print("nashax sweep: give a CONFIG file (or --list)", file=sys.stderr)
    return 2
  try:
    rt = _join(args)
    res = sweeps.run_sweep(args.config, args.out, progress=not args.quiet)
    if not args.no_plots and rt.process_id == 0:
      paths = sweeps.plot_results(res.out)
      print(f"nashax sweep: {len(paths)} plots in {res.out}/plots")
  except ValueError as e:
    print(f"nashax sweep: {e}", file=sys.stderr)
    return 2
  return 0


_TRAIN_EPILOG = """examples:
  nashax train examples/policies/nash_vs_dpo.toml         train, evaluate, checkpoint into runs/train/nash_vs_dpo/
  nashax train examples/policies/nash_vs_dpo.toml --out /tmp/run   (run it again to resume)
  nashax train examples/lm/tiny_llama_class_oracle.toml   a random Llama decoder against the class oracle
  nashax train examples/lm/smollm2_self_judge.toml        SmolLM2-135M-Instruct, LoRA, judged by itself

A decoder config has [policy] (path = a Hugging Face folder, gguf = a file or "smollm2", or random = a
config.json table), [prompts] (path = a prompt file, chat template applied, or bos = N), [oracle] (kind =
class, judge, learned or rule), [train], [lm] (adapter = full or lora, max_new_tokens, compute_dtype,
remat), [mesh] (data, fsdp, tensor) and [run] (eval_every, checkpoint_every, pool, export).

A config is TOML with [model] (vocab_size, num_layers, num_heads, embed_dim, max_len),
[oracle] (num_classes, response_len, margin, noise, seed), [train] (algorithm: one name
or a list of dpo, ipo, iterative_dpo, online_ipo, sppo, nash_md, inpo, mnpo, egpo; beta,
eta, lr, batch_size, num_steps, ...; lists under algorithm, beta, eta and seed are grid
axes: one resumable run per combination, all gathered in runs.csv) and [run]
(eval_every, checkpoint_every, preference: oracle, bradley_terry or general).
"""


@_cli_errors("train")
def _train(args: argparse.Namespace) -> int:
  from nashax import _files
  from nashax.policies import experiment

  try:
    raw = _files.read_toml(args.config)
    rt = _join(args)
    if "policy" in raw:  # a decoder run: [policy] names a checkpoint or a random model
      from nashax.lm import experiment as lm_experiment

      if rt.num_processes > 1:
        raise ValueError("--num-processes: decoder runs ([policy] configs) run in one process for now (their "
                         "mesh spans its devices, [mesh]); several processes train the toy [model] configs")
      if args.fsdp != 1:
        raise ValueError("--fsdp: a decoder run sets its mesh in the config ([mesh] fsdp = K)")
      exp = lm_experiment.lm_experiment_from_dict(raw, name=_files.stem(args.config))
      out = args.out or f"runs/train/{exp.name}"
      res = lm_experiment.run_lm_experiment(exp, out, progress=not args.quiet)
    else:
      exp = experiment.load_experiment(args.config)
      out = args.out or f"runs/train/{exp.name}"
      res = experiment.run_experiment(exp, out, progress=not args.quiet, fsdp=args.fsdp)
  except ValueError as e:
    print(f"nashax train: {e}", file=sys.stderr)
    return 2
  if rt.process_id != 0:
    return 0
  print(f"\n{'algorithm':14s} {'exploitability':>14s} {'KL to ref':>10s} {'win vs ref':>10s}")
  for alg, c in res.items():
    ex = c["exploitability"] if "exploitability" in c else c["exploitability_pool"]
    print(f"{alg:14s} {ex[-1]:14.4g} {c['kl_ref'][-1]:10.4g} {c['win_rate_ref'][-1]:10.4f}")
  print(f"metrics and plots in {out}/")
  return 0


_RANK_EPILOG = """examples:
  nashax rank battles.jsonl                            table with 95% bootstrap intervals, CSV and PNGs in runs/rank/
  nashax rank arena.parquet --category coding --bootstrap 500 --out /tmp/rank
  nashax rank counts.csv --format csv --judge gpt-4 --posterior 0

FILE holds battles (model_a, model_b, winner in model_a / model_b / tie / tie (bothbad); optional
question_id, category, judge, turn) or long-format counts (model_a, model_b, wins, losses, ties).
Malformed rows stop the run with their line; unknown winners, self-battles and duplicates are
skipped and counted in the first line of the output.
"""


@_cli_errors("rank")
def _rank(args: argparse.Namespace) -> int:
  from nashax import rank

  try:
    for name in ("bootstrap", "posterior"):
      if getattr(args, name) < 0:
        raise ValueError(f"--{name}: must be >= 0, got {getattr(args, name)}")
    if args.top_k < 1:
      raise ValueError(f"--top-k: must be >= 1, got {args.top_k}")
    covs = tuple(c for c in (args.covariates or "").split(",") if c)
    rep = rank.rank(args.file, format=args.format, category=args.category, judge=args.judge, covariates=covs,
                    bootstrap=args.bootstrap, posterior=args.posterior, seed=args.seed, ties=args.ties,
                    alpha=args.alpha, top_k=args.top_k)
    print(rank.format_table(rep))
    paths = rank.write_report(rep, args.out, plots=not args.no_plots)
  except (ValueError, OSError) as e:
    print(f"nashax rank: {e}", file=sys.stderr)
    return 2
  print(f"\nCSV and plots in {args.out}/ ({len(paths)} files)")
  return 0


@_cli_errors("plot")
def _plot(args: argparse.Namespace) -> int:
  from nashax import sweeps

  try:
    paths = sweeps.plot_results(args.results, args.metric and [args.metric], args.dir)
  except ValueError as e:
    print(f"nashax plot: {e}", file=sys.stderr)
    return 2
  for p in paths:
    print(p)
  return 0


@_cli_errors("verify")
def _verify(args: argparse.Namespace) -> int:
  from nashax import theory

  if args.list and args.markdown:
    print(theory.claims_markdown(), end="")
    return 0
  if args.list:
    for c in theory.claims():
      print(f"{c.name}\n    {c.theorem}\n    source: {c.source}")
      if c.subject:
        print(f"    subject: {c.subject}")
      for m in c.mutants:
        print(f"    rejects {m.name}: {m.bug}")
    return 0
  print(f"nashax verify: {'fast' if args.fast else 'full'} run, plots and report in {args.out}/", flush=True)
  try:
    results = theory.run_claims(args.only, fast=args.fast, out_dir=args.out,
                                  log=lambda s: print(s, flush=True), jobs=args.jobs)
  except ValueError as e:
    print(f"nashax verify: {e}", file=sys.stderr)
    return 2
  path = theory.write_report(results, args.out, args.json)
  w = max(len(r.name) for r in results)
  print()
  print(f"{'claim':<{w}}  status  {'measured':>10}  {'bound':>10}  {'worst ratio':>11}  {'tight':>7}  time   CPU")
  for r in results:
    print(f"{r.name:<{w}}  {r.status:<6}  {r.measured:>10.4g}  {r.bound:>10.4g}  {r.worst_ratio:>11.4g}  "
          f"{r.tight_ratio:>7.4g}  {r.seconds:5.1f}s {r.cpu_seconds:5.1f}s")
  failed = [r for r in results if r.status != "pass"]
  print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed; report: {path}")
  for r in failed:
    print(f"FAILED {r.name}: {r.details}", file=sys.stderr)
  return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="nashax",
      description="nashax: JAX solvers for game-theoretic alignment, with executable theory checks.",
      epilog=_EPILOG + "\n" + _SWEEP_EPILOG + "\n" + _PLOT_EPILOG + "\n" + _TRAIN_EPILOG + "\n" + _RANK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  v = sub.add_parser(
      "verify", help="measure what each theorem bounds and compare with the bound",
      description=("Runs the registered claims: each measures the quantity a theorem bounds over a sweep, "
                   "compares it with the bound, plots both, and passes when the worst ratio "
                   "measured/bound is <= 1. Exits 1 if any claim fails."),
      epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  v.add_argument("--list", action="store_true", help="name the claims and exit")
  v.add_argument("--markdown", action="store_true",
                 help="with --list: print the README's claim table (Markdown)")
  v.add_argument("--only", metavar="PATTERN", help="run claims matching PATTERN (glob or substring, comma-separated)")
  v.add_argument("--fast", action="store_true", help="small sizes (seconds, for tests)")
  v.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
  v.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                 help="claims run in N worker processes (default: one per CPU core; 1 runs them in this process)")
  v.add_argument("--out", default="runs/verify", metavar="DIR", help="where the report and plots go (default runs/verify)")
  sw = sub.add_parser(
      "sweep", help="run a grid of games x solvers x hyperparameters x seeds, resumable",
      description=("Validates CONFIG before compiling anything, runs its grid as one vmapped batch axis in chunks "
                   "(sharded over all devices), writes results.csv / results.npz / traces.npz and the standard "
                   "plots. Exits 2 on a bad config."),
      epilog=_SWEEP_EPILOG + "\n" + _DIST_EPILOG.format(cmd="sweep"),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  sw.add_argument("config", nargs="?", metavar="CONFIG", help="a TOML sweep file")
  sw.add_argument("--out", metavar="DIR", help="results folder (default runs/sweeps/<config name>)")
  sw.add_argument("--list", action="store_true", help="name the game families and solvers, then exit")
  sw.add_argument("--quiet", action="store_true", help="no progress bar")
  sw.add_argument("--no-plots", action="store_true", help="skip the plots")
  _add_distributed_flags(sw)
  pl = sub.add_parser(
      "plot", help="draw the standard figures of a finished sweep",
      description=("Metric vs step with seed bands, final metric vs each swept hyperparameter, and a heatmap "
                   "over the first two swept hyperparameters."),
      epilog=_PLOT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  pl.add_argument("results", metavar="RESULTS", help="a sweep's results folder")
  pl.add_argument("--metric", help="only this metric")
  pl.add_argument("--dir", metavar="DIR", help="where the PNGs go (default RESULTS/plots)")
  tr = sub.add_parser(
      "train", help="train policies (toy transformers or real decoders) with NLHF / DPO algorithms",
      description=("Trains each listed algorithm on a small transformer against a preference oracle with a known "
                   "equilibrium, data-parallel over all devices, with orbax checkpoints (a killed run resumes); "
                   "writes metrics.csv per algorithm (loss, KL to the reference, win rate against it, exact "
                   "exploitability) and comparison.png. Exits 2 on a bad config."),
      epilog=_TRAIN_EPILOG + "\n" + _DIST_EPILOG.format(cmd="train"),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  tr.add_argument("config", metavar="CONFIG", help="a TOML experiment file")
  tr.add_argument("--out", metavar="DIR", help="results folder (default runs/train/<config name>)")
  tr.add_argument("--quiet", action="store_true", help="no progress bar")
  tr.add_argument("--fsdp", type=int, default=1, metavar="K",
                  help="shard the parameters over K devices (the mesh is data x fsdp = devices / K x K; default 1: "
                       "replicated, data-parallel)")
  _add_distributed_flags(tr)
  rk = sub.add_parser(
      "rank", help="rank models from pairwise battle logs, with intervals and intransitivity diagnostics",
      description=("Reads a battle log or pair counts, fits Bradley-Terry (Davidson ties), online Elo, alpha-rank, "
                   "Nash averaging, Copeland, Borda and the minimax winner; bootstrap and Dirichlet-posterior rank "
                   "intervals; response-graph cycles, intransitive triads, Condorcet winner and a likelihood-ratio "
                   "test of Bradley-Terry. Prints a table, writes CSV and PNGs. Exits 2 on bad input."),
      epilog=_RANK_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
  rk.add_argument("file", metavar="FILE", help="a .jsonl / .json / .csv / .parquet log")
  rk.add_argument("--format", choices=["jsonl", "csv", "parquet"], help="file format (default: from the extension)")
  rk.add_argument("--category", action="append", help="keep only this category (repeat for several)")
  rk.add_argument("--judge", action="append", help="keep only this judge (repeat for several)")
  rk.add_argument("--covariates", metavar="NAMES", help="comma-separated style features: columns NAME_a and NAME_b")
  rk.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000; 0: none)")
  rk.add_argument("--posterior", type=int, default=500, metavar="N",
                  help="Dirichlet posterior draws for alpha-rank / Nash averaging (default 500; 0: none)")
  rk.add_argument("--ties", choices=["davidson", "half"], default="davidson", help="tie model of the point fit")
  rk.add_argument("--alpha", type=float, default=10.0, help="alpha-rank selection intensity (default 10)")
  rk.add_argument("--top-k", type=int, default=3, metavar="K", help="report P(model in the top K) (default 3)")
  rk.add_argument("--seed", type=int, default=0, help="PRNG seed")
  rk.add_argument("--out", default="runs/rank", metavar="DIR", help="where CSV and plots go (default runs/rank)")
  rk.add_argument("--no-plots", action="store_true", help="skip the PNGs")
  args = parser.parse_args(argv)
  if args.command == "rank":
    return _rank(args)
  if args.command == "train":
    return _train(args)
  if args.command == "verify":
    return _verify(args)
  if args.command == "sweep":
    return _sweep(args)
  if args.command == "plot":
    return _plot(args)
  return 2


if __name__ == "__main__":
  sys.exit(main())
