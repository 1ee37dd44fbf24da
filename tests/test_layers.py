"""The linen and nnx graph layers: against nn.Dense/nn.Conv, numpy, each other, and in a user's model."""
import pathlib
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from relgraph_jax import layers, ops, relational
from relgraph_jax import nnx as rnnx
from relgraph_jax.graphs import RelationalGraph

SPEC = "ws:n=8,k=4,p=0.3,seed=1"
GRAPH = RelationalGraph.from_spec(SPEC)
COMPLETE = RelationalGraph.from_spec("complete:n=8")
DIRECTED = RelationalGraph.from_spec("edges:n=4,directed=1,0-1,1-2,2-3,3-0")
X_DENSE = np.random.default_rng(0).normal(size=(4, 19)).astype(np.float32)
X_CONV = np.random.default_rng(1).normal(size=(2, 7, 7, 19)).astype(np.float32)


def dense(graph, **kw):
    return layers.MaskedDense(13, graph, **kw)


def conv(graph, **kw):
    kw.setdefault("strides", 2)
    return layers.MaskedConv(13, (3, 3), graph, **kw)


LAYERS = {"dense": (dense, X_DENSE), "conv": (conv, X_CONV)}


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("impl", ["mask", "blocks"])
def test_complete_graph_equals_flax_dense_and_conv(kind, impl):
    make, x = LAYERS[kind]
    layer = make(COMPLETE, impl=impl, use_bias=True)
    variables = layer.init(jax.random.key(0), x)
    bias = jnp.asarray(np.random.default_rng(2).normal(size=13), jnp.float32)
    variables = {**variables, "params": {**variables["params"], "bias": bias}}
    name = "kernel" if impl == "mask" else "blocks"
    kernel = variables["params"][name]
    if impl == "blocks":
        kernel = ops.blocks_to_dense(kernel, relational.block_structure(COMPLETE, 19, 13))
    if kind == "dense":
        reference = nn.Dense(13)
    else:
        reference = nn.Conv(13, (3, 3), strides=2, padding="SAME")
    want = reference.apply({"params": {"kernel": kernel, "bias": bias}}, x)
    np.testing.assert_allclose(layer.apply(variables, x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", [1, ((0, 2), (1, 0))])
def test_conv_padding_forms_equal_flax_conv(padding):
    layer = conv(COMPLETE, strides=1, padding=padding)
    variables = layer.init(jax.random.key(0), X_CONV)
    kernel = variables["params"]["kernel"]
    flax_padding = [(1, 1), (1, 1)] if padding == 1 else padding
    want = nn.Conv(13, (3, 3), padding=flax_padding, use_bias=False).apply({"params": {"kernel": kernel}}, X_CONV)
    np.testing.assert_allclose(layer.apply(variables, X_CONV), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_mask_and_block_paths_agree_from_the_same_key(kind):
    make, x = LAYERS[kind]
    masked, blocked = make(GRAPH, impl="mask"), make(GRAPH, impl="blocks")
    vm, vb = masked.init(jax.random.key(3), x), blocked.init(jax.random.key(3), x)
    structure = relational.block_structure(GRAPH, 19, 13)
    np.testing.assert_array_equal(ops.blocks_to_dense(vb["params"]["blocks"], structure), vm["params"]["kernel"])
    np.testing.assert_allclose(blocked.apply(vb, x), masked.apply(vm, x), rtol=1e-5, atol=1e-5)

    def loss(layer, variables):
        return lambda p: jnp.sum(jnp.sin(layer.apply({**variables, "params": p}, x)))
    gm = jax.grad(loss(masked, vm))(vm["params"])["kernel"]
    gb = jax.grad(loss(blocked, vb))(vb["params"])["blocks"]
    np.testing.assert_allclose(ops.blocks_to_dense(gb, structure), gm, rtol=1e-5, atol=1e-5)


def test_paper_init_std_and_block_params_only_on_the_graph():
    graph = RelationalGraph.from_spec("ws:n=16,k=4,p=0.2,seed=2")
    x = np.zeros((1, 256), np.float32)
    variables = layers.MaskedDense(512, graph).init(jax.random.key(0), x)
    kernel, mask = np.asarray(variables["params"]["kernel"]), np.asarray(variables["masks"]["mask"])
    density = (2 * len(graph.edges) + 16) / 256
    assert mask.mean() == pytest.approx(density)
    assert kernel[mask == 1].std() == pytest.approx(np.sqrt(2 / (512 * density)), rel=0.03)
    blocks = layers.MaskedDense(512, graph, impl="blocks").init(jax.random.key(0), x)["params"]["blocks"]
    assert blocks.size == mask.sum()  # equal groups: exactly the kept weights, nothing else


def test_off_graph_weights_get_no_gradient_and_stay_zero_under_weight_decay():
    layer = dense(GRAPH, use_bias=True)
    variables = layer.init(jax.random.key(0), X_DENSE)
    off = np.asarray(variables["masks"]["mask"]) == 0
    assert off.any() and np.all(np.asarray(variables["params"]["kernel"])[off] == 0)
    target = np.random.default_rng(5).normal(size=(4, 13)).astype(np.float32)
    optimizer = optax.chain(optax.add_decayed_weights(5e-4), optax.sgd(0.1, momentum=0.9, nesterov=True))

    def loss(params):
        return jnp.mean((layer.apply({**variables, "params": params}, X_DENSE) - target) ** 2)

    params, state = variables["params"], optimizer.init(variables["params"])
    first = loss(params)
    assert np.all(np.asarray(jax.grad(loss)(params)["kernel"])[off] == 0)
    for _ in range(5):
        updates, state = optimizer.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
    assert loss(params) < first
    assert np.all(np.asarray(params["kernel"])[off] == 0)


def test_masks_collection_at_apply_time_replaces_the_graph_mask():
    layer = dense(GRAPH)
    variables = layer.init(jax.random.key(0), X_DENSE)
    kernel = np.asarray(variables["params"]["kernel"])
    # without a masks collection the graph's own mask applies
    np.testing.assert_allclose(layer.apply({"params": variables["params"]}, X_DENSE),
                               layer.apply(variables, X_DENSE), rtol=1e-6)
    other = relational.layer_mask(RelationalGraph.from_spec("ws:n=8,k=2,p=0,seed=0"), 19, 13)
    got = layer.apply({"params": variables["params"], "masks": {"mask": jnp.asarray(other)}}, X_DENSE)
    np.testing.assert_allclose(got, X_DENSE @ (kernel * other), rtol=1e-5, atol=1e-6)


def test_spec_string_and_directed_graph():
    by_spec = dense(SPEC).init(jax.random.key(0), X_DENSE)
    by_graph = dense(GRAPH).init(jax.random.key(0), X_DENSE)
    jax.tree.map(np.testing.assert_array_equal, by_spec, by_graph)
    mask = dense(DIRECTED).init(jax.random.key(0), X_DENSE)["masks"]["mask"]
    np.testing.assert_array_equal(mask, relational.layer_mask(DIRECTED, 19, 13))
    assert mask[0, 4] == 1 and mask[5, 0] == 0  # input node 0 feeds output node 1, not the reverse


def test_depthwise_conv_equals_grouped_flax_conv():
    layer = layers.DepthwiseConv((3, 3), strides=2, use_bias=True)
    variables = layer.init(jax.random.key(0), X_CONV)
    kernel = variables["params"]["kernel"]
    assert kernel.shape == (3, 3, 1, 19)
    assert float(kernel.std()) == pytest.approx(np.sqrt(2 / (9 * 19)), rel=0.25)
    want = nn.Conv(19, (3, 3), strides=2, feature_group_count=19).apply(variables, X_CONV)
    np.testing.assert_allclose(layer.apply(variables, X_CONV), want, rtol=1e-5, atol=1e-5)


def test_computation_dtype():
    layer = dense(GRAPH, impl="blocks", dtype=jnp.bfloat16)
    variables = layer.init(jax.random.key(0), X_DENSE)
    assert variables["params"]["blocks"].dtype == jnp.float32
    y = layer.apply(variables, X_DENSE)
    assert y.dtype == jnp.bfloat16
    want = dense(GRAPH, impl="blocks").apply(variables, X_DENSE)
    np.testing.assert_allclose(np.asarray(y, np.float32), want, rtol=0.05, atol=0.05)


# ---------- nnx front end ----------

def _nnx_twin(kind, impl, use_bias):
    rngs = nnx.Rngs(7)
    if kind == "dense":
        return rnnx.MaskedDense(19, 13, GRAPH, impl=impl, use_bias=use_bias, rngs=rngs)
    return rnnx.MaskedConv(19, 13, (3, 3), GRAPH, strides=2, impl=impl, use_bias=use_bias, rngs=rngs)


@pytest.mark.parametrize("kind", ["dense", "conv"])
@pytest.mark.parametrize("impl", ["mask", "blocks"])
def test_linen_and_nnx_give_the_same_outputs_from_the_same_parameters(kind, impl):
    make, x = LAYERS[kind]
    variables = make(GRAPH, impl=impl, use_bias=True).init(jax.random.key(0), x)
    bias = jnp.linspace(-1.0, 1.0, 13)
    variables = {**variables, "params": {**variables["params"], "bias": bias}}
    twin = _nnx_twin(kind, impl, use_bias=True)
    assert not np.allclose(twin(x), make(GRAPH, impl=impl, use_bias=True).apply(variables, x))
    rnnx.load_linen_variables(twin, variables)
    np.testing.assert_allclose(twin(x), make(GRAPH, impl=impl, use_bias=True).apply(variables, x),
                               rtol=1e-6, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, rnnx.linen_variables(twin), variables)


def test_nnx_init_is_the_paper_init_and_mask_is_not_a_param():
    twin = rnnx.MaskedDense(128, 256, "ws:n=16,k=4,p=0.2,seed=2", rngs=nnx.Rngs(0))
    mask = np.asarray(twin.mask[...])
    kernel = np.asarray(twin.kernel[...])
    assert np.all(kernel[mask == 0] == 0)
    assert kernel[mask == 1].std() == pytest.approx(np.sqrt(2 / (256 * mask.mean())), rel=0.05)
    assert set(nnx.state(twin, nnx.Param).keys()) == {"kernel"}
    assert set(nnx.state(twin, rnnx.Mask).keys()) == {"mask"}


def test_nnx_depthwise_equals_linen_and_trains_under_nnx_jit():
    linen_vars = layers.DepthwiseConv(3).init(jax.random.key(0), X_CONV)
    twin = rnnx.load_linen_variables(rnnx.DepthwiseConv(19, 3, rngs=nnx.Rngs(0)), linen_vars)
    np.testing.assert_allclose(twin(X_CONV), layers.DepthwiseConv(3).apply(linen_vars, X_CONV), rtol=1e-6)

    layer = rnnx.MaskedDense(19, 13, GRAPH, impl="blocks", rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(layer, optax.sgd(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(layer, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean(m(X_DENSE) ** 2))(layer)
        optimizer.update(layer, grads)
        return loss

    losses = [float(step(layer, optimizer)) for _ in range(3)]
    assert losses[2] < losses[0]


def test_load_linen_variables_rejects_a_wrong_shape():
    variables = layers.MaskedDense(13, GRAPH).init(jax.random.key(0), X_DENSE[:, :17])
    with pytest.raises(ValueError, match=r"params/kernel has shape \(17, 13\), the layer needs \(19, 13\)"):
        rnnx.load_linen_variables(_nnx_twin("dense", "mask", False), variables)


# ---------- errors ----------

def test_errors_name_the_layer_and_the_value():
    # A layer narrower than the graph uses the graph's recipe at fewer nodes; a brain
    # network has none, so the layer is refused with its name.
    cat = RelationalGraph.from_spec("brain:cat")
    with pytest.raises(ValueError, match="MaskedDense: 32 -> 64 channels, fewer than the graph's 52 "
                                         "nodes, and graph 'brain:cat' has no recipe"):
        layers.MaskedDense(64, cat).init(jax.random.key(0), jnp.zeros((1, 32)))

    class UserModel(nn.Module):
        @nn.compact
        def __call__(self, x):
            return layers.MaskedConv(16, 3, cat, name="stage1")(x)

    with pytest.raises(ValueError, match="MaskedConv 'stage1': 64 -> 16 channels, fewer than"):
        UserModel().init(jax.random.key(0), jnp.zeros((1, 4, 4, 64)))
    narrow = layers.MaskedDense(16, "complete:n=64").init(jax.random.key(0), jnp.zeros((1, 32)))
    assert narrow["masks"]["mask"].min() == 1.0  # the complete graph stays complete at 16 nodes
    with pytest.raises(ValueError, match="MaskedDense: unknown impl 'sparse'; allowed: mask, blocks"):
        layers.MaskedDense(8, GRAPH, impl="sparse")
    with pytest.raises(ValueError, match="MaskedConv: unknown partition 'random'"):
        layers.MaskedConv(8, 3, GRAPH, partition="random")
    with pytest.raises(ValueError, match="MaskedConv: kernel_size must be a positive int"):
        layers.MaskedConv(8, (3, 3, 3), GRAPH)
    with pytest.raises(ValueError, match="MaskedConv: input must be"):
        layers.MaskedConv(8, 3, GRAPH).init(jax.random.key(0), jnp.zeros((4, 4, 8)))
    with pytest.raises(TypeError, match="MaskedDense: graph must be a RelationalGraph or a spec string"):
        layers.MaskedDense(8, 5)
    with pytest.raises(ValueError, match="MaskedDense: .*paper:nope"):
        layers.MaskedDense(8, "paper:nope")
    with pytest.raises(ValueError, match="MaskedDense: 4 -> 16 channels, fewer than the graph's 52 nodes"):
        rnnx.MaskedDense(4, 16, cat, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="MaskedConv: unknown impl 'dense'"):
        rnnx.MaskedConv(16, 16, 3, GRAPH, impl="dense", rngs=nnx.Rngs(0))


# ---------- the README example ----------

def test_docs_example_runs():
    text = (pathlib.Path(__file__).parents[1] / "docs" / "layers.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/layers.md has no python example"
    namespace: dict = {}
    exec(compile("\n".join(blocks), "docs/layers.md", "exec"), namespace)
    assert namespace["losses"][-1] < namespace["losses"][0]


@pytest.mark.parametrize("graph", [GRAPH, DIRECTED, COMPLETE], ids=["ws", "directed", "complete"])
def test_gather_layer_equals_the_mask_layer_from_the_same_key(graph):
    x = X_DENSE if graph.n == 8 else X_DENSE[:, :8]
    masked, gathered = dense(graph, impl="mask"), dense(graph, impl="gather")
    vm, vg = masked.init(jax.random.key(3), x), gathered.init(jax.random.key(3), x)
    tables = relational.gather_tables(graph, x.shape[1], 13)
    np.testing.assert_array_equal(ops.gather_to_dense(vg["params"]["kernel"], tables, x.shape[1]),
                                  vm["params"]["kernel"])
    np.testing.assert_allclose(gathered.apply(vg, x), masked.apply(vm, x), rtol=1e-5, atol=1e-5)

    def loss(layer, variables):
        return lambda p: jnp.sum(jnp.sin(layer.apply({**variables, "params": p}, x)))
    gm = jax.grad(loss(masked, vm))(vm["params"])["kernel"]
    gg = jax.grad(loss(gathered, vg))(vg["params"])["kernel"]
    np.testing.assert_allclose(ops.gather_to_dense(gg, tables, x.shape[1]), gm, rtol=1e-5, atol=1e-5)
    # the nnx twin computes the same from the same variables
    twin = rnnx.MaskedDense(x.shape[1], 13, graph, impl="gather", rngs=nnx.Rngs(0))
    rnnx.load_linen_variables(twin, vg)
    np.testing.assert_allclose(twin(x), gathered.apply(vg, x), rtol=1e-6, atol=1e-6)
    jax.tree.map(np.testing.assert_array_equal, rnnx.linen_variables(twin), vg)


def test_gather_is_refused_for_convs_and_names_the_allowed_impls():
    with pytest.raises(ValueError, match=r"unknown impl 'gather'; allowed: mask, blocks"):
        conv(GRAPH, impl="gather").init(jax.random.key(0), X_CONV)
    with pytest.raises(ValueError, match=r"unknown impl 'gather'; allowed: mask, blocks"):
        rnnx.MaskedConv(19, 13, (3, 3), GRAPH, impl="gather", rngs=nnx.Rngs(0))


def test_misused_layers_name_themselves_and_the_graphs_involved():
    """A 0-d input, a 'masks' collection of another shape, and (nnx) variables of another
    graph each get one ValueError naming the layer; the layer's mask is never replaced."""
    ws = "ws:n=16,k=4,p=0,seed=0"
    linen = layers.MaskedDense(32, ws)
    with pytest.raises(ValueError, match=r"MaskedDense: input must be \(\.\.\., in_channels\)"):
        linen.init(jax.random.key(0), jnp.zeros(()))
    variables = linen.init(jax.random.key(0), jnp.zeros((2, 32)))
    with pytest.raises(ValueError, match=r"MaskedDense: its 'masks' collection holds mask of "
                                         r"shape \(16, 32\), but its graph 'ws:n=16,k=4,p=0,"
                                         r"seed=0' \(16 nodes, 32 edges\) needs \(32, 32\)"):
        linen.apply({"params": variables["params"], "masks": {"mask": jnp.ones((16, 32))}},
                    jnp.zeros((2, 32)))
    complete = layers.MaskedDense(32, "complete:n=16").init(jax.random.key(0), jnp.zeros((2, 32)))
    layer = rnnx.MaskedDense(32, 32, ws, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"its mask implies 16 nodes and 120 edges \(mask density "
                                         r"1\.0000\)\) than this layer's 'ws:n=16,k=4,p=0,seed=0' "
                                         r"\(16 nodes, 32 edges\), whose mask has density 0\.3125"):
        rnnx.load_linen_variables(layer, complete)
    assert float(layer.mask[...].mean()) == 0.3125  # 16 self-loops + 2 x 32 edges, of 16 x 16
    assert not np.array_equal(layer.kernel[...], complete["params"]["kernel"])  # untouched
    with pytest.raises(ValueError, match=r"MaskedDense: input must be"):
        layer(jnp.zeros(()))
    rnnx.load_linen_variables(layer, variables)  # its own graph's variables load
