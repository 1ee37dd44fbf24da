"""The layer math of graph layers, as pure functions shared by the linen and nnx layers.

Three implementations of the same linear map:
- mask path (reference): the dense kernel times the (in, out) 0/1 mask; a conv shares
  the mask over its kernel window. Off-graph weights get zero gradient.
- gather path: kernel (n, degree slots, in_group, out_group); each output node gathers
  its in-neighbours' input groups and applies one (degree * in_group, out_group) matrix,
  one batched matmul for the whole layer. The graph lives in index tables (the "masks"
  collection), not in the program, so many graphs share one compiled step (dense
  layers only).
- block path: parameters only for the connected blocks, shape (E, *window, in_group,
  out_group), and computation only on them: gather each block's input group (for a conv:
  under every kernel tap), one batched contraction, then a sorted segment sum into
  output groups. Its work is proportional to the number of blocks, i.e. to graph
  density; with small groups the gathers make it memory-bound, so it beats the dense
  layer only at low density (benchmarks/RESULTS.md).
Kernels use the Flax layouts: (in, out) for dense, (kh, kw, in, out) (HWIO) for convs.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from relgraph_jax import relational
from relgraph_jax.relational import BlockStructure, GatherTables

IMPLS = ("mask", "blocks", "gather")
CONV_IMPLS = ("mask", "blocks")


def check_channels(value, field: str, layer: str = "layer") -> int:
    """A channel count must be a positive int: 32.0 (or True) is refused here rather than
    failing deep inside as "slice indices must be integers"."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{layer}: {field} must be a positive int, got {value!r}")
    return int(value)


def check_impl(impl: str, layer: str = "layer", allowed=IMPLS) -> None:
    if impl not in allowed:
        raise ValueError(f"{layer}: unknown impl {impl!r}; allowed: {', '.join(allowed)}")


def graph_init(density: float):
    """The paper's graph-layer init: normal, std sqrt(2 / (kh * kw * out * density)).

    Fan-out He init with the fan-out thinned by the mask density, so every output keeps
    the variance of a dense He-initialised layer.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"graph_init: density must be in (0, 1], got {density}")
    return jax.nn.initializers.variance_scaling(2.0 / density, "fan_out", "normal")


def masked_matmul(x, kernel, mask):
    """x @ (kernel * mask) over the last axis of x; kernel and mask are (in, out)."""
    return x @ (kernel * mask.astype(kernel.dtype))


def conv_padding(padding, layer: str = "layer"):
    """lax padding from "SAME", "VALID", an int or ((lo, hi), (lo, hi))."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(f"{layer}: unknown padding {padding!r}; allowed: 'SAME', 'VALID', an int, "
                             "or ((lo, hi), (lo, hi))")
        return padding.upper()
    if isinstance(padding, (int, np.integer)) and padding >= 0:
        return ((int(padding), int(padding)),) * 2
    try:
        pairs = tuple(tuple(int(p) for p in pair) for pair in padding)
    except (TypeError, ValueError):
        pairs = ()
    if len(pairs) != 2 or any(len(pair) != 2 or min(pair) < 0 for pair in pairs):
        raise ValueError(f"{layer}: padding {padding!r} must be 'SAME', 'VALID', a non-negative int, "
                         "or ((lo, hi), (lo, hi)) of them")
    return pairs


def pair(value, name: str, layer: str = "layer") -> tuple[int, int]:
    """(h, w) from an int or a pair of positive ints (kernel sizes, strides)."""
    try:
        values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
        values = tuple(int(v) for v in values)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"{layer}: {name} must be a positive int or a pair of them, got {value!r}")
    return values


def conv2d(x, kernel, strides: Sequence[int] = (1, 1), padding="SAME", feature_group_count: int = 1):
    """2-D convolution of NHWC input with an HWIO kernel (leading batch axes allowed)."""
    batch_shape = x.shape[:-3]
    y = jax.lax.conv_general_dilated(
        x.reshape((-1,) + x.shape[-3:]), kernel, window_strides=tuple(strides), padding=padding,
        dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=feature_group_count)
    return y.reshape(batch_shape + y.shape[1:])


def masked_conv(x, kernel, mask, strides: Sequence[int] = (1, 1), padding="SAME"):
    """conv2d with kernel * mask, the (in, out) mask shared over the kernel window."""
    return conv2d(x, kernel * mask.astype(kernel.dtype), strides, padding)


def _block_indices(structure: BlockStructure):
    """Per block: (in_group,) and (out_group,) channel indices, padding slots point past the end."""
    return structure.in_index[structure.src], structure.out_index[structure.dst]


def dense_to_blocks(kernel, structure: BlockStructure):
    """(*window, in, out) kernel -> (E, *window, in_group, out_group) blocks; padding slots are 0."""
    padded = jnp.pad(kernel, [(0, 0)] * (kernel.ndim - 2) + [(0, 1), (0, 1)])
    rows, cols = _block_indices(structure)
    blocks = padded[..., rows[:, :, None], cols[:, None, :]]  # (*window, E, in_group, out_group)
    return jnp.moveaxis(blocks, -3, 0)


def blocks_to_dense(blocks, structure: BlockStructure):
    """(E, *window, in_group, out_group) blocks -> the (*window, in, out) kernel, 0 off the graph."""
    window = blocks.shape[1:-2]
    rows, cols = _block_indices(structure)
    dense = jnp.zeros(window + (structure.in_channels + 1, structure.out_channels + 1), blocks.dtype)
    dense = dense.at[..., rows[:, :, None], cols[:, None, :]].set(jnp.moveaxis(blocks, 0, -3))
    return dense[..., :-1, :-1]


def _to_groups(x, structure: BlockStructure):
    """(..., in) -> (..., n, in_group), padding slots read a zero channel."""
    if structure.in_padded:
        return jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, 1)])[..., structure.in_index]
    return x.reshape(x.shape[:-1] + (structure.n, structure.in_group))


def _from_groups(y, structure: BlockStructure):
    """(..., n, out_group) -> (..., out), dropping padding slots."""
    flat = y.reshape(y.shape[:-2] + (structure.n * structure.out_group,))
    if structure.out_padded:
        real = structure.out_index < structure.out_channels
        flat = flat[..., np.flatnonzero(real.reshape(-1))]
    return flat


def _sum_into_outputs(per_block, structure: BlockStructure):
    """(E, ..., out_group) block outputs -> (..., n, out_group), summed per output node."""
    summed = jax.ops.segment_sum(per_block, structure.dst, num_segments=structure.n,
                                 indices_are_sorted=True)
    return jnp.moveaxis(summed, 0, -2)


def _block_contract(groups, blocks, structure: BlockStructure):
    """(..., n, k) input groups, (E, k, out_group) blocks -> (..., out): only connected blocks."""
    gathered = jnp.moveaxis(groups, -2, 0)[structure.src]  # (E, ..., k)
    per_block = jax.lax.dot_general(
        gathered, blocks.astype(gathered.dtype), (((gathered.ndim - 1,), (1,)), ((0,), (0,))))
    return _from_groups(_sum_into_outputs(per_block, structure), structure)


def block_matmul(x, blocks, structure: BlockStructure):
    """The masked matmul computed from connected blocks only; blocks are (E, in_group, out_group)."""
    return _block_contract(_to_groups(x, structure), blocks, structure)


def _patches(x, window: Sequence[int], strides: Sequence[int], padding):
    """(..., H, W, C) -> (..., H', W', kh * kw, C): the input under each kernel tap."""
    (kh, kw), (sh, sw) = window, strides
    pads = jax.lax.padtype_to_pads(x.shape[-3:-1], window, strides, padding) if isinstance(padding, str) else padding
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [tuple(pads[0]), tuple(pads[1]), (0, 0)])
    ho, wo = (x.shape[-3] - kh) // sh + 1, (x.shape[-2] - kw) // sw + 1
    taps = [x[..., dh:dh + sh * (ho - 1) + 1:sh, dw:dw + sw * (wo - 1) + 1:sw, :]
            for dh in range(kh) for dw in range(kw)]
    return jnp.stack(taps, axis=-2)


def block_conv(x, blocks, structure: BlockStructure, strides: Sequence[int] = (1, 1), padding="SAME"):
    """The masked conv computed from connected blocks only; blocks are (E, kh, kw, in_group, out_group).

    A conv is a matmul over the kernel taps: each block contracts its input group under all
    kh * kw taps at once (grouped convs with one group per block are far slower in XLA).
    """
    num_blocks, kh, kw, in_group, out_group = blocks.shape
    patches = _to_groups(_patches(x, (kh, kw), strides, padding), structure)  # (..., T, n, in_group)
    groups = jnp.moveaxis(patches, -3, -2)  # (..., n, T, in_group)
    groups = groups.reshape(groups.shape[:-2] + (kh * kw * in_group,))
    return _block_contract(groups, blocks.reshape(num_blocks, kh * kw * in_group, out_group), structure)


def _with_zero(x, axis: int):
    """x with a zero entry prepended along `axis` (index 0 of the shifted gather tables)."""
    shape = list(x.shape)
    shape[axis] = 1
    return jnp.concatenate([jnp.zeros(shape, x.dtype), x], axis=axis)


def _out_positions(out_node, out_slot, out_group: int):
    """Flat positions of the output channels in the (n + 1, out_group) node-major result."""
    return out_node * out_group + out_slot


def gather_matmul(x, kernel, reads, out_node, out_slot):
    """The masked matmul in the gather layout; kernel is (n, degree_slots, in_group, out_group)."""
    n, slots, in_group, out_group = kernel.shape
    lead = x.shape[:-1]
    gathered = jnp.take(_with_zero(x, -1), reads.reshape(-1), axis=-1)
    gathered = gathered.reshape(lead + (n, slots * in_group))
    y = jnp.einsum("...nk,nko->...no", gathered,
                   kernel.reshape(n, slots * in_group, out_group).astype(x.dtype))
    y = _with_zero(y, -2).reshape(lead + ((n + 1) * out_group,))
    return jnp.take(y, _out_positions(out_node, out_slot, out_group), axis=-1)


def graph_matmul(impl: str, x, weights, static):
    """The dense graph layer's product for any impl: static is the mask, the gather
    tables (a dict) or the BlockStructure that goes with `weights`."""
    if impl == "mask":
        return masked_matmul(x, weights, static)
    if impl == "gather":
        return gather_matmul(x, weights, **static)
    return block_matmul(x, weights, static)


def graph_conv(impl: str, x, weights, static, strides: Sequence[int] = (1, 1), padding="SAME"):
    """The graph conv for impl "mask" or "blocks": static is the mask or the BlockStructure
    that goes with `weights` (the gather layout has no conv)."""
    check_impl(impl, "graph_conv", CONV_IMPLS)
    if impl == "mask":
        return masked_conv(x, weights, static, strides, padding)
    return block_conv(x, weights, static, strides, padding)


def dense_to_gather(kernel, tables, out_group: int):
    """(in, out) kernel -> (n, degree_slots, in_group, out_group); unused slots are 0."""
    n = tables.reads.shape[0]
    padded = _with_zero(_with_zero(kernel, 0), 1)
    columns = np.zeros((n + 1) * out_group, np.int32)
    columns[_out_positions(np.asarray(tables.out_node), np.asarray(tables.out_slot), out_group)] = \
        np.arange(1, kernel.shape[1] + 1)
    columns = columns.reshape(n + 1, out_group)[1:]
    return padded[np.asarray(tables.reads)[..., None], columns[:, None, None, :]]


def gather_to_dense(kernel, tables, in_channels: int):
    """(n, degree_slots, in_group, out_group) kernel -> the (in, out) kernel, 0 off the graph."""
    node = np.asarray(tables.out_node) - 1
    real = node >= 0
    node = np.maximum(node, 0)
    values = kernel[node, :, :, np.asarray(tables.out_slot)] * real[:, None, None]
    rows = np.asarray(tables.reads)[node]
    columns = np.broadcast_to(np.arange(node.size)[:, None, None], rows.shape)
    dense = jnp.zeros((in_channels + 1, node.size), kernel.dtype).at[rows, columns].add(values)
    return dense[1:]


def init_graph_kernel(key, window: tuple, mask, layout=None, kernel_init=None, dtype=jnp.float32):
    """A graph layer's initial weights, zero off the graph, in the layer's layout.

    layout: None (dense kernel), a BlockStructure (blocks) or GatherTables (gather).
    kernel_init (default graph_init at the mask's density) draws the full (*window, in, out)
    kernel, so every implementation starts from the same weights for the same key.
    """
    init = kernel_init if kernel_init is not None else graph_init(float(np.mean(mask)))
    dense = init(key, tuple(window) + tuple(mask.shape), dtype) * jnp.asarray(mask, dtype)
    if layout is None:
        return dense
    if isinstance(layout, BlockStructure):
        return dense_to_blocks(dense, layout)
    return dense_to_gather(dense, layout, layout.out_group)


@dataclasses.dataclass(frozen=True, eq=False)
class GraphLayout:
    """How one graph layer stores its weights under `impl`, so that the linen and nnx
    layers build the same variables and call the same ops.

    weight: the parameter's name ("kernel", or "blocks" for impl="blocks").
    arrays(): the graph's arrays kept as variables (the "masks" collection): the mask, the
    gather tables, or none for blocks, whose structure is compiled into the program.
    static(arrays): what graph_matmul / graph_conv take beside the weights, made from those
    arrays as the layer holds them (a caller may have replaced them, e.g. stacked graphs).
    """
    impl: str
    mask: np.ndarray
    layout: BlockStructure | GatherTables | None
    graph: Any = None  # the layer's graph (at the layer's node count)
    partition: str = relational.DEFAULT_PARTITION
    layer: str = "layer"

    @property
    def weight(self) -> str:
        return "blocks" if self.impl == "blocks" else "kernel"

    def describe_graph(self) -> str:
        return f"{self.graph.spec!r} ({self.graph.n} nodes, {len(self.graph.edges)} edges)"

    def describe_mask(self, mask) -> str:
        """The nodes and edges an (in, out) 0/1 mask implies under this layer's channel
        groups: node u reaches v if any weight from a channel of u to one of v is kept."""
        mask = np.asarray(mask) != 0
        n = self.graph.n
        in_nodes = relational.channel_nodes(mask.shape[0], n, self.partition, layer=self.layer)
        out_nodes = relational.channel_nodes(mask.shape[1], n, self.partition, layer=self.layer)
        reach = np.zeros((n, n), bool)
        np.logical_or.at(reach, (in_nodes[:, None], out_nodes[None, :]), mask)
        links = reach & ~np.eye(n, dtype=bool)
        edges = int(np.triu(links | links.T, 1).sum())
        return f"{n} nodes and {edges} edges (mask density {mask.mean():.4f})"

    def arrays(self) -> dict:
        if self.impl == "mask":
            return {"mask": self.mask}
        return self.layout.arrays() if self.impl == "gather" else {}

    def static(self, arrays: dict):
        for name, own in self.arrays().items():
            if tuple(arrays[name].shape) != own.shape:
                raise ValueError(f"{self.layer}: its 'masks' collection holds {name} of shape "
                                 f"{tuple(arrays[name].shape)}, but its graph "
                                 f"{self.describe_graph()} needs {own.shape} at "
                                 f"{self.mask.shape[0]} -> {self.mask.shape[1]} channels")
        if self.impl == "mask":
            return arrays["mask"]
        return dict(arrays) if self.impl == "gather" else self.layout

    def init(self, key, window: tuple, kernel_init=None, dtype=jnp.float32):
        return init_graph_kernel(key, window, self.mask, self.layout, kernel_init, dtype)


def graph_layout(impl: str, graph, in_channels: int, out_channels: int,
                 partition: str = relational.DEFAULT_PARTITION, *, degree_slots: int | None = None,
                 layer: str = "layer") -> GraphLayout:
    """The GraphLayout of a graph layer; errors name `layer`."""
    check_impl(impl, layer)
    graph = relational.as_graph(graph, layer)
    mask = relational.layer_mask(graph, in_channels, out_channels, partition, layer=layer)
    layout = None
    if impl == "gather":
        layout = relational.gather_tables(graph, in_channels, out_channels, partition,
                                          degree_slots=degree_slots, layer=layer)
    elif impl == "blocks":
        layout = relational.block_structure(graph, in_channels, out_channels, partition, layer=layer)
    return GraphLayout(impl, mask, layout,
                       relational.layer_graph(graph, in_channels, out_channels, layer=layer),
                       partition, layer)


def check_input(x, layer: str) -> None:
    """A dense graph layer's input has a last axis, the input channels."""
    if np.ndim(x) < 1:
        raise ValueError(f"{layer}: input must be (..., in_channels), with the channels on its "
                         f"last axis; got shape {tuple(np.shape(x))}")
