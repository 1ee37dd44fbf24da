r"""5-layer MLP on CIFAR-10 with a brain network as its relational graph, vs the complete graph.

The config argument picks the network (default mcwhole); the model's node count follows
it, and the complete graph with as many nodes is the baseline:
  python -m experiments.main --config=experiments/configs/mlp_cifar10_brain.py:cat \
      --workdir=runs/mlp_brain_cat
  python -m experiments.describe --config=experiments/configs/mlp_cifar10_brain.py:mcvisual
Smoke run (bundled digits, the symmetrised network and the complete graph, one epoch;
`:runlocal` alone uses mcwhole):
  python -m experiments.main --config=experiments/configs/mlp_cifar10_brain.py:cat,runlocal \
      --workdir=/tmp/mlp_brain_smoke
Networks: mcwhole (macaque whole cortex, 71 areas), mcvisual (macaque visual cortex, 30),
cat (cat cortex, 52); each is used symmetrised (the paper's undirected relational graph)
and as given (directed: area u sends to area v).
"""
from experiments.configs import common
from relgraph_jax.graphs import RelationalGraph

NETWORKS = ("mcwhole", "mcvisual", "cat")


def get_config(arg=None):
    network, _, mode = (arg or "").partition(",")
    if network == "runlocal":
        network, mode = "", network
    network = network or "mcwhole"
    if network not in NETWORKS or mode not in ("", "runlocal"):
        raise ValueError(f"unknown config argument {arg!r}; allowed: a brain network "
                         f"{list(NETWORKS)}, optionally with ',runlocal', or 'runlocal'")
    nodes = RelationalGraph.from_spec(f"brain:{network}").n
    config = common.experiment(
        "mlp", graphs=f"brain:{network}/sym;brain:{network};complete:n={nodes}", seeds=5,
        input_shape=common.CIFAR10_SHAPE, data=common.cifar10_data(),
        train_cfg=common.cifar10_recipe())
    config.model.nodes = nodes
    if mode == "runlocal":
        config = common.runlocal(config, graphs=f"brain:{network}/sym;complete:n={nodes}")
    return config
