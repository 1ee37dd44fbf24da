"""This run against a reference run (e.g. the authors' recorded errors), graph by graph.

A reimplementation is measured by how closely its per-graph errors follow the original's
on the same graphs. Two runs may name one graph differently (the graphs of the 52 set
are in the 3942 set under other indices), so graphs are matched by what they are: the
`RelationalGraph` each spec resolves to (equal n, direction and edges), never by text.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import os
import warnings

import numpy as np
import scipy.stats
from matplotlib.figure import Figure

from relgraph_jax import graphs
from relgraph_jax.analysis import figures, loading, stats

FIGURE = "reference.png"
_GRID = stats.PAPER_52


@functools.lru_cache(maxsize=None)
def _graph_of(spec: str) -> graphs.RelationalGraph | None:
    """The graph a spec names, None where relgraph_jax cannot resolve it. Cached: a
    3942-graph workdir takes seconds to resolve, and both runs may share its specs."""
    try:
        return graphs.RelationalGraph.from_spec(spec)
    except ValueError:
        return None


def _take(columns, rows):
    """A Runs or GraphTable with every per-row column indexed by `rows`."""
    return dataclasses.replace(columns, **{
        field.name: value[rows] for field in dataclasses.fields(columns)
        if isinstance(value := getattr(columns, field.name), np.ndarray)})


def _by_graph(runs: loading.Runs, who: str, notes: list) -> tuple[loading.Runs, dict]:
    """`runs` without unresolvable specs and with one label per graph (its most used spec),
    plus {graph: label}. Specs naming one graph pool their runs: more seeds of that graph."""
    specs, counts = np.unique(runs.graph, return_counts=True)
    label, named, unknown = {}, collections.defaultdict(list), []
    for spec, _ in sorted(zip(specs.tolist(), counts.tolist()), key=lambda sc: (-sc[1], sc[0])):
        graph = _graph_of(spec)
        if graph is None:
            unknown.append(spec)
            continue
        label.setdefault(graph, spec)
        named[graph].append(spec)
    if unknown:
        notes.append(f"{who}: {len(unknown)} graph spec(s) cannot be resolved and are left "
                     f"out: {loading.name_some(unknown)}")
    notes.extend(f"{who}: {', '.join(f'`{s}`' for s in same)} are one graph; their runs are "
                 "pooled" for same in named.values() if len(same) > 1)
    to_label = {spec: label[graph] for graph, same in named.items() for spec in same}
    kept = _take(runs, np.isin(runs.graph, list(to_label)))
    return (dataclasses.replace(kept, graph=np.array([to_label[s] for s in kept.graph.tolist()],
                                                     dtype=str)), label)


@dataclasses.dataclass(frozen=True, eq=False)
class Matched:
    """Two runs on the graphs they share: row i of `this` and of `other` is one graph."""
    this_runs: loading.Runs    # the analysed run, shared graphs only
    other_runs: loading.Runs   # the reference run, shared graphs only
    this: stats.GraphTable     # sorted best first
    other: stats.GraphTable    # aligned with `this`
    unshared: tuple[int, int]  # graphs of this run, of the reference, that the other lacks
    notes: tuple[str, ...]

    @property
    def plane(self) -> np.ndarray:
        """Rows of graphs other than the complete graph (the baseline, off the plane)."""
        return ~(self.this.is_complete_graph | self.other.is_complete_graph)


def match(runs: loading.Runs, reference: loading.Runs) -> Matched:
    """The graphs both runs hold, with each run's per-graph mean error over its seeds.
    ValueError (one line) when they share no graph: there is nothing to compare."""
    notes = []
    this, this_label = _by_graph(runs, "this run", notes)
    other, other_label = _by_graph(reference, "reference", notes)
    shared = [g for g in this_label if g in other_label]
    if not shared:
        raise ValueError(
            f"--reference: no graph of {runs.workdir!r} ({len(this_label)} graphs) is among the "
            f"{len(other_label)} graphs of {reference.workdir!r} (matched by nodes, direction "
            f"and edges)" + "".join(f"; {n}" for n in notes))
    this = _take(this, np.isin(this.graph, [this_label[g] for g in shared]))
    other = _take(other, np.isin(other.graph, [other_label[g] for g in shared]))
    a, b = stats.per_graph(this), stats.per_graph(other)
    to_other = {this_label[g]: other_label[g] for g in shared}
    row_of = {spec: i for i, spec in enumerate(b.graph.tolist())}
    b = _take(b, np.array([row_of[to_other[spec]] for spec in a.graph.tolist()]))
    return Matched(this, other, a, b, (len(this_label) - len(shared),
                                       len(other_label) - len(shared)), tuple(notes))


def _correlation(method, x, y) -> dict:
    if len(x) < 3:
        return {"unavailable": f"{len(x)} shared graphs; a correlation needs 3"}
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"unavailable": "one run's errors are constant over the shared graphs"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.stats.NearConstantInputWarning)
        result = method(x, y)
    return {"r": float(result.statistic), "pvalue": float(result.pvalue)}


def _best(m: Matched) -> dict:
    """Each run's best non-complete shared graph and its rank (1 = best) in the other run."""
    rows = np.flatnonzero(m.plane)
    if not len(rows):
        return {"unavailable": "the complete graph is the only shared graph"}
    a, b = m.this.mean[rows], m.other.mean[rows]
    i = rows[np.lexsort((m.this.graph[rows], a))[0]]
    j = rows[np.lexsort((m.other.graph[rows], b))[0]]
    return {"this": str(m.this.graph[i]), "this_there": str(m.other.graph[i]),
            "reference": str(m.other.graph[j]), "reference_here": str(m.this.graph[j]),
            "same": bool(i == j), "graphs": len(rows),
            "rank_in_reference": int(1 + (b < m.other.mean[i]).sum()),
            "rank_in_this": int(1 + (a < m.this.mean[j]).sum())}


def _sweet_spot(runs: loading.Runs) -> tuple[stats.SweetSpot | None, dict]:
    try:
        spot = stats.sweet_spot(stats.plane_heatmap(runs, _GRID))
    except stats.NotEnoughData as why:
        return None, {"unavailable": str(why)}
    return spot, {"c_range": spot.c_range, "l_range": spot.l_range,
                  "c_bins": spot.c_bins, "l_bins": spot.l_bins}


def _area(c_bins, l_bins) -> int:
    return (c_bins[1] - c_bins[0] + 1) * (l_bins[1] - l_bins[0] + 1)


def _overlap(a: stats.SweetSpot, b: stats.SweetSpot) -> dict | None:
    """The rectangle both sweet spots cover, None if they are disjoint."""
    c_bins = max(a.c_bins[0], b.c_bins[0]), min(a.c_bins[1], b.c_bins[1])
    l_bins = max(a.l_bins[0], b.l_bins[0]), min(a.l_bins[1], b.l_bins[1])
    if c_bins[0] > c_bins[1] or l_bins[0] > l_bins[1]:
        return None
    return {"c_range": _GRID.c_range(*c_bins), "l_range": _GRID.l_range(*l_bins),
            "bins": _area(c_bins, l_bins), "this_bins": _area(a.c_bins, a.l_bins),
            "reference_bins": _area(b.c_bins, b.l_bins)}


def _rect(entry: dict) -> str:
    if "unavailable" in entry:
        return f"none: {entry['unavailable']}"
    (c0, c1), (l0, l1) = entry["c_range"], entry["l_range"]
    return f"C {c0:.3f}-{c1:.3f}, L {l0:.3f}-{l1:.3f}"


def plot(m: Matched, path: str, title: str) -> str:
    """One point per shared graph (mean +- std over seeds), complete graph marked, y = x."""
    fig = Figure(figsize=(5.2, 4.8))
    ax = fig.add_subplot()
    x, y, plane = m.other.mean, m.this.mean, m.plane
    ax.errorbar(x[plane], y[plane], xerr=np.nan_to_num(m.other.std[plane]),
                yerr=np.nan_to_num(m.this.std[plane]), fmt="o", markersize=4, alpha=0.7,
                elinewidth=0.6, label="graph (mean +- std over seeds)")
    if (~plane).any():
        ax.plot(x[~plane], y[~plane], "s", color="tab:red", markersize=8, linestyle="none",
                label="complete graph")
    lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
    ax.plot([lo, hi], [lo, hi], "--", color="tab:gray", linewidth=1, label="y = x")
    ax.set_xlabel("reference run: test error (%)")
    ax.set_ylabel("this run: test error (%)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return figures._save(fig, path)


def _also(spec: str, other_spec: str, where: str) -> str:
    """A graph's spec, with its name in the other run where that differs."""
    return f"`{spec}`" if spec == other_spec else f"`{spec}` (`{other_spec}` {where})"


def _seeds(table: stats.GraphTable) -> str:
    low, high = int(table.seeds.min()), int(table.seeds.max())
    if high == 1:
        return "1 (no std over seeds, no sweet-spot t-test)"
    return str(low) if low == high else f"{low}-{high}"


def _epochs(runs: loading.Runs) -> str:
    reached = loading.name_some(sorted(set(runs.reached.tolist())), 6)
    return f"last ({reached})" if runs.epoch is None else str(runs.epoch)


def section(m: Matched, out: str) -> tuple[list[str], dict]:
    """The report's lines (markdown) and summary entry; draws FIGURE into `out`."""
    shared = len(m.this)
    pearson = _correlation(scipy.stats.pearsonr, m.this.mean, m.other.mean)
    spearman = _correlation(scipy.stats.spearmanr, m.this.mean, m.other.mean)
    diff = m.this.mean - m.other.mean
    offset = {"mean": float(diff.mean()),
              "std": float(diff.std(ddof=1)) if shared > 1 else float("nan")}
    best = _best(m)
    spots = [_sweet_spot(m.this_runs), _sweet_spot(m.other_runs)]
    overlap = _overlap(spots[0][0], spots[1][0]) if spots[0][0] and spots[1][0] else None
    summary = {"workdir": m.other_runs.workdir, "epoch": m.other_runs.epoch, "shared": shared,
               "unshared": {"this": m.unshared[0], "reference": m.unshared[1]},
               "pearson": pearson, "spearman": spearman, "offset": offset, "best": best,
               "sweet_spot": {"grid": _GRID.name, "this": spots[0][1],
                              "reference": spots[1][1], "overlap": overlap},
               "notes": list(m.notes)}

    def stat(name, entry):
        if "unavailable" in entry:
            return f"{name} not available ({entry['unavailable']})"
        return f"{name} = {entry['r']:.3f} (p = {entry['pvalue']:.2g})"

    def unshared(k):
        return "all shared" if not m.unshared[k] else f"{m.unshared[k]} not shared"

    if "unavailable" in best:
        best_cells, best_line = ["-", "-"], f"Best graph: {best['unavailable']}."
    else:
        n = best["graphs"]
        best_cells = [f"{_also(best['this'], best['this_there'], 'there')}, rank "
                      f"{best['rank_in_reference']} of {n} in the reference",
                      f"{_also(best['reference'], best['reference_here'], 'here')}, rank "
                      f"{best['rank_in_this']} of {n} in this run"]
        best_line = ("Best graph: **the same** in both runs." if best["same"] else
                     f"Best graph: **different**; this run's is rank "
                     f"{best['rank_in_reference']} in the reference, the reference's rank "
                     f"{best['rank_in_this']} here (tied graphs share a rank).")
    if spots[0][0] is None or spots[1][0] is None:
        spot_line = "Sweet spots: not comparable, " + " and ".join(
            f"{who} has none" for who, (spot, _) in zip(("this run", "the reference"), spots)
            if spot is None) + "."
    elif overlap is None:
        spot_line = "Sweet spots: **disjoint**."
    else:
        spot_line = (f"Sweet spots overlap on {_rect(overlap)}: {overlap['bins']} bins, of "
                     f"this run's {overlap['this_bins']} and the reference's "
                     f"{overlap['reference_bins']}.")
    rows = [("workdir", f"`{m.this_runs.workdir}`", f"`{m.other_runs.workdir}`"),
            ("epoch", _epochs(m.this_runs), _epochs(m.other_runs)),
            ("graphs", f"{shared + m.unshared[0]}, {unshared(0)}",
             f"{shared + m.unshared[1]}, {unshared(1)}"),
            ("seeds per shared graph", _seeds(m.this), _seeds(m.other)),
            ("best shared graph (complete graph aside)", *best_cells),
            (f"sweet spot ({_GRID.name} grid, shared graphs)", _rect(spots[0][1]),
             _rect(spots[1][1]))]
    lines = [f"This run against the reference run `{m.other_runs.workdir}`, graph by graph. "
             "Graphs are matched by what they are (nodes, direction, edges), not by spec: "
             "`paper:n64_52/27` and `paper:n64_3942/2267` are one graph. Each value is a "
             "graph's mean test error over its seeds.", "",
             "| | this run | reference |", "|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    lines += ["", f"- **{shared} shared graphs**: {stat('Pearson r', pearson)}, "
                  f"{stat('Spearman rho', spearman)} (complete graph included).",
              f"- Offset, this run minus the reference: {offset['mean']:+.2f} points"
              + (f" (std {offset['std']:.2f} over the shared graphs)."
                 if np.isfinite(offset["std"]) else "."),
              f"- {best_line}", f"- {spot_line}", ""]
    title = (f"{shared} shared graphs" + (f", Pearson r = {pearson['r']:.3f}"
                                          if "r" in pearson else ""))
    plot(m, os.path.join(out, FIGURE), title)
    lines += [f"![this run against the reference, one point per graph]({FIGURE})"]
    if m.notes:
        lines += ["", "Matching:", ""] + [f"- {n}" for n in m.notes]
    if m.other_runs.notes:
        lines += ["", "Gaps in the reference's data:", ""]
        lines += [f"- {n}" for n in m.other_runs.notes]
    return lines, summary
