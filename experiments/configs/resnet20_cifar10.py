r"""ResNet-20 (graph2nn's CIFAR ResNet, 6n+2 with n = 3) on CIFAR-10, over the paper's
52-graph set (+ the complete graph), 5 seeds.

Launch:
  python -m experiments.main --config=experiments/configs/resnet20_cifar10.py \
      --workdir=runs/resnet20_cifar10
Data: the official CIFAR-10 release, downloaded on first use into ~/.cache/relgraph_jax
(--config.data.cache_dir=DIR elsewhere; --config.data.path=FILE for a downloaded
cifar-10-python.tar.gz). The JPEG copy instead (lossy: compare graphs on it only with
each other): --config=experiments/configs/resnet20_cifar10.py:jpeg --config.data.path=NPZ.
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/resnet20_cifar10.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/resnet20_cifar10.py:runlocal \
      --workdir=/tmp/resnet20_cifar10_smoke

Where the values come from (graph2nn): the model is its CIFAR ResNet-20 (MODEL.DEPTH 20,
widths 16, 32, 64 as RGRAPH.DIM_LIST, 64 nodes as RGRAPH.GROUP_NUM, so narrower layers use
the graph's recipe at fewer nodes) with the 3x3 stride-1 stem of 16 (the family
`resnet20`, stem "cifar"), whose complete graph counts 40,813,184 FLOPs, graph2nn's
hard-coded ResNet-20 baseline. The recipe is that of
configs/baselines/cifar10/resnet20_bs128_1gpu.yaml: batch 128, lr 0.1 cosine over 100
epochs, SGD with Nesterov momentum 0.9, weight decay 5e-4, precise BN from 1024 images,
no zero-init of the last BN, one GPU.
graph2nn ships no CIFAR ResNet sweep: the graph set is the 52 graphs of its conv studies, the
5 seeds those of its CIFAR-10 MLP study. variant_batch=4 (4 variants vmapped at a time on
a device) only bounds activation memory; it changes no result.
"""
from experiments.configs import common


def get_config(arg=None):
    return common.cifar10_conv_experiment("resnet20", arg)
