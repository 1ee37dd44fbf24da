r"""5-layer MLP on CIFAR-10 over the paper's 3942 graphs (+ the complete graph), 5 seeds.

Launch:
  python -m experiments.main --config=experiments/configs/mlp_cifar10.py \
      --workdir=runs/mlp_cifar10
Data: the official CIFAR-10 release, downloaded on first use into ~/.cache/relgraph_jax
(--config.data.cache_dir=DIR elsewhere; --config.data.path=FILE for a downloaded
cifar-10-python.tar.gz). The JPEG copy instead (lossy: compare graphs on it only with
each other): --config=experiments/configs/mlp_cifar10.py:jpeg --config.data.path=NPZ.
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/mlp_cifar10.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/mlp_cifar10.py:runlocal \
      --workdir=/tmp/mlp_smoke

The paper's best graph is paper:n64_3942/3552 (C 0.448, L 2.479): 32.05 +- 0.14 % top-1
error against 33.34 +- 0.36 % for the complete graph.
"""
from experiments.configs import common


def get_config(arg=None):
    options = common.get_options(arg, common.CIFAR10_OPTIONS)
    config = common.experiment(
        "mlp", graphs="paper:n64_3942;complete:n=64", seeds=5, input_shape=common.CIFAR10_SHAPE,
        data=common.cifar10_data(jpeg="jpeg" in options), train_cfg=common.cifar10_recipe())
    if "runlocal" in options:
        config = common.runlocal(config, graphs="paper:n64_3942/3552;complete:n=64", tiny=False)
    return config
