r"""An experiment made of the three examples beside this file: all-convolutional nets
(allconv.py) on Moebius ladders (mobius.py) against the complete graph, budget-matched,
trained with the triangular cyclic learning rate (triangular.py) on CIFAR-10.

  python -m experiments.main --config=examples/extending/config.py:runlocal --workdir=DIR

`config.imports` names the three modules: every tool imports them first, in its own
process (`experiments.main` and `describe` from this config, `analyze` and
`replay_search` from the config.json the workdir records). `:runlocal` is the smoke run
(the family's tiny setting on the bundled digits, offline, a minute on a CPU).
"""
from experiments.configs import common

IMPORTS = ("examples.extending.mobius", "examples.extending.triangular",
           "examples.extending.allconv")


def get_config(arg=None):
    arg = common.get_arg(arg)
    config = common.experiment(
        "allconv", graphs="moebius:n=16;complete:n=16", seeds=3,
        input_shape=common.CIFAR10_SHAPE, data=common.cifar10_data(), imports=IMPORTS,
        train_cfg=common.train(batch_size=128, epochs=30, lr=0.1, weight_decay=5e-4,
                               eval_batch_size=1000, schedule="triangular", cycle_epochs=10))
    if arg == "runlocal":
        config = common.runlocal(config, graphs="moebius:n=8;complete:n=8")
    return config
