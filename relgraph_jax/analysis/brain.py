"""The brain networks' place on the (C, L) plane, from relgraph_jax.graphs.

The paper puts the macaque and cat cortex networks next to its sweet spot. Their C and L
come from the graphs package (on the undirected simple version, like every graph here);
it is imported on first use so that analysis keeps working where it is unavailable, and
the reason is handed back to be shown instead of the points.
"""
from __future__ import annotations

import dataclasses

BRAIN_SPECS = {
    "brain:mcwhole": "macaque whole cortex",
    "brain:mcvisual": "macaque visual cortex",
    "brain:cat": "cat cortex",
}


@dataclasses.dataclass(frozen=True)
class PlanePoint:
    label: str
    spec: str
    C: float
    L: float


def brain_points() -> tuple[list[PlanePoint], str | None]:
    """The three brain networks as plane points, or ([], why they are unavailable)."""
    try:
        from relgraph_jax.graphs import RelationalGraph
    except ImportError as error:
        return [], f"relgraph_jax.graphs.RelationalGraph is not importable ({error})"
    points = []
    for spec, label in BRAIN_SPECS.items():
        try:
            graph = RelationalGraph.from_spec(spec)
        except ValueError as error:
            return [], f"{spec} is not available from relgraph_jax.graphs ({error})"
        points.append(PlanePoint(label, spec, float(graph.C), float(graph.L)))
    return points, None
