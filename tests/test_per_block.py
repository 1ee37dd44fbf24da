"""A graph per block (graph2nn's KEEP_GRAPH=False): each block's graph against graph2nn's
seeding written out by hand (block i of every stage at seed 100 * seed + i), its masks in
the built model, the budget counted from each block's own mask and describe. (A per-block
sweep trains on the bundled digits, and the analysis notes where it places it, in
tests/test_cifar_families.py's smoke run.)"""
import numpy as np
import pytest
from flax import traverse_util

from experiments import describe
from experiments.configs import quickstart, resnet34_imagenet
from relgraph_jax import budget, graphs, models, relational
from relgraph_jax.graphs import RelationalGraph
from helpers import init_variables

SPEC = "ws:n=8,k=4,p=0.5,seed=3"


def _ws(seed: int) -> RelationalGraph:
    """graph2nn's block graph: the same WS-flex recipe at another seed (networkx edges)."""
    return RelationalGraph.from_networkx(graphs.ws_flex(8, 4, 0.5, seed))


def test_each_block_draws_the_recipe_at_100_seed_plus_its_index():
    g = RelationalGraph.from_spec(f"per_block:{SPEC}")
    assert g == graphs.per_block(RelationalGraph.from_spec(SPEC)) != RelationalGraph.from_spec(SPEC)
    assert (g.n, g.edges, g.spec) == (8, RelationalGraph.from_spec(SPEC).edges, f"per_block:{SPEC}")
    for i in range(3):
        assert g.block(i) == _ws(300 + i)
    assert len({g.block(i) for i in range(3)}) == 3  # three different draws
    paper = RelationalGraph.from_spec("per_block:paper:n64_52/3")  # its row is ws:..,seed=15
    row = graphs.paper_graph("n64_52", 3)
    assert paper.block(1) == RelationalGraph.from_networkx(graphs.ws_flex(64, row.k, row.p, 1501))
    whole_set = "per_block:paper:n64_52"
    assert len(graphs.resolve(whole_set)) == graphs.count(whole_set) == 52
    with pytest.raises(ValueError, match=r"^graph spec 'per_block:complete:n=8': 'complete:n=8' "
                                         r"has no seed to draw a graph per block from; allowed: "
                                         r"paper: and ws:, .*er:"):
        graphs.resolve("per_block:complete:n=8")


def _masks(variables) -> dict:
    return {"/".join(path): np.asarray(leaf)
            for path, leaf in traverse_util.flatten_dict(variables["masks"]).items()}


def test_resnet_blocks_restart_per_stage_and_the_mlp_counts_its_layers():
    """ResNet: stage s block b uses seed 300 + b in every stage, its two convs and its
    projection alike; the MLP: graph layer i uses seed 300 + i."""
    cfg = models.default_config("resnet34")
    cfg.update(nodes=8, width=8, stem_width=10, depths=(2, 1, 1, 1))
    masks = _masks(init_variables(models.build(cfg, f"per_block:{SPEC}"), np.zeros((1, 32, 32, 3))))
    for path, block in (("stage0_block0/conv1", 0), ("stage0_block1/conv2", 1),
                        ("stage1_block0/conv1", 0), ("stage1_block0/proj", 0),
                        ("stage3_block0/conv2", 0)):
        mask = masks[f"{path}/mask"]
        want = relational.layer_mask(_ws(300 + block), *mask.shape, cfg.partition)
        np.testing.assert_array_equal(mask, want, err_msg=path)
    assert not np.array_equal(masks["stage0_block0/conv2/mask"], masks["stage0_block1/conv2/mask"])
    mlp = models.default_config("mlp")
    mlp.update(nodes=8, width=16, stem_width=16)
    masks = _masks(init_variables(models.build(mlp, f"per_block:{SPEC}"), np.zeros((1, 8, 8, 1))))
    for i in range(3):
        np.testing.assert_array_equal(masks[f"graph{i}/mask"],
                                      relational.layer_mask(_ws(300 + i), 16, 16, mlp.partition))


def test_the_budget_counts_each_blocks_own_mask():
    """MLP MACs: stem + each graph layer's kept weights (its block's mask) + head."""
    mlp = models.default_config("mlp")
    mlp.update(nodes=8, width=21, stem_width=21)  # uneven groups: each draw keeps its own count
    cost = budget.count(mlp, f"per_block:{SPEC}", None, (8, 8, 1))
    kept = [relational.layer_mask(_ws(300 + i), 21, 21, mlp.partition).sum() for i in range(3)]
    assert len(set(kept)) > 1
    assert cost.macs == 64 * 21 + sum(kept) + 21 * 10
    assert cost.macs != budget.count(mlp, SPEC, None, (8, 8, 1)).macs


def test_describe_lists_the_block_graphs_and_complete_graphs_stay():
    config = resnet34_imagenet.get_config("runlocal")
    config.graph_per_block = True
    config.graphs = f"{SPEC};complete:n=8"
    first, complete = describe.describe(config)
    assert first["graph"] == f"per_block:{SPEC}" and complete["graph"] == "complete:n=8"
    assert [b["graph"] for b in first["block_graphs"]] == [
        SPEC.replace("seed=3", "seed=300")]  # tiny ResNet-34: one block per stage
    assert first["block_graphs"][0]["C"] == pytest.approx(_ws(300).C)
    assert "block_graphs" not in complete
    mlp = quickstart.get_config("runlocal")
    mlp.model.update(nodes=8, impl="gather")
    mlp.graphs = f"per_block:{SPEC}"
    with pytest.raises(ValueError, match=r"^model.impl='gather' pads every layer's tables"):
        describe.describe(mlp)


def test_the_resnet_budget_restarts_the_block_count_in_every_stage():
    """ResNet-34 with two blocks in stage 0: each graph conv's kept weights are its block's
    (seed 300 + its index in the stage), at 21 channels per stage (uneven groups)."""
    cfg = models.default_config("resnet34")
    cfg.update(nodes=8, width=21, stem_width=21, depths=(2, 1, 1, 1), stage_ratios=(1, 1, 1, 1))
    shape = (16, 16, 3)
    widths = models.stage_widths(cfg)
    per_block = budget.count(cfg, f"per_block:{SPEC}", widths, shape)
    plain = budget.count(cfg, SPEC, widths, shape)
    layers = [layer for layer in models.layer_list(cfg, SPEC, widths, shape)
              if layer.kind == "graph"]
    assert sorted({layer.block for layer in layers}) == [0, 1]

    def kept(graph, layer) -> int:
        return int(relational.layer_mask(graph, layer.cin, layer.cout, cfg.partition).sum())

    own = RelationalGraph.from_spec(SPEC)
    shift = sum(layer.window * layer.positions
                * (kept(_ws(300 + layer.block), layer) - kept(own, layer)) for layer in layers)
    assert shift != 0 and per_block.macs == plain.macs + shift
