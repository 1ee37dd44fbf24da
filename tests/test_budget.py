"""Budget accounting and width matching, against the original code's numbers and hand counts."""
import numpy as np
import pytest

from relgraph_jax import budget, graphs, models, relational

CIFAR = (32, 32, 3)
IMAGENET = (224, 224, 3)

# The complete-graph MACs the original code (graph2nn, tools/train_net.py) matched every
# graph to, at 32x32 (CIFAR-10 families) and 224x224 (ImageNet) input. ResNet-56 has none
# there: tests/test_cifar_families.py counts it by hand, as tests/test_vit.py the ViT's.
ORIGINAL_MACS = {"mlp": 2_364_416, "cnn8": 166_438_912, "cnn_cifar": 48_957_952,
                 "resnet34": 3_663_761_408, "resnet34sep": 553_614_592,
                 "resnet50": 4_089_184_256, "resnet20": 40_813_184,
                 "efficientnet_b0": 385_824_092}
CIFAR_FAMILIES = ("mlp", "cnn_cifar", "resnet20", "resnet56")

B0 = dict(stem=32, widths=(16, 24, 40, 80, 112, 192, 320), depths=(1, 2, 2, 3, 3, 4, 1),
          ratios=(1, 6, 6, 6, 6, 6, 6))


def _shape(name):
    return CIFAR if name in CIFAR_FAMILIES else IMAGENET


def _b0_se_bias_adds():
    """The original counted one add per SE-conv bias (squeeze + excite widths per block)."""
    total, cin = 0, B0["stem"]
    for width, depth, ratio in zip(B0["widths"], B0["depths"], B0["ratios"]):
        for b in range(depth):
            block_in = cin if b == 0 else width
            total += int(block_in * 0.25) + block_in * ratio
        cin = width
    return total


@pytest.mark.parametrize("name", list(ORIGINAL_MACS))
def test_complete_graph_flops_equal_the_original_baselines(name):
    cfg = models.default_config(name)
    b = budget.count(cfg, f"complete:n={cfg.nodes}", None, _shape(name))
    assert b.flops == b.target_flops == ORIGINAL_MACS[name]
    se_adds = _b0_se_bias_adds() if name == "efficientnet_b0" else 0  # MACs count weights only
    assert se_adds in (0, 9_340)
    assert b.macs == b.complete_macs == ORIGINAL_MACS[name] - se_adds


def test_mlp_complete_budget_is_the_papers_formula():
    cfg = models.default_config("mlp")
    b = budget.count(cfg, "complete:n=64", 512, CIFAR)
    assert b.macs == 3072 * 512 + 3 * 512 * 512 + 512 * 10 == 2_364_416
    bn = 4 * 2 * 512
    assert b.params == 3072 * 512 + 3 * 512 * 512 + 512 * 10 + 10 + bn


@pytest.mark.parametrize("name,params", [("resnet34", 21_797_672), ("resnet50", 25_557_032),
                                         ("efficientnet_b0", 5_288_548)])
def test_complete_graph_params_equal_the_published_counts(name, params):
    cfg = models.default_config(name)
    assert budget.count(cfg, f"complete:n={cfg.nodes}", cfg.width, IMAGENET).params == params


def test_cnn8_params_by_hand():
    cfg = models.default_config("cnn8")
    convs = 9 * (64 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 256 * 256)
    bn = 2 * (64 + 2 * (64 + 128 + 256))
    expected = 27 * 64 + convs + bn + 256 * 1000 + 1000
    assert budget.count(cfg, "complete:n=64", 64, IMAGENET).params == expected


def test_graph_layers_count_at_their_density():
    """Channels divisible by the 64 nodes: each graph layer keeps density x its weights."""
    g = graphs.RelationalGraph.from_spec("paper:n64_52/27")
    density = (2 * len(g.edges) + 64) / 64 ** 2
    assert density == pytest.approx(g.density)
    d = 640
    cfg = models.default_config("mlp")
    b = budget.count(cfg, g, d, CIFAR)
    graph_macs = density * (512 * d + 2 * d * d)
    assert b.macs == 3072 * 512 + round(graph_macs) + d * 10
    assert b.params == 3072 * 512 + round(graph_macs) + d * 10 + 10 + 2 * (512 + 3 * d)


@pytest.mark.parametrize("spec,cin,cout", [("ws:n=8,k=3.5,p=0.3,seed=2", 70, 45),
                                           ("er:n=8,p=0.3,seed=1", 8, 29),
                                           ("brain:cat", 100, 77)])
@pytest.mark.parametrize("partition", ["contiguous", "permuted"])
def test_kept_weights_equal_the_layer_mask(spec, cin, cout, partition):
    g = graphs.RelationalGraph.from_spec(spec)
    adjacency = np.asarray(g.adjacency, bool) | np.eye(g.n, dtype=bool)
    mask = relational.layer_mask(g, cin, cout, partition)
    assert budget.kept_weights(adjacency.astype(np.int64), cin, cout, partition) == int(mask.sum())


def test_mlp_matched_flops_of_every_n64_52_graph_are_within_one_channel_step():
    cfg = models.default_config("mlp")
    target = 2_364_416
    widths = []
    for g in graphs.resolve("paper:n64_52"):
        b = budget.match(cfg, g, CIFAR)
        assert b.target_flops == target
        assert b.flops >= target
        assert budget.count(cfg, g, b.width - 1, CIFAR).flops < target
        widths.append(b.width)
    assert min(widths) > 512  # every graph of the set is sparser than the complete one


def test_search_widths_follows_the_original_steps_by_hand():
    """A toy cost (sum of widths x 100): target 1000 from (4, 8).
    Scale rounds: sqrt(1000 / 1200) = 0.91 -> first round(3.64) = 4, unchanged, twice.
    Steps: (3, 6) costs 900 < 1000, so step back to (4, 8). Second round: ratio
    round(8 / 4) = 2 steps down for stage 1: (4, 7) costs 1100 >= 1000, (4, 6) costs 1000,
    still not below: both kept."""
    def flops(widths):
        return 100 * sum(widths)
    assert budget.search_widths(flops, (4, 8), 1000, 2) == (4, 6)
    assert budget.search_widths(flops, (4, 8), 1200, 2) == (4, 8)  # already on target


def test_complete_graph_keeps_the_config_widths():
    cfg = models.default_config("resnet50")
    b = budget.match(cfg, "complete:n=64", IMAGENET)
    assert b.widths == (256, 512, 1024, 2048) and b.width == 256
    assert (b.macs, b.params) == (b.complete_macs, b.complete_params)


def test_match_depends_on_the_graph_not_its_spec_and_reuses_the_search():
    """The same graph under two specs (paper:n64_52/27 is paper:n64_3942/2267) gets the
    same widths, and the second match runs no width search: a sweep matches every
    (graph, seed) variant, and equal graphs share one search."""
    cfg = models.default_config("resnet34")
    first = budget.match(cfg, "paper:n64_52/27", IMAGENET)
    searches = budget._matched_widths.cache_info()
    again = budget.match(cfg, "paper:n64_3942/2267", IMAGENET)
    after = budget._matched_widths.cache_info()
    assert again == first and again.widths != models.default_widths(cfg)
    assert (after.hits, after.misses) == (searches.hits + 1, searches.misses)


def test_per_width_shortcut_rule_adds_the_original_stage1_projection():
    """At width 80 the original code (the default rule) adds a (graph) 1x1 projection
    64 -> 80 at 56x56; "padded_identity" keeps a zero-padded identity instead."""
    cfg = models.default_config("resnet34")
    per_width = budget.count(cfg, "complete:n=64", 80, IMAGENET)
    cfg.shortcut_rule = "padded_identity"
    padded = budget.count(cfg, "complete:n=64", 80, IMAGENET)
    assert per_width.macs - padded.macs == 64 * 80 * 56 * 56
    assert per_width.params - padded.params == 64 * 80 + 2 * 80


def test_node_count_mismatch_is_named():
    cfg = models.default_config("resnet34")
    cfg.nodes = 16
    with pytest.raises(ValueError, match="resnet34: graph complete:n=64 has 64 nodes but config.model.nodes is 16; use graphs"):
        budget.match(cfg, "complete:n=64", IMAGENET)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown model family 'vgg'"):
        budget.match({"name": "vgg"}, "complete:n=64", IMAGENET)
    with pytest.raises(ValueError, match=r"mlp: input_shape must be \(H, W, C\)"):
        budget.match(models.default_config("mlp"), "complete:n=64", (32, 32))
    cfg = models.default_config("mlp")
    cfg.nodes, cfg.width = 52, 16
    with pytest.raises(ValueError, match="mlp: layer graph0: 512 -> 16 channels, fewer than the "
                                         "graph's 52 nodes, and graph 'brain:cat' has no recipe"):
        budget.match(cfg, "brain:cat", CIFAR)


def test_narrow_layers_use_the_graph_recipe_at_fewer_nodes():
    """graph2nn's rule: a layer with fewer channels than nodes gets the same WS-flex recipe
    (k/n to 6 decimals, p, seed) at min(in, out) nodes; its kept weights follow that graph."""
    g = graphs.RelationalGraph.from_spec("paper:n16_48/45")
    row = graphs.paper_graph("n16_48", 45)
    small = relational.layer_graph(g, 32, 14)
    assert small == graphs.RelationalGraph.from_spec(
        graphs.ws_spec(14, round(row.k / 16, 6) * 14, row.p, row.seed))
    mask = relational.layer_mask(g, 32, 14)
    assert mask.sum() == budget.kept_weights(small.adjacency.astype(np.int64), 32, 14, "permuted")
    assert relational.layer_mask("complete:n=64", 20, 30).min() == 1.0


# A small MLP (8 nodes, stem and hidden width 16) on 32x32 inputs: FLOPs and parameters
# grow with the hidden width, so graph2nn's search from above ends at the narrowest width
# whose cost reaches the complete graph's, and from below at the widest one not above it.
SMALL_MLP = dict(nodes=8, width=16, stem_width=16)


@pytest.mark.parametrize("spec", ["ws:n=8,k=2,p=0,seed=0", "ws:n=8,k=4,p=0.5,seed=1",
                                  "ws:n=8,k=5,p=0.7,seed=3"])
def test_matching_from_above_and_below_on_flops_and_params_by_brute_force(spec):
    cfg = models.default_config("mlp")
    cfg.update(SMALL_MLP)
    counts = {w: budget.count(cfg, spec, w, CIFAR) for w in range(8, 120)}
    complete = budget.count(cfg, "complete:n=8", 16, CIFAR)
    for measure, target in (("flops", complete.flops), ("params", complete.params)):
        cost = {w: getattr(b, measure) for w, b in counts.items()}
        assert all(cost[w] < cost[w + 1] for w in range(8, 119))
        above = min(w for w in cost if cost[w] >= target)
        below = max(w for w in cost if cost[w] <= target)
        assert budget.match(cfg, spec, CIFAR, "above", measure).widths == (above,)
        assert budget.match(cfg, spec, CIFAR, "below", measure).widths == (below,)
    assert budget.match(cfg, spec, CIFAR) == budget.match(cfg, spec, CIFAR, "above", "flops")
    # The ring's widths differ between the measures: parameters are a different target.
    if spec.startswith("ws:n=8,k=2"):
        assert budget.match(cfg, spec, CIFAR, measure="params").width == 26
        assert budget.match(cfg, spec, CIFAR).width == 27


def test_search_widths_from_below_follows_the_original_steps_by_hand():
    """The toy cost of the test above (sum of widths x 100), target 1000 from (4, 8), with
    graph2nn's UPPER=False. Steps: (3, 6) costs 900, below 1000: kept. Second round: stage 1
    steps up: (3, 7) costs 1000, which graph2nn counts as not below, so it is undone."""
    def flops(widths):
        return 100 * sum(widths)
    assert budget.search_widths(flops, (4, 8), 1000, 2, side="below") == (3, 6)
    assert budget.search_widths(flops, (4, 8), 1200, 2, side="below") == (4, 8)


def test_scale_rounds_landing_on_the_target_step_down_as_graph2nn():
    """Cost w^2 from (50,), target 10,000: the scale round gives round(sqrt(4), 2) x 50 =
    100, on the target. graph2nn still steps to 99 (9,801, below): from above it steps
    back to 100, from below it keeps 99."""
    def cost(widths):
        return widths[0] ** 2
    assert budget.search_widths(cost, (50,), 10_000, 1, side="above") == (100,)
    assert budget.search_widths(cost, (50,), 10_000, 1, side="below") == (99,)


def test_config_budget_fields_reach_the_variants():
    from experiments.configs import quickstart
    from relgraph_jax.train import validate, variants

    config = quickstart.get_config("runlocal")
    config.budget_side, config.budget_measure = "below", "params"
    config = validate.validate_config(config)
    shape = tuple(config.input_shape)
    for v in variants.build_variants(config):
        b = budget.match(config.model, v.graph, shape, "below", "params")
        assert (v.widths, v.params) == (b.widths, b.params)
        assert v.params <= b.complete_params
    sparse = variants.build_variants(config)[0]
    assert sparse.widths != budget.match(config.model, sparse.graph, shape).widths


def test_bad_budget_options_are_named():
    cfg = models.default_config("mlp")
    with pytest.raises(ValueError, match=r"^budget side 'upper': allowed \['above', 'below'\]$"):
        budget.match(cfg, "complete:n=64", CIFAR, side="upper")
    with pytest.raises(ValueError, match=r"^budget measure 'macs': allowed \['flops', 'params'\]$"):
        budget.match(cfg, "complete:n=64", CIFAR, measure="macs")
