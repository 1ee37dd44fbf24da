"""Channel partition, masks, block lists and the layer math against numpy/networkx references."""
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest

from relgraph_jax import ops, relational
from relgraph_jax.graphs import RelationalGraph

UNDIRECTED = RelationalGraph.from_spec("ws:n=8,k=4,p=0.3,seed=1")
DIRECTED = RelationalGraph.from_networkx(nx.gnp_random_graph(6, 0.35, seed=3, directed=True))
COMPLETE = RelationalGraph.from_spec("complete:n=8")


# ---------- independent numpy references ----------

def reference_nodes(channels, sizes):
    """Owner node of each channel, by walking the groups one channel at a time."""
    owner = []
    for node, size in enumerate(sizes):
        owner += [node] * int(size)
    assert len(owner) == channels
    return owner


def reference_mask(graph, in_sizes, out_sizes):
    """mask[a, b] = 1 iff networkx has the message node(a) -> node(b), or they are the same node."""
    g = graph.to_networkx()
    ins, outs = reference_nodes(sum(in_sizes), in_sizes), reference_nodes(sum(out_sizes), out_sizes)
    return np.array([[float(u == v or g.has_edge(u, v)) for v in outs] for u in ins], np.float32)


def np_same_padding(size, k, s):
    total = max((-(-size // s) - 1) * s + k - size, 0)
    return (total // 2, total - total // 2)


def np_conv(x, kernel, stride, pad):
    """Direct convolution: sum over kernel offsets of strided input slices times kernel taps."""
    xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    kh, kw = kernel.shape[:2]
    ho, wo = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    y = 0
    for dh in range(kh):
        for dw in range(kw):
            y = y + xp[:, dh:dh + stride * ho:stride, dw:dw + stride * wo:stride, :] @ kernel[dh, dw]
    return y


def np_conv_grads(x, kernel, r, stride, pad):
    """d sum(r * conv(x, kernel)) / d kernel and / d x, by hand."""
    xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    kh, kw = kernel.shape[:2]
    ho, wo = r.shape[1:3]
    dk = np.zeros_like(kernel)
    dxp = np.zeros_like(xp)
    for dh in range(kh):
        for dw in range(kw):
            window = (slice(None), slice(dh, dh + stride * ho, stride), slice(dw, dw + stride * wo, stride))
            dk[dh, dw] = np.einsum("bijc,bijo->co", xp[window], r)
            dxp[window] += r @ kernel[dh, dw].T
    h, w = x.shape[1:3]
    return dk, dxp[:, pad[0][0]:pad[0][0] + h, pad[1][0]:pad[1][0] + w]


# ---------- relational: partition, mask, blocks ----------

def test_group_sizes_contiguous_and_permuted_by_hand():
    np.testing.assert_array_equal(relational.group_sizes(10, 4, "contiguous"), [3, 3, 2, 2])
    # numpy seed-1 permutation of 4 items is [3, 2, 0, 1]: sizes [2, 2, 3, 3]
    np.testing.assert_array_equal(relational.group_sizes(10, 4, "permuted"), [2, 2, 3, 3])
    # of 6 items [2, 1, 4, 0, 3, 5]: [3, 3, 2, 2, 2, 2] -> [2, 3, 2, 3, 2, 2]
    np.testing.assert_array_equal(relational.group_sizes(14, 6, "permuted"), [2, 3, 2, 3, 2, 2])
    np.testing.assert_array_equal(relational.group_sizes(512, 64, "permuted"), [8] * 64)
    np.testing.assert_array_equal(relational.channel_nodes(5, 2, "contiguous"), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(relational.group_sizes(10, 4), [2, 2, 3, 3])  # the default


def test_permuted_mask_of_a_path_by_hand():
    """Path 0-1-2-3, 10 -> 6 channels, the default (graph2nn's) split: input sizes
    [3, 3, 2, 2] permuted to [2, 2, 3, 3], output [2, 2, 1, 1] to [1, 1, 2, 2]. Entry
    (input a, output b) is kept iff node(a) and node(b) are equal or adjacent."""
    path = RelationalGraph.from_spec("edges:n=4,0-1,1-2,2-3")
    expected = np.array([[1, 1, 0, 0, 0, 0]] * 2 + [[1, 1, 1, 1, 0, 0]] * 2
                        + [[0, 1, 1, 1, 1, 1]] * 3 + [[0, 0, 1, 1, 1, 1]] * 3, np.float32)
    np.testing.assert_array_equal(relational.layer_mask(path, 10, 6), expected)


@pytest.mark.parametrize("graph", [UNDIRECTED, DIRECTED], ids=["undirected", "directed"])
@pytest.mark.parametrize("partition", ["contiguous", "permuted"])
def test_layer_mask_matches_networkx(graph, partition):
    in_c, out_c = 3 * graph.n + 1, 2 * graph.n + 3
    # group sizes are checked by hand above; here the mask must follow them and the graph
    sizes_in = relational.group_sizes(in_c, graph.n, partition)
    sizes_out = relational.group_sizes(out_c, graph.n, partition)
    assert sorted(sizes_in) == [3] * (graph.n - 1) + [4]
    assert sorted(sizes_out) == [2] * (graph.n - 3) + [3] * 3
    mask = relational.layer_mask(graph, in_c, out_c, partition)
    assert mask.dtype == np.float32 and mask.shape == (in_c, out_c)
    np.testing.assert_array_equal(mask, reference_mask(graph, sizes_in, sizes_out))


def test_directed_graph_feeds_from_source_to_target():
    graph = RelationalGraph.from_spec("edges:n=3,directed=1,0-1")
    mask = relational.layer_mask(graph, 6, 3)  # input node u owns channels 2u, 2u+1; output node v owns v
    assert mask[0, 1] == 1 and mask[1, 1] == 1  # input node 0 feeds output node 1
    assert mask[2, 0] == 0 and mask[3, 0] == 0  # input node 1 does not feed output node 0
    np.testing.assert_array_equal(mask.sum(), 6 + 2)  # 3 self-loops x 2 inputs, one edge x 2 inputs


def test_mask_density_is_the_paper_formula():
    mask = relational.layer_mask(UNDIRECTED, 32, 16)
    edges = UNDIRECTED.to_networkx().number_of_edges()
    assert mask.mean() == pytest.approx((2 * edges + 8) / 64)
    assert relational.layer_mask(COMPLETE, 16, 24).min() == 1.0


def test_block_structure_lists_only_connected_pairs_sorted_by_output():
    structure = relational.block_structure(UNDIRECTED, 17, 16, "contiguous")
    g = UNDIRECTED.to_networkx()
    expected = {(u, v) for u in range(8) for v in range(8) if u == v or g.has_edge(u, v)}
    pairs = list(zip(structure.src.tolist(), structure.dst.tolist()))
    assert set(pairs) == expected and len(pairs) == len(expected) == 2 * g.number_of_edges() + 8
    assert pairs == sorted(pairs, key=lambda p: (p[1], p[0]))
    assert (structure.in_group, structure.out_group) == (3, 2)
    assert structure.in_padded and not structure.out_padded
    # node 0 owns input channels 0..2; node 1 owns 3, 4 and a padding slot (17 = in_channels)
    np.testing.assert_array_equal(structure.in_index[:2], [[0, 1, 2], [3, 4, 17]])


def test_too_few_channels_names_layer_and_counts():
    path = RelationalGraph.from_spec("edges:n=4,0-1,1-2,2-3")
    with pytest.raises(ValueError, match=r"MaskedDense: 2 -> 4 channels, fewer than the graph's 4 "
                                         r"nodes, and graph 'edges:n=4,0-1,1-2,2-3' has no recipe"):
        relational.layer_mask(path, 2, 4, layer="MaskedDense")
    with pytest.raises(ValueError, match="4 nodes but only 3 output channels"):
        relational.group_sizes(3, 4, side="output")


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="unknown partition 'random'; allowed: permuted, contiguous"):
        relational.layer_mask(UNDIRECTED, 16, 16, "random")
    with pytest.raises(ValueError, match="L1: unknown impl 'sparse'; allowed: mask, blocks"):
        ops.check_impl("sparse", "L1")
    with pytest.raises(TypeError, match="RelationalGraph or a spec string"):
        relational.as_graph(np.eye(3))
    with pytest.raises(ValueError, match="unknown padding 'FULL'"):
        ops.conv_padding("FULL")
    for bad in (-1, None, ((1, 1),), ((1, -1), (0, 0))):
        with pytest.raises(ValueError, match="must be 'SAME', 'VALID', a non-negative int"):
            ops.conv_padding(bad)
    with pytest.raises(ValueError, match=r"strides must be a positive int or a pair of them, got \(1, 0\)"):
        ops.pair((1, 0), "strides")
    with pytest.raises(ValueError, match="density must be in"):
        ops.graph_init(0.0)


def test_cached_statics_are_read_only():
    mask = relational.layer_mask(UNDIRECTED, 16, 16)
    assert mask is relational.layer_mask(RelationalGraph.from_spec("ws:n=8,k=4,p=0.3,seed=1"), 16, 16)
    with pytest.raises(ValueError):
        mask[0, 0] = 0.0


# ---------- dense <-> blocks ----------

@pytest.mark.parametrize("window", [(), (3, 3)])
def test_dense_blocks_round_trip_and_zero_padding(window):
    structure = relational.block_structure(UNDIRECTED, 19, 13, "permuted")
    kernel = np.random.default_rng(0).normal(size=window + (19, 13)).astype(np.float32) * structure.mask
    blocks = ops.dense_to_blocks(jnp.asarray(kernel), structure)
    assert blocks.shape == (structure.num_blocks,) + window + (3, 2)
    np.testing.assert_array_equal(ops.blocks_to_dense(blocks, structure), kernel)
    # every real kept weight appears in exactly one block; padding slots hold zeros
    assert np.count_nonzero(np.asarray(blocks)) == np.count_nonzero(kernel)
    padding = ((structure.in_index[structure.src] == 19)[:, :, None] |
               (structure.out_index[structure.dst] == 13)[:, None, :])  # (E, in_group, out_group)
    assert padding.any() and np.all(np.moveaxis(np.asarray(blocks), 0, -3)[..., padding] == 0)


# ---------- the two paths against numpy ----------

CASES = [(UNDIRECTED, "contiguous", 16, 24), (UNDIRECTED, "permuted", 19, 13), (DIRECTED, "contiguous", 13, 20)]
CASE_IDS = ["even", "permuted-uneven", "directed-uneven"]


def _rand(shape, seed):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _both_paths(structure, conv_args=None):
    """One jitted function: outputs and (weights, input) gradients of sum(r * y) for both paths."""
    mask = jnp.asarray(structure.mask)
    if conv_args is None:
        paths = {"mask": lambda w, x: ops.masked_matmul(x, w, mask),
                 "blocks": lambda w, x: ops.block_matmul(x, w, structure)}
    else:
        paths = {"mask": lambda w, x: ops.masked_conv(x, w, mask, *conv_args),
                 "blocks": lambda w, x: ops.block_conv(x, w, structure, *conv_args)}

    @jax.jit
    def run(kernel, x, r):
        weights = {"mask": kernel, "blocks": ops.dense_to_blocks(kernel * mask, structure)}
        result = {}
        for impl, fn in paths.items():
            y = fn(weights[impl], x)
            dw, dx = jax.grad(lambda w, x: jnp.sum(fn(w, x) * r), argnums=(0, 1))(weights[impl], x)
            result[impl] = (y, dw, dx)
        return result
    return run


def _check_both_paths(result, structure, want_y, want_dk, want_dx, tol):
    mask = structure.mask
    for impl, (y, dw, dx) in result.items():
        np.testing.assert_allclose(y, want_y, rtol=tol, atol=tol, err_msg=impl)
        np.testing.assert_allclose(dx, want_dx, rtol=tol, atol=tol, err_msg=impl)
        if impl == "blocks":
            # padding slots get exactly zero gradient, so the map back to dense loses nothing
            np.testing.assert_array_equal(ops.dense_to_blocks(ops.blocks_to_dense(dw, structure), structure), dw)
            dw = ops.blocks_to_dense(dw, structure)
        np.testing.assert_allclose(dw, want_dk, rtol=tol, atol=tol, err_msg=impl)
        assert np.all(np.asarray(dw)[..., mask == 0] == 0), impl


@pytest.mark.parametrize("graph,partition,in_c,out_c", CASES, ids=CASE_IDS)
def test_matmul_paths_equal_numpy_outputs_and_grads(graph, partition, in_c, out_c):
    structure = relational.block_structure(graph, in_c, out_c, partition)
    mask = structure.mask
    x, kernel, r = _rand((2, 5, in_c), 1), _rand((in_c, out_c), 2), _rand((2, 5, out_c), 3)
    want_y = x @ (kernel * mask)
    want_dk = np.einsum("bni,bno->io", x, r) * mask
    want_dx = r @ (kernel * mask).T
    result = _both_paths(structure)(kernel, x, r)
    _check_both_paths(result, structure, want_y, want_dk, want_dx, 1e-5)


@pytest.mark.parametrize("case,stride,padding", [
    (0, 1, "SAME"), (1, 2, "SAME"), (2, 2, "VALID"), (1, 1, ((2, 0), (1, 1)))],
    ids=["even-s1-same", "permuted-s2-same", "directed-s2-valid", "permuted-s1-explicit"])
def test_conv_paths_equal_numpy_outputs_and_grads(case, stride, padding):
    graph, partition, in_c, out_c = CASES[case]
    structure = relational.block_structure(graph, in_c, out_c, partition)
    mask = structure.mask
    x, kernel = _rand((2, 7, 6, in_c), 4), _rand((3, 3, in_c, out_c), 5)
    if padding == "SAME":
        pad = (np_same_padding(7, 3, stride), np_same_padding(6, 3, stride))
    elif padding == "VALID":
        pad = ((0, 0), (0, 0))
    else:
        pad = padding
    want_y = np_conv(x, kernel * mask, stride, pad)
    r = _rand(want_y.shape, 6)
    want_dk, want_dx = np_conv_grads(x, kernel * mask, r, stride, pad)
    result = _both_paths(structure, ((stride, stride), padding))(kernel, x, r)
    _check_both_paths(result, structure, want_y, want_dk * mask, want_dx, 1e-4)


def test_block_path_flops_follow_the_number_of_blocks():
    """XLA's own cost model: the block path's work is proportional to the kept blocks."""
    x = jnp.ones((32, 512))
    flops = {}
    for spec in ["ws:n=64,k=6,p=0.1,seed=0", "ws:n=64,k=32,p=0.1,seed=0", "complete:n=64"]:
        structure = relational.block_structure(RelationalGraph.from_spec(spec), 512, 512)
        blocks = jnp.ones((structure.num_blocks, 8, 8))
        lowered = jax.jit(lambda b, x: ops.block_matmul(x, b, structure)).lower(blocks, x)
        flops[spec] = (structure.num_blocks, lowered.compile().cost_analysis()["flops"])
    for num_blocks, measured in flops.values():
        # per block and row: an 8x8 matmul (2 * 8 * 8 flops) plus 8 adds of the segment sum
        assert measured == pytest.approx(num_blocks * 32 * (2 * 8 * 8 + 8), rel=0.01)
    assert flops["complete:n=64"][0] == 64 * 64 and flops["ws:n=64,k=6,p=0.1,seed=0"][0] == 64 * 7


# ---------- initialisation ----------

def test_graph_init_std_and_zero_off_graph():
    window = (3, 3)
    graph = RelationalGraph.from_spec("ws:n=16,k=4,p=0.2,seed=2")
    structure = relational.block_structure(graph, 256, 192)
    mask = structure.mask
    kernel = np.asarray(ops.init_graph_kernel(jax.random.key(0), window, mask, None))
    kept = kernel[..., mask == 1]
    assert kept.std() == pytest.approx(np.sqrt(2.0 / (3 * 3 * 192 * mask.mean())), rel=0.03)
    assert np.all(kernel[..., mask == 0] == 0)
    blocks = ops.init_graph_kernel(jax.random.key(0), window, mask, structure)
    np.testing.assert_array_equal(ops.blocks_to_dense(blocks, structure), kernel)


# ---------- the gather layout ----------

def test_gather_tables_by_hand():
    # 4-node path 0-1-2-3 (undirected), 8 -> 6 channels: input groups of 2, output 2,2,1,1.
    path = RelationalGraph.from_spec("edges:n=4,0-1,1-2,2-3")
    t = relational.gather_tables(path, 8, 6, "contiguous")
    assert t.reads.shape == (4, 3, 2)  # the largest in-degree is 3 (node 1, node 2, self included)
    # node 0 reads nodes 0, 1 (then an empty slot); indices are channel + 1, 0 = a zero.
    np.testing.assert_array_equal(t.reads[0], [[1, 2], [3, 4], [0, 0]])
    np.testing.assert_array_equal(t.reads[2], [[3, 4], [5, 6], [7, 8]])
    np.testing.assert_array_equal(t.out_node, [1, 1, 2, 2, 3, 4])
    np.testing.assert_array_equal(t.out_slot, [0, 1, 0, 1, 0, 0])
    assert relational.gather_tables(path, 8, 6, "contiguous", degree_slots=5).reads.shape == (4, 5, 2)
    with pytest.raises(ValueError, match=r"degree_slots=2 is below the graph's largest in-degree 3"):
        relational.gather_tables(path, 8, 6, "contiguous", degree_slots=2)


@pytest.mark.parametrize("graph,partition,in_c,out_c", CASES, ids=CASE_IDS)
def test_gather_path_equals_numpy_outputs_and_grads(graph, partition, in_c, out_c):
    tables = relational.gather_tables(graph, in_c, out_c, partition)
    mask = relational.layer_mask(graph, in_c, out_c, partition)
    x, kernel, r = _rand((2, 5, in_c), 1), _rand((in_c, out_c), 2) * mask, _rand((2, 5, out_c), 3)
    weights = ops.dense_to_gather(jnp.asarray(kernel), tables, tables.out_group)
    # every kept weight lands in exactly one slot, the rest are zeros
    assert np.count_nonzero(weights) == np.count_nonzero(kernel)
    np.testing.assert_array_equal(ops.gather_to_dense(weights, tables, in_c), kernel)

    def fn(w, x):
        return ops.gather_matmul(x, w, tables.reads, tables.out_node, tables.out_slot)
    y = fn(weights, x)
    dw, dx = jax.grad(lambda w, x: jnp.sum(fn(w, x) * r), argnums=(0, 1))(weights, jnp.asarray(x))
    np.testing.assert_allclose(y, x @ kernel, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, r @ kernel.T, rtol=1e-5, atol=1e-5)
    want_dk = np.einsum("bni,bno->io", x, r) * mask
    np.testing.assert_allclose(ops.gather_to_dense(dw, tables, in_c), want_dk, rtol=1e-5, atol=1e-5)
    # unused slots get exactly zero gradient (the round trip through dense keeps only real
    # weights), so they stay zero under SGD with weight decay
    np.testing.assert_array_equal(
        ops.dense_to_gather(ops.gather_to_dense(dw, tables, in_c), tables, tables.out_group), dw)


def test_gather_layout_zero_padded_into_a_wider_layer_computes_the_same():
    """The trainer's embedding: a narrow variant's kernel and tables, zero-padded to a wider
    layer's shapes (more degree slots, larger groups, more channels), give the same outputs
    on the narrow channels and zeros on the padded ones."""
    narrow = relational.gather_tables(UNDIRECTED, 16, 20)
    kernel = _rand((16, 20), 4) * relational.layer_mask(UNDIRECTED, 16, 20)
    weights = ops.dense_to_gather(jnp.asarray(kernel), narrow, narrow.out_group)
    wide_shape = (8, narrow.degree_slots + 2, narrow.in_group + 1, narrow.out_group + 2)
    pad = [(0, w - s) for s, w in zip(weights.shape, wide_shape)]
    wide_weights = jnp.pad(weights, pad)
    wide_reads = np.pad(narrow.reads, pad[:3])
    x = np.concatenate([_rand((3, 16), 5), np.zeros((3, 9), np.float32)], axis=1)  # 25 wide
    out_node, out_slot = np.pad(narrow.out_node, (0, 11)), np.pad(narrow.out_slot, (0, 11))
    y = ops.gather_matmul(jnp.asarray(x), wide_weights, wide_reads, out_node, out_slot)
    np.testing.assert_allclose(y[:, :20], x[:, :16] @ kernel, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y[:, 20:], 0)
