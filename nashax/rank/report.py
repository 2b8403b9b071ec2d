"""``rank``: a log file to every ranking with intervals, the diagnostics, a table, CSV files and plots."""

from __future__ import annotations

import csv
import dataclasses
import os
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from nashax.rank import core, diagnostics, io, uncertainty

__all__ = ["RankReport", "rank", "write_report", "format_table"]

_ALL = ("bt",) + uncertainty.MATRIX_METHODS
_NAMES = {"bt": "Bradley-Terry", "alpharank": "alpha-rank", "nash": "Nash averaging", "copeland": "Copeland",
          "borda": "Borda"}


@dataclasses.dataclass
class RankReport:
  """Everything ``rank`` computed (numpy).

  Attributes:
    models: ``K`` names; summary: the reader's ``ReadSummary``.
    bt: the Bradley-Terry-Davidson fit (``rating = 1000 + ELO_SCALE * theta``).
    online_elo: ``[K]`` online Elo (``None`` for aggregated counts).
    win_rates, battles, ties: ``[K, K]`` matrices (row vs column; ties count half in ``win_rates``).
    scores: method -> ``[K]`` point scores on the data (higher is better).
    boot: method -> ``RankSummary`` over bootstrap resamples (empty without a bootstrap).
    post: method -> ``RankSummary`` over Dirichlet posterior draws (matrix methods; empty without).
    boot_failed: resamples whose Bradley-Terry fit did not converge (left out of its intervals).
    minimax: ``[K]`` the minimax (von Neumann) winner of ``win_rates``.
    sinks: sink strongly connected components of the response graph (lists of model indices).
    triads: ``(point, lo, hi)`` fraction of intransitive triads, interval over the bootstrap.
    condorcet: the Condorcet winner's index or -1; p_condorcet: posterior probability that one exists;
      p_condorcet_model: ``[K]`` posterior probability that each model is it.
    lr: the likelihood-ratio test of Bradley-Terry against the saturated model.
  """

  models: tuple
  summary: io.ReadSummary
  bt: core.BTFit
  online_elo: Optional[np.ndarray]
  win_rates: np.ndarray
  battles: np.ndarray
  ties: np.ndarray
  scores: dict
  boot: dict
  post: dict
  boot_failed: int
  minimax: np.ndarray
  sinks: list
  triads: tuple
  condorcet: int
  p_condorcet: float
  p_condorcet_model: Optional[np.ndarray]
  lr: diagnostics.LRTest
  level: float
  top_k: int

  def order(self) -> np.ndarray:
    """Model indices from the best Bradley-Terry strength down."""
    return np.argsort(-np.asarray(self.scores["bt"]), kind="stable")

  def __str__(self) -> str:
    return format_table(self)


def rank(source, *, format: Optional[str] = None, category=None, judge=None, covariates: Sequence[str] = (),
         bootstrap: int = 1000, posterior: int = 1000, seed: int = 0, ties: str = "davidson", ridge: float = 0.0,
         alpha: float = 10.0, m: int = 50, top_k: int = 3, level: float = 0.95, methods: Sequence[str] = _ALL,
         nash_steps: int = 2000, chunk: Optional[int] = None) -> RankReport:
  """Ranks the models of a comparison log with every method, uncertainty and diagnostics.

  Args:
    source: a file path (``io.read``: battles or counts) or ``io.Comparisons``.
    format, category, judge, covariates: as in ``io.read_battles``.
    bootstrap: resamples over battles (0: no intervals).
    posterior: Dirichlet posterior draws for the matrix methods (0: none).
    seed: PRNG seed of both.
    ties: ``"davidson"`` or ``"half"`` for the point fit (the bootstrap refits Davidson).
    ridge: prior precision on the strengths (0: maximum likelihood).
    alpha, m: alpha-rank's selection intensity and population size.
    top_k: the ``k`` of ``P(top k)``.
    level: interval coverage.
    methods: the rankings to compute (``"bt"`` always).

  Returns:
    ``RankReport`` (``str()`` of it is the table).
  """
  comp = source if isinstance(source, io.Comparisons) else io.read(source, format=format, category=category,
                                                                     judge=judge, covariates=covariates)
  methods = tuple(dict.fromkeys(("bt",) + tuple(methods)))
  uncertainty._check_methods(methods, _ALL)
  k = comp.num_models
  top_k = min(int(top_k), k)
  fit = core.fit_bt(comp, ties=ties, ridge=ridge)
  w, n, t = core.win_rate_matrix(comp)
  wj = jnp.asarray(w, jnp.result_type(float))
  nj = jnp.asarray(n, wj.dtype)
  scores = {"bt": np.asarray(fit.theta, np.float64)}
  if "alpharank" in methods:
    scores["alpharank"] = np.asarray(core.alpharank_scores(wj, alpha, m))
  if "nash" in methods:
    eq, ratings = core.nash_scores(wj, max(nash_steps, 5000))
    scores["nash"], scores["nash_mass"] = np.asarray(ratings), np.asarray(eq)
  if "copeland" in methods:
    scores["copeland"] = np.asarray(core.copeland(wj, nj))
  if "borda" in methods:
    scores["borda"] = np.asarray(core.borda(wj, nj))
  key_b, key_p = jax.random.split(jax.random.key(seed))
  boot, post, failed = {}, {}, 0
  tri = float(diagnostics.intransitive_triads(wj, nj))
  tri_lo = tri_hi = float("nan")
  if bootstrap:
    bs = uncertainty.bootstrap(comp, bootstrap, key=key_b, methods=methods, ridge=ridge, alpha=alpha, m=m,
                               nash_steps=nash_steps, chunk=chunk)
    ok = np.asarray(bs["bt_status"]) == 0
    failed = int((~ok).sum())
    for meth in methods:
      boot[meth] = uncertainty.summarize(bs[meth], scores[meth], level=level, top_k=top_k,
                                         valid=ok if meth == "bt" and ok.any() else None)
    q = (1 - level) / 2
    tri_lo, tri_hi = (float(v) for v in np.quantile(np.asarray(bs["triads"]), [q, 1 - q]))
  p_cond, p_cond_model = float("nan"), None
  if posterior:
    mm = tuple(x for x in methods if x != "bt") or ("copeland",)
    ps = uncertainty.posterior(comp, posterior, key=key_p, alpha=alpha, m=m, nash_steps=nash_steps, methods=mm,
                               chunk=chunk)
    for meth in mm:
      if meth in scores:
        post[meth] = uncertainty.summarize(ps[meth], scores[meth], level=level, top_k=top_k)
    cw = np.asarray(ps["condorcet"])
    p_cond = float((cw >= 0).mean())
    p_cond_model = np.array([(cw == i).mean() for i in range(k)])
  graph = diagnostics.response_graph(w, n)
  return RankReport(comp.models, comp.summary, fit, None if not comp.ordered else np.asarray(core.online_elo(comp)),
                    w, n, t, scores, boot, post, failed, core.minimax_winner(w),
                    diagnostics.sink_components(graph), (tri, tri_lo, tri_hi),
                    int(diagnostics.condorcet_winner(wj, nj)), p_cond, p_cond_model, diagnostics.lr_test(comp),
                    level, top_k)


def _elo(theta):
  return 1000.0 + core.ELO_SCALE * np.asarray(theta, np.float64)


def format_table(r: RankReport) -> str:
  """The ranking table (Bradley-Terry order) with intervals, then the diagnostics, as text."""
  pct = int(round(100 * r.level))
  lines = [str(r.summary), ""]
  w = max(5, max(len(m) for m in r.models))
  head = f"{'rank':>9}  {'model':<{w}}  {'BT (Elo)':>8}  {f'{pct}% interval':>15}  {f'P(top {r.top_k})':>9}"
  if r.online_elo is not None:
    head += f"  {'online':>7}"
  has = [x for x in ("alpharank", "nash", "copeland", "borda") if x in r.scores]
  cols = {"alpharank": "alpha-rank", "nash": "Nash mass", "copeland": "Copeland", "borda": "Borda"}
  for x in has:
    head += f"  {cols[x]:>10}"
    if x == "alpharank" and "alpharank" in r.boot:
      head += f"  {'a-r rank':>8}"
  lines.append(head)
  bt = r.boot.get("bt")
  rating = _elo(r.scores["bt"])
  for i in r.order():
    rk = f"{int(bt.rank_lo[i])}-{int(bt.rank_hi[i])}" if bt else ""
    s = f"{int(core.ranks_of(jnp.asarray(r.scores['bt']))[i]):>3} {rk:>5}  {r.models[i]:<{w}}  {rating[i]:8.1f}  "
    s += f"{f'[{_elo(bt.score_lo)[i]:.1f}, {_elo(bt.score_hi)[i]:.1f}]' if bt else '':>15}  "
    s += f"{bt.p_top[i]:9.3f}" if bt else f"{'':>9}"
    if r.online_elo is not None:
      s += f"  {r.online_elo[i]:7.1f}"
    for x in has:
      v = r.scores["nash_mass"][i] if x == "nash" else r.scores[x][i]
      s += f"  {v:10.4f}" if x in ("alpharank", "nash", "borda") else f"  {v:10.1f}"
      if x == "alpharank" and "alpharank" in r.boot:
        ab = r.boot["alpharank"]
        s += f"  {f'{int(ab.rank_lo[i])}-{int(ab.rank_hi[i])}':>8}"
    lines.append(s)
  lines.append("")
  if r.bt.log_nu > -29:
    lines.append(f"Davidson tie parameter nu = {float(np.exp(r.bt.log_nu)):.3f}")
  if r.boot_failed:
    lines.append(f"{r.boot_failed} bootstrap resamples did not converge (left out of the BT intervals)")
  name = lambda i: r.models[i]
  cyc = [c for c in r.sinks if len(c) > 1]
  lines.append("response graph sink components: " + "; ".join("{" + ", ".join(map(name, c)) + "}" for c in r.sinks)
               + (f"  ({len(cyc)} cyclic)" if cyc else "  (no cycle at the top)"))
  tri = f"intransitive triads: {r.triads[0]:.4f}"
  if np.isfinite(r.triads[1]):
    tri += f" ({pct}% bootstrap interval [{r.triads[1]:.4f}, {r.triads[2]:.4f}])"
  lines.append(tri)
  cw = f"Condorcet winner: {name(r.condorcet) if r.condorcet >= 0 else 'none'}"
  if np.isfinite(r.p_condorcet):
    cw += f"; P(a Condorcet winner exists | data) = {r.p_condorcet:.3f}"
    if r.p_condorcet_model is not None and r.p_condorcet_model.max() > 0:
      best = int(np.argmax(r.p_condorcet_model))
      cw += f", P({name(best)} is it) = {r.p_condorcet_model[best]:.3f}"
  lines.append(cw)
  sup = np.flatnonzero(r.minimax > 1e-6)
  lines.append("minimax (von Neumann) winner: " + ", ".join(f"{name(i)} {r.minimax[i]:.3f}" for i in sup))
  lines.append(f"Bradley-Terry vs general pairwise model (decisive battles): G = {r.lr.statistic:.2f}, "
               f"df = {r.lr.df}, p = {r.lr.p_value:.3g}"
               + ("  -> Bradley-Terry rejected at 5%" if r.lr.p_value < 0.05 else ""))
  return "\n".join(lines)


def write_report(r: RankReport, out: str, *, plots: bool = True) -> list:
  """Writes ``ranking.csv``, ``win_rates.csv``, ``p_above.csv`` and (with ``plots``) four PNGs into ``out``.

  Returns:
    the paths written.
  """
  os.makedirs(out, exist_ok=True)
  paths = []
  k = len(r.models)
  p = os.path.join(out, "ranking.csv")
  with open(p, "w", newline="") as f:
    wr = csv.writer(f)
    head = ["model", "battles", "bt_theta", "bt_rating", "bt_rank"]
    if "bt" in r.boot:
      head += ["bt_rating_lo", "bt_rating_hi", "bt_rank_lo", "bt_rank_hi", f"p_top{r.top_k}"]
    if r.online_elo is not None:
      head.append("online_elo")
    for x in ("alpharank", "nash", "copeland", "borda"):
      if x in r.scores:
        head += [x, f"{x}_rank"]
        if x == "nash":
          head.append("nash_mass")
        for src, d in (("boot", r.boot), ("post", r.post)):
          if x in d:
            head += [f"{x}_rank_lo_{src}", f"{x}_rank_hi_{src}"]
    head.append("minimax_mass")
    wr.writerow(head)
    ranks = {x: np.asarray(core.ranks_of(jnp.asarray(v))) for x, v in r.scores.items()}
    for i in r.order():
      row = [r.models[i], int(r.battles[i].sum()), f"{r.scores['bt'][i]:.6g}", f"{_elo(r.scores['bt'])[i]:.2f}",
             ranks["bt"][i]]
      if "bt" in r.boot:
        b = r.boot["bt"]
        row += [f"{_elo(b.score_lo)[i]:.2f}", f"{_elo(b.score_hi)[i]:.2f}", b.rank_lo[i], b.rank_hi[i],
                f"{b.p_top[i]:.4f}"]
      if r.online_elo is not None:
        row.append(f"{r.online_elo[i]:.2f}")
      for x in ("alpharank", "nash", "copeland", "borda"):
        if x in r.scores:
          row += [f"{r.scores[x][i]:.6g}", ranks[x][i]]
          if x == "nash":
            row.append(f"{r.scores['nash_mass'][i]:.6g}")
          for src, d in (("boot", r.boot), ("post", r.post)):
            if x in d:
              row += [d[x].rank_lo[i], d[x].rank_hi[i]]
      row.append(f"{r.minimax[i]:.6g}")
      wr.writerow(row)
  paths.append(p)
  order = r.order()
  p = os.path.join(out, "win_rates.csv")
  with open(p, "w", newline="") as f:
    wr = csv.writer(f)
    wr.writerow(["model_a", "model_b", "win_rate", "battles", "ties"])
    for i in order:
      for j in order:
        if i != j and r.battles[i, j] > 0:
          wr.writerow([r.models[i], r.models[j], f"{r.win_rates[i, j]:.6f}", int(r.battles[i, j]), int(r.ties[i, j])])
  paths.append(p)
  if "bt" in r.boot:
    p = os.path.join(out, "p_above.csv")
    with open(p, "w", newline="") as f:
      wr = csv.writer(f)
      wr.writerow(["P(row ranks above column), Bradley-Terry bootstrap"] + [r.models[j] for j in order])
      for i in order:
        wr.writerow([r.models[i]] + [f"{r.boot['bt'].p_above[i, j]:.4f}" for j in order])
    paths.append(p)
  if plots:
    paths += _plots(r, out)
  return paths


def _plots(r: RankReport, out: str) -> list:
  import matplotlib

  if matplotlib.get_backend().lower() != "agg":
    matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  k = len(r.models)
  order = r.order()
  names = [r.models[i] for i in order]
  paths = []
  # 1. rank intervals per method
  fig, ax = plt.subplots(figsize=(7, 0.35 * k + 1.5))
  meths = [x for x in ("bt", "alpharank", "nash", "copeland", "borda") if x in r.boot] or ["bt"]
  for off, x in enumerate(meths):
    ranks = np.asarray(core.ranks_of(jnp.asarray(r.scores[x])))[order]
    y = np.arange(k) + (off - (len(meths) - 1) / 2) * 0.12
    if x in r.boot:
      b = r.boot[x]
      ax.errorbar(ranks, y, xerr=[ranks - b.rank_lo[order], b.rank_hi[order] - ranks], fmt="o", ms=4, capsize=2,
                  label=_NAMES[x])
    else:
      ax.plot(ranks, y, "o", label=_NAMES[x])
  ax.set_yticks(range(k), names)
  ax.invert_yaxis()
  ax.set_xlabel(f"rank ({int(round(100 * r.level))}% bootstrap interval)")
  ax.legend(fontsize=8)
  ax.set_title("rank intervals")
  fig.tight_layout()
  paths.append(os.path.join(out, "rank_intervals.png"))
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)
  # 2. win-rate heatmap ordered by rank, cells annotated
  fig, ax = plt.subplots(figsize=(0.5 * k + 2.5, 0.5 * k + 2))
  wm = r.win_rates[np.ix_(order, order)].copy()
  nm = r.battles[np.ix_(order, order)]
  wm[nm == 0] = np.nan
  im = ax.imshow(wm, cmap="RdBu", vmin=0, vmax=1)
  if k <= 30:
    for a in range(k):
      for b in range(k):
        if nm[a, b] > 0:
          ax.text(b, a, f"{wm[a, b]:.2f}\n{int(nm[a, b])}", ha="center", va="center", fontsize=6)
  ax.set_xticks(range(k), names, rotation=90, fontsize=7)
  ax.set_yticks(range(k), names, fontsize=7)
  fig.colorbar(im, ax=ax, label="P(row beats column), ties half; cell: rate / battles")
  ax.set_title("win rates, ordered by Bradley-Terry rank")
  fig.tight_layout()
  paths.append(os.path.join(out, "win_rates.png"))
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)
  # 3. response graph with its sink components
  g = diagnostics.response_graph(r.win_rates, r.battles)
  ang = 2 * np.pi * np.arange(k) / k
  pos = np.stack([np.cos(ang), np.sin(ang)], 1)
  sink = np.zeros(k, bool)
  for c in r.sinks:
    sink[c] = True
  fig, ax = plt.subplots(figsize=(6, 6))
  for i, j in zip(*np.nonzero(g)):
    ax.annotate("", xy=pos[j], xytext=pos[i], arrowprops=dict(arrowstyle="->", color="0.6", lw=0.7,
                                                                shrinkA=8, shrinkB=8))
  ax.scatter(pos[:, 0], pos[:, 1], s=160, c=np.where(sink, "tab:red", "tab:blue"), zorder=3)
  for i in range(k):
    ax.text(*(1.15 * pos[i]), r.models[i], ha="center", va="center", fontsize=7)
  ax.set_title("response graph (loser -> winner); red: sink components")
  ax.set_xlim(-1.5, 1.5)
  ax.set_ylim(-1.5, 1.5)
  ax.axis("off")
  paths.append(os.path.join(out, "response_graph.png"))
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)
  # 4. Bradley-Terry against alpha-rank side by side
  fig, axes = plt.subplots(1, 2, figsize=(10, 0.3 * k + 2), sharey=True)
  y = np.arange(k)
  bt = _elo(r.scores["bt"])[order]
  if "bt" in r.boot:
    b = r.boot["bt"]
    axes[0].errorbar(bt, y, xerr=[bt - _elo(b.score_lo)[order], _elo(b.score_hi)[order] - bt], fmt="o", capsize=2)
  else:
    axes[0].plot(bt, y, "o")
  axes[0].set_xlabel("Bradley-Terry rating (Elo scale)")
  axes[0].set_yticks(y, names, fontsize=7)
  axes[0].invert_yaxis()
  if "alpharank" in r.scores:
    ar = r.scores["alpharank"][order]
    src = r.post.get("alpharank") or r.boot.get("alpharank")
    if src is not None:
      axes[1].barh(y, ar, xerr=[np.maximum(ar - src.score_lo[order], 0), np.maximum(src.score_hi[order] - ar, 0)],
                   capsize=2, color="tab:orange")
    else:
      axes[1].barh(y, ar, color="tab:orange")
    axes[1].set_xlabel("alpha-rank stationary mass")
  axes[0].set_title("Bradley-Terry")
  axes[1].set_title("alpha-rank")
  fig.tight_layout()
  paths.append(os.path.join(out, "bt_vs_alpharank.png"))
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)
  return paths
