r"""ResNet-50 on ImageNet over the paper's 52-graph set (+ the complete graph), 3 seeds.

Launch:
  python -m experiments.main --config=experiments/configs/resnet50_imagenet.py \
      --workdir=runs/resnet50_imagenet
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/resnet50_imagenet.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/resnet50_imagenet.py:runlocal \
      --workdir=/tmp/resnet50_smoke

The paper's best graph is paper:n64_52/22 (C 0.636, L 1.814): 22.42 % top-1 error against
23.09 % for the complete graph.
"""
from experiments.configs import common


def get_config(arg=None):
    arg = common.get_arg(arg)
    config = common.experiment(
        "resnet50", graphs="paper:n64_52;complete:n=64", seeds=3, input_shape=common.IMAGENET_SHAPE,
        data=common.imagenet_data(), train_cfg=common.imagenet_recipe())
    if arg == "runlocal":
        config = common.runlocal(config, graphs="paper:n64_52/22;complete:n=64")
    return config
