"""Analysis of a sweep: (C, L) heatmaps, sweet spot, slices, correlations and a report."""
from relgraph_jax.analysis.brain import PlanePoint, brain_points
from relgraph_jax.analysis.dumps import Dump, load_dumps
from relgraph_jax.analysis.loading import Runs, load, select
from relgraph_jax.analysis.report import write_report
from relgraph_jax.analysis.stats import (
    FINE, PAPER_52, PAPER_449, Baseline, BaselineTest, Correlation, Grid, GraphTable, Heatmap,
    NotEnoughData, QuadraticFit, SweetSpot, baseline_ttest, complete_vs_best, heatmap,
    heatmap_correlation, paper_grid, per_graph, plane_heatmap, quadratic_fit,
    set_size_correlation, sweet_spot)
from relgraph_jax.results import ResultsIndex, index_results

__all__ = [
    "PlanePoint", "brain_points", "Dump", "load_dumps", "ResultsIndex", "Runs", "index_results",
    "load", "select",
    "write_report", "FINE", "PAPER_52", "PAPER_449", "Baseline", "BaselineTest", "Correlation",
    "Grid", "GraphTable", "Heatmap", "NotEnoughData", "QuadraticFit", "SweetSpot",
    "baseline_ttest", "complete_vs_best", "heatmap", "heatmap_correlation", "paper_grid",
    "per_graph", "plane_heatmap", "quadratic_fit", "set_size_correlation", "sweet_spot",
]
