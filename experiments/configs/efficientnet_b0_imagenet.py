r"""EfficientNet-B0 (16-node graphs) on ImageNet over the paper's 48-graph set (+ complete), 3 seeds.

Recipe: batch 512, lr 0.2 cosine over 100 epochs, weight decay 5e-5, swish, SE 0.25;
BatchNorm statistics over groups of 64 images (8 GPUs, unsynchronised), precise BN from
1024 training images after every epoch.

Launch (tfds imagenet2012; elsewhere than tfds's default: --config.data.tfds_data_dir=DIR):
  python -m experiments.main --config=experiments/configs/efficientnet_b0_imagenet.py \
      --workdir=runs/efficientnet_b0_imagenet
From the usual folders (PATH/train/<class>/*.JPEG, PATH/val/<class>/*; docs/data.md):
  python -m experiments.main --config=experiments/configs/efficientnet_b0_imagenet.py \
      --workdir=runs/efficientnet_b0_imagenet \
      --config.data.source=imagefolder --config.data.path=PATH
Every host of a TPU VM slice (the data and the workdir on disks all hosts see):
  gcloud compute tpus tpu-vm ssh TPU --zone=ZONE --worker=all --command='cd ~/relgraph_jax \
      && ./run.sh --config=experiments/configs/efficientnet_b0_imagenet.py --coordinator=auto \
      --workdir=/mnt/shared/runs/efficientnet_b0_imagenet \
      --config.data.source=imagefolder --config.data.path=/mnt/imagenet'
Describe (graphs, C, L, widths, MACs; no data, no compiling):
  python -m experiments.describe --config=experiments/configs/efficientnet_b0_imagenet.py
Smoke run (bundled digits, two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/efficientnet_b0_imagenet.py:runlocal \
      --workdir=/tmp/effnet_smoke

The paper's best graph is paper:n16_48/42 (C 0.613, L 1.892): 25.07 % top-1 error against
25.59 % for the complete graph.
"""
from experiments.configs import common


def get_config(arg=None):
    arg = common.get_arg(arg)
    config = common.experiment(
        "efficientnet_b0", graphs="paper:n16_48;complete:n=16", seeds=3,
        data=common.imagenet_data(),
        train_cfg=common.train(batch_size=512, epochs=100, lr=0.2, weight_decay=5e-5,
                               eval_batch_size=400, bn_group_size=64, precise_bn_samples=1024))
    if arg == "runlocal":
        config = common.runlocal(config, graphs="ws:n=6,k=4,p=0.3,seed=1;complete:n=6")
    return config
