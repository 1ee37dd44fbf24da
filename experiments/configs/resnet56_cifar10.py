r"""ResNet-56 (graph2nn's CIFAR ResNet rule, 6n+2 with n = 9) on CIFAR-10, over the paper's
52-graph set (+ the complete graph), 5 seeds.

Launch:
  python -m experiments.main --config=experiments/configs/resnet56_cifar10.py \
      --workdir=runs/resnet56_cifar10
Data: the official CIFAR-10 release, downloaded on first use into ~/.cache/relgraph_jax
(--config.data.cache_dir=DIR elsewhere; --config.data.path=FILE for a downloaded
cifar-10-python.tar.gz). The JPEG copy instead (lossy: compare graphs on it only with
each other): --config=experiments/configs/resnet56_cifar10.py:jpeg --config.data.path=NPZ.
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/resnet56_cifar10.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/resnet56_cifar10.py:runlocal \
      --workdir=/tmp/resnet56_cifar10_smoke

Where the values come from (graph2nn): the model follows its CIFAR ResNet rule
(MODEL.DEPTH 56: 9 basic blocks per stage; widths 16, 32, 64; 64 nodes) with ResNet-20's
3x3 stride-1 stem of 16 (the family `resnet56`, stem "cifar"); graph2nn has no baseline
for it: the complete graph counts 125,747,840 FLOPs (counted by hand in
tests/test_cifar_families.py). The recipe is ResNet-20's,
configs/baselines/cifar10/resnet20_bs128_1gpu.yaml: batch 128, lr 0.1 cosine over 100
epochs, SGD with Nesterov momentum 0.9, weight decay 5e-4, precise BN from 1024 images,
one GPU.
graph2nn ships no CIFAR ResNet sweep: the graph set is the 52 graphs of its conv studies, the
5 seeds those of its CIFAR-10 MLP study. variant_batch=4 (4 variants vmapped at a time on
a device) only bounds activation memory; it changes no result.
"""
from experiments.configs import common


def get_config(arg=None):
    return common.cifar10_conv_experiment("resnet56", arg)
