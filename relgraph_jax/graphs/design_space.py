"""The WS-flex design space: C and L of millions of graphs, and the paper's subsamples.

`sweep` measures every (k, p, replicate) of a grid with the batched generator
(`wsflex_batch`: WS-flex distribution, numpy's random numbers, not the individual
`ws_flex(n, k, p, seed)` graphs). `subsample` keeps the first graph of each (C, L) cell
in a shuffled order (the paper's 3942 graphs); `centres` keeps the centre cells of
3 x 3 or 9 x 9 blocks of cells (449 and 52). `sample` turns selected cells into real
`ws_flex` graphs: for each cell it regenerates candidates with `ws_flex` until one
lands in the cell, so the final set is reproducible from its specs. Cells, their edges
and the selection rules are `cl_grid`'s, the ones the analysis bins by; the edges
default to the paper's 64-node fine grid (`cl_grid.FINE_EDGES` has the 16-node one).
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import os
import zipfile

import numpy as np
from tqdm import tqdm

from relgraph_jax.graphs import bitsets, cl_grid
from relgraph_jax.graphs.catalog import WSFlexGraph
from relgraph_jax.graphs.measures import adjacency_measures
from relgraph_jax.graphs.relational_graph import RelationalGraph
from relgraph_jax.graphs.wsflex import check_ws_flex_params, ws_flex_edges
from relgraph_jax.graphs.wsflex_batch import sample_ws_flex

C_EDGES, L_EDGES = cl_grid.FINE_EDGES[64]  # the paper's bins of C and of L (n = 64)
MIN_K_OVER_N = 0.125
SHUFFLE_SEED = 1
BORROW_ABOVE_C = 0.75


@dataclasses.dataclass(frozen=True, eq=False)
class Grid:
    """WS-flex parameters to sweep: every k x every p x replicates 0..replicates-1."""
    n: int
    k: np.ndarray
    p: np.ndarray
    replicates: int

    def __post_init__(self):
        if not 2 <= self.n <= bitsets.MAX_NODES:
            raise ValueError(f"the sweep handles 2 <= n <= {bitsets.MAX_NODES} nodes, got n = {self.n}")
        for k in (np.min(self.k), np.max(self.k)):
            for p in (np.min(self.p), np.max(self.p)):
                check_ws_flex_params(self.n, float(k), float(p), 0)
        if self.replicates < 1:
            raise ValueError(f"replicates must be at least 1, got {self.replicates}")

    @property
    def size(self) -> int:
        return len(self.k) * len(self.p) * self.replicates


def paper_grid(n: int = 64, num_k: int | None = None, num_p: int = 300,
               replicates: int = 30) -> Grid:
    """The paper's grid: k on a square-root grid (8..62 for n = 64 with 300 values,
    4..14 for n = 16 with 200), p = linspace(0, 1, 300)^2, 30 seeds."""
    ranges = {64: (8, 62, 300), 16: (4, 14, 200)}
    if n not in ranges:
        raise ValueError(f"the paper's grid exists for n in {sorted(ranges)}, got n = {n}; "
                         f"build a Grid(n, k, p, replicates) for other sizes")
    low, high, default_num_k = ranges[n]
    k = np.square(np.linspace(np.sqrt(low), np.sqrt(high),
                              default_num_k if num_k is None else num_k))
    return Grid(n, k, np.linspace(0, 1, num_p) ** 2, replicates)


@dataclasses.dataclass(frozen=True, eq=False)
class DesignSpace:
    """Flat arrays, one entry per graph, ordered by k, then p, then replicate."""
    n: int
    k: np.ndarray
    p: np.ndarray
    replicate: np.ndarray
    C: np.ndarray
    L: np.ndarray
    ok: np.ndarray  # False where no connected graph was found in 100 tries

    def save(self, path: str) -> None:
        np.savez_compressed(path, n=self.n, k=self.k, p=self.p, replicate=self.replicate,
                            C=self.C, L=self.L, ok=self.ok)

    @classmethod
    def load(cls, path: str) -> "DesignSpace":
        """A sweep's .npz; ValueError (also for a missing or foreign file) naming it."""
        if not os.path.isfile(path):
            raise ValueError(f"--space {path!r} not found; make one with `python -m "
                             "relgraph_jax.graphs sweep --out FILE.npz`")
        if not zipfile.is_zipfile(path):
            raise ValueError(f"--space {path!r} is not an .npz written by `python -m "
                             "relgraph_jax.graphs sweep`")
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(int(data["n"]), data["k"], data["p"], data["replicate"],
                           data["C"], data["L"], data["ok"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            raise ValueError(f"--space {path!r} is not a sweep written by `python -m "
                             f"relgraph_jax.graphs sweep` ({type(e).__name__}: {e})") from e


def _sweep_k(task) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """One batch: every (p, replicate) for one k, with its own reproducible random stream."""
    n, k_index, k, p, replicates, seed = task
    rng = np.random.default_rng([seed, n, k_index])
    bits, ok = sample_ws_flex(n, k, np.repeat(p, replicates), rng)
    clustering, path_length = bitsets.measures(bits, n)
    return k_index, clustering, path_length, ok


def sweep(grid: Grid, seed: int = 0, workers: int | None = None,
          progress: bool = True) -> DesignSpace:
    """C and L of every graph of the grid; one process per core (workers=1: in this one)."""
    workers = workers or os.cpu_count() or 1
    tasks = [(grid.n, i, float(k), grid.p, grid.replicates, seed) for i, k in enumerate(grid.k)]
    per_k = len(grid.p) * grid.replicates
    clustering = np.empty((len(grid.k), per_k))
    path_length = np.empty((len(grid.k), per_k))
    ok = np.empty((len(grid.k), per_k), dtype=bool)
    bar = tqdm(total=grid.size, unit="graph", unit_scale=True, disable=not progress,
               desc=f"sweep n={grid.n}")
    if workers == 1:
        results = map(_sweep_k, tasks)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(workers)
        results = pool.imap_unordered(_sweep_k, tasks)
    try:
        for k_index, c, l, good in results:
            clustering[k_index], path_length[k_index], ok[k_index] = c, l, good
            bar.update(per_k)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    k, p, replicate = (a.reshape(-1) for a in np.meshgrid(
        grid.k, grid.p, np.arange(grid.replicates), indexing="ij"))
    return DesignSpace(grid.n, k, p, replicate, clustering.reshape(-1),
                       path_length.reshape(-1), ok.reshape(-1))


def cells(C: np.ndarray, L: np.ndarray, c_edges=C_EDGES, l_edges=L_EDGES) -> tuple[np.ndarray, np.ndarray]:
    """Cell indices of C and of L, 0-based, -1 outside the grid (`cl_grid.Grid.locate`)."""
    return cl_grid.Grid("cells", c_edges, l_edges).locate(C, L)


def subsample(C: np.ndarray, L: np.ndarray, k_over_n: np.ndarray | None = None,
              c_edges=C_EDGES, l_edges=L_EDGES, shuffle_seed: int = SHUFFLE_SEED,
              min_k_over_n: float = MIN_K_OVER_N) -> np.ndarray:
    """Indices of the first graph of each non-empty (C, L) cell in a shuffled order.

    The paper's defaults: graphs with k/n >= 0.125 and finite L, shuffled with numpy
    seed 1, C binned on linspace(0, 1, 136) and L on linspace(1, 4.5, 136). Graphs
    outside the edges are in no cell, so never kept.
    """
    C, L = np.asarray(C, dtype=np.float64), np.asarray(L, dtype=np.float64)
    keep = np.isfinite(C) & np.isfinite(L)
    if k_over_n is not None:
        keep &= np.asarray(k_over_n) >= min_k_over_n
    order = np.flatnonzero(keep)[np.random.RandomState(shuffle_seed).permutation(int(keep.sum()))]
    grid = cl_grid.Grid("cells", c_edges, l_edges)
    return order[cl_grid.first_per_cell(grid, C[order], L[order])]


def centres(C: np.ndarray, L: np.ndarray, indices: np.ndarray, block: int,
            c_edges=C_EDGES, l_edges=L_EDGES, borrow_above_c: float = BORROW_ABOVE_C
            ) -> tuple[np.ndarray, np.ndarray]:
    """(kept, borrowed): graphs of `indices` in the centre cell of each block x block
    group of cells (block 3 -> the paper's 449, 9 -> 52; `cl_grid.centre_cells`), and,
    where a centre is empty and the block has graphs with C > borrow_above_c, the one
    whose cell is nearest the centre (the paper filled its sparse high-C corner this
    way; which graph it borrowed is not recorded, so the borrowed ones are this rule's,
    not necessarily the paper's).
    """
    indices = np.asarray(indices)
    ci, li = cells(C[indices], L[indices], c_edges, l_edges)
    is_centre = cl_grid.centre_cells(ci, li, block)
    kept = indices[is_centre]
    middle = block // 2
    block_id = (ci // block) * len(l_edges) + li // block
    has_centre = set(block_id[is_centre].tolist())
    distance = np.hypot(ci % block - middle, li % block - middle)
    borrowed = []
    candidates = np.flatnonzero((C[indices] > borrow_above_c) & ~is_centre & (ci >= 0))
    for block_value in np.unique(block_id[candidates]):
        if block_value in has_centre:
            continue
        members = candidates[block_id[candidates] == block_value]
        borrowed.append(indices[members[np.argmin(distance[members])]])
    return kept, np.array(borrowed, dtype=indices.dtype)


def sample(space: DesignSpace, chosen: np.ndarray, attempts: int = 60, c_edges=C_EDGES,
           l_edges=L_EDGES, shuffle_seed: int = SHUFFLE_SEED, progress: bool = False
           ) -> list[WSFlexGraph]:
    """For each chosen sweep graph, a `ws_flex` graph with exactly measured C and L in the
    same cell. Candidates are the (k, p) of that cell's sweep graphs in shuffled order,
    regenerated by `ws_flex` with seed = replicate, then replicate + R, + 2R, ... (R
    replicates per (k, p)) until one lands in the cell; after `attempts` the cell is left
    out, so the result can be shorter than `chosen`."""
    grid = cl_grid.Grid("cells", c_edges, l_edges)
    finite = np.flatnonzero(np.isfinite(space.L) & space.ok)
    order = finite[np.random.RandomState(shuffle_seed).permutation(len(finite))]
    cell_of = grid.cell(space.C[order], space.L[order])
    by_cell = np.argsort(cell_of, kind="stable")
    sorted_cells = cell_of[by_cell]
    replicates = int(space.replicate.max()) + 1
    result = []
    for index in tqdm(np.asarray(chosen), disable=not progress, desc="sample", unit="cell"):
        target = grid.cell(space.C[index], space.L[index])
        first, last = np.searchsorted(sorted_cells, [target, target + 1])
        candidates = order[by_cell[first:last]]
        for attempt in range(attempts):
            candidate = candidates[attempt % len(candidates)]
            n, k, p = space.n, float(space.k[candidate]), float(space.p[candidate])
            seed = int(space.replicate[candidate]) + replicates * (attempt // len(candidates))
            C, L = adjacency_measures(RelationalGraph(n, ws_flex_edges(n, k, p, seed)).adjacency)
            if grid.cell(C, L) == target:
                result.append(WSFlexGraph(n, k, p, seed, C, L))
                break
    return result
