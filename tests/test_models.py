"""The six model families: tiny forward passes, layer lists vs real parameters, padding, errors."""
import dataclasses
import functools
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import FAST, graph_masks, init_shapes, random_variables
from relgraph_jax import budget, models, relational
from relgraph_jax.models import families
from relgraph_jax.models.settings import positive_int

SHAPE = (16, 16, 3)

# Small but complete versions of each family: every block type, stride, shortcut and skip.
TINY = {
    "mlp": (dict(nodes=4, width=8, stem_width=8), "ring:n=4,k=2"),
    "cnn8": (dict(nodes=4, width=4, stem_width=4, num_classes=10), "ring:n=4,k=2"),
    "resnet34": (dict(nodes=4, width=4, stem_width=4, depths=(2, 1, 1, 1), num_classes=10),
                 "ring:n=4,k=2"),
    "resnet34sep": (dict(nodes=4, width=4, stem_width=4, depths=(1, 1, 1, 1), num_classes=10),
                    "ring:n=4,k=2"),
    "resnet50": (dict(nodes=4, width=4, stem_width=8, depths=(1, 1, 1, 1), num_classes=10),
                 "ring:n=4,k=2"),
    # B0's first four stages (the last one's width is `width`).
    "efficientnet_b0": (dict(nodes=4, width=80, stem_width=8, head_width=16,
                             base_widths=(16, 24, 40, 80), depths=(1, 2, 1, 1),
                             kernels=(3, 3, 5, 3), strides=(1, 2, 2, 2), expand_ratios=(1, 6, 6, 6),
                             num_classes=10), "ring:n=4,k=2"),
}


def tiny_config(name):
    cfg = models.default_config(name)
    cfg.update(TINY[name][0])
    return cfg


def train_step(model):
    """A compiled train-mode forward pass: (logits, updated batch_stats)."""
    @functools.partial(jax.jit, compiler_options=FAST)
    def step(variables, x):
        logits, updated = model.apply(variables, x, train=True, mutable=["batch_stats"])
        return logits, updated["batch_stats"]
    return step


@pytest.fixture(scope="module", params=list(TINY))
def family(request):
    name = request.param
    cfg = tiny_config(name)
    graph = relational.as_graph(TINY[name][1])
    model = models.build(cfg, graph)
    x = jax.random.normal(jax.random.key(1), (2,) + SHAPE)
    variables = random_variables(model, x)
    logits, batch_stats = train_step(model)(variables, x)
    return dict(name=name, cfg=cfg, graph=graph, model=model, x=x, variables=variables,
                shapes=init_shapes(model, x), logits=logits, batch_stats=batch_stats)


def _at(tree, path):
    for key in path.split("/"):
        tree = tree[key]
    return tree


def _param_owners(params):
    """'/'-joined paths of the modules that own parameters."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(params))
    return {"/".join(k[:-1]) for k in flat}


def test_forward_gives_finite_logits_and_updates_batch_stats(family):
    assert family["logits"].shape == (2, 10)
    assert np.all(np.isfinite(np.asarray(family["logits"])))
    assert set(family["shapes"]) == {"params", "batch_stats", "masks"}
    before = jax.tree.leaves(family["variables"]["batch_stats"])
    after = jax.tree.leaves(family["batch_stats"])
    assert len(before) == len(after) > 0
    assert all(np.all(np.isfinite(a)) for a in after)
    assert all(not np.allclose(a, b) for a, b in zip(after, before))  # every BN saw the batch


def test_layer_list_accounts_for_every_parameter(family):
    """Each listed layer's shapes match the real parameters, and the budget's parameter
    count equals the real count with graph kernels at their mask's kept weights."""
    model, shapes, graph, cfg = family["model"], family["shapes"], family["graph"], family["cfg"]
    params, masks = shapes["params"], shapes["masks"]
    layers = model.layer_list(SHAPE)
    assert {layer.path for layer in layers} == _param_owners(params)
    counted = 0
    for layer in layers:
        p = _at(params, layer.path)
        if layer.kind == "norm":
            assert p["scale"].shape == p["bias"].shape == (layer.cout,)
            counted += 2 * layer.cout
            continue
        kernel = p["kernel"]
        if layer.kind == "depthwise":
            assert kernel.shape[2:] == (1, layer.cout) and kernel.size == layer.window * layer.cout
            counted += kernel.size
        elif layer.kind == "dense":
            assert kernel.size == layer.window * layer.cin * layer.cout
            counted += kernel.size
        else:
            assert _at(masks, layer.path)["mask"].shape == (layer.cin, layer.cout) == kernel.shape[-2:]
            assert kernel.size == layer.window * layer.cin * layer.cout
            kept = relational.layer_mask(graph, layer.cin, layer.cout, cfg.partition).sum()
            counted += layer.window * int(kept)
        if layer.bias:
            assert p["bias"].shape == (layer.cout,)
            counted += layer.cout
    assert budget.count(cfg, graph, cfg.width, SHAPE).params == counted


def test_init_zeroes_the_last_batchnorm_of_residual_blocks():
    """The paper's ImageNet recipe; every other BatchNorm scale starts at 1."""
    last = {"resnet34": "bn2", "resnet34sep": "bn2", "resnet50": "bn3"}
    built = {}
    for name in last:
        cfg = tiny_config(name)
        cfg.depths, cfg.stage_ratios = (1, 1), (1, 2)
        built[name] = models.build(cfg, "ring:n=4,k=2")

    @functools.partial(jax.jit, compiler_options=FAST)
    def init(key):
        x = jnp.zeros((1, 8, 8, 3))
        return {name: m.init(key, x, train=False)["params"] for name, m in built.items()}

    params = init(jax.random.key(0))
    for name, model in built.items():
        for block in (p.name for p in model.blocks()):
            scales = {bn: np.asarray(p["scale"]) for bn, p in params[name][block].items()
                      if "scale" in p}
            assert last[name] in scales and len(scales) > 1
            for bn, scale in scales.items():
                np.testing.assert_array_equal(scale, 0.0 if bn == last[name] else 1.0)


def test_stage_widths_keep_the_paper_ratios():
    cfg = models.default_config("efficientnet_b0")
    assert models.build(cfg, "complete:n=16").stage_widths() == (16, 24, 40, 80, 112, 192, 320)
    assert models.build(cfg, "complete:n=16", 640).stage_widths() == (32, 48, 80, 160, 224, 384, 640)
    # ResNet-50's base width is the inner one; its stage widths are the outputs (4x).
    resnet50 = models.build(models.default_config("resnet50"), "complete:n=64", 70)
    assert resnet50.stage_widths() == (280, 560, 1120, 2240)
    assert [(p.width, p.cout) for p in resnet50.blocks()][2:4] == [(70, 280), (140, 560)]


def test_resnet50_inner_width_is_the_output_over_4_rounded_half_to_even():
    """graph2nn: inner = int(round(out / 4)), Python's round: 139.25 -> 139, 139.5 -> 140,
    138.5 -> 138."""
    widths = (557, 558, 554, 1000)
    resnet50 = models.build(models.default_config("resnet50"), "complete:n=64", widths)
    firsts = [p for p in resnet50.blocks() if p.name.endswith("block0")]
    assert [(p.width, p.cout) for p in firsts] == [(139, 557), (140, 558), (138, 554), (250, 1000)]


def test_efficientnet_expansion_widths_follow_the_original_code():
    """graph2nn's graph models expand every block of stage i to B0's width x ratio (144 in
    stage 1, even for its first block, whose input is 16 wide); its complete-graph baseline
    is standard B0 (input x ratio: 96 there)."""
    cfg = models.default_config("efficientnet_b0")
    graph = models.build(cfg, "paper:n16_48/42", (30, 42, 74, 145, 203, 348, 580)).blocks()
    complete = models.build(cfg, "complete:n=16").blocks()
    assert [p.expanded for p in graph[:4]] == [32, 144, 144, 240]
    assert [p.expand for p in graph[:2]] == [False, True]
    assert [p.expanded for p in complete[:4]] == [32, 96, 144, 144]
    assert [p.se for p in graph[:4]] == [8, 7, 10, 10]  # int(block input x 0.25)
    cfg.expansion = "per_block"
    assert [p.expanded for p in models.build(cfg, "paper:n16_48/42").blocks()[:4]] == [32, 96, 144, 144]


@pytest.mark.parametrize("name", list(TINY))
def test_wider_variants_have_the_same_layers(name):
    """Within one model structure, narrower widths pad into wider ones: same tree, every
    leaf no larger (budget-matched variants of one structure share one program)."""
    cfg = tiny_config(name)
    x = jnp.zeros((1,) + SHAPE)

    def shapes(width):
        model = models.build(cfg, TINY[name][1], width)
        return jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)

    # Both wider than the stem, so ResNets project in their first block at both widths.
    assert models.structure(cfg, TINY[name][1], cfg.width + 1) == \
        models.structure(cfg, TINY[name][1], cfg.width + 4)
    narrow, wide = shapes(cfg.width + 1), shapes(cfg.width + 4)
    assert jax.tree.structure(narrow) == jax.tree.structure(wide)
    assert all(all(a <= b for a, b in zip(n.shape, w.shape))
               for n, w in zip(jax.tree.leaves(narrow), jax.tree.leaves(wide)))
    assert any(n.shape != w.shape for n, w in zip(jax.tree.leaves(narrow), jax.tree.leaves(wide)))


def test_zero_padded_resnet_computes_the_narrow_one():
    """ResNet-34's stage-1 identity shortcut pads with zero channels; a narrow variant
    embedded in a wider model by zero padding (the trainer's rule) gives the same logits,
    in training and in evaluation mode."""
    cfg = tiny_config("resnet34")
    cfg.shortcut_rule = "padded_identity"
    graph = relational.as_graph("ring:n=4,k=2")
    narrow, wide = models.build(cfg, graph), models.build(cfg, graph, width=7)
    assert [p.shortcut for p in wide.blocks()][:2] == ["pad", "identity"]
    x = jax.random.normal(jax.random.key(1), (2,) + SHAPE)
    small = {**random_variables(narrow, x), "masks": graph_masks(narrow, graph, SHAPE)}
    target = init_shapes(wide, x)
    assert jax.tree.structure(small) == jax.tree.structure(dict(target))

    def pad(a, t):
        return np.pad(a, [(0, w - n) for n, w in zip(a.shape, t.shape)])

    big = jax.tree.map(pad, small, dict(target))

    @functools.partial(jax.jit, compiler_options=FAST)
    def logits(small, big):
        pairs = ((narrow, small), (wide, big))
        train = [m.apply(v, x, train=True, mutable=["batch_stats"])[0] for m, v in pairs]
        test = [m.apply(v, x, train=False) for m, v in pairs]
        return train, test

    (narrow_train, wide_train), (narrow_test, wide_test) = logits(small, big)
    # float32 rounding of the wider convs, amplified by batch-statistics BatchNorm over
    # 14 layers, stays below 1e-4; a padding leak would change logits by O(1).
    np.testing.assert_allclose(wide_train, narrow_train, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(wide_test, narrow_test, rtol=1e-5, atol=1e-5)
    assert not np.allclose(narrow_train, narrow_test)  # the two modes really differ


def test_blocks_and_gather_impls_give_the_mask_impl_logits():
    """All implementations draw the same initial weights from a key, so logits agree."""
    x = jax.random.normal(jax.random.key(1), (2,) + SHAPE)
    built = {}
    for impl in ("mask", "blocks", "gather"):
        cfg = tiny_config("mlp")
        cfg.impl = impl
        built[impl] = models.build(cfg, "ring:n=4,k=2")

    @functools.partial(jax.jit, compiler_options=FAST)
    def logits(key):
        return {impl: m.apply(m.init(key, x, train=False), x, train=False) for impl, m in built.items()}

    out = logits(jax.random.key(0))
    np.testing.assert_allclose(out["blocks"], out["mask"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["gather"], out["mask"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,params", [("resnet34", 21_797_672), ("resnet50", 25_557_032),
                                         ("efficientnet_b0", 5_288_548)])
def test_default_models_have_the_published_parameter_counts(name, params):
    cfg = models.default_config(name)
    model = models.build(cfg, f"complete:n={cfg.nodes}")
    shapes = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0),
                            jnp.zeros((1, 32, 32, 3)))
    assert sum(leaf.size for leaf in jax.tree.leaves(shapes["params"])) == params


def test_per_width_rule_adds_a_stage1_projection():
    cfg = models.default_config("resnet34")  # the default rule: the original code's
    assert models.build(cfg, "complete:n=64", 80).blocks()[0].shortcut == "projection"
    assert models.build(cfg, "complete:n=64", 64).blocks()[0].shortcut == "identity"
    assert models.structure(cfg, "complete:n=64", 80) != models.structure(cfg, "complete:n=64", 64)
    cfg.shortcut_rule = "padded_identity"
    assert models.build(cfg, "complete:n=64", 80).blocks()[0].shortcut == "pad"
    assert models.build(models.default_config("resnet50"), "complete:n=64").blocks()[0].shortcut == "projection"


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="resnet34: graph complete:n=64 has 64 nodes but config.model.nodes is 16; use graphs"):
        cfg = models.default_config("resnet34")
        cfg.nodes = 16
        models.build(cfg, "complete:n=64")
    with pytest.raises(ValueError, match="unknown model family 'resnet18'"):
        models.build({"name": "resnet18"}, "complete:n=64")
    with pytest.raises(ValueError, match=r"resnet34: unknown model field\(s\) \['depth'\]"):
        models.build({"name": "resnet34", "depth": 3}, "complete:n=64")
    with pytest.raises(ValueError, match=r"model.block='wide' is not allowed; expected one of \['basic'"):
        models.build({"name": "resnet34", "block": "wide"}, "complete:n=64")
    with pytest.raises(ValueError, match="model.impl='sparse' is not allowed"):
        models.build({"name": "mlp", "impl": "sparse"}, "complete:n=64")
    with pytest.raises(ValueError, match=r"cnn8: model.impl='gather' is not allowed; expected one of "
                                         r"\['mask', 'blocks'\]"):
        models.build({"name": "cnn8", "impl": "gather"}, "complete:n=64")
    with pytest.raises(ValueError, match="efficientnet_b0: layer stage0_block0/project: 32 -> 8 "
                                         "channels, fewer than the graph's 16 nodes, and graph "
                                         "'edges:n=16,0-1' has no recipe"):
        models.build(models.default_config("efficientnet_b0"), "edges:n=16,0-1", width=160)
    with pytest.raises(ValueError, match=r"cnn8: widths must be 3 positive integers \(one per stage\), "
                                         r"got \(64, 128\)"):
        models.build(models.default_config("cnn8"), "complete:n=64", width=(64, 128))
    padded = models.default_config("resnet34")
    padded.shortcut_rule = "padded_identity"
    with pytest.raises(ValueError, match="stage0_block0: width 32 is below the stem's 64 channels"):
        models.build(padded, "complete:n=64", width=32)
    with pytest.raises(ValueError, match="mlp: width must be a positive integer or a tuple of 1 stage widths, got 0"):
        models.build(models.default_config("mlp"), "complete:n=64", width=0)


# ----------------------------------------------------------------------------- the registry
@pytest.mark.parametrize("name", models.FAMILIES.names())
def test_every_registered_family_runs_at_its_tiny_setting(name):
    """A family's `tiny` model (the smoke tests', runlocal's) builds and gives finite logits."""
    cfg = models.default_config(name)
    cfg.update(models.FAMILIES[name].tiny)
    model = models.build(cfg, f"ring:n={cfg.nodes},k=2")
    x = jax.random.normal(jax.random.key(1), (2,) + SHAPE)
    apply = jax.jit(functools.partial(model.apply, train=False), compiler_options=FAST)
    out = np.asarray(apply(random_variables(model, x), x))
    assert out.shape == (2, cfg.num_classes) and np.all(np.isfinite(out))


def _one_layer_mlp(s, graph, widths):
    return models.MLP(graph=graph, widths=widths, stem_width=s.stem_width, depth=1,
                      **families.common_fields(s))


def test_a_registered_family_is_everywhere_a_built_in_is():
    """One registration, no other edit: the listing, the error messages, default_config,
    settings, build, the budget and the docs table all know it; its name cannot be taken
    twice."""
    family = models.Family(
        "mlp1", "one graph layer", defaults=dict(nodes=4, width=8, num_classes=10, stem_width=6),
        check=lambda s: positive_int(s, "stem_width"), make=_one_layer_mlp,
        stage_ratios=lambda s: (1,), tiny=dict(width=4))
    with models.FAMILIES.registered("mlp1", family, origin="my_families"):
        assert models.FAMILIES.names()[-1] == "mlp1"
        with pytest.raises(ValueError, match=r"unknown model family 'vgg'; allowed: mlp, cnn8, "
                                             r"cnn_cifar, resnet34, resnet34sep, resnet50, "
                                             r"resnet20, resnet56, efficientnet_b0, vit, mlp1$"):
            models.default_config("vgg")
        cfg = models.default_config("mlp1")
        assert cfg.to_dict() == dict(name="mlp1", impl="mask", partition=relational.DEFAULT_PARTITION,
                                     nodes=4, width=8, num_classes=10, stem_width=6)
        assert models.settings({"name": "mlp1", "width": 5}).width == 5
        with pytest.raises(ValueError, match=r"mlp1: model.stem_width=0 is not allowed; expected "
                                             r"a positive integer"):
            models.settings({"name": "mlp1", "stem_width": 0})
        with pytest.raises(ValueError, match=r"mlp1: model.impl='gather' is not allowed"):
            models.settings({"name": "mlp1", "impl": "gather"})  # a conv family's impls by default
        model = models.build(cfg, "ring:n=4,k=2")
        assert [layer.path for layer in model.layer_list(SHAPE)] == [
            "stem", "stem_bn", "graph0", "graph0_bn", "head"]
        matched = budget.match(cfg, "ring:n=4,k=2", SHAPE)  # the sparser graph, wider
        assert matched.widths[0] > cfg.width and matched.flops >= matched.target_flops
        assert "| `mlp1` | one graph layer | 4 | 8 |" in families.markdown_table()
        with pytest.raises(ValueError, match=r"model family 'mlp1' is already registered \(by "
                                             r"my_families\); choose another name"):
            models.register_family(family)
    assert "mlp1" not in models.FAMILIES.names()
    with pytest.raises(ValueError, match=r"model family 'resnet50' is already registered \(by "
                                         r"relgraph_jax.models.resnet\)"):
        models.register_family(dataclasses.replace(family, name="resnet50"))
    with pytest.raises(ValueError, match=r"model family 'mlp2': its defaults must give "
                                         r"\['nodes', 'num_classes'\]"):
        models.register_family(dataclasses.replace(family, name="mlp2", defaults=dict(width=8)))


def test_the_docs_table_of_families_is_the_registrys():
    text = (pathlib.Path(__file__).parents[1] / "docs" / "models.md").read_text()
    block = text.split("<!-- model families: begin -->\n")[1].split("\n<!-- model families: end -->")[0]
    assert block == families.markdown_table()
