"""The brain networks' place on the (C, L) plane.

The paper puts the macaque and cat cortex networks next to its sweet spot. Their C and L
come from the graphs package, on the undirected simple version like every graph here.
"""
from __future__ import annotations

import dataclasses

from relgraph_jax.graphs import BRAIN_NETWORKS, RelationalGraph


@dataclasses.dataclass(frozen=True)
class PlanePoint:
    label: str
    spec: str
    C: float
    L: float


def brain_points() -> list[PlanePoint]:
    """The shipped brain networks as plane points, labelled by their common names."""
    points = []
    for name, description in BRAIN_NETWORKS.items():
        graph = RelationalGraph.from_spec(f"brain:{name}")
        points.append(PlanePoint(description.split(" (")[0], f"brain:{name}",
                                 float(graph.C), float(graph.L)))
    return points
