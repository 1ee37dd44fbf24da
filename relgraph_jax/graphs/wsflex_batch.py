"""WS-flex for thousands of graphs at once, with numpy's random numbers.

All graphs of a batch share n and k and walk through their ring edges together, one edge
slot per step, each graph a column of 64-bit neighbour sets (`bitsets`). Which slots
rewire is drawn up front for a block of slots. A rewired edge gets its new end uniformly
from the nodes that are neither the node itself nor already its neighbours: exactly the
distribution of the original's redraw-until-new loop, with one draw instead of many.
The graphs therefore follow the WS-flex distribution, but the random numbers are numpy's:
they are not the individual graphs `ws_flex(n, k, p, seed)` gives.
"""
from __future__ import annotations

import numpy as np

from relgraph_jax.graphs import bitsets
from relgraph_jax.graphs.wsflex import MAX_TRIES, check_ws_flex_params, forward_degrees

_SLOT_BLOCK = 64  # slots whose rewiring coins are drawn at once


def select_bit(sets: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Index (uint8) of the rank-th (0-based) set bit of each uint64 in `sets`."""
    rank = rank.astype(np.uint8)  # floors a float rank
    index = np.zeros(len(sets), dtype=np.uint8)
    for width in (32, 16, 8, 4, 2, 1):
        low = sets & np.uint64((1 << width) - 1)
        below = np.bitwise_count(low)
        high = rank >= below
        rank -= below * high
        index += np.uint8(width) * high
        sets = np.where(high, sets >> np.uint64(width), low)
    return index


def ring_slots(n: int, k: float) -> tuple[np.ndarray, np.ndarray]:
    """(node, forward target) of every ring edge, in the order WS-flex visits them."""
    counts = forward_degrees(n, k)
    node = np.repeat(np.arange(n), counts)
    step = np.concatenate([np.arange(1, c + 1) for c in counts])
    return node, (node + step) % n


def _ring(n: int, node: np.ndarray, target: np.ndarray, graphs: int) -> np.ndarray:
    """Neighbour sets (n, graphs) of the ring, the same for every graph."""
    ring = np.zeros(n, dtype=np.uint64)
    bit = bitsets.node_bits(n)
    np.bitwise_or.at(ring, node, bit[target])
    np.bitwise_or.at(ring, target, bit[node])
    return np.repeat(ring[:, None], graphs, axis=1)


def _uniform_members(free: np.ndarray, choices: np.ndarray, coins: np.ndarray,
                     ranks: np.ndarray, n: int) -> np.ndarray:
    """A uniform random member (node index) of each non-empty set in `free`.

    Cheap first: up to three candidate nodes from the random bits `coins`, accepted if
    free (uniform among the free nodes, as any rejection sampler); the rest, and every
    set when few nodes are free, by rank (uniform `ranks` in [0, 1)) with `select_bit`.
    """
    width = (n - 1).bit_length()
    member = np.empty(len(free), dtype=np.uint8)
    todo = np.arange(len(free))
    if choices.mean() >= (1 << width) / 4:
        mask = np.uint64((1 << width) - 1)
        for round_ in range(3):
            candidate = (coins >> np.uint64(width * round_)) & mask
            hit = ((free >> candidate) & np.uint64(1)).astype(bool)
            member[todo[hit]] = candidate[hit]
            miss = ~hit
            todo, free, coins = todo[miss], free[miss], coins[miss]
            if not todo.size:
                return member
    member[todo] = select_bit(free, ranks[todo] * choices[todo])
    return member


def _rewire(sets: np.ndarray, node: np.ndarray, target: np.ndarray, p: np.ndarray,
            rng: np.random.Generator) -> None:
    """Steps 3-4 of one try, in place on neighbour sets (n, graphs)."""
    n, graphs = sets.shape
    flat = sets.reshape(-1)
    bit = bitsets.node_bits(n)
    everyone = bitsets.all_nodes(n)
    for first in range(0, len(node), _SLOT_BLOCK):
        block = min(_SLOT_BLOCK, len(node) - first)
        slot, graph = np.divmod(np.flatnonzero(rng.random((block, graphs)) < p), graphs)
        bounds = np.searchsorted(slot, np.arange(block + 1))
        coins = rng.bit_generator.random_raw(len(graph))
        ranks = rng.random(len(graph))
        for offset in range(block):
            start, stop = bounds[offset], bounds[offset + 1]
            if start == stop:
                continue
            chosen = graph[start:stop]
            i, old = node[first + offset], target[first + offset]
            row = sets[i, chosen]
            free = ~(row | bit[i]) & everyone
            choices = np.bitwise_count(free)
            drawn = slice(start, stop)
            if not choices.all():  # a node linked to all others is not rewired
                keep = np.flatnonzero(choices)
                chosen, row, free, choices = chosen[keep], row[keep], free[keep], choices[keep]
                drawn = keep + start
            new = _uniform_members(free, choices, coins[drawn], ranks[drawn], n)
            sets[i, chosen] = (row & ~bit[old]) | bit[new]
            sets[old, chosen] &= ~bit[i]
            flat[new.astype(np.int64) * graphs + chosen] |= bit[i]


def connected(bits: np.ndarray) -> np.ndarray:
    """bool (B,): whether each graph (bitsets (B, n)) is connected."""
    n = bits.shape[1]
    closed = bits | bitsets.node_bits(n)
    reach = closed[:, 0].copy()
    while True:
        inside = (reach[:, None] & bitsets.node_bits(n)) != 0
        grown = np.bitwise_or.reduce(np.where(inside, closed, np.uint64(0)), axis=1)
        if (grown == reach).all():
            return grown == bitsets.all_nodes(n)
        reach = grown


def sample_ws_flex(n: int, k: float, p: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bitsets (B, n) of connected WS-flex graphs (n, k, p[b]), and ok (B,).

    Like `ws_flex`, a disconnected graph is drawn again, up to 100 times; ok is False
    where every try was disconnected (that row is then the last try).
    """
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.size:
        check_ws_flex_params(n, k, float(p.min()), 0)
        check_ws_flex_params(n, k, float(p.max()), 0)
    if n > bitsets.MAX_NODES:
        raise ValueError(f"batched WS-flex holds at most {bitsets.MAX_NODES} nodes, got n = {n}")
    node, target = ring_slots(n, k)
    bits = np.zeros((len(p), n), dtype=np.uint64)
    pending = np.arange(len(p))
    for _ in range(MAX_TRIES):
        sets = _ring(n, node, target, len(pending))
        _rewire(sets, node, target, p[pending], rng)
        bits[pending] = sets.T
        pending = pending[~connected(sets.T)]
        if not pending.size:
            break
    ok = np.ones(len(p), dtype=bool)
    ok[pending] = False
    return bits, ok
