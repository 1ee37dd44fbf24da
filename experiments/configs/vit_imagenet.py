r"""ViT-S/16 on ImageNet over the paper's 52-graph set of 64 nodes (+ the complete graph),
3 seeds: relational graphs in a Transformer (docs/transformers.md).

Launch (tfds imagenet2012; elsewhere than tfds's default: --config.data.tfds_data_dir=DIR):
  python -m experiments.main --config=experiments/configs/vit_imagenet.py \
      --workdir=runs/vit_imagenet
From the usual folders (PATH/train/<class>/*.JPEG, PATH/val/<class>/*; docs/data.md):
  python -m experiments.main --config=experiments/configs/vit_imagenet.py \
      --workdir=runs/vit_imagenet --config.data.source=imagefolder --config.data.path=PATH
Every host of a TPU VM slice (the data and the workdir on disks all hosts see):
  gcloud compute tpus tpu-vm ssh TPU --zone=ZONE --worker=all --command='cd ~/relgraph_jax \
      && ./run.sh --config=experiments/configs/vit_imagenet.py --coordinator=auto \
      --workdir=/mnt/shared/runs/vit_imagenet \
      --config.data.source=imagefolder --config.data.path=/mnt/imagenet'
Describe (graphs, C, L, widths, FLOPs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/vit_imagenet.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/vit_imagenet.py:runlocal \
      --workdir=/tmp/vit_imagenet_smoke

The model: ViT-S/16, width 384, depth 12, 6 heads, MLP ratio 4, 16x16 patches of 224 px
(196 patches + the class token), 64 nodes (6 channels per group, about 11 groups per
head): 4.60 GFLOPs and 22.05 M parameters, timm's ViT-S/16 counts. The recipe
(`common.transformer_recipe`) takes DeiT-S's settings: batch 1024, lr 1e-3 (5e-4 x 1024 /
512), weight decay 0.05, 300 epochs, 5 epochs of warmup (6,255 steps of 1,251, stated in
steps: change it with the batch size), label smoothing 0.1. It adds gradient clipping at
norm 1 and uses the stream's crop and flip. It differs from DeiT's: the cosine runs over
all steps, to 0; no mixup, RandAugment, repeated augmentation or stochastic depth. Expect
it to land a few points below DeiT-S's 79.8 %.
"""
from experiments.configs import common


def get_config(arg=None):
    arg = common.get_arg(arg)
    config = common.experiment(
        "vit", graphs="paper:n64_52;complete:n=64", seeds=3, data=common.imagenet_data(),
        train_cfg=common.transformer_recipe(batch_size=1024, epochs=300, lr=1e-3,
                                            eval_batch_size=500, warmup_steps=6255))
    config.model.update(nodes=64, width=384, heads=6, patch=16, num_classes=1000)
    if arg == "runlocal":
        config = common.runlocal(config, graphs="ws:n=4,k=2,p=0.3,seed=1;complete:n=4")
        config.train.warmup = 4
    return config
