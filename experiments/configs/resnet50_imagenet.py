r"""ResNet-50 on ImageNet over the paper's 52-graph set (+ the complete graph), 3 seeds.

Launch (tfds imagenet2012; elsewhere than tfds's default: --config.data.tfds_data_dir=DIR):
  python -m experiments.main --config=experiments/configs/resnet50_imagenet.py \
      --workdir=runs/resnet50_imagenet
From the usual folders (PATH/train/<class>/*.JPEG, PATH/val/<class>/*; docs/data.md):
  python -m experiments.main --config=experiments/configs/resnet50_imagenet.py \
      --workdir=runs/resnet50_imagenet \
      --config.data.source=imagefolder --config.data.path=PATH
Every host of a TPU VM slice (the data and the workdir on disks all hosts see):
  gcloud compute tpus tpu-vm ssh TPU --zone=ZONE --worker=all --command='cd ~/relgraph_jax \
      && ./run.sh --config=experiments/configs/resnet50_imagenet.py --coordinator=auto \
      --workdir=/mnt/shared/runs/resnet50_imagenet \
      --config.data.source=imagefolder --config.data.path=/mnt/imagenet'
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
        "resnet50", graphs="paper:n64_52;complete:n=64", seeds=3,
        data=common.imagenet_data(), train_cfg=common.imagenet_recipe())
    if arg == "runlocal":
        config = common.runlocal(config, graphs="ws:n=8,k=4,p=0.3,seed=1;complete:n=8")
    return config
