"""The `vit` family: the complete graph is a standard ViT, sparse graphs mask its channel
mixing, budget matching counts what a Transformer spends, and the configs train."""
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from experiments import describe
from relgraph_jax import budget, graphs, models, results
from relgraph_jax.train import trainer
from relgraph_jax.train.validate import validate_config
from helpers import FAST, fast_trainer_compiles, init_shapes, init_variables

SHAPE = (32, 32, 3)


def vit_config(**fields):
    cfg = models.default_config("vit")
    cfg.update(fields)
    return cfg


# A dense ViT written here with jax.numpy alone, reading weights by the names a standard
# ViT uses (patch embedding, class token, position embedding, per block ln1, query, key,
# value, out, ln2, fc1, fc2, final norm, head).
def layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / jnp.sqrt(var + 1e-6) * p["scale"] + p["bias"]


def dense(x, p):
    return x @ p["kernel"] + p["bias"]


def gelu(x):
    return 0.5 * x * (1 + jax.scipy.special.erf(x / math.sqrt(2)))


def dense_vit(w, images, depth, heads, patch, pooling):
    b, h, wd, c = images.shape
    x = images.reshape(b, h // patch, patch, wd // patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(b, -1, patch * patch * c) @ w["embed"]["kernel"].reshape(patch * patch * c, -1)
    x = x + w["embed"]["bias"]
    d = x.shape[-1]
    if pooling == "cls":
        x = jnp.concatenate([jnp.tile(w["cls"], (b, 1, 1)), x], axis=1)
    x = x + w["pos_embedding"]
    t = x.shape[1]
    for i in range(depth):
        p = w[f"block{i}"]
        y = layer_norm(x, p["ln1"])
        q, k, v = (dense(y, p[n]).reshape(b, t, heads, d // heads) for n in ("query", "key", "value"))
        attn = jnp.einsum("bqhc,bkhc->bhqk", q, k) / math.sqrt(d // heads)
        attn = jnp.exp(attn - attn.max(-1, keepdims=True))
        attn = attn / attn.sum(-1, keepdims=True)
        x = x + dense(jnp.einsum("bhqk,bkhc->bqhc", attn, v).reshape(b, t, d), p["out"])
        x = x + dense(gelu(dense(layer_norm(x, p["ln2"]), p["fc1"])), p["fc2"])
    x = layer_norm(x, w["norm"])
    return dense(x[:, 0] if pooling == "cls" else x.mean(1), w["head"])


def dense_vit_params(d, hidden, depth, patch, channels, tokens, classes, pooling):
    """Parameters of a standard ViT, counted by hand."""
    per_block = 2 * 2 * d + 4 * (d * d + d) + (d * hidden + hidden) + (hidden * d + d)
    return (patch * patch * channels * d + d + (d if pooling == "cls" else 0) + tokens * d
            + depth * per_block + 2 * d + d * classes + classes)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_complete_graph_is_a_standard_vit(pooling):
    cfg = vit_config(nodes=4, width=24, depth=2, heads=3, patch=8, mlp_ratio=2.0, pooling=pooling)
    model = models.build(cfg, "complete:n=4")
    images = jax.random.normal(jax.random.key(1), (3,) + SHAPE)
    variables = init_variables(model, images)
    # Weights far from the init (std 0.02), so every part of the model moves the logits.
    leaves, tree = jax.tree.flatten(variables["params"])
    rng = np.random.default_rng(2)
    params = jax.tree.unflatten(tree, [0.3 * rng.standard_normal(leaf.shape, np.float32)
                                       for leaf in leaves])
    ours = jax.jit(lambda p: model.apply({**variables, "params": p}, images, train=False),
                   compiler_options=FAST)(params)
    theirs = jax.jit(lambda p: dense_vit(p, images, depth=2, heads=3, patch=8, pooling=pooling),
                     compiler_options=FAST)(params)
    assert np.abs(np.asarray(theirs)).max() > 1
    np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-5)
    tokens = 16 + (pooling == "cls")
    expected = dense_vit_params(24, 48, 2, 8, 3, tokens, 10, pooling)
    assert sum(leaf.size for leaf in leaves) == expected
    assert budget.count(cfg, "complete:n=4", None, SHAPE).params == expected
    # Every graph layer's mask is all ones: nothing is masked.
    assert all(np.all(m == 1) for m in jax.tree.leaves(variables["masks"]))


def test_masked_weights_get_exactly_zero_gradient():
    cfg = vit_config(nodes=4, width=16, depth=1, heads=2, patch=8)
    model = models.build(cfg, "ws:n=4,k=2,p=0.0,seed=1")  # a ring: a third of the blocks off
    images = jax.random.normal(jax.random.key(1), (4,) + SHAPE)
    variables = init_variables(model, images)
    leaves, tree = jax.tree.flatten(variables["params"])
    params = jax.tree.unflatten(tree, [leaf + 0.1 for leaf in leaves])  # off-graph weights too

    def loss(p):
        return jnp.sum(model.apply({**variables, "params": p}, images, train=False) ** 2)

    grads = traverse_util.flatten_dict(jax.jit(jax.grad(loss), compiler_options=FAST)(params))
    masks = traverse_util.flatten_dict(variables["masks"])
    names = {path[1] for path in masks}
    assert names == {"query", "key", "value", "out", "fc1", "fc2"}
    for path, mask in masks.items():
        grad = np.asarray(grads[path[:-1] + ("kernel",)])
        assert 0 < mask.mean() < 1
        assert np.all(grad[np.asarray(mask) == 0] == 0)
        assert np.any(grad[np.asarray(mask) == 1] != 0)


def test_graph_layers_option_names_what_is_graphed():
    for option, graphed in [("mlp", {"fc1", "fc2"}), ("attention", {"query", "key", "value", "out"}),
                            ("none", set())]:
        cfg = vit_config(nodes=4, width=16, depth=1, heads=2, patch=8, graph_layers=option)
        model = models.build(cfg, "ws:n=4,k=2,p=0.0,seed=1")
        layers = model.layer_list(SHAPE)
        assert {l.path.split("/")[1] for l in layers if l.kind == "graph"} == graphed
        masks = traverse_util.flatten_dict(init_shapes(model, jnp.zeros((1,) + SHAPE))
                                           .get("masks", {}))
        assert {path[1] for path in masks} == graphed


@pytest.mark.parametrize("impl", ["mask", "blocks", "gather"])
def test_weight_decay_skips_biases_layernorm_and_embeddings(impl):
    """train.decay="kernels" on a real ViT's parameters: the patch embedding's, every
    projection's, MLP layer's and the head's weights decay, whatever the graph layers'
    layout; their biases, the LayerNorms, the class token and position embedding do not."""
    from relgraph_jax.train import optim
    model = models.build(vit_config(nodes=4, width=16, depth=1, heads=2, patch=8, impl=impl),
                         "ws:n=4,k=2,p=0.0,seed=1")
    params = init_shapes(model, jnp.zeros((1,) + SHAPE))["params"]
    mask = traverse_util.flatten_dict(optim.decay_mask({"decay": "kernels"})(params))
    decayed = {"/".join(path) for path, on in mask.items() if on}
    weight = "blocks" if impl == "blocks" else "kernel"
    assert decayed == {"embed/kernel", "head/kernel"} | {
        f"block0/{name}/{weight}" for name in ("query", "key", "value", "out", "fc1", "fc2")}
    assert {"cls", "pos_embedding", "block0/ln1/scale", "block0/ln2/bias", "norm/scale",
            "head/bias", "block0/fc1/bias"} <= {"/".join(path) for path in mask} - decayed


def hand_flops(model_cfg, graph, widths):
    """FLOPs (= MACs) counted here: the graph layers' kept weights from the masks the model
    itself builds, times the tokens; embedding, head and attention's two products."""
    s = models.settings(model_cfg)
    model = models.build(model_cfg, graph, width=widths)
    variables = init_variables(model, jnp.zeros((1,) + SHAPE))
    masks = variables["masks"]
    d, hidden = widths
    patches = (SHAPE[0] // s.patch) ** 2
    tokens = patches + (s.pooling == "cls")
    total = patches * s.patch ** 2 * SHAPE[2] * d + d * s.num_classes
    for i in range(s.depth):
        for name in ("query", "key", "value", "out", "fc1", "fc2"):
            total += tokens * int(np.sum(masks[f"block{i}"][name]["mask"]))
        total += 2 * tokens * tokens * d
    assert variables["params"]["block0"]["fc1"]["kernel"].shape == (d, hidden)
    return total


def test_matched_flops_counted_by_hand_within_half_a_percent():
    cfg = vit_config(nodes=8, width=48, depth=2, heads=4, patch=8)
    complete = hand_flops(cfg, "complete:n=8", (48, 192))
    assert budget.count(cfg, "complete:n=8", None, SHAPE).flops == complete
    graph = "ws:n=8,k=2,p=0.0,seed=1"
    for side in budget.SIDES:
        b = budget.match(cfg, graph, SHAPE, side=side)
        d, hidden = b.widths
        assert d % 4 == 0 and d > 48 and hidden != round(d * 4)  # the MLP width fine-tuned
        flops = hand_flops(cfg, graph, b.widths)
        assert b.macs == flops and abs(b.flops - flops) <= 12  # graph2nn truncates each layer
        assert 0 <= (flops - complete if side == "above" else complete - flops) < 0.005 * complete


def test_configs_match_every_graph_within_half_a_percent_in_describe():
    for name, heads in [("vit_cifar10", 3), ("vit_imagenet", 6)]:
        config = importlib.import_module(f"experiments.configs.{name}").get_config()
        config.seeds = 1
        records = describe.describe(config)
        assert len(records) == len(graphs.resolve(config.graphs))
        for r in records:
            assert r["widths"][0] % heads == 0
            assert 0 <= r["flops"] / r["target_flops"] - 1 < 0.005
        complete = records[-1]
        assert complete["widths"] == [config.model.width, 4 * config.model.width]


def test_configs_hold_the_transformer_recipe():
    cifar = importlib.import_module("experiments.configs.vit_cifar10").get_config()
    imagenet = importlib.import_module("experiments.configs.vit_imagenet").get_config()
    assert (cifar.model.width, cifar.model.depth, cifar.model.heads, cifar.model.patch,
            cifar.model.nodes, cifar.graphs) == (192, 12, 3, 4, 16, "paper:n16_48;complete:n=16")
    assert (imagenet.model.width, imagenet.model.depth, imagenet.model.heads, imagenet.model.patch,
            imagenet.model.nodes, imagenet.graphs) == (384, 12, 6, 16, 64,
                                                       "paper:n64_52;complete:n=64")
    for config in (cifar, imagenet):
        t = validate_config(config).train
        assert (t.optimizer, t.decay, t.schedule, t.warmup_unit, t.warmup_factor, t.loss,
                t.label_smoothing, t.clip_norm, t.weight_decay) == (
            "adamw", "kernels", "cosine_steps", "steps", 0.0, "smoothed_cross_entropy", 0.1,
            1.0, 0.05)
    # ViT-S/16's published size: 22.05 M parameters, 4.6 GFLOPs.
    b = budget.count(imagenet.model, "complete:n=64", None, (224, 224, 3))
    assert (b.params, b.gflops) == (22_050_664, 4.599)


@pytest.mark.parametrize("fields,message", [
    (dict(width=100, heads=3), "model.width=100 is not allowed; expected a multiple of model.heads=3"),
    (dict(pooling="max"), "model.pooling='max' is not allowed; expected one of"),
    (dict(graph_layers="qkv"), "model.graph_layers='qkv' is not allowed"),
    (dict(mlp_ratio=-1.0), "model.mlp_ratio=-1.0 is not allowed"),
    (dict(mlp_ratio=float("inf")), "model.mlp_ratio=inf is not allowed"),
])
def test_bad_model_fields_are_refused(fields, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        models.settings(vit_config(**fields))


def test_any_patch_that_divides_the_image_builds():
    """ViT-B/14's patch on 224 px does not divide the 32 px probes of the other families."""
    cfg = vit_config(patch=14, heads=3, width=48, depth=1)
    b = budget.match(cfg, "ws:n=16,k=4,p=0.3,seed=1", (224, 224, 3))
    assert models.build(cfg, "ws:n=16,k=4,p=0.3,seed=1", width=b.widths).tokens((224, 224, 3)) \
        == (256, 257)
    models.check_layer_list.__wrapped__("vit")  # the family's contract at its tiny setting


def test_without_graph_layers_only_the_complete_graph_is_swept():
    """graph_layers="none" is the dense ViT whatever the graph: a sweep of other graphs
    would record one model under many (C, L), so it is refused before anything is built."""
    config = importlib.import_module("experiments.configs.vit_cifar10").get_config("runlocal")
    config.model.graph_layers = "none"
    with pytest.raises(ValueError, match=r"^vit: these model settings have no graph layers, so "
                                         r"ws:n=4,k=2,p=0.3,seed=1 would train the complete "
                                         r"graph's model; sweep complete:n=4 alone"):
        describe.describe(config)
    config.graphs = "complete:n=4"
    assert [r["widths"] for r in describe.describe(config)] == [[16, 64]]


def test_huge_mlp_ratios_are_matched_quickly():
    """The MLP width is bisected, not stepped: a ratio of a million matches at once."""
    b = budget.match(vit_config(nodes=4, width=16, depth=1, heads=2, patch=8, mlp_ratio=1e6),
                     "ws:n=4,k=2,p=0.0,seed=1", SHAPE)
    assert 0 <= b.flops / b.target_flops - 1 < 1e-6 and b.widths[0] % 2 == 0


def test_a_patch_that_does_not_divide_the_image_is_refused():
    with pytest.raises(ValueError, match="model.patch=5 does not divide the 32x32 images"):
        budget.match(vit_config(patch=5), "complete:n=16", SHAPE)
    with pytest.raises(ValueError, match="model width 20 is not a multiple of model.heads=3"):
        models.build(vit_config(), "complete:n=16", width=(20, 80))


def test_runlocal_trains_several_graphs_on_the_bundled_digits(tmp_path):
    """vit_cifar10.py:runlocal: the tiny ViT on one epoch of the 8x8 digits, three graphs
    (a graph per block among them) at once, with the whole Transformer recipe."""
    config = importlib.import_module("experiments.configs.vit_cifar10").get_config("runlocal")
    config.graphs = "ws:n=4,k=2,p=0.3,seed=1;per_block:ws:n=4,k=2,p=0.5,seed=2;complete:n=4"
    config.mesh.devices = 1
    config.train.update(steps_per_call=11, width_buckets=1)
    with fast_trainer_compiles():
        summary = trainer.train_and_evaluate(config, str(tmp_path))
    assert summary["finished"]
    recs = results.read_records(str(tmp_path / results.RESULTS_FILE))
    assert [r["graph"] for r in recs] == config.graphs.split(";")
    assert all(r["status"] == "ok" and np.isfinite(r["train_loss"]) for r in recs)
    assert recs[-1]["widths"] == [16, 64]
    assert all(r["widths"][0] % 2 == 0 for r in recs)
    # Better than chance (90 % error) after one epoch.
    assert min(r["test_error"] for r in recs) < 80
