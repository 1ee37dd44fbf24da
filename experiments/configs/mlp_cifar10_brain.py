r"""5-layer MLP on CIFAR-10 with a brain network as its relational graph, vs the complete graph.

The config argument picks the network (default mcwhole); the model's node count follows
it, and the complete graph with as many nodes is the baseline:
  python -m experiments.main --config=experiments/configs/mlp_cifar10_brain.py:cat \
      --workdir=runs/mlp_brain_cat
  python -m experiments.describe --config=experiments/configs/mlp_cifar10_brain.py:mcvisual
Smoke run (bundled digits, the network and the complete graph, one epoch; `:runlocal`
alone uses mcwhole):
  python -m experiments.main --config=experiments/configs/mlp_cifar10_brain.py:cat,runlocal \
      --workdir=/tmp/mlp_brain_smoke
Networks: mcwhole (macaque whole cortex, 71 areas), mcvisual (macaque visual cortex, 30),
cat (cat cortex, 52). By default each is the directed graph the authors' brain-network
MLPs trained on (graph2nn's `*raw` files), `brain:NAME`: graph2nn reads file entry
[u, v] = 1 as the message v -> u (its mask convention; `brain:NAME/published` is the
other direction, u -> v). Option `sym` trains the symmetrised, undirected network
(`brain:NAME/sym`, the relational graph the paper's (C, L) plane places) instead:
  --config=experiments/configs/mlp_cifar10_brain.py:cat,sym
Data as in mlp_cifar10.py: the official release; option `jpeg` (with
--config.data.path=NPZ) for the JPEG copy.
"""
from experiments.configs import common
from relgraph_jax.graphs import RelationalGraph

NETWORKS = ("mcwhole", "mcvisual", "cat")


def get_config(arg=None):
    options = common.get_options(arg, NETWORKS + ("sym",) + common.CIFAR10_OPTIONS)
    networks = [o for o in options if o in NETWORKS]
    if len(networks) > 1:
        raise ValueError(f"config argument {arg!r} names {len(networks)} brain networks; "
                         f"give one of {list(NETWORKS)}")
    network = networks[0] if networks else "mcwhole"
    nodes = RelationalGraph.from_spec(f"brain:{network}").n
    graph = f"brain:{network}/sym" if "sym" in options else f"brain:{network}"
    config = common.experiment(
        "mlp", graphs=f"{graph};complete:n={nodes}", seeds=5,
        input_shape=common.CIFAR10_SHAPE, data=common.cifar10_data(jpeg="jpeg" in options),
        train_cfg=common.cifar10_recipe())
    config.model.nodes = nodes
    if "runlocal" in options:
        # The network fixes the node count, so the model stays (see common.runlocal).
        config = common.runlocal(config, graphs=config.graphs, tiny=False)
    return config
