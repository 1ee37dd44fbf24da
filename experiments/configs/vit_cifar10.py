r"""A DeiT-tiny-like Vision Transformer on CIFAR-10 over the paper's 48-graph set of 16
nodes (+ the complete graph), 3 seeds: relational graphs in a Transformer
(docs/transformers.md).

Launch (one GPU or a TPU VM host; see the ImageNet configs for a slice):
  python -m experiments.main --config=experiments/configs/vit_cifar10.py \
      --workdir=runs/vit_cifar10
Data: the official CIFAR-10 release, downloaded on first use into ~/.cache/relgraph_jax
(--config.data.cache_dir=DIR elsewhere; --config.data.path=FILE for a downloaded
cifar-10-python.tar.gz). The JPEG copy instead (lossy: compare graphs on it only with
each other): --config=experiments/configs/vit_cifar10.py:jpeg --config.data.path=NPZ.
Describe (graphs, C, L, widths, FLOPs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/vit_cifar10.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/vit_cifar10.py:runlocal \
      --workdir=/tmp/vit_cifar10_smoke

The model: DeiT-tiny's width 192, depth 12, 3 heads and MLP ratio 4 with 4x4 patches
(64 patches + the class token), 16 nodes (12 channels per group, 5 1/3 groups per head
at the complete graph): 365.1 MFLOPs, 5.36 M parameters. The recipe
(`common.transformer_recipe`) takes DeiT's ingredients: AdamW, weight decay 0.05 off
biases, LayerNorm and embeddings, warmup then a cosine over all steps to 0, label
smoothing 0.1. It adds gradient clipping at norm 1. Batch 128 and lr 5e-4 (the usual rate
for ViTs trained from scratch on CIFAR-10), 200 epochs, 5 epochs of warmup (1,950 steps
of 390, stated in steps: change it with the batch size), CIFAR-10's crop and flip; no
mixup, RandAugment or stochastic depth.
"""
from experiments.configs import common


def get_config(arg=None):
    options = common.get_options(arg, common.CIFAR10_OPTIONS)
    config = common.experiment(
        "vit", graphs="paper:n16_48;complete:n=16", seeds=3, input_shape=common.CIFAR10_SHAPE,
        data=common.cifar10_data(jpeg="jpeg" in options),
        train_cfg=common.transformer_recipe(batch_size=128, epochs=200, lr=5e-4,
                                            eval_batch_size=1000, warmup_steps=1950))
    if "runlocal" in options:
        config = common.runlocal(config, graphs="ws:n=4,k=2,p=0.3,seed=1;complete:n=4")
        config.train.warmup = 4
    return config
