"""C and L of many small graphs at once, each graph a row of 64-bit neighbour sets.

A batch of graphs on n <= 64 nodes is a uint64 array (B, n): bit v of [b, u] is the edge
u-v of graph b (undirected, no self-loops). Clustering counts triangles with AND and
popcount. Path lengths come from a breadth-first search of all sources at once: the set
of sources within t + 1 steps of u is the OR of those sets over u and its neighbours, so
one step is an AND-mask and an OR over nodes. The arithmetic matches networkx's, so the
values are equal to networkx's, not just close.
"""
from __future__ import annotations

import numpy as np

MAX_NODES = 64
_ONE = np.uint64(1)
_CHUNK = 128  # graphs per pass: keeps the (chunk, n, n) temporaries in cache


def node_bits(n: int) -> np.ndarray:
    """uint64 (n,): the bit of each node."""
    return np.left_shift(_ONE, np.arange(n, dtype=np.uint64))


def all_nodes(n: int) -> np.uint64:
    return np.uint64((1 << n) - 1)


def from_adjacency(adjacency: np.ndarray) -> np.ndarray:
    """Bitsets (B, n) from bool adjacency (B, n, n) or (n, n) (diagonal ignored)."""
    adjacency = np.asarray(adjacency, dtype=bool)
    n = adjacency.shape[-1]
    if n > MAX_NODES:
        raise ValueError(f"bitsets hold at most {MAX_NODES} nodes, got n = {n}")
    off_diagonal = adjacency & ~np.eye(n, dtype=bool)
    return (off_diagonal.astype(np.uint64) * node_bits(n)).sum(axis=-1, dtype=np.uint64)


def to_adjacency(bits: np.ndarray, n: int) -> np.ndarray:
    """bool (B, n, n) from bitsets (B, n)."""
    bits = np.ascontiguousarray(bits, dtype="<u8")  # little-endian: byte j holds bits 8j..8j+7
    unpacked = np.unpackbits(bits.view(np.uint8).reshape(*bits.shape, 8), axis=-1, bitorder="little")
    return unpacked[..., :n].view(bool)


_ALL_ONES = np.uint64(2**64 - 1)


def _clustering(bits: np.ndarray, adjacency: np.ndarray, buffer: np.ndarray, n: int) -> np.ndarray:
    np.bitwise_and(bits[:, :, None], bits[:, None, :], out=buffer)
    common = np.bitwise_count(buffer)  # (b, n, n) uint8: common neighbours of u and v
    common *= adjacency.view(np.uint8)
    closed_walks = common.sum(axis=-1, dtype=np.int64)  # twice the triangles at each node
    degree = np.bitwise_count(bits).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_node = np.where(closed_walks > 0, closed_walks / (degree * (degree - 1)), 0.0)
    return np.cumsum(per_node, axis=1)[:, -1] / n  # left-to-right, as Python's sum


def _path_length(bits: np.ndarray, adjacency: np.ndarray, buffer: np.ndarray, n: int) -> np.ndarray:
    closed = adjacency | np.eye(n, dtype=bool)
    select = closed.view(np.uint8).astype(np.uint64) * _ALL_ONES  # all ones where linked or equal
    reached = bits | node_bits(n)  # [b, u]: sources within one step of u
    # Sum over ordered pairs of d(s, u) = the number of t >= 0 with d(s, u) > t.
    total = np.full(len(bits), n * (n - 1), dtype=np.int64)
    done = np.zeros(len(bits), dtype=bool)
    while True:
        unreached = n * n - np.bitwise_count(reached).sum(axis=1, dtype=np.int64)
        done |= unreached == 0
        if done.all():
            break
        total += np.where(done, 0, unreached)
        np.bitwise_and(select, reached[:, None, :], out=buffer)
        grown = np.bitwise_or.reduce(buffer, axis=2)
        stuck = ~done & (grown == reached).all(axis=1)
        total[stuck] = -1
        done |= stuck
        reached = grown
    lengths = total / (n * (n - 1))
    lengths[total < 0] = np.inf
    return lengths


def measures(bits: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(C, L) float64 arrays (B,) for bitset graphs (B, n), 2 <= n <= 64; L = inf if disconnected."""
    if not 2 <= n <= MAX_NODES:
        raise ValueError(f"bitset graphs need 2 <= n <= {MAX_NODES} nodes, got n = {n}")
    bits = np.asarray(bits, dtype=np.uint64)
    if bits.ndim != 2 or bits.shape[1] != n:
        raise ValueError(f"bits must have shape (graphs, {n}), got {bits.shape}")
    clustering = np.empty(len(bits))
    path_length = np.empty(len(bits))
    buffer = np.empty((min(_CHUNK, len(bits)), n, n), dtype=np.uint64)
    for start in range(0, len(bits), _CHUNK):
        chunk = bits[start: start + _CHUNK]
        adjacency = to_adjacency(chunk, n)
        scratch = buffer[: len(chunk)]
        clustering[start: start + _CHUNK] = _clustering(chunk, adjacency, scratch, n)
        path_length[start: start + _CHUNK] = _path_length(chunk, adjacency, scratch, n)
    return clustering, path_length
