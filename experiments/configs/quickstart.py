"""Quick start, offline: the paper's 52 graphs + the complete graph, MLP, bundled digits.

Runs on a laptop CPU in a few minutes with no download (scikit-learn's 8x8 digits):

  ./run.sh                                   # this config, workdir workdirs/quickstart
  python -m experiments.main --config=experiments/configs/quickstart.py --workdir=DIR
  python -m experiments.main --config=experiments/configs/quickstart.py --dry_run
  python -m experiments.analyze --workdir=DIR
Smoke run (two graphs, one epoch):
  python -m experiments.main --config=experiments/configs/quickstart.py:runlocal \
      --workdir=/tmp/quickstart_smoke

The MLP is the paper's 5-layer MLP scaled to the tiny inputs: 64 -> 128 stem, three
graph layers budget-matched to a 128-wide complete graph, 10-way head. Digits are not
augmented (crops and flips change what a digit means).
"""
from experiments.configs import common


def get_config(arg=None):
    arg = common.get_arg(arg)
    config = common.experiment(
        "mlp", graphs="paper:n64_52;complete:n=64", seeds=1, input_shape=common.DIGITS_SHAPE,
        data=common.digits_data(),
        train_cfg=common.train(batch_size=64, epochs=6, lr=0.1, weight_decay=5e-4,
                               eval_batch_size=360, variant_batch=0))
    config.model.stem_width = 128
    config.model.width = 128
    config.train.steps_per_call = 22  # one epoch of the 1437 training digits per call
    config.train.log_every_steps = 22
    if arg == "runlocal":
        config = common.runlocal(config, graphs="paper:n64_52/27;complete:n=64", tiny=False)
    return config
