r"""5-layer MLP on CIFAR-10 over the paper's 52-graph set (+ the complete graph), 5 seeds.

The coarse sweep the paper correlates with the 3942-graph one (Pearson 0.90).

Launch:
  python -m experiments.main --config=experiments/configs/mlp_cifar10_52.py \
      --workdir=runs/mlp_cifar10_52
Data: the official CIFAR-10 release, downloaded on first use into ~/.cache/relgraph_jax
(--config.data.cache_dir=DIR elsewhere; --config.data.path=FILE for a downloaded
cifar-10-python.tar.gz). The JPEG copy instead (lossy: compare graphs on it only with
each other): --config=experiments/configs/mlp_cifar10_52.py:jpeg --config.data.path=NPZ.
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/mlp_cifar10_52.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/mlp_cifar10_52.py:runlocal \
      --workdir=/tmp/mlp52_smoke
"""
from experiments.configs import common


def get_config(arg=None):
    options = common.get_options(arg, common.CIFAR10_OPTIONS)
    config = common.experiment(
        "mlp", graphs="paper:n64_52;complete:n=64", seeds=5, input_shape=common.CIFAR10_SHAPE,
        data=common.cifar10_data(jpeg="jpeg" in options), train_cfg=common.cifar10_recipe())
    if "runlocal" in options:
        config = common.runlocal(config, graphs="paper:n64_52/0;complete:n=64", tiny=False)
    return config
