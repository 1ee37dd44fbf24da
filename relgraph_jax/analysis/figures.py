"""The paper's figures as PNG files: (C, L) heatmap, error-vs-C/L slices, heatmap agreement.

Figures are drawn on `matplotlib.figure.Figure` objects with the Agg canvas, never through
pyplot, so nothing depends on (or changes) a global backend or keeps figures alive.
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from relgraph_jax.analysis.brain import PlanePoint
from relgraph_jax.analysis.stats import GraphTable, Heatmap, QuadraticFit, SweetSpot, axis_profile

_CMAP = "RdYlBu_r"  # blue: low error


def _save(fig: Figure, path: str) -> str:
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_heatmap(hm: Heatmap, path: str, title: str, best: PlanePoint | None = None,
                 sweet: SweetSpot | None = None, marks: list[PlanePoint] = ()) -> str:
    """Mean error per bin (C across, L up), the best graph as a star, the sweet spot as a
    dashed rectangle and `marks` (the brain networks) as labelled diamonds."""
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot()
    values = np.ma.masked_invalid(hm.mean.T)
    mesh = ax.pcolormesh(hm.grid.c_edges, hm.grid.l_edges, values, cmap=_CMAP,
                         edgecolors="face" if hm.grid.shape[0] > 50 else "white", linewidth=0.3)
    fig.colorbar(mesh, ax=ax, label="test error (%)")
    if sweet is not None:
        (c0, c1), (l0, l1) = sweet.c_range, sweet.l_range
        ax.add_patch(Rectangle((c0, l0), c1 - c0, l1 - l0, fill=False, edgecolor="black",
                               linestyle="--", linewidth=1.8,
                               label=f"sweet spot (p >= {sweet.alpha:g})"))
    if best is not None:
        ax.plot(best.C, best.L, marker="*", markersize=16, color="gold", markeredgecolor="black",
                linestyle="none", label=f"best: {best.label}")
    for k, point in enumerate(marks):
        ax.plot(point.C, point.L, marker="D", markersize=7, color="white",
                markeredgecolor="black", linestyle="none")
        # Alternate labels above and below: the cat and macaque visual cortices sit close.
        ax.annotate(point.label, (point.C, point.L), xytext=(6, 5 if k % 2 == 0 else -12),
                    textcoords="offset points", fontsize=8)
    ax.set_xlim(hm.grid.c_edges[0], hm.grid.c_edges[-1])
    ax.set_ylim(hm.grid.l_edges[0], hm.grid.l_edges[-1])
    ax.set_xlabel("clustering coefficient C")
    ax.set_ylabel("average path length L")
    ax.set_title(title, fontsize=10)
    if sweet is not None or best is not None:
        ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def plot_slices(table: GraphTable, fits: dict[str, QuadraticFit | None], grid_edges: dict,
                path: str) -> str:
    """Per-graph mean error (+- std) against C and against L, the bin means along that axis
    and the quadratic fit; `fits` and `grid_edges` are keyed by "C" and "L"."""
    fig = Figure(figsize=(11, 4.2))
    plane = ~table.is_complete_graph
    for k, axis in enumerate(("C", "L")):
        ax = fig.add_subplot(1, 2, k + 1)
        x, y = getattr(table, axis)[plane], table.mean[plane]
        ax.errorbar(x, y, yerr=np.nan_to_num(table.std[plane]), fmt="o", markersize=3,
                    alpha=0.5, color="tab:blue", elinewidth=0.6, label="graphs (mean +- std)")
        centre, mean, _ = axis_profile(x, y, grid_edges[axis])
        filled = np.isfinite(mean)
        ax.plot(centre[filled], mean[filled], "s-", color="tab:gray", markersize=4,
                linewidth=1, label="bin mean")
        fit = fits.get(axis)
        if fit is not None:
            xs = np.linspace(x.min(), x.max(), 200)
            ax.plot(xs, fit(xs), color="tab:red", linewidth=2,
                    label=f"quadratic fit (R^2 {fit.r2:.2f})")
        ax.set_xlabel("clustering coefficient C" if axis == "C" else "average path length L")
        ax.set_ylabel("test error (%)")
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_agreement(a: Heatmap, b: Heatmap, path: str, a_label: str, b_label: str,
                   r: float) -> str:
    """Bin means of one heatmap against another's over the bins both fill."""
    fig = Figure(figsize=(4.8, 4.4))
    ax = fig.add_subplot()
    both = a.filled & b.filled
    ax.plot(a.mean[both], b.mean[both], "o", markersize=4, alpha=0.7)
    ax.set_xlabel(f"{a_label}: bin error (%)")
    ax.set_ylabel(f"{b_label}: bin error (%)")
    ax.set_title(f"{a.grid.name} bins, Pearson r = {r:.2f}", fontsize=10)
    return _save(fig, path)
