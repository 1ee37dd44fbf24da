"""REPORT.md for a workdir: the paper's tables and figures, readable on its own.

Writes, into the output folder: REPORT.md, the PNG figures it shows, graphs.csv (every
graph's mean and std over seeds) and summary.json (the headline numbers, for scripts).
Whatever cannot be computed from the data at hand is named in the report, never fatal.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import os
import shutil
import tempfile
import time

import numpy as np

from relgraph_jax import results
from relgraph_jax.analysis import brain, figures, loading, paper, reference as reference_run, stats

_FALLBACK_GRID = stats.paper_grid(27)  # 5x5
_EARLY_EPOCHS = 6
_LISTED_GRAPHS = 60  # the 52 set and the complete graph are listed in full


@dataclasses.dataclass
class _Section:
    title: str
    lines: list


def early_epochs(epochs, reference: int, limit: int = _EARLY_EPOCHS) -> list[int]:
    """Epochs before `reference` to correlate with it: the first three (the paper's early
    identification of good graphs), then evenly spread ones, `limit` at most."""
    before = sorted(e for e in epochs if e < reference)
    if len(before) <= limit:
        return before
    head = before[:3]
    rest = before[3:]
    picks = np.linspace(0, len(rest) - 1, limit - 3).round().astype(int)
    return head + sorted({rest[i] for i in picks})


def _pm(mean: float, std: float) -> str:
    return f"{mean:.2f}" if not np.isfinite(std) else f"{mean:.2f} +- {std:.2f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def _graph_row(row: dict) -> list:
    return [f"`{row['graph']}`", f"{row['C']:.3f}", f"{row['L']:.3f}",
            _pm(row["mean"], row["std"]), row["seeds"], row["width"]]


_GRAPH_HEADER = ["graph", "C", "L", "test error (%)", "seeds", "width"]


def _overview(runs: loading.Runs, table: stats.GraphTable, command: str | None,
              seconds: float) -> _Section:
    seeds = sorted(set(runs.seed.tolist()))
    shown = "each variant's last epoch" if runs.epoch is None else f"epoch {runs.epoch}"
    reached = sorted(set(runs.reached.tolist()))
    lines = [
        f"- workdir: `{runs.workdir}`",
        f"- model: `{runs.model}`; hyper-parameters: `{json.dumps(runs.hparams, sort_keys=True)}`",
        f"- shown: {shown} (epochs in the file: "
        f"{loading.name_some(list(runs.epochs), 12) or 'none'}; records shown are at epoch "
        f"{loading.name_some(reached, 12) or '-'})",
        f"- {len(runs)} usable runs: {len(table)} graphs x seeds {seeds}",
        f"- generated {datetime.datetime.now().isoformat(timespec='seconds')} in {seconds:.1f} s"
        + (f" by `{command}`" if command else ""),
    ]
    return _Section("Overview", lines)


def _data_status(notes, expected: loading.Declared | None) -> _Section:
    if not notes:
        which = (f"all {expected.variants} variants config.json declares" if expected else
                 "every variant in results.jsonl (no config.json says how many to expect)")
        return _Section("Data status", [f"Complete: {which} have a usable record at the "
                                        "epoch shown and every graph has every seed."])
    return _Section("Data status", ["Gaps in the data (the analysis uses what is there):", ""]
                    + [f"- {n}" for n in notes])


def _baseline(baseline: stats.Baseline, test: stats.BaselineTest | str,
              candidates: int) -> _Section:
    rows = []
    for label, row in (("complete graph", baseline.complete), ("best graph", baseline.best)):
        rows.append([label] + (_graph_row(row) if row else ["missing"] + [""] * 5))
    lines = _table(["", *_GRAPH_HEADER], rows)
    if baseline.gain is not None:
        lines += ["", f"Complete graph's error minus best graph's: {baseline.gain:+.2f} points "
                      "(positive: the best relational graph beats the complete graph). Paper, MLP "
                      "on CIFAR-10: 33.34 +- 0.36 -> 32.05 +- 0.14 (+1.29)."]
    if isinstance(test, str):
        lines += ["", f"No t-test: {test}."]
    else:
        lines += ["", f"Student's t-test over seeds (pooled variance), one-sided, the complete "
                      f"graph's error higher: t = {test.t:.2f}, p = {test.pvalue:.3g} "
                      f"({test.seeds[0]} and {test.seeds[1]} seeds). The best graph is the "
                      f"lowest mean of {candidates} graphs, so this p-value does not account "
                      "for having picked it."]
    return _Section("Complete graph vs best graph", lines)


def _inside(sweet: stats.SweetSpot | None, point: brain.PlanePoint) -> str:
    if sweet is None:
        return "-"
    (c0, c1), (l0, l1) = sweet.c_range, sweet.l_range
    return "yes" if c0 <= point.C <= c1 and l0 <= point.L <= l1 else "no"


def _plane_grid(runs, grid, best, marks, out, note="") -> tuple[list[str], dict, object]:
    """One grid's heatmap figure and sweet spot: report lines, summary entry, sweet spot."""
    hm = stats.plane_heatmap(runs, grid)
    filled = int(hm.filled.sum())
    try:
        sweet = stats.sweet_spot(hm)
        text = (f"sweet spot: C {sweet.c_range[0]:.3f}-{sweet.c_range[1]:.3f}, "
                f"L {sweet.l_range[0]:.3f}-{sweet.l_range[1]:.3f} ({int(sweet.keep.sum())} of "
                f"{filled} filled bins not significantly worse than the best bin)")
        summary = {"c_range": sweet.c_range, "l_range": sweet.l_range,
                   "bins_kept": int(sweet.keep.sum()), "bins_filled": filled}
    except stats.NotEnoughData as why:
        sweet, text, summary = None, f"no sweet spot: {why}", {"unavailable": str(why)}
    name = f"heatmap_{grid.name}.png"
    figures.plot_heatmap(hm, os.path.join(out, name),
                         f"{grid.name} bins: mean test error over runs", best, sweet, marks)
    lines = [f"**{grid.name} grid**{note}: {filled} filled bins; {text}."
             + (f" {hm.outside} runs fell outside the grid." if hm.outside else ""),
             "", f"![{grid.name} heatmap]({name})", ""]
    return lines, summary, sweet


def _plane(runs, table, baseline, marks, out, grids) -> tuple[_Section, dict]:
    best = None
    if baseline.best is not None and math.isfinite(baseline.best["L"]):  # on the plane
        best = brain.PlanePoint(baseline.best["graph"], baseline.best["graph"],
                                baseline.best["C"], baseline.best["L"])
    lines, summary, spots = [], {}, {}
    for grid in grids:
        grid_lines, summary[grid.name], spots[grid.name] = _plane_grid(runs, grid, best, marks,
                                                                       out)
        lines += grid_lines
    if spots[grids[0].name] is None:
        # Without repeated runs per bin (one seed on the 52 set), bins of several graphs
        # still allow the test, over graphs instead of seeds.
        grid = _FALLBACK_GRID
        grid_lines, summary[grid.name], spots[grid.name] = _plane_grid(
            runs, grid, best, marks, out,
            note=" (coarser than the paper's, added because the 15x15 grid has no sweet spot; "
                 "its t-test compares the graphs in a bin, not seeds)")
        lines += grid_lines
    disconnected = int(np.isinf(runs.L).sum())
    if disconnected:
        lines += [f"{disconnected} run(s) of disconnected graphs (L infinite) are counted in "
                  "the tables but lie off the plane" + ("; the best graph is one of them, so "
                  "no star is drawn" if best is None and baseline.best is not None else "")
                  + ".", ""]
    lines += ["Star: best graph. Dashed rectangle: smallest rectangle around the bins whose "
              "errors are not significantly worse than the best bin's (one-sided Student t-test "
              "on the runs in each bin, p >= 0.05). Paper, MLP: C 0.10-0.50, L 1.82-2.75."]
    if marks:
        named = next(((g, spot) for g, spot in spots.items() if spot is not None), None)
        header = f"in the {named[0]} sweet spot" if named else "in a sweet spot"
        lines += ["", "Diamonds: brain networks (undirected simple version).", ""]
        lines += _table(["network", "spec", "C", "L", header],
                        [[m.label, f"`{m.spec}`", f"{m.C:.3f}", f"{m.L:.3f}",
                          _inside(named[1] if named else None, m)] for m in marks])
    return _Section("Error over the (C, L) plane", lines), summary


def _slices(table, out, grid) -> tuple[_Section, dict]:
    plane = ~table.is_complete_graph & np.isfinite(table.L)  # disconnected graphs: off it
    fits, rows, summary = {}, [], {}
    for axis in ("C", "L"):
        try:
            fit = stats.quadratic_fit(getattr(table, axis)[plane], table.mean[plane])
        except stats.NotEnoughData as why:
            fits[axis] = None
            rows.append([axis, f"no fit: {why}", "", "", "", "", ""])
            summary[axis] = {"unavailable": str(why)}
            continue
        fits[axis] = fit
        vertex = "none (opens down)" if fit.vertex is None else f"{fit.vertex:.3f}"
        rows.append([axis, f"{fit.a:.3f}", f"{fit.b:.3f}", f"{fit.c:.3f}", vertex,
                     f"{fit.r2:.3f}", fit.n])
        summary[axis] = dataclasses.asdict(fit) | {"vertex": fit.vertex}
    lines = ["Each point is one graph's mean error over seeds; grey squares are the means over "
             f"{grid.name} bins along the axis; the red curve is the least-squares "
             "quadratic error = a x^2 + b x + c.", ""]
    if len(table):
        figures.plot_slices(table, fits, {"C": grid.c_edges, "L": grid.l_edges},
                            os.path.join(out, "slices.png"))
        lines += ["![error vs C and L](slices.png)", ""]
    lines += _table(["axis x", "a", "b", "c", "minimum at x", "R^2", "graphs"], rows)
    return _Section("Error vs C and vs L", lines), summary


def _correlations(index, runs, hparams, compare_runs, out, grid) -> tuple[_Section, dict]:
    reference = stats.plane_heatmap(runs, grid)
    rows, summary, extra = [], {}, []

    def add(key, label, compute):
        try:
            corr = compute()
        except stats.NotEnoughData as why:
            rows.append([label, "-", "-", f"not available: {why}"])
            summary[key] = {"unavailable": str(why)}
            return None
        rows.append([label, f"{corr.r:.3f}", f"{corr.pvalue:.2g}", corr.bins])
        summary[key] = dataclasses.asdict(corr)
        return corr

    final = runs.epoch if runs.epoch is not None else int(runs.reached.max(initial=0))
    for e in early_epochs(index.epochs, final):
        add(f"epoch_{e}", f"epoch {e} vs epoch {final} (same run)",
            lambda e=e: stats.heatmap_correlation(
                stats.plane_heatmap(loading.select(index, e, hparams), grid), reference))
    if not any(k.startswith("epoch_") for k in summary):
        rows.append(["earlier epochs vs the epoch shown", "-", "-",
                     f"not available: no epoch before {final} in the file"])

    def set_size():
        corr, small, large = stats.set_size_correlation(runs, grid)
        extra.append(f"Graph-set size: {small} graphs (one per bin, nearest its centre) vs "
                     f"all {large}.")
        return corr

    add("set_size", "one graph per bin vs all graphs", set_size)
    if compare_runs is not None:
        other = stats.plane_heatmap(compare_runs, grid)
        corr = add("compare", f"this workdir vs `{compare_runs.workdir}`",
                   lambda: stats.heatmap_correlation(reference, other))
        if corr is not None:
            figures.plot_agreement(reference, other, os.path.join(out, "compare.png"),
                                   "this workdir", "compared workdir", corr.r)
            extra += ["", "![heatmap agreement](compare.png)"]
        if compare_runs.notes:
            extra += ["", "Gaps in the compared workdir's data:", ""]
            extra += [f"- {n}" for n in compare_runs.notes]
    lines = [f"Pearson r of the {grid.name} heatmaps over the bins both fill. Paper: MLP vs "
             "ResNet-34 0.66, ResNet-34-sep vs ResNet-34 0.93, ResNet-34 after 3 vs 100 epochs "
             "0.93, MLP 52 vs 3942 graphs 0.90.", ""]
    lines += _table(["heatmaps compared", "r", "p", "bins"], rows)
    if extra:
        lines += [""] + extra
    return _Section("Correlations between heatmaps", lines), summary


def _graphs(table: stats.GraphTable, out: str) -> _Section:
    with open(os.path.join(out, "graphs.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table.row(0)) if len(table) else ["graph"])
        writer.writeheader()
        for i in range(len(table)):
            writer.writerow(table.row(i))
    count = len(table)
    if count <= _LISTED_GRAPHS:
        shown, title = range(count), f"All {count} graphs, best first"
    else:
        shown = list(range(10)) + list(range(count - 5, count))
        title = f"The 10 best and 5 worst of {count} graphs"
    lines = [f"{title} (every graph: [graphs.csv](graphs.csv)).", ""]
    lines += _table(["rank", *_GRAPH_HEADER], [[i + 1, *_graph_row(table.row(i))] for i in shown])
    return _Section("Graphs", lines)


_METHOD = [
    "- Test error is in percent; mean and sample std (ddof = 1) over seeds per graph.",
    "- Grids (C across, L up): the paper's fine grid bins C on linspace(0, 1, 136) and L on "
    "linspace(1, 4.5, 136). The 15x15 grid merges 9 x 9 fine cells: the paper's 52-bin "
    "grid, where each graph of `paper:n64_52` has its own bin. The 45x45 grid merges 3 x 3 "
    "(the 449 set's grid). Bins are [lo, hi), the last one closed.",
    "- A bin's value is the mean error over every run (graph x seed) in it; the complete "
    "graph is the baseline and stays off the plane.",
    "- Complete vs best graph: Student's two-sample t-test (pooled variance) of the two "
    "graphs' seeds, one-sided (alternative: the complete graph's mean error is higher); it "
    "does not correct for the best graph being the lowest of many.",
    "- Sweet spot: Student's two-sample t-test (pooled variance) of each bin's runs against "
    "the best bin's, one-sided (alternative: the bin's mean error is higher); bins with "
    "p >= 0.05 are not significantly worse; the sweet spot is the smallest rectangle of bins "
    "containing all of them. It needs at least 2 runs in the best bin; when the 15x15 grid "
    "lacks them (one seed), a 5x5 grid (27 x 27 fine cells per bin) is added, whose bins "
    "hold several graphs.",
    "- The records are one per variant: its last epoch unless an epoch was chosen.",
]


def _check_folder(out: str) -> None:
    """`out` is a folder or can become one: checked before anything is read or written."""
    path = os.path.abspath(out)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise ValueError(f"out={out!r}: {path!r} is a file, not a folder; give --out a folder "
                         "for REPORT.md and the figures (created if missing)")


def write_report(workdir: str, out: str | None = None, compare: str | None = None,
                 epoch: int | None = None, hparams: dict | None = None,
                 command: str | None = None, reference: str | None = None,
                 reference_epoch: int | None = None, paper_choices: bool = False) -> str:
    """Analyses `workdir` (optionally against `compare`, at its last epochs) into `out`;
    `epoch` and `hparams` choose records as in `loading.select`. `reference`: a workdir to
    compare graph by graph (`analysis.reference`), at `reference_epoch` or its last epochs;
    ValueError before anything is written if it shares no graph. `paper_choices`: the
    paper's std, best graph and grids instead of the project's (`analysis.paper`).
    Returns REPORT.md's path."""
    began = time.perf_counter()
    out = out or os.path.join(workdir, "report")
    _check_folder(out)
    index = results.index_results(workdir)
    runs = loading.select(index, epoch, hparams)
    compare_runs = loading.load(compare) if compare is not None else None
    matched = (reference_run.match(runs, loading.load(reference, reference_epoch))
               if reference is not None else None)
    choice = paper.choices_for(runs) if paper_choices and len(runs) else paper.PROJECT
    try:
        os.makedirs(out, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".report-building-", dir=out)
    except OSError as e:
        raise ValueError(f"cannot write the report to {out!r} ({e.strerror}); give --out a "
                         "folder you can write to") from e
    try:
        _write_files(staging, workdir, runs, index, choice, compare_runs, matched, hparams,
                     command, began)
        for name in os.listdir(staging):  # renames: they need no space, so all succeed
            os.replace(os.path.join(staging, name), os.path.join(out, name))
    except OSError as e:
        raise ValueError(f"could not write the report in {out!r} ({e.strerror or e}); the "
                         "report there is as it was: free space or fix the cause and rerun"
                         ) from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(out, "REPORT.md")


def _write_files(out, workdir, runs, index, choice, compare_runs, matched, hparams, command,
                 began) -> None:
    """REPORT.md, summary.json, graphs.csv and the figures, all into `out`."""
    table = stats.per_graph(runs, choice.ddof)
    baseline = stats.complete_vs_best(table, choice.best)
    marks = brain.brain_points()
    try:
        test = stats.baseline_ttest(runs, baseline)
    except stats.NotEnoughData as reason:
        test = str(reason)
    candidates = int(np.sum(~table.is_complete_graph))
    sections = [_data_status(runs.notes, loading.declared(workdir)),
                _baseline(baseline, test, candidates)]
    summary = {"workdir": runs.workdir, "epoch": runs.epoch, "runs": len(runs),
               "graphs": len(table), "notes": list(runs.notes),
               "complete": baseline.complete, "best": baseline.best, "gain": baseline.gain,
               "baseline_ttest": None if isinstance(test, str) else dataclasses.asdict(test)}
    if len(runs):
        plane, summary["sweet_spot"] = _plane(runs, table, baseline, marks, out, choice.grids)
        slices, summary["fits"] = _slices(table, out, choice.grids[0])
        correlations, summary["correlations"] = _correlations(index, runs, hparams, compare_runs,
                                                              out, choice.grids[0])
        sections += [plane, slices, correlations, _graphs(table, out)]
        if matched is not None:
            lines, summary["reference"] = reference_run.section(matched, out)
            sections.insert(2, _Section("Against the reference run", lines))
    sections.append(_Section("Method", _METHOD + list(choice.notes)))
    summary["paper_choices"] = choice is not paper.PROJECT
    seconds = time.perf_counter() - began
    sections.insert(0, _overview(runs, table, command, seconds))
    text = [f"# Graph structure study: `{os.path.basename(os.path.normpath(runs.workdir))}`", ""]
    for section in sections:
        text += [f"## {section.title}", "", *section.lines, ""]
    with open(os.path.join(out, "REPORT.md"), "w") as f:
        f.write("\n".join(text))
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=float)
