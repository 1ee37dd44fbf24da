r"""5-layer MLP on CIFAR-10 over the paper's 52-graph set (+ the complete graph), 5 seeds.

The coarse sweep the paper correlates with the 3942-graph one (Pearson 0.90).

Launch:
  python -m experiments.main --config=experiments/configs/mlp_cifar10_52.py \
      --workdir=runs/mlp_cifar10_52
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/mlp_cifar10_52.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/mlp_cifar10_52.py:runlocal \
      --workdir=/tmp/mlp52_smoke
"""
from experiments.configs import common


def get_config(arg=None):
    arg = common.get_arg(arg)
    config = common.experiment(
        "mlp", graphs="paper:n64_52;complete:n=64", seeds=5, input_shape=common.CIFAR10_SHAPE,
        data=common.cifar10_data(), train_cfg=common.cifar10_recipe())
    if arg == "runlocal":
        config = common.runlocal(config, graphs="paper:n64_52/0;complete:n=64")
    return config
