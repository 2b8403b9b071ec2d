"""Ranking models from pairwise comparison logs, with uncertainty (``nashax.rank``).

Read a battle log (Chatbot Arena's fields) or long-format counts, fit
Bradley-Terry with Davidson ties (optionally with style covariates), online
Elo, and the game-theoretic rankings of the win-rate matrix (alpha-rank,
Nash averaging, the minimax winner, Copeland, Borda); a batched bootstrap and
a Dirichlet posterior give rank intervals, ``P(i above j)`` and ``P(top k)``;
diagnostics find cycles, intransitive triads, Condorcet winners and test
Bradley-Terry against the general pairwise model.

>>> from nashax import rank                                  # doctest: +SKIP
>>> r = rank.rank("battles.jsonl", bootstrap=1000)           # doctest: +SKIP
>>> print(r); rank.write_report(r, "runs/rank")              # doctest: +SKIP
"""

from nashax.rank import core, diagnostics, io, uncertainty
from nashax.rank.core import BTFit, fit_bt, online_elo, win_rate_matrix
from nashax.rank.diagnostics import intransitive_triads, lr_test, response_graph, sink_components
from nashax.rank.io import Comparisons, ReadSummary, read, read_battles, read_counts
from nashax.rank.report import RankReport, format_table, rank, write_report
from nashax.rank.uncertainty import bootstrap, posterior, summarize

__all__ = ["BTFit", "Comparisons", "RankReport", "ReadSummary", "bootstrap", "core", "diagnostics", "fit_bt",
           "format_table", "intransitive_triads", "io", "lr_test", "online_elo", "posterior", "rank", "read",
           "read_battles", "read_counts", "response_graph", "sink_components", "summarize", "uncertainty",
           "win_rate_matrix", "write_report"]
