r"""8-layer CNN with graph2nn's CIFAR stem on CIFAR-10, over the paper's 52-graph set
(+ the complete graph), 5 seeds.

Launch:
  python -m experiments.main --config=experiments/configs/cnn_cifar10.py \
      --workdir=runs/cnn_cifar10
Data: the official CIFAR-10 release, downloaded on first use into ~/.cache/relgraph_jax
(--config.data.cache_dir=DIR elsewhere; --config.data.path=FILE for a downloaded
cifar-10-python.tar.gz). The JPEG copy instead (lossy: compare graphs on it only with
each other): --config=experiments/configs/cnn_cifar10.py:jpeg --config.data.path=NPZ.
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/cnn_cifar10.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/cnn_cifar10.py:runlocal \
      --workdir=/tmp/cnn_cifar10_smoke

Where the values come from (graph2nn): the model is its CIFAR CNN with the "64d" widths
(64, 128, 256, stem 64) and 6 graph convs, behind the CIFAR stem (3x3 stride 1, no pool;
RGRAPH.STEM_MODE "default"): the family `cnn_cifar`, whose complete graph counts
48,957,952 FLOPs, graph2nn's hard-coded baseline for it. The recipe is that of
configs/baselines/cifar10/cnn_bs128_1gpu_layer3.yaml: batch 128, lr 0.1 cosine over 100
epochs, SGD with Nesterov momentum 0.9, weight decay 5e-4, precise BN from 1024 images,
one GPU. That file's 3 graph convs (MODEL.LAYERS 3, for which graph2nn has no baseline)
are --config.model.convs_per_stage=1.
graph2nn ships no CIFAR CNN sweep: the graph set is the 52 graphs of its conv studies, the
5 seeds those of its CIFAR-10 MLP study. variant_batch=4 (4 variants vmapped at a time on
a device) only bounds activation memory; it changes no result.
"""
from experiments.configs import common


def get_config(arg=None):
    return common.cifar10_conv_experiment("cnn_cifar", arg)
