"""The (C, L) plane: the design space, the paper's graph sets and the brain networks."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from relgraph_jax.graphs import catalog  # noqa: E402
from relgraph_jax.graphs.design_space import DesignSpace  # noqa: E402
from relgraph_jax.graphs.relational_graph import RelationalGraph  # noqa: E402

_SET_STYLE = {  # the sparser the set, the bigger its marks
    "n64_3942": dict(s=3, color="tab:blue", alpha=0.5),
    "n64_449": dict(s=12, color="tab:orange", alpha=0.8),
    "n64_52": dict(s=40, color="tab:red", edgecolors="black", linewidths=0.6),
}
_BRAIN_LABEL_OFFSET = {"mcwhole": (8, -12), "mcvisual": (-20, -16), "cat": (8, -4)}


def _landmarks(ax, best: bool, brains: bool) -> None:
    """The paper's best graphs (x) and the brain networks (stars)."""
    if best:
        for model, (set_name, index) in catalog.BEST_GRAPHS.items():
            if set_name.startswith("n64"):
                graph = catalog.paper_graph(set_name, index)
                ax.scatter([graph.C], [graph.L], marker="x", color="black", s=30, zorder=5)
                ax.annotate(model, (graph.C, graph.L), fontsize=7, xytext=(4, 3),
                            textcoords="offset points")
    if brains:
        for name in catalog.BRAIN_NETWORKS:
            graph = RelationalGraph.from_spec(f"brain:{name}")
            ax.scatter([graph.C], [graph.L], marker="*", s=160, color="gold",
                       edgecolors="black", zorder=6)
            ax.annotate(f"{name} (n={graph.n})", (graph.C, graph.L), fontsize=8,
                        xytext=_BRAIN_LABEL_OFFSET.get(name, (6, -10)), textcoords="offset points")


def _axes_labels(ax, title: str) -> None:
    ax.set_xlabel("C (average clustering)")
    ax.set_ylabel("L (average shortest path length)")
    ax.set_xlim(0, 1)
    ax.set_title(title)


def plot_cl_plane(space: DesignSpace | None = None,
                  sets: tuple[str, ...] = ("n64_3942", "n64_449", "n64_52"),
                  brains: bool = True, best: bool = True):
    """A figure: the design space's density (if given) beside the paper's sets, each
    panel with the paper's best graphs and the brain networks marked."""
    panels = 2 if space is not None else 1
    figure, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5.5), dpi=120,
                                squeeze=False, sharey=True)
    if space is not None:
        ax = axes[0, 0]
        finite = np.isfinite(space.L) & space.ok
        counts = ax.hexbin(space.C[finite], space.L[finite], gridsize=120, bins="log",
                           cmap="viridis", mincnt=1, linewidths=0)
        figure.colorbar(counts, ax=ax, label="graphs per hexagon")
        _landmarks(ax, best, brains)
        _axes_labels(ax, f"WS-flex design space: {finite.sum():,} graphs, n = {space.n}")
    ax = axes[0, -1]
    for name in sets:
        graphs = catalog.paper_set(name)
        ax.scatter([g.C for g in graphs], [g.L for g in graphs], label=f"paper set {name}",
                   **_SET_STYLE.get(name, dict(s=8)))
    _landmarks(ax, best, brains)
    ax.legend(loc="upper right", fontsize=8)
    _axes_labels(ax, "The paper's graph sets, best graphs (x), brain networks (*)")
    return figure


def save_cl_plane(path: str, space: DesignSpace | None = None, **kwargs) -> None:
    figure = plot_cl_plane(space, **kwargs)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
